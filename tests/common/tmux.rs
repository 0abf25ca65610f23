//! The real binary in a real terminal: a tmux pane running labtui, its screen read with
//! `capture-pane`, keys sent with `send-keys`, and the pane's `stty -a` after labtui exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// `tmux -L socket ARGS`: every pane has a server of its own, so that one test ending its
/// session (and with it, when it was the last, the shared server) never races another test
/// starting one. A failed command fails the test, with tmux's words.
fn tmux_on(socket: &str, args: &[&str]) -> String {
    let out = Command::new("tmux")
        .arg("-L")
        .arg(socket)
        .args(args)
        .output()
        .expect("tmux runs");
    assert!(
        out.status.success(),
        "tmux {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Whether tmux is here; without it the test is skipped (a failure in CI).
pub fn have_tmux() -> bool {
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

/// A labtui in a tmux pane (and server) of its own; the server goes when this does.
pub struct Pane {
    pub name: String,
    pub dir: tempfile::TempDir,
}

impl Pane {
    /// Start `labtui ARGS` (shell words) in a `w`×`h` pane, in a fresh directory (the pane's
    /// working directory), its stderr to `err.txt` there; after it exits, the pane's `stty -a`
    /// is written to a file.
    pub fn start(tag: &str, args: &str, w: u16, h: u16) -> Self {
        Self::start_env(tag, "", args, w, h)
    }

    /// [`Pane::start`] with `env` (shell words, `NAME=value …`) set for labtui alone; labtui's
    /// pid goes to a file for [`Pane::pid`].
    pub fn start_env(tag: &str, env: &str, args: &str, w: u16, h: u16) -> Self {
        assert!(
            !args.contains('\''),
            "arguments are quoted in single quotes: {args}"
        );
        let dir = tempfile::tempdir().unwrap();
        let name = format!("labtui-{tag}-{}", std::process::id());
        let stty = dir.path().join("stty.txt");
        let cmd = format!(
            "cd {dir} && sh -c 'echo $$ > pid; RAYON_NUM_THREADS=2 {env} exec {bin} {args} 2> err.txt'; \
             stty -a > {stty}; sleep 60",
            dir = dir.path().display(),
            bin = env!("CARGO_BIN_EXE_labtui"),
            stty = stty.display(),
        );
        let (w, h) = (w.to_string(), h.to_string());
        tmux_on(
            &name,
            &["new-session", "-d", "-s", &name, "-x", &w, "-y", &h, &cmd],
        );
        Self { name, dir }
    }

    /// A tmux command on this pane's server.
    pub fn tmux(&self, args: &[&str]) -> String {
        tmux_on(&self.name, args)
    }

    /// labtui's process id.
    pub fn pid(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pid"))
            .unwrap()
            .trim()
            .to_string()
    }

    /// The pane's terminal modes right now, read from outside.
    pub fn live_modes(&self) -> String {
        let tty = self.tmux(&["display", "-p", "-t", &self.name, "#{pane_tty}"]);
        let out = Command::new("stty")
            .args(["-a", "-F", tty.trim()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", &self.name])
    }

    /// Wait (at most `secs`) until the screen satisfies `pred`; fails with the last screen.
    pub fn wait_for(&self, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < end,
                "timed out waiting for {what}; screen:\n{s}\nstderr:\n{}",
                std::fs::read_to_string(self.dir.path().join("err.txt")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend(keys);
        self.tmux(&args);
    }

    /// Wait for labtui to exit (within `secs`) and return the pane's `stty -a` after it.
    pub fn modes_after_exit(&self, secs: u64) -> String {
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
            .args(["-L", &self.name, "kill-server"])
            .output();
    }
}

/// `stty -a` output of a terminal back in cooked mode.
pub fn assert_cooked(modes: &str) {
    let words: Vec<&str> = modes.split_whitespace().collect();
    for mode in ["icanon", "echo", "icrnl", "opost"] {
        assert!(
            words.contains(&mode),
            "terminal not restored ({mode} is off): {modes}"
        );
    }
}

/// `stty -a` output of a terminal in raw mode (the dashboard running).
pub fn assert_raw(modes: &str) {
    let words: Vec<&str> = modes.split_whitespace().collect();
    assert!(
        words.contains(&"-icanon") && words.contains(&"-echo"),
        "the dashboard runs but its terminal is cooked: {modes}"
    );
}
