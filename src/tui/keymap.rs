//! Keys to actions, by the binding table ([`super::keys`]). Outside the prompt, single letters
//! are commands; inside, they are text.

use super::keys::{self, When};
use crate::state::{Action, AppState, Focus};
use crossterm::event::{KeyEvent, KeyEventKind};

/// The action for `key` in the current state: the first context that holds and binds it decides.
pub fn action(state: &AppState, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    contexts(state)
        .into_iter()
        .find_map(|when| keys::fire(when, &key))
}

/// The contexts that hold now, in [`When::PRECEDENCE`]'s order. An open picker takes every key;
/// otherwise the open overlay comes before the rest, and the prompt takes letters as text.
fn contexts(state: &AppState) -> Vec<When> {
    let ui = &state.ui;
    let typing = ui.view.focus == Focus::Prompt && !ui.help_open();
    When::PRECEDENCE
        .into_iter()
        .filter(|when| match when {
            When::Picker => ui.picker_open(),
            _ if ui.picker_open() => false,
            When::Help => ui.help_open(),
            When::Variants => ui.variants_open(),
            When::Zoomed => ui.view.zoom && ui.view.focus != Focus::Prompt,
            When::Anywhere => true,
            When::Typing => typing,
            When::Commands => !typing,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyModifiers};

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn letters_are_text_in_the_prompt_and_commands_outside() {
        let mut s = AppState::new("synthetic", "");
        assert_eq!(action(&s, key(KeyCode::Char('q'))), Some(Action::Type('q')));
        s.ui.view.focus = Focus::Tape;
        assert_eq!(action(&s, key(KeyCode::Char('q'))), Some(Action::Quit));
        assert_eq!(action(&s, key(KeyCode::Char(']'))), Some(Action::KUp));
        assert_eq!(
            action(&s, KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
    }

    #[test]
    fn tab_number_keys_and_z_focus_and_zoom_panes() {
        let mut s = AppState::new("synthetic", "");
        // In the prompt, digits and z are text; Tab still moves on.
        assert_eq!(action(&s, key(KeyCode::Char('3'))), Some(Action::Type('3')));
        assert_eq!(action(&s, key(KeyCode::Tab)), Some(Action::FocusNext));
        assert_eq!(action(&s, key(KeyCode::BackTab)), Some(Action::FocusPrev));
        s.ui.view.focus = Focus::Tape;
        assert_eq!(
            action(&s, key(KeyCode::Char('3'))),
            Some(Action::Focus(Focus::Memory))
        );
        assert_eq!(
            action(&s, key(KeyCode::Char('1'))),
            Some(Action::Focus(Focus::Prompt))
        );
        assert_eq!(action(&s, key(KeyCode::Char('9'))), None, "no ninth pane");
        assert_eq!(
            action(&s, key(KeyCode::Char('z'))),
            Some(Action::ToggleZoom)
        );
        assert_eq!(
            action(&s, key(KeyCode::Char('S'))),
            Some(Action::Screenshot)
        );
        // Zoomed, Esc unzooms (it does not stop or leave anything).
        s.ui.view.zoom = true;
        assert_eq!(action(&s, key(KeyCode::Esc)), Some(Action::ToggleZoom));
        // Tab goes round every pane and back.
        let mut f = Focus::Prompt;
        for _ in 0..Focus::ALL.len() {
            f = f.next();
            assert_eq!(f.prev().next(), f);
        }
        assert_eq!(f, Focus::Prompt);
    }

    #[test]
    fn the_overlay_on_top_takes_esc_and_stays_under_a_lower_one() {
        let mut s = AppState::new("synthetic", "");
        s.ui.view.focus = Focus::Tape;
        s.update(Action::ToggleVariants);
        assert_eq!(action(&s, key(KeyCode::Esc)), Some(Action::ToggleVariants));
        // The help opens over the variants table and takes its place.
        s.update(Action::ToggleHelp);
        assert!(s.ui.help_open());
        assert_eq!(action(&s, key(KeyCode::Esc)), Some(Action::ToggleHelp));
        // The variants table does not open over the help.
        s.update(Action::ToggleVariants);
        assert!(s.ui.help_open());
        s.update(Action::ToggleHelp);
        assert_eq!(s.ui.overlay, None);
        assert_eq!(action(&s, key(KeyCode::Esc)), Some(Action::Escape));
    }
}
