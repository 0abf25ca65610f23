//! The real binary in a real terminal (tmux): start on a real model, type a prompt, run it, see
//! tokens arrive, change K, stop, quit, and find the terminal back in cooked mode.

mod common;

use common::tmux::{assert_cooked, have_tmux, Pane};

#[test]
fn dashboard_runs_stops_and_restores_the_terminal() {
    let Some(model) = common::real_model(common::QWEN_05B) else {
        return;
    };
    if !have_tmux() {
        return;
    }
    let p = Pane::start(
        "e2e",
        &format!("--model {} --record session.ron", model.display()),
        160,
        50,
    );
    p.wait_for("the model to load", 120, |s| {
        s.contains("loaded in") && s.contains("rec ON")
    });
    p.keys(&["-l", "Write a haiku about Rust."]);
    p.wait_for("the typed prompt", 10, |s| {
        s.contains("Write a haiku about Rust.")
    });
    p.keys(&["Enter"]);
    let s = p.wait_for("tokens on screen", 120, |s| {
        s.contains("run 1 ·") && s.contains("decoding")
    });
    assert!(s.contains("prefill vs decode"));
    // Leave the prompt and raise K: the worker answers in the status line.
    p.keys(&["Tab"]);
    p.keys(&["]"]);
    p.wait_for("the K change", 30, |s| {
        s.contains("K 5") && s.contains("K = 5")
    });
    p.keys(&["Escape"]);
    let s = p.wait_for("the stop", 30, |s| {
        s.contains("done (Stopped)") || s.contains("done (Eos)") || s.contains("done (MaxTokens)")
    });
    assert!(s.contains("tok/s"));
    // Four presses of u, as loaded → F32 → F16 → BF16 → Q8_0, come as one burst: the worker
    // requantises once, to the newest. Then the variants table lists both weights.
    p.keys(&["u", "u", "u", "u"]);
    p.wait_for("the Q8_0 weights", 120, |s| {
        s.contains("weights Q8_0") && s.contains("switched in")
    });
    p.keys(&["w"]);
    let s = p.wait_for("the variants table", 10, |s| s.contains("variants tried"));
    assert!(s.contains("as loaded") && s.contains("638.7 MiB"), "{s}");
    p.keys(&["Escape"]);
    p.wait_for("the table to close", 10, |s| !s.contains("variants tried"));
    p.keys(&["q"]);
    assert_cooked(&p.modes_after_exit(20));
    assert!(p.dir.path().join("session.ron").exists());
}
