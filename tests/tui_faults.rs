//! The terminal always comes back: the real binary in tmux, on the synthetic model, ended by
//! SIGTERM and SIGHUP, and through panics on the worker, on candle's pool and on the sampler
//! thread (injected with `LABTUI_FAULT`). After a panic the dashboard is still live in raw mode
//! and shows the error; after it ends, `stty -a` in the pane shows a cooked terminal.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn have_tmux() -> bool {
    if Command::new("tmux").arg("-V").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var("LABTUI_REQUIRE_MODELS").is_err(),
        "tmux is required for this test in CI"
    );
    eprintln!("skipped: tmux is not installed");
    false
}

/// A labtui in a tmux pane; the session goes when this does.
struct Pane {
    name: String,
    dir: tempfile::TempDir,
}

impl Pane {
    /// Start labtui on the synthetic model with `fault` injected; after it exits, the pane's
    /// `stty -a` is written to a file.
    fn start(tag: &str, fault: Option<&str>) -> Self {
        Self::start_on(tag, fault, "synthetic")
    }

    fn start_on(tag: &str, fault: Option<&str>, model: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let name = format!("labtui-faults-{tag}-{}", std::process::id());
        let pid = dir.path().join("pid");
        let stty = dir.path().join("stty.txt");
        let cmd = format!(
            "sh -c 'echo $$ > {pid}; RAYON_NUM_THREADS=2 {fault} exec {bin} --model {model}'; stty -a > {stty}; sleep 60",
            pid = pid.display(),
            fault = fault.map(|f| format!("LABTUI_FAULT={f}")).unwrap_or_default(),
            bin = env!("CARGO_BIN_EXE_labtui"),
            stty = stty.display(),
        );
        tmux(&[
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "120",
            "-y",
            "40",
            &cmd,
        ]);
        let p = Self { name, dir };
        p.wait_for("the model to load", |s| s.contains("loaded in"));
        p
    }

    fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend(keys);
        tmux(&args);
    }

    fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pid"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The pane's terminal modes right now, read from outside.
    fn live_modes(&self) -> String {
        let tty = tmux(&["display", "-p", "-t", &self.name, "#{pane_tty}"]);
        let out = Command::new("stty")
            .args(["-a", "-F", tty.trim()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Wait for labtui to exit (within `secs`) and return the pane's `stty -a` after it.
    fn modes_after_exit(&self, secs: u64) -> String {
        let path: PathBuf = self.dir.path().join("stty.txt");
        let end = Instant::now() + Duration::from_secs(secs);
        while !Path::new(&path).exists() || std::fs::read_to_string(&path).unwrap().is_empty() {
            assert!(
                Instant::now() < end,
                "labtui did not exit within {secs} s; screen:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read_to_string(&path).unwrap()
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
    }
}

fn assert_cooked(modes: &str) {
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["icanon", "echo", "icrnl", "opost"] {
        assert!(
            words.contains(&mode),
            "terminal not restored ({mode} is off): {modes}"
        );
    }
}

fn assert_raw(modes: &str) {
    let words: Vec<&str> = modes.split_whitespace().collect();
    assert!(
        words.contains(&"-icanon") && words.contains(&"-echo"),
        "the dashboard runs but its terminal is cooked: {modes}"
    );
}

#[test]
fn signals_end_labtui_with_the_terminal_restored() {
    if !have_tmux() {
        return;
    }
    for sig in ["TERM", "HUP", "INT"] {
        let p = Pane::start(&sig.to_lowercase(), None);
        let started = Instant::now();
        let status = Command::new("kill")
            .args([&format!("-{sig}"), &p.pid()])
            .status()
            .unwrap();
        assert!(status.success());
        assert_cooked(&p.modes_after_exit(5));
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "SIG{sig} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn panics_on_other_threads_show_as_errors_and_keep_the_terminal() {
    if !have_tmux() {
        return;
    }
    for (fault, shown) in [
        ("worker-panic", "a panic on the worker thread"),
        ("pool-panic", "injected fault: a panic"),
    ] {
        let p = Pane::start(fault, Some(fault));
        p.keys(&["-l", "Say something."]);
        p.keys(&["Enter"]);
        let s = p.wait_for("the error", |s| s.contains(shown));
        assert!(s.contains("internal error in the worker"), "{s}");
        assert_raw(&p.live_modes());
        // Still alive: keys work.
        p.keys(&["Tab", "?"]);
        p.wait_for("the help", |s| s.contains("keys · ? or Esc closes"));
        p.keys(&["Escape", "q"]);
        assert_cooked(&p.modes_after_exit(5));
    }
    let p = Pane::start("sampler", Some("sampler-panic"));
    p.wait_for("the sampler's error", |s| {
        s.contains("memory sampler stopped")
    });
    assert_raw(&p.live_modes());
    p.keys(&["Tab", "q"]);
    assert_cooked(&p.modes_after_exit(5));
}

/// A long job (a quality measurement on the real 0.5B) stops on `s`, and `q` returns to the
/// shell at once even while one runs.
#[test]
fn jobs_stop_and_quitting_does_not_wait_for_them() {
    if !have_tmux() {
        return;
    }
    let Some(model) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let p = Pane::start_on("quit", None, &model.display().to_string());
    p.keys(&["Tab", "Q"]);
    p.wait_for("the measurement", |s| s.contains("measuring"));
    p.keys(&["s"]);
    p.wait_for("the stop", |s| s.contains("quality measurement stopped"));
    p.keys(&["Q"]);
    p.wait_for("the measurement again", |s| s.contains("measuring"));
    let started = Instant::now();
    p.keys(&["q"]);
    assert_cooked(&p.modes_after_exit(5));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "quitting took {:?}",
        started.elapsed()
    );
}
