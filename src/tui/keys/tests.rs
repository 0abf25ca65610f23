//! The binding table's own checks: every action bound and helped, hints, the docs file.
use super::*;

/// One action of each kind, and its kind's number; the match fails to compile when `Action`
/// grows, and the test below fails until the new kind is in [`ALL_KINDS`] and in [`ROWS`].
fn kind(a: &Action) -> usize {
    match a {
        Action::Quit => 0,
        Action::Run => 1,
        Action::Stop => 2,
        Action::Escape => 3,
        Action::FocusNext => 4,
        Action::FocusPrev => 5,
        Action::Focus(_) => 6,
        Action::ToggleZoom => 7,
        Action::Screenshot => 8,
        Action::Type(_) => 9,
        Action::Backspace => 10,
        Action::ClearPrompt => 11,
        Action::SelectPrev => 12,
        Action::SelectNext => 13,
        Action::Select(_) => 14,
        Action::ScrollUp => 15,
        Action::ScrollDown => 16,
        Action::CycleDraftMode => 17,
        Action::KUp => 18,
        Action::KDown => 19,
        Action::CycleQuant => 20,
        Action::MaxTokensUp => 21,
        Action::MaxTokensDown => 22,
        Action::TempUp => 23,
        Action::TempDown => 24,
        Action::CycleKvDtype => 25,
        Action::CycleLiveKv => 26,
        Action::MeasureQuality => 27,
        Action::ToggleVariants => 28,
        Action::CycleContext => 29,
        Action::CycleBatch => 30,
        Action::RunBatch => 31,
        Action::ToggleRecord => 32,
        Action::ToggleHelp => 33,
        Action::OpenPresets => 34,
        Action::OpenModels { .. } => 35,
        Action::PickerUp => 36,
        Action::PickerDown => 37,
        Action::PickerChoose => 38,
        Action::PickerClose => 39,
        Action::DemoNext => 40,
        Action::DemoPrev => 41,
        Action::CyclePolicy => 42,
        Action::Race => 43,
        Action::Explain => 44,
    }
}

const ALL_KINDS: [Action; 45] = [
    Action::Quit,
    Action::Run,
    Action::Stop,
    Action::Escape,
    Action::FocusNext,
    Action::FocusPrev,
    Action::Focus(Focus::Tape),
    Action::ToggleZoom,
    Action::Screenshot,
    Action::Type('x'),
    Action::Backspace,
    Action::ClearPrompt,
    Action::SelectPrev,
    Action::SelectNext,
    Action::Select(0),
    Action::ScrollUp,
    Action::ScrollDown,
    Action::CycleDraftMode,
    Action::KUp,
    Action::KDown,
    Action::CycleQuant,
    Action::MaxTokensUp,
    Action::MaxTokensDown,
    Action::TempUp,
    Action::TempDown,
    Action::CycleKvDtype,
    Action::CycleLiveKv,
    Action::MeasureQuality,
    Action::ToggleVariants,
    Action::CycleContext,
    Action::CycleBatch,
    Action::RunBatch,
    Action::ToggleRecord,
    Action::ToggleHelp,
    Action::OpenPresets,
    Action::OpenModels { draft: false },
    Action::PickerUp,
    Action::PickerDown,
    Action::PickerChoose,
    Action::PickerClose,
    Action::DemoNext,
    Action::DemoPrev,
    Action::CyclePolicy,
    Action::Race,
    Action::Explain,
];

#[test]
fn every_action_has_a_binding_and_a_help_row() {
    let kinds: Vec<usize> = ALL_KINDS.iter().map(kind).collect();
    assert_eq!(kinds, (0..ALL_KINDS.len()).collect::<Vec<_>>());
    for a in &ALL_KINDS {
        let rows: Vec<&Row> = ROWS
            .iter()
            .filter(|r| r.bindings.iter().any(|b| b.does.gives(a)))
            .collect();
        assert!(!rows.is_empty(), "{a:?} has no binding");
        assert!(
            rows.iter()
                .all(|r| !r.keys.is_empty() && !r.help.is_empty()),
            "{a:?} has a row without help"
        );
    }
    // Both pickers, and both directions of each pair.
    assert!(!key(&Action::OpenModels { draft: true }).is_empty());
}

#[test]
fn each_rows_keys_name_the_first_key_of_each_binding() {
    for r in ROWS {
        for b in r.bindings {
            let name = b.keys[0].name();
            assert!(r.keys.contains(&name), "row {:?} lacks {name}", r.keys);
        }
    }
}

#[test]
fn hints_name_the_key_outside_the_prompt_first() {
    assert_eq!(key(&Action::Quit), "q");
    assert_eq!(key_in(When::Anywhere, &Action::Quit), "Ctrl-C");
    assert_eq!(key(&Action::ToggleZoom), "z");
    assert_eq!(key_in(When::Zoomed, &Action::ToggleZoom), "Esc");
    assert_eq!(key(&Action::Focus(Focus::Kv)), "1–6");
    assert_eq!(key(&Action::PickerUp), "↑");
    assert_eq!(key(&Action::MaxTokensUp), "+");
}

/// `docs/keys.md` is this table; `UPDATE_DOCS=1` writes it.
#[test]
fn docs_keys_md_is_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/keys.md");
    let md = markdown();
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, &md).unwrap();
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == md,
        "{} differs from the binding table: run UPDATE_DOCS=1 cargo test --lib tui::keys",
        path.display()
    );
}
