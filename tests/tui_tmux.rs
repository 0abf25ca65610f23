//! The dashboard as a person uses it, in a real terminal (tmux): `bench serve --tui` against a
//! mock server on loopback shows each level's results and quits with q, the terminal restored;
//! `labtui serve --tui` shows its scheduler as a client's requests come and go.

mod common;

use common::tmux::{assert_cooked, have_tmux, Pane};
use labtui::serve::mock::{Mock, Script};
use std::time::Duration;

#[test]
fn bench_serve_tui_shows_each_level_and_quits_with_q() {
    if !have_tmux() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = {
        let _g = rt.enter();
        Mock::start(Script {
            // No spinning to the microsecond: this is load, not a timing check.
            exact: false,
            ..Script::paced(Duration::from_millis(20), Duration::from_millis(10), 8)
        })
        .unwrap()
    };
    let pane = Pane::start(
        "serve",
        &format!(
            "bench serve --tui --endpoint {} --concurrency 1,2 --requests 6 --max-tokens 8 \
             --format json",
            mock.url()
        ),
        160,
        50,
    );
    let s = pane.wait_for("both levels measured", 120, |s| {
        s.contains("all 2 levels measured")
    });
    assert!(s.contains(&format!("serve · {}", mock.url())), "{s}");
    for level in ["concurrency 1", "concurrency 2"] {
        let row = s
            .lines()
            .find(|l| l.contains(level) && l.contains(" done"))
            .unwrap_or_else(|| panic!("no row for {level}:\n{s}"));
        // Its requests all came back: 6 done, 6 ok and none failed.
        assert!(row.contains("6 done") && row.contains("6/0"), "{row}");
    }
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(20));
    // The load had ended: the quit stopped nothing.
    let err = std::fs::read_to_string(pane.dir.path().join("err.txt")).unwrap_or_default();
    assert!(!err.contains("stopped before the end"), "{err}");
}

/// `labtui serve --tui` on the synthetic model: three requests from `bench serve` (one waits,
/// the batch holds two) show in the scheduler's view as they arrive and finish; q stops the
/// server and leaves the terminal cooked.
#[test]
fn serve_tui_shows_the_scheduler_as_requests_come() {
    if !have_tmux() {
        return;
    }
    // Port 0: the server binds whatever port is free and the view shows which.
    let pane = Pane::start(
        "servetui",
        "serve --tui --model synthetic --max-batch 2 --port 0",
        160,
        50,
    );
    // Before any request: the scheduler's budgets, and the server's address below.
    let s = pane.wait_for("the empty scheduler", 60, |s| s.contains("scheduler ·"));
    assert!(s.contains("KV blocks 0/2048"), "{s}");
    let port = common::loopback_port(&s).unwrap_or_else(|| panic!("no address shown: {s}"));
    assert!(
        port != 0 && s.contains(&format!("127.0.0.1:{port}/v1")),
        "{s}"
    );
    let o = common::labtui_cmd()
        .args(["bench", "serve", "--endpoint"])
        .arg(format!("http://127.0.0.1:{port}"))
        .args(["--concurrency", "3", "--requests", "3", "--max-tokens", "6"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The warm-up request and three more (#0–#3); with two rows at most, #3 waits for a row, so
    // the view is done only when nothing runs and nothing waits.
    let s = pane.wait_for("every request finished", 60, |s| {
        s.contains("scheduler ·") && s.contains("#3") && s.contains("running 0 · waiting 0")
    });
    assert!(
        s.contains("KV blocks 0/2048"),
        "every block given back: {s}"
    );
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(20));
}

/// The cell (0-based column, row) where `needle` starts on `screen`.
fn find(screen: &str, needle: &str) -> Option<(u16, u16)> {
    screen.lines().enumerate().find_map(|(y, l)| {
        l.find(needle)
            .map(|b| (l[..b].chars().count() as u16, y as u16))
    })
}

/// A mouse report as a terminal in SGR mode writes it (what crossterm reads when it captures
/// the mouse): button `b` at the 0-based cell, pressed (`M`) or released (`m`).
fn mouse(pane: &Pane, b: u8, (x, y): (u16, u16), end: char) {
    pane.keys(&["-l", &format!("\x1b[<{b};{};{}{end}", x + 1, y + 1)]);
}

fn mouse_flag(pane: &Pane) -> String {
    pane.tmux(&["display", "-p", "-t", &pane.name, "#{mouse_any_flag}"])
        .trim()
        .to_string()
}

/// A run on the synthetic model; then a click focuses the tokens, z zooms them, the wheel
/// scrolls them back, S writes a screenshot (SVG and text) into `--shots`, and q leaves the
/// terminal cooked with the mouse released.
#[test]
fn zoom_scroll_with_the_wheel_and_take_a_screenshot() {
    if !have_tmux() {
        return;
    }
    let shots = tempfile::tempdir().unwrap();
    let pane = Pane::start(
        "zoom",
        &format!("--model synthetic --shots {}", shots.path().display()),
        100,
        30,
    );
    pane.wait_for("the model to load", 60, |s| s.contains("loaded in"));
    assert_eq!(mouse_flag(&pane), "1", "the dashboard captures the mouse");
    pane.keys(&["-l", "Tell me a long story"]);
    // Leave the prompt, raise max tokens to 512 (the tape outgrows the pane), run.
    pane.keys(&["Tab", "+", "+", "r"]);
    pane.wait_for("the run's end", 120, |s| s.contains("done ("));
    // 5 focuses the timing pane; a click on the tokens' frame brings the focus back there.
    pane.keys(&["5"]);
    let s = pane.wait_for("the timing pane's focus", 10, |s| {
        s.lines().any(|l| l.contains("┏ prefill vs decode"))
    });
    let (x, y) = find(&s, "╭ tokens ·").expect("the tape's title");
    mouse(&pane, 0, (x, y + 2), 'M');
    mouse(&pane, 0, (x, y + 2), 'm');
    pane.wait_for("the tape's focus", 10, |s| s.contains("┏ tokens ·"));
    pane.keys(&["z"]);
    let zoomed = pane.wait_for("the zoomed tape", 10, |s| {
        s.contains("zoomed") && !s.contains("prefill vs decode")
    });
    let tape = |s: &str| -> Vec<String> {
        s.lines()
            .skip_while(|l| !l.contains("┏ tokens ·"))
            .skip(1)
            .take_while(|l| !l.starts_with('┗'))
            .map(String::from)
            .collect()
    };
    for _ in 0..5 {
        mouse(&pane, 64, (10, 10), 'M');
    }
    let scrolled = pane.wait_for("the wheel to scroll the tape", 10, |s| {
        tape(s) != tape(&zoomed)
    });
    for _ in 0..5 {
        mouse(&pane, 65, (10, 10), 'M');
    }
    pane.wait_for("the wheel to scroll back", 10, |s| tape(s) == tape(&zoomed));
    assert_ne!(tape(&scrolled), tape(&zoomed));
    pane.keys(&["S"]);
    let s = pane.wait_for("the screenshot's message", 10, |s| {
        s.contains("screenshot: ")
    });
    let mut files: Vec<_> = std::fs::read_dir(shots.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}\n{s}");
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let text = std::fs::read_to_string(&files[1]).unwrap();
    assert!(
        text.contains("tokens ·") && !text.contains("prefill vs decode"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 30);
    // Esc unzooms; q quits.
    pane.keys(&["Escape"]);
    pane.wait_for("the panes back", 10, |s| s.contains("prefill vs decode"));
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(20));
    assert_eq!(mouse_flag(&pane), "0", "the mouse is released");
}

#[test]
fn b_and_shift_b_run_the_prompt_as_a_batch_and_esc_closes_its_view() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start("batch", "--model synthetic", 140, 40);
    pane.wait_for("the model to load", 60, |s| s.contains("loaded in"));
    pane.keys(&["-l", "Count to ten"]);
    // Leave the prompt; b twice: a batch of 4; B runs it.
    pane.keys(&["Tab", "b", "b"]);
    pane.wait_for("the batch size", 10, |s| s.contains("batch 4:"));
    pane.keys(&["B"]);
    let s = pane.wait_for("the batch's end", 120, |s| s.contains("batch of 4:"));
    assert!(s.contains("scheduler · step"), "{s}");
    for id in 0..4 {
        assert!(s.contains(&format!("#{id}")), "sequence #{id}:\n{s}");
    }
    assert!(
        !s.contains("Count to ten"),
        "the scheduler has the body:\n{s}"
    );
    pane.keys(&["Escape"]);
    let s = pane.wait_for("the prompt again", 10, |s| s.contains("Count to ten"));
    assert!(!s.contains("scheduler · step"), "{s}");
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(10));
}

/// `e` on the timing pane after a run explains its figures; `A` in the dashboard on the
/// synthetic model: with the baseline asked for it says what to change; after `u` (F32
/// weights) it races the baseline against them in two columns, ends
/// with the summary row, Esc closes the view, and q leaves the terminal cooked.
#[test]
fn a_races_the_baseline_against_the_settings_asked_for() {
    if !have_tmux() {
        return;
    }
    let pane = Pane::start(
        "race",
        "--model synthetic -p one_two_three_one_two_three",
        160,
        50,
    );
    pane.wait_for("the model", 60, |s| s.contains("synthetic-qwen2"));
    // A run first, and `e` on its timing pane explains its figures.
    pane.keys(&["Tab", "r"]);
    pane.wait_for("the run", 60, |s| s.contains("run 1 done"));
    pane.keys(&["5", "e"]);
    let s = pane.wait_for("the explanation", 20, |s| {
        s.contains("explain · prefill vs decode")
    });
    assert!(
        s.contains("decoded tokens ÷") && s.contains("percentile of"),
        "{s}"
    );
    pane.keys(&["e", "A"]);
    pane.wait_for("the hint", 20, |s| s.contains("change one first"));
    pane.keys(&["u", "A"]);
    let s = pane.wait_for("the summary row", 120, |s| s.contains("B/A decode"));
    assert!(s.contains("A · baseline") && s.contains("B · F32"), "{s}");
    assert!(s.contains("one step of A, then one of B"), "{s}");
    pane.keys(&["Escape"]);
    pane.wait_for("the view closed", 20, |s| s.contains("race view closed"));
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(20));
}
