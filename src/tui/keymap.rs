//! Keys to actions. Outside the prompt, single letters are commands; inside, they are text.

use crate::state::{Action, AppState, Focus};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

pub fn action(state: &AppState, key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if state.ui.picker.is_some() || state.ui.models.is_some() {
        return match key.code {
            KeyCode::Char('c') if ctrl => Some(Action::Quit),
            KeyCode::Up | KeyCode::Char('k') => Some(Action::PickerUp),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::PickerDown),
            KeyCode::Enter => Some(Action::PickerChoose),
            KeyCode::Esc | KeyCode::Char('p' | 'm' | 'M' | 'q') => Some(Action::PickerClose),
            _ => None,
        };
    }
    match key.code {
        KeyCode::Char('c') if ctrl => return Some(Action::Quit),
        KeyCode::Char('u') if ctrl => return Some(Action::ClearPrompt),
        KeyCode::Enter => return Some(Action::Run),
        KeyCode::Esc => {
            return Some(if state.ui.help {
                Action::ToggleHelp
            } else if state.ui.show_variants {
                Action::ToggleVariants
            } else if state.ui.zoom && state.ui.focus != Focus::Prompt {
                Action::ToggleZoom
            } else {
                Action::Escape
            })
        }
        KeyCode::Tab => return Some(Action::FocusNext),
        KeyCode::BackTab => return Some(Action::FocusPrev),
        KeyCode::Left => return Some(Action::SelectPrev),
        KeyCode::Right => return Some(Action::SelectNext),
        KeyCode::Up => return Some(Action::ScrollDown),
        KeyCode::Down => return Some(Action::ScrollUp),
        _ => {}
    }
    if state.ui.focus == Focus::Prompt && !state.ui.help {
        return match key.code {
            KeyCode::Char(c) if !ctrl => Some(Action::Type(c)),
            KeyCode::Backspace => Some(Action::Backspace),
            _ => None,
        };
    }
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::ToggleHelp,
        KeyCode::Char('r') => Action::Run,
        KeyCode::Char('s') => Action::Stop,
        KeyCode::Char('h') => Action::SelectPrev,
        KeyCode::Char('l') => Action::SelectNext,
        KeyCode::Char('k') => Action::ScrollDown,
        KeyCode::Char('j') => Action::ScrollUp,
        KeyCode::Char('d') => Action::CycleDraftMode,
        KeyCode::Char(']') => Action::KUp,
        KeyCode::Char('[') => Action::KDown,
        KeyCode::Char('u') => Action::CycleQuant,
        KeyCode::Char('+') | KeyCode::Char('=') => Action::MaxTokensUp,
        KeyCode::Char('-') => Action::MaxTokensDown,
        KeyCode::Char('T') => Action::TempUp,
        KeyCode::Char('t') => Action::TempDown,
        KeyCode::Char('v') => Action::CycleKvDtype,
        KeyCode::Char('V') => Action::CycleLiveKv,
        KeyCode::Char('Q') => Action::MeasureQuality,
        KeyCode::Char('w') => Action::ToggleVariants,
        KeyCode::Char('c') => Action::CycleContext,
        KeyCode::Char('b') => Action::CycleBatch,
        KeyCode::Char('B') => Action::RunBatch,
        KeyCode::Char('R') => Action::ToggleRecord,
        KeyCode::Char('p') => Action::OpenPresets,
        KeyCode::Char('m') => Action::OpenModels { draft: false },
        KeyCode::Char('M') => Action::OpenModels { draft: true },
        KeyCode::Char('n') => Action::DemoNext,
        KeyCode::Char('N') => Action::DemoPrev,
        KeyCode::Char('z') => Action::ToggleZoom,
        KeyCode::Char('S') => Action::Screenshot,
        KeyCode::Char(c @ '1'..='9') => Action::Focus(Focus::numbered(c.to_digit(10)?)?),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    #[test]
    fn letters_are_text_in_the_prompt_and_commands_outside() {
        let mut s = AppState::new("synthetic", "");
        assert_eq!(action(&s, key(KeyCode::Char('q'))), Some(Action::Type('q')));
        s.ui.focus = Focus::Tape;
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
        s.ui.focus = Focus::Tape;
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
        s.ui.zoom = true;
        assert_eq!(action(&s, key(KeyCode::Esc)), Some(Action::ToggleZoom));
        // Tab goes round every pane and back.
        let mut f = Focus::Prompt;
        for _ in 0..Focus::ALL.len() {
            f = f.next();
            assert_eq!(f.prev().next(), f);
        }
        assert_eq!(f, Focus::Prompt);
    }
}
