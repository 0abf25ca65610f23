//! The model picker (`m`, and `M` for the draft model): the models found on this machine drawn
//! as a list, and choosing one loads it (or makes it the draft model); the one running is not
//! loaded again; picks come back first as recent. A real terminal loads a GGUF from the models
//! directory through it.

mod common;

use labtui::catalog::Found;
use labtui::protocol::{Command, SettingChange};
use labtui::state::{Action, AppState, Focus, ModelPicker, Overlay, Status, UiNotice};
use labtui::tui::{keymap, view};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn found(spec: &str, name: &str, detail: &str) -> Found {
    Found {
        spec: spec.into(),
        name: name.into(),
        detail: detail.into(),
    }
}

fn picker(draft: bool) -> ModelPicker {
    ModelPicker {
        entries: vec![
            found("a.gguf", "a.gguf", "./models · GGUF · 12 MiB"),
            found("qwen.gguf", "qwen.gguf", "./models · GGUF · 469 MiB"),
            found(
                "/hub/models--Org--Tiny/snapshots/1",
                "Org/Tiny",
                "Hugging Face cache · checkpoint · 2 MiB",
            ),
            found(
                "synthetic",
                "synthetic",
                "built in: a tiny random-weight model",
            ),
        ],
        selected: 0,
        draft,
    }
}

#[test]
fn the_model_picker_lists_and_loads_models() {
    let mut s = AppState::new("qwen.gguf", "");
    s.ui.overlay = Some(Overlay::Models(picker(false)));
    s.update(Action::PickerDown);
    let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
    t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    insta::assert_snapshot!("model_picker", t.backend());
    // The model that runs is not loaded again.
    assert!(s.update(Action::PickerChoose).is_empty());
    assert!(!s.ui.picker_open());
    assert!(matches!(s.ui.status, Status::Ui(UiNotice::ModelAlready(_))));
    // Another one is, and is remembered first.
    s.ui.overlay = Some(Overlay::Models(picker(false)));
    s.update(Action::PickerUp); // wraps round to the last
    s.update(Action::PickerUp);
    let spec = "/hub/models--Org--Tiny/snapshots/1";
    assert_eq!(
        s.update(Action::PickerChoose),
        vec![Command::LoadModel { spec: spec.into() }]
    );
    assert_eq!(s.ui.model_spec, spec);
    assert_eq!(s.ui.recent_models, [spec]);
    // The draft picker sets the draft model.
    s.ui.overlay = Some(Overlay::Models(picker(true)));
    assert_eq!(
        s.update(Action::PickerChoose),
        vec![Command::Set(SettingChange::DraftModel("a.gguf".into()))]
    );
    assert_eq!(s.ui.recent_models, ["a.gguf", spec]);
    assert_eq!(
        s.ui.model_spec, spec,
        "the draft does not replace the model"
    );
}

#[test]
fn m_and_shift_m_open_the_pickers_outside_the_prompt() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    let mut s = AppState::new("synthetic", "");
    assert_eq!(keymap::action(&s, key('m')), Some(Action::Type('m')));
    s.ui.view.focus = Focus::Tape;
    assert_eq!(
        keymap::action(&s, key('m')),
        Some(Action::OpenModels { draft: false })
    );
    assert_eq!(
        keymap::action(&s, key('M')),
        Some(Action::OpenModels { draft: true })
    );
    s.ui.overlay = Some(Overlay::Models(picker(false)));
    assert_eq!(keymap::action(&s, key('j')), Some(Action::PickerDown));
    assert_eq!(
        keymap::action(&s, KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE)),
        Some(Action::PickerClose)
    );
}

/// In a real terminal: with a GGUF in the models directory (and an empty Hugging Face cache),
/// `m` lists it beside the synthetic model that runs; choosing it loads it.
#[test]
fn a_terminal_loads_a_model_through_the_picker() {
    use common::tmux::{assert_cooked, have_tmux, Pane};
    if !have_tmux() {
        return;
    }
    let models = tempfile::tempdir().unwrap();
    let hub = tempfile::tempdir().unwrap();
    let spec = labtui::engine::synthetic::SyntheticSpec::default();
    let bytes = labtui::engine::synthetic::gguf_bytes(&spec).unwrap();
    std::fs::write(models.path().join("tiny-picked.gguf"), bytes).unwrap();
    let state = tempfile::tempdir().unwrap();
    let env = format!(
        "LABTUI_MODELS={} HF_HUB_CACHE={} XDG_STATE_HOME={}",
        models.path().display(),
        hub.path().display(),
        state.path().display()
    );
    let pane = Pane::start_env("models", &env, "--model synthetic", 120, 36);
    pane.wait_for("the synthetic model", 60, |s| s.contains("synthetic-qwen2"));
    pane.keys(&["Tab", "m"]);
    let s = pane.wait_for("the picker", 20, |s| s.contains("models · ↑/↓ choose"));
    assert!(s.contains("tiny-picked.gguf") && s.contains("GGUF"), "{s}");
    // The model that runs is under the cursor; the file is above it.
    pane.keys(&["k", "Enter"]);
    pane.wait_for("the picked model loaded", 60, |s| {
        s.lines()
            .next()
            .is_some_and(|top| top.contains("tiny-picked.gguf"))
    });
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(20));
    // The pick is kept for the next session, which lists it first.
    let file = state.path().join("labtui/recent-models.ron");
    let kept: Vec<String> = ron::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].ends_with("tiny-picked.gguf"), "{kept:?}");
    let pane = Pane::start_env("models2", &env, "--model synthetic", 120, 36);
    pane.wait_for("the synthetic model", 60, |s| s.contains("synthetic-qwen2"));
    pane.keys(&["Tab", "m"]);
    let s = pane.wait_for("the picker", 20, |s| s.contains("models · ↑/↓ choose"));
    // Its name, then its detail on the next line.
    let lines: Vec<&str> = s.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("tiny-picked.gguf"))
        .unwrap_or_else(|| panic!("the file is listed:\n{s}"));
    assert!(lines[at + 1].contains("picked earlier ·"), "{s}");
    assert_eq!(
        s.matches("tiny-picked.gguf").count(),
        1,
        "listed once, as picked earlier:\n{s}"
    );
    // (Esc and q sent at once would read as Alt-q.)
    pane.keys(&["Escape"]);
    pane.wait_for("the picker closed", 10, |s| {
        !s.contains("models · ↑/↓ choose")
    });
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(20));
}
