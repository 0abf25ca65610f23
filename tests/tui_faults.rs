//! The terminal always comes back: the real binary in tmux, on the synthetic model, ended by
//! SIGTERM and SIGHUP, and through panics on the worker, on candle's pool and on the sampler
//! thread (injected with `LABTUI_FAULT`). After a panic the dashboard is still live in raw mode
//! and shows the error; after it ends, `stty -a` in the pane shows a cooked terminal.

mod common;

use common::tmux::{assert_cooked, assert_raw, have_tmux, Pane as Tmux};
use labtui::worker::SHUTDOWN_WAIT;
use std::process::Command;
use std::time::Instant;

/// labtui in a 120×40 tmux pane with `fault` injected, its model loaded.
struct Pane(Tmux);

impl Pane {
    fn start(tag: &str, fault: Option<&str>) -> Self {
        Self::start_on(tag, fault, "synthetic")
    }

    fn start_on(tag: &str, fault: Option<&str>, model: &str) -> Self {
        let env = fault
            .map(|f| format!("LABTUI_FAULT={f}"))
            .unwrap_or_default();
        let p = Self(Tmux::start_env(
            &format!("faults-{tag}"),
            &env,
            &format!("--model {model}"),
            120,
            40,
        ));
        p.wait_for("the model to load", |s| s.contains("loaded in"));
        p
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        self.0.wait_for(what, 60, pred)
    }
}

impl std::ops::Deref for Pane {
    type Target = Tmux;

    fn deref(&self) -> &Tmux {
        &self.0
    }
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
        // The app waits on its worker at most SHUTDOWN_WAIT; tmux's polling and a loaded
        // machine may add to it, but not another wait of its own.
        assert!(
            started.elapsed() < SHUTDOWN_WAIT * 3 * common::timing_scale(),
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
    // The measurement goes on for many seconds; quitting waits for it at most SHUTDOWN_WAIT.
    assert!(
        started.elapsed() < SHUTDOWN_WAIT * 2 * common::timing_scale(),
        "quitting took {:?}",
        started.elapsed()
    );
}
