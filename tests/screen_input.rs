//! The dashboard driven as a person drives it, on a replayed recording of a real speculative run:
//! mouse clicks and the wheel, token selection by click, screenshots (`S`) as SVG and text, and
//! `labtui replay --snapshot-at` drawing a screen headless.

mod common;

use common::screen::{spec_recording, speculative_state};
use labtui::state::{Status, UiNotice};
use labtui::tui::{panes, view};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier};

/// The app with the speculative recording replayed to its end, screenshots going to `shots`.
fn replayed_app(shots: Option<std::path::PathBuf>) -> labtui::tui::App {
    let rec = spec_recording();
    let mut app = labtui::tui::App::new(
        labtui::tui::Start {
            shots,
            ..labtui::tui::Start::replay(rec, 1.0)
        },
        labtui::worker::Options {
            sample_every: None,
            ..Default::default()
        },
    );
    assert!(app.tick(std::time::Duration::from_secs(3600)));
    app
}

/// The mouse, as the terminal reports it: a click focuses the pane under it, the wheel scrolls
/// the token tape (tmux cannot be made to send wheel events to the pane portably, so this is
/// checked here, on the app that the terminal loop drives).
#[test]
fn clicks_focus_panes_and_the_wheel_scrolls_the_tokens() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    use labtui::state::Focus;
    let mut app = replayed_app(None);
    let area = Rect::new(0, 0, 160, 50);
    let at = |kind, column, row| MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    for (pane, r) in view::pane_areas(&app.state, area) {
        let (x, y) = (r.x + r.width / 2, r.y + r.height / 2);
        app.mouse(at(MouseEventKind::Down(MouseButton::Left), x, y), area);
        assert_eq!(app.state.ui.view.focus, pane, "a click at {x},{y}");
    }
    // A click outside every pane (the status bar) changes nothing.
    app.mouse(at(MouseEventKind::Down(MouseButton::Left), 5, 0), area);
    assert_eq!(app.state.ui.view.focus, Focus::Kv);
    let tape_text = |app: &labtui::tui::App, area: Rect| {
        let mut buf = Buffer::empty(area);
        app.draw(area, &mut buf);
        let r = view::pane_areas(&app.state, area)
            .into_iter()
            .find(|(p, _)| *p == Focus::Tape)
            .unwrap()
            .1;
        (r.y + 1..r.bottom() - 2)
            .map(|y| {
                (r.x..r.right())
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The wheel on a small screen, where the tape does not show the whole run.
    let area = Rect::new(0, 0, view::MIN_WIDTH, view::MIN_HEIGHT);
    let bottom = tape_text(&app, area);
    for _ in 0..3 {
        app.mouse(at(MouseEventKind::ScrollUp, 20, 20), area);
    }
    assert_eq!(app.state.ui.view.scroll, 3);
    let up = tape_text(&app, area);
    assert_ne!(up, bottom, "the wheel moved the tape");
    for _ in 0..3 {
        app.mouse(at(MouseEventKind::ScrollDown, 20, 20), area);
    }
    assert_eq!(app.state.ui.view.scroll, 0);
    assert_eq!(tape_text(&app, area), bottom, "and back to the end");
}

/// A click on a token of the tape selects that token: drawn again, the cell clicked is part of
/// the token shown reversed (the selection), and the detail line names it. A click on the tape's
/// header, on a rejected draft (struck through: not a token of the run) or past the text selects
/// nothing new.
#[test]
fn a_click_on_a_token_selects_it() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    use labtui::state::Focus;
    use ratatui::style::{Color, Modifier};
    let mut app = replayed_app(None);
    let area = Rect::new(0, 0, 160, 50);
    let click = |app: &mut labtui::tui::App, column, row| {
        app.mouse(
            MouseEvent {
                kind: MouseEventKind::Down(MouseButton::Left),
                column,
                row,
                modifiers: KeyModifiers::NONE,
            },
            area,
        )
    };
    let drawn = |app: &labtui::tui::App| {
        let mut buf = Buffer::empty(area);
        app.draw(area, &mut buf);
        buf
    };
    let r = view::pane_areas(&app.state, area)
        .into_iter()
        .find(|(p, _)| *p == Focus::Tape)
        .unwrap()
        .1;
    let tokens = app.state.store.current.as_ref().unwrap().tokens.len();
    let mut selections = std::collections::BTreeSet::new();
    // Text rows: inside the frame, above the detail line.
    for y in (r.y + 1..r.bottom() - 2).step_by(2) {
        for x in (r.x + 1..r.right() - 1).step_by(7) {
            let before = drawn(&app);
            // Past the text a cell has no style; a token's spaces have its colour.
            let blank = (before[(x, y)].symbol() == " " && before[(x, y)].fg == Color::Reset)
                || before[(x, y)].modifier.contains(Modifier::CROSSED_OUT);
            let was = app.state.ui.view.selected;
            click(&mut app, x, y);
            let header = (r.x + 1..r.right() - 1)
                .map(|x| before[(x, y)].symbol())
                .collect::<String>()
                .starts_with("run ");
            if blank || header {
                assert_eq!(
                    app.state.ui.view.selected, was,
                    "a click at {x},{y} off the tokens"
                );
                continue;
            }
            let Some(i) = app.state.ui.view.selected else {
                panic!(
                    "a click on {:?} at {x},{y} selected nothing",
                    before[(x, y)].symbol()
                );
            };
            assert!(i < tokens);
            let after = drawn(&app);
            assert!(
                after[(x, y)].modifier.contains(Modifier::REVERSED),
                "token {i} selected by a click at {x},{y}, but that cell is not the one shown selected"
            );
            let detail: String = (r.x + 1..r.right() - 1)
                .map(|x| after[(x, r.bottom() - 2)].symbol())
                .collect();
            assert!(detail.contains(&format!("#{i} ")), "{detail}");
            selections.insert(i);
        }
    }
    assert!(selections.len() >= 5, "clicks selected {selections:?}");
}

/// `S` writes the screen drawn as SVG and text into the shots folder and says where.
#[test]
fn a_screenshot_is_the_screen_as_svg_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = replayed_app(Some(dir.path().join("shots")));
    let area = Rect::new(0, 0, 100, 30);
    let mut buf = Buffer::empty(area);
    app.draw(area, &mut buf);
    app.screenshot(&buf);
    let status = panes::status::words(&app.state.ui.status);
    assert!(
        matches!(app.state.ui.status, Status::Ui(UiNotice::Screenshot { .. })),
        "{status}"
    );
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("shots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert!(status.contains(&f.display().to_string()), "{status}");
    }
    let text = std::fs::read_to_string(&files[1]).unwrap();
    assert_eq!(text, labtui::tui::shot::text(&buf));
    assert_eq!(text.lines().count(), 30);
    assert!(text.contains("speculation"));
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    // A second one in the same second gets a name of its own.
    app.screenshot(&buf);
    assert_eq!(
        std::fs::read_dir(dir.path().join("shots")).unwrap().count(),
        4
    );
}

/// The SVG of a known small screen: well-formed, every cell's text at its column, colours
/// (named, indexed and RGB, foreground and background) and styles kept, XML escaped.
#[test]
fn the_svg_keeps_text_colours_and_styles() {
    use ratatui::style::Style;
    let mut buf = Buffer::empty(Rect::new(0, 0, 12, 2));
    buf.set_string(0, 0, "ab", Style::default().fg(Color::Red));
    buf.set_string(
        2,
        0,
        "<&>",
        Style::default()
            .fg(Color::Rgb(1, 2, 3))
            .bg(Color::Indexed(21)),
    );
    buf.set_string(
        5,
        0,
        "bold",
        Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    );
    buf.set_string(0, 1, "x y", Style::default().bg(Color::Blue));
    buf.set_string(
        4,
        1,
        "rev",
        Style::default()
            .fg(Color::Green)
            .add_modifier(Modifier::REVERSED),
    );
    let svg = labtui::tui::shot::svg(&buf);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("108"));
    assert_eq!(root.attribute("height"), Some("36"));
    let texts: Vec<(String, String, Option<String>, Option<String>)> = root
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            (
                n.text().unwrap_or_default().to_string(),
                n.attribute("fill").unwrap_or_default().to_string(),
                n.attribute("x").map(String::from),
                n.attribute("font-weight").map(String::from),
            )
        })
        .collect();
    let find = |t: &str| {
        texts
            .iter()
            .find(|x| x.0 == t)
            .unwrap_or_else(|| panic!("no <text> {t:?} in {texts:?}"))
    };
    assert_eq!(find("ab").1, "#cd0000");
    assert_eq!(find("ab").2.as_deref(), Some("0"));
    assert_eq!(find("<&>").1, "#010203");
    assert_eq!(find("<&>").2.as_deref(), Some("18"), "column 2 × 9 px");
    assert_eq!(find("bold").3.as_deref(), Some("bold"));
    assert!(svg.contains("text-decoration=\"underline\""));
    // One run per style: "x y" on a blue background is one text, its background one rect.
    assert_eq!(find("x y").2.as_deref(), Some("0"));
    let fills: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter_map(|n| n.attribute("fill"))
        .collect();
    assert!(fills.contains(&"#0000ee"), "blue background: {fills:?}");
    assert!(fills.contains(&"#0000ff"), "indexed 21: {fills:?}");
    // Reversed: green becomes the background, the text takes the default background.
    assert!(fills.contains(&"#00cd00"), "{fills:?}");
    assert_eq!(find("rev").1, "#101014");
    let all: String = texts.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(all, "ab<&>boldx yrev");
}

/// `labtui replay FILE --snapshot-at S --out F.svg`: the screen that far into the recording.
#[test]
fn replay_snapshot_at_draws_the_recording_headless() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spec.ron");
    let rec = spec_recording();
    let mut r = labtui::record::Recorder::create(&file, rec.header.clone()).unwrap();
    for e in &rec.events {
        r.event(e).unwrap();
    }
    drop(r);
    let snap = |at: &str, out: &str| {
        let out = dir.path().join(out);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
            .args(["replay", "--snapshot-at", at, "--size", "100x30", "--out"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out).unwrap()
    };
    // Before the run's start (2.7 s), half way, and after its end (17.7 s).
    let (before, mid, end, svg) = (
        snap("1", "before.txt"),
        snap("10", "mid.txt"),
        snap("60", "end.txt"),
        snap("60", "end.svg"),
    );
    assert_eq!(mid.lines().count(), 30);
    assert!(mid.contains("replay of spec.ron at 10.0 s"), "{mid}");
    // Before the run: no tokens yet (the model still loading at 1 s); half way: tokens.
    assert!(before.contains("Waiting for a model"), "{before}");
    assert!(
        !mid.contains("Waiting for a model") && !mid.contains("No run yet"),
        "{mid}"
    );
    // The finished run's decode speed is on the end's screen.
    let s = speculative_state();
    let decode = format!(
        "{:.1}",
        s.store
            .current
            .as_ref()
            .unwrap()
            .summary
            .as_ref()
            .unwrap()
            .decode_tok_s
    );
    assert!(end.contains(&decode), "{decode} not in:\n{end}");
    assert_ne!(mid, end);
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    for title in [
        "speculation",
        "prefill vs decode",
        "replay of spec.ron at 60.0 s",
    ] {
        assert!(svg.contains(title), "{title} not in the SVG");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args(["replay", "--snapshot-at=-1", "--out", "x.svg"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
