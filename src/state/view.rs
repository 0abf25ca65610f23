//! What a person looks at and asks for: the focused pane and how the view stands
//! ([`ViewState`]), and the [`Action`]s the keymap turns keys into.

/// Which pane has focus: the prompt takes typed keys; any focused pane can be zoomed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Prompt,
    Tape,
    Memory,
    Spec,
    Timing,
    Kv,
}

impl Focus {
    /// Tab's order; number key `n` focuses the `n`th.
    pub const ALL: [Focus; 6] = [
        Focus::Prompt,
        Focus::Tape,
        Focus::Memory,
        Focus::Spec,
        Focus::Timing,
        Focus::Kv,
    ];

    fn position(self) -> usize {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }

    pub fn next(self) -> Self {
        Self::ALL[(self.position() + 1) % Self::ALL.len()]
    }

    pub fn prev(self) -> Self {
        Self::ALL[(self.position() + Self::ALL.len() - 1) % Self::ALL.len()]
    }

    /// The pane number key `n` (1 is the prompt) focuses, if any.
    pub fn numbered(n: u32) -> Option<Self> {
        Self::ALL.get((n as usize).checked_sub(1)?).copied()
    }

    /// Its number key and name, for the status line: `3 memory`.
    pub fn name(self) -> String {
        let name = match self {
            Focus::Prompt => "prompt",
            Focus::Tape => "tokens",
            Focus::Memory => "memory",
            Focus::Spec => "speculation",
            Focus::Timing => "timing",
            Focus::Kv => "KV cache",
        };
        format!("{} {name}", self.position() + 1)
    }
}

/// What a person can do, whatever key they used for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    Run,
    Stop,
    /// Stop when running, else leave the prompt.
    Escape,
    FocusNext,
    FocusPrev,
    /// Focus this pane (a number key, a click).
    Focus(Focus),
    /// Zoom the focused pane to the whole screen, or back.
    ToggleZoom,
    /// Write the screen as SVG and text (the terminal loop does the writing).
    Screenshot,
    Type(char),
    Backspace,
    ClearPrompt,
    SelectPrev,
    SelectNext,
    /// Select this token of the current run (a click on it).
    Select(usize),
    ScrollUp,
    ScrollDown,
    CycleDraftMode,
    /// Cycle the acceptance policy speculation verifies by: lossless, then the lossy rules.
    CyclePolicy,
    KUp,
    KDown,
    CycleQuant,
    MaxTokensUp,
    MaxTokensDown,
    TempUp,
    TempDown,
    CycleKvDtype,
    /// Switch the engine's KV cache dtype (the what-if dtype is [`Action::CycleKvDtype`]).
    CycleLiveKv,
    /// Measure perplexity, KL and top-1 agreement of the weights that run now.
    MeasureQuality,
    /// Show or hide the table of the weight variants tried in this session.
    ToggleVariants,
    CycleContext,
    CycleBatch,
    /// Run the prompt as the what-if batch's count of sequences at once, on the scheduler.
    RunBatch,
    /// Race the prompt under the baseline and the settings asked for, step by step in turn.
    Race,
    ToggleRecord,
    ToggleHelp,
    /// Explain the focused pane's figures: definitions, formulas with this run's values.
    Explain,
    /// Open the preset picker (the terminal loop reads the presets).
    OpenPresets,
    /// Open the model picker, for the model that runs or (`draft`) the draft model (the terminal
    /// loop lists the models).
    OpenModels {
        draft: bool,
    },
    PickerUp,
    PickerDown,
    PickerChoose,
    PickerClose,
    /// The demo's next / previous narration step.
    DemoNext,
    DemoPrev,
}

/// What is looked at: the focused pane, whether it is zoomed, the selected token, the scroll.
#[derive(Debug, Clone, PartialEq)]
pub struct ViewState {
    pub focus: Focus,
    /// The focused pane takes the whole screen (not the prompt: it has nothing more to show).
    pub zoom: bool,
    pub selected: Option<usize>,
    pub scroll: u16,
    /// Lines the explain overlay is scrolled down by (it draws at most as many as are left).
    pub explain_scroll: u16,
}

impl Default for ViewState {
    fn default() -> Self {
        Self {
            focus: Focus::Prompt,
            zoom: false,
            selected: None,
            scroll: 0,
            explain_scroll: 0,
        }
    }
}
