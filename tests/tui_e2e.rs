//! The real binary in a real terminal (tmux): start on a real model, type a prompt, run it, see
//! tokens arrive, change K, stop, quit, and find the terminal back in cooked mode.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(session: &str) -> String {
    tmux(&["capture-pane", "-p", "-t", session])
}

/// Wait until the screen satisfies `pred`, or fail with the last screen.
fn wait_for(session: &str, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let s = screen(session);
        if pred(&s) {
            return s;
        }
        if Instant::now() > end {
            tmux(&["kill-session", "-t", session]);
            panic!("timed out waiting for {what}; screen:\n{s}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .output();
    }
}

#[test]
fn dashboard_runs_stops_and_restores_the_terminal() {
    let Some(model) = common::real_model(common::QWEN_05B) else {
        return;
    };
    if Command::new("tmux").arg("-V").output().is_err() {
        assert!(
            std::env::var("LABTUI_REQUIRE_MODELS").is_err(),
            "tmux is required for this test in CI"
        );
        eprintln!("skipped: tmux is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stty = dir.path().join("stty.txt");
    let recording = dir.path().join("session.ron");
    let name = format!("labtui-e2e-{}", std::process::id());
    let _guard = Session(name.clone());
    let cmd = format!(
        "RAYON_NUM_THREADS=2 {} --model {} --record {} ; stty -a > {} ; sleep 60",
        env!("CARGO_BIN_EXE_labtui"),
        model.display(),
        recording.display(),
        stty.display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "160",
        "-y",
        "50",
        &cmd,
    ]);
    wait_for(&name, "the model to load", 120, |s| {
        s.contains("loaded in") && s.contains("rec ON")
    });
    tmux(&["send-keys", "-t", &name, "-l", "Write a haiku about Rust."]);
    wait_for(&name, "the typed prompt", 10, |s| {
        s.contains("Write a haiku about Rust.")
    });
    tmux(&["send-keys", "-t", &name, "Enter"]);
    let s = wait_for(&name, "tokens on screen", 120, |s| {
        s.contains("run 1 ·") && s.contains("decoding")
    });
    assert!(s.contains("prefill vs decode"));
    // Leave the prompt and raise K: the worker answers in the status line.
    tmux(&["send-keys", "-t", &name, "Tab"]);
    tmux(&["send-keys", "-t", &name, "]"]);
    wait_for(&name, "the K change", 30, |s| {
        s.contains("K 5") && s.contains("K = 5")
    });
    tmux(&["send-keys", "-t", &name, "Escape"]);
    let s = wait_for(&name, "the stop", 30, |s| {
        s.contains("done (Stopped)") || s.contains("done (Eos)") || s.contains("done (MaxTokens)")
    });
    assert!(s.contains("tok/s"));
    // Four presses of u, as loaded → F32 → F16 → BF16 → Q8_0, come as one burst: the worker
    // requantises once, to the newest. Then the variants table lists both weights.
    tmux(&["send-keys", "-t", &name, "u", "u", "u", "u"]);
    wait_for(&name, "the Q8_0 weights", 120, |s| {
        s.contains("weights Q8_0") && s.contains("switched in")
    });
    tmux(&["send-keys", "-t", &name, "w"]);
    let s = wait_for(&name, "the variants table", 10, |s| {
        s.contains("variants tried")
    });
    assert!(s.contains("as loaded") && s.contains("638.7 MiB"), "{s}");
    tmux(&["send-keys", "-t", &name, "Escape"]);
    wait_for(&name, "the table to close", 10, |s| {
        !s.contains("variants tried")
    });
    tmux(&["send-keys", "-t", &name, "q"]);
    let end = Instant::now() + Duration::from_secs(20);
    while !Path::new(&stty).exists() || std::fs::read_to_string(&stty).unwrap().is_empty() {
        assert!(
            Instant::now() < end,
            "labtui did not quit; screen:\n{}",
            screen(&name)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(200));
    let modes = std::fs::read_to_string(&stty).unwrap();
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["icanon", "echo", "icrnl", "opost"] {
        assert!(
            words.contains(&mode),
            "terminal not restored ({mode} is off): {modes}"
        );
    }
}
