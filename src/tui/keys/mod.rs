//! The binding table: every key, what it does, where it holds and its help text, once. The keymap
//! ([`super::keymap::action`]), the help overlay, the key hints in pane titles and `docs/keys.md`
//! are all read from [`ROWS`]; adding a key is adding a binding here.

use crate::state::{Action, Focus};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding holds. When several hold, [`When::PRECEDENCE`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A picker (presets or models) is open: only its keys work.
    Picker,
    /// The help overlay is open.
    Help,
    /// The variants table is open.
    Variants,
    /// A pane other than the prompt is zoomed.
    Zoomed,
    /// Anywhere outside a picker, the prompt included.
    Anywhere,
    /// The prompt has focus and the help is closed: keys are text.
    Typing,
    /// Outside the prompt (or over the help): single letters are commands.
    Commands,
}

impl When {
    /// The order in which contexts are asked for a key: the first that holds and binds it wins.
    pub const PRECEDENCE: [When; 7] = [
        When::Picker,
        When::Help,
        When::Variants,
        When::Zoomed,
        When::Anywhere,
        When::Typing,
        When::Commands,
    ];

    /// The context in the words of `docs/keys.md`.
    pub fn describe(self) -> &'static str {
        match self {
            When::Picker => "in a picker",
            When::Help => "over the help",
            When::Variants => "over the variants table",
            When::Zoomed => "on a zoomed pane",
            When::Anywhere => "anywhere",
            When::Typing => "in the prompt",
            When::Commands => "outside the prompt",
        }
    }
}

/// A key (or the mouse) as a binding names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// This key, whatever the modifiers.
    Code(KeyCode),
    /// Ctrl and this letter.
    Ctrl(char),
    /// Any character typed without Ctrl.
    Text,
    /// A digit 1–9 (a pane's number).
    Digit,
    /// A click or the wheel (the app loop maps mouse events; no key event matches).
    Mouse,
}

impl Key {
    /// The key as the help, the hints and the docs write it.
    pub fn name(self) -> String {
        match self {
            Key::Code(code) => match code {
                KeyCode::Enter => "Enter".into(),
                KeyCode::Esc => "Esc".into(),
                KeyCode::Tab => "Tab".into(),
                KeyCode::BackTab => "S-Tab".into(),
                KeyCode::Backspace => "Backspace".into(),
                KeyCode::Left => "←".into(),
                KeyCode::Right => "→".into(),
                KeyCode::Up => "↑".into(),
                KeyCode::Down => "↓".into(),
                KeyCode::Char(c) => c.to_string(),
                other => format!("{other}"),
            },
            Key::Ctrl(c) => format!("Ctrl-{}", c.to_ascii_uppercase()),
            Key::Text => "typing".into(),
            Key::Digit => format!("1–{}", Focus::ALL.len()),
            Key::Mouse => "mouse".into(),
        }
    }

    fn matches(self, key: &KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match (self, key.code) {
            (Key::Code(code), pressed) => code == pressed,
            (Key::Ctrl(c), KeyCode::Char(pressed)) => ctrl && c == pressed,
            (Key::Text, KeyCode::Char(_)) => !ctrl,
            (Key::Digit, KeyCode::Char(c)) => c.is_ascii_digit() && c != '0',
            _ => false,
        }
    }
}

/// What a binding does.
#[derive(Debug, Clone, PartialEq)]
pub enum Does {
    Act(Action),
    /// Type the character pressed.
    Type,
    /// Focus the pane of the digit pressed.
    FocusNumbered,
    /// Focus the pane clicked, and select the token clicked on the tape.
    Point,
}

impl Does {
    /// The action for `key`, if this binding has one for it (a digit past the last pane has none).
    fn action(&self, key: &KeyEvent) -> Option<Action> {
        match (self, key.code) {
            (Does::Act(a), _) => Some(a.clone()),
            (Does::Type, KeyCode::Char(c)) => Some(Action::Type(c)),
            (Does::FocusNumbered, KeyCode::Char(c)) => {
                Some(Action::Focus(Focus::numbered(c.to_digit(10)?)?))
            }
            _ => None,
        }
    }

    /// Whether this binding can give `action` (any character for `Type`, any pane for a digit).
    pub fn gives(&self, action: &Action) -> bool {
        match self {
            Does::Act(a) => a == action,
            Does::Type => matches!(action, Action::Type(_)),
            Does::FocusNumbered => matches!(action, Action::Focus(_)),
            Does::Point => matches!(action, Action::Focus(_) | Action::Select(_)),
        }
    }
}

/// Keys that do one thing in one context.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub when: When,
    /// The first is the one hints name; the others are aliases.
    pub keys: &'static [Key],
    pub does: Does,
}

impl Binding {
    /// The action `key` gives here, if it is one of this binding's keys.
    pub fn fire(&self, key: &KeyEvent) -> Option<Action> {
        if self.keys.iter().any(|k| k.matches(key)) {
            self.does.action(key)
        } else {
            None
        }
    }
}

/// One line of the help: the keys as written there, what they do, and their bindings.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub keys: &'static str,
    pub help: &'static str,
    /// Shown in the help overlay; a picker's keys and Backspace are in `docs/keys.md` only.
    pub overlay: bool,
    pub bindings: &'static [Binding],
}

const fn on(when: When, keys: &'static [Key], action: Action) -> Binding {
    Binding {
        when,
        keys,
        does: Does::Act(action),
    }
}

const fn row(keys: &'static str, help: &'static str, bindings: &'static [Binding]) -> Row {
    Row {
        keys,
        help,
        overlay: true,
        bindings,
    }
}

const fn docs_only(keys: &'static str, help: &'static str, bindings: &'static [Binding]) -> Row {
    Row {
        keys,
        help,
        overlay: false,
        bindings,
    }
}

const fn ch(c: char) -> Key {
    Key::Code(KeyCode::Char(c))
}

const ENTER: Key = Key::Code(KeyCode::Enter);
const ESC: Key = Key::Code(KeyCode::Esc);
const UP: Key = Key::Code(KeyCode::Up);
const DOWN: Key = Key::Code(KeyCode::Down);
const LEFT: Key = Key::Code(KeyCode::Left);
const RIGHT: Key = Key::Code(KeyCode::Right);

use When::{Anywhere, Commands, Picker, Typing};

/// Every binding, in the help's order.
pub static ROWS: &[Row] = &[
    row(
        "Enter",
        "run the prompt",
        &[on(Anywhere, &[ENTER], Action::Run)],
    ),
    row(
        "Esc",
        "stop the run / leave prompt / unzoom",
        &[
            on(When::Help, &[ESC], Action::ToggleHelp),
            on(When::Variants, &[ESC], Action::ToggleVariants),
            on(When::Zoomed, &[ESC], Action::ToggleZoom),
            on(Anywhere, &[ESC], Action::Escape),
        ],
    ),
    row(
        "Tab / S-Tab",
        "focus the next / previous pane",
        &[
            on(Anywhere, &[Key::Code(KeyCode::Tab)], Action::FocusNext),
            on(Anywhere, &[Key::Code(KeyCode::BackTab)], Action::FocusPrev),
        ],
    ),
    row(
        "1–6",
        "focus a pane (1 prompt … 6 KV)",
        &[Binding {
            when: Commands,
            keys: &[Key::Digit],
            does: Does::FocusNumbered,
        }],
    ),
    row(
        "z",
        "zoom the focused pane / unzoom",
        &[on(Commands, &[ch('z')], Action::ToggleZoom)],
    ),
    row(
        "mouse",
        "click focuses · wheel scrolls the tokens",
        &[Binding {
            when: Anywhere,
            keys: &[Key::Mouse],
            does: Does::Point,
        }],
    ),
    row(
        "S",
        "screenshot: SVG and text",
        &[on(Commands, &[ch('S')], Action::Screenshot)],
    ),
    row(
        "typing",
        "edits the prompt while it has focus",
        &[Binding {
            when: Typing,
            keys: &[Key::Text],
            does: Does::Type,
        }],
    ),
    row(
        "Ctrl-U",
        "clear the prompt",
        &[on(Anywhere, &[Key::Ctrl('u')], Action::ClearPrompt)],
    ),
    row(
        "q / Ctrl-C",
        "quit (q outside the prompt)",
        &[
            on(Commands, &[ch('q')], Action::Quit),
            on(Anywhere, &[Key::Ctrl('c')], Action::Quit),
        ],
    ),
    row(
        "s",
        "stop the run or the job",
        &[on(Commands, &[ch('s')], Action::Stop)],
    ),
    row(
        "r",
        "run (outside the prompt)",
        &[on(Commands, &[ch('r')], Action::Run)],
    ),
    row(
        "← → / h l",
        "select a token",
        &[
            on(Anywhere, &[LEFT], Action::SelectPrev),
            on(Anywhere, &[RIGHT], Action::SelectNext),
            on(Commands, &[ch('h')], Action::SelectPrev),
            on(Commands, &[ch('l')], Action::SelectNext),
        ],
    ),
    row(
        "↑ ↓ / k j",
        "scroll the tokens (over e's figures: those)",
        &[
            on(Anywhere, &[UP], Action::ScrollDown),
            on(Anywhere, &[DOWN], Action::ScrollUp),
            on(Commands, &[ch('k')], Action::ScrollDown),
            on(Commands, &[ch('j')], Action::ScrollUp),
        ],
    ),
    row(
        "d",
        "cycle the draft mode",
        &[on(Commands, &[ch('d')], Action::CycleDraftMode)],
    ),
    row(
        "a",
        "cycle the acceptance policy (lossless, then lossy rules)",
        &[on(Commands, &[ch('a')], Action::CyclePolicy)],
    ),
    row(
        "[ / ]",
        "K down / up (1–16)",
        &[
            on(Commands, &[ch('[')], Action::KDown),
            on(Commands, &[ch(']')], Action::KUp),
        ],
    ),
    row(
        "u",
        "cycle the quantization (requantises)",
        &[on(Commands, &[ch('u')], Action::CycleQuant)],
    ),
    row(
        "V",
        "cycle the KV cache dtype",
        &[on(Commands, &[ch('V')], Action::CycleLiveKv)],
    ),
    row(
        "Q",
        "measure quality: perplexity, KL, top-1",
        &[on(Commands, &[ch('Q')], Action::MeasureQuality)],
    ),
    row(
        "w",
        "table of the variants tried",
        &[on(Commands, &[ch('w')], Action::ToggleVariants)],
    ),
    row(
        "+ / -",
        "max tokens up / down",
        &[
            on(Commands, &[ch('+'), ch('=')], Action::MaxTokensUp),
            on(Commands, &[ch('-')], Action::MaxTokensDown),
        ],
    ),
    row(
        "t / T",
        "temperature down / up",
        &[
            on(Commands, &[ch('t')], Action::TempDown),
            on(Commands, &[ch('T')], Action::TempUp),
        ],
    ),
    row(
        "v",
        "what-if KV dtype",
        &[on(Commands, &[ch('v')], Action::CycleKvDtype)],
    ),
    row(
        "c",
        "what-if context length",
        &[on(Commands, &[ch('c')], Action::CycleContext)],
    ),
    row(
        "b",
        "batch size: what-if and batch run",
        &[on(Commands, &[ch('b')], Action::CycleBatch)],
    ),
    row(
        "B",
        "run the prompt as a batch (Esc closes)",
        &[on(Commands, &[ch('B')], Action::RunBatch)],
    ),
    row(
        "e",
        "explain the focused pane's figures (e or Esc closes)",
        &[on(Commands, &[ch('e')], Action::Explain)],
    ),
    row(
        "A",
        "race the baseline against these settings, step by step (Esc closes)",
        &[on(Commands, &[ch('A')], Action::Race)],
    ),
    row(
        "R",
        "start / stop recording",
        &[on(Commands, &[ch('R')], Action::ToggleRecord)],
    ),
    row(
        "p",
        "pick a preset or a demo",
        &[on(Commands, &[ch('p')], Action::OpenPresets)],
    ),
    row(
        "m / M",
        "pick the model / the draft model",
        &[
            on(Commands, &[ch('m')], Action::OpenModels { draft: false }),
            on(Commands, &[ch('M')], Action::OpenModels { draft: true }),
        ],
    ),
    row(
        "n / N",
        "demo: next / previous step (Esc closes)",
        &[
            on(Commands, &[ch('n')], Action::DemoNext),
            on(Commands, &[ch('N')], Action::DemoPrev),
        ],
    ),
    row(
        "?",
        "this help",
        &[on(Commands, &[ch('?')], Action::ToggleHelp)],
    ),
    docs_only(
        "Backspace",
        "delete the prompt's last character",
        &[on(
            Typing,
            &[Key::Code(KeyCode::Backspace)],
            Action::Backspace,
        )],
    ),
    docs_only(
        "↑ ↓ / k j",
        "move the cursor",
        &[
            on(Picker, &[UP, ch('k')], Action::PickerUp),
            on(Picker, &[DOWN, ch('j')], Action::PickerDown),
        ],
    ),
    docs_only(
        "Enter",
        "load the one under the cursor",
        &[on(Picker, &[ENTER], Action::PickerChoose)],
    ),
    docs_only(
        "Esc / q / p / m / M",
        "close the picker",
        &[on(
            Picker,
            &[ESC, ch('q'), ch('p'), ch('m'), ch('M')],
            Action::PickerClose,
        )],
    ),
    docs_only(
        "Ctrl-C",
        "quit",
        &[on(Picker, &[Key::Ctrl('c')], Action::Quit)],
    ),
];

fn bindings() -> impl Iterator<Item = &'static Binding> {
    ROWS.iter().flat_map(|r| r.bindings)
}

/// The action `key` gives among the bindings of `when`.
pub fn fire(when: When, key: &KeyEvent) -> Option<Action> {
    bindings()
        .filter(|b| b.when == when)
        .find_map(|b| b.fire(key))
}

/// The name of the first key that gives `action` in `when` (empty when none does).
pub fn key_in(when: When, action: &Action) -> String {
    bindings()
        .filter(|b| b.when == when && b.does.gives(action))
        .flat_map(|b| b.keys)
        .find(|k| **k != Key::Mouse)
        .map_or_else(String::new, |k| k.name())
}

/// The name of the key a hint gives for `action`: outside the prompt first, then anywhere, then
/// elsewhere.
pub fn key(action: &Action) -> String {
    [
        When::Commands,
        When::Anywhere,
        When::Typing,
        When::Picker,
        When::Help,
        When::Variants,
        When::Zoomed,
    ]
    .into_iter()
    .map(|w| key_in(w, action))
    .find(|k| !k.is_empty())
    .unwrap_or_default()
}

/// The rows of the help overlay: keys and what they do.
pub fn overlay() -> impl Iterator<Item = &'static Row> {
    ROWS.iter().filter(|r| r.overlay)
}

/// `docs/keys.md`: every row, with the contexts where it holds.
pub fn markdown() -> String {
    let mut md = String::from(
        "<!-- Generated from the binding table in src/tui/keys/mod.rs; do not edit. \
         Regenerate: UPDATE_DOCS=1 cargo test --lib tui::keys -->\n\
         # Keys\n\n\
         Outside the prompt single letters are commands; in the prompt they are text. Where \
         several contexts bind a key, the first of these that holds decides: ",
    );
    let order: Vec<_> = When::PRECEDENCE.iter().map(|w| w.describe()).collect();
    md.push_str(&order.join(", "));
    md.push_str(".\n\n");
    table(&mut md, ROWS.iter().filter(|r| !is_picker(r)));
    md.push_str("\n## In a picker (presets, models)\n\n");
    table(&mut md, ROWS.iter().filter(|r| is_picker(r)));
    md
}

fn is_picker(r: &Row) -> bool {
    r.bindings.iter().all(|b| b.when == When::Picker)
}

fn table<'a>(md: &mut String, rows: impl Iterator<Item = &'a Row>) {
    md.push_str("| Keys | What they do | Where |\n|---|---|---|\n");
    for r in rows {
        let mut wheres: Vec<&str> = Vec::new();
        for b in r.bindings {
            if !wheres.contains(&b.when.describe()) {
                wheres.push(b.when.describe());
            }
        }
        md.push_str(&format!(
            "| `{}` | {} | {} |\n",
            r.keys,
            r.help,
            wheres.join(", ")
        ));
    }
}

#[cfg(test)]
mod tests;
