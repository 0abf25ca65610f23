//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// A real GGUF from the models directory, or `None` with a note saying why the test is skipped.
/// With `LABTUI_REQUIRE_MODELS=1` (as in CI) a missing model fails the test instead.
pub fn real_model(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("LABTUI_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let path = dir.join(file);
    if path.exists() {
        return Some(path);
    }
    let why = format!(
        "{} is missing: run ../shared/tools/fetch-models {} to get it",
        path.display(),
        dir.display()
    );
    if std::env::var("LABTUI_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
        panic!("LABTUI_REQUIRE_MODELS=1 but {why}");
    }
    eprintln!("skipped: {why}");
    None
}

pub const QWEN_05B: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
pub const QWEN_15B: &str = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf";
pub const GEMMA_270M: &str = "gemma-3-270m-q4_k_m.gguf";

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

/// How long a test lets one labtui command run before it fails the test (a hang is a failure, not
/// a stuck CI job).
pub const COMMAND_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Run a command to its end with its output captured, killing it past `limit`.
pub trait OutputWithin {
    fn output_within(&mut self, limit: std::time::Duration) -> std::process::Output;

    fn output_bounded(&mut self) -> std::process::Output {
        self.output_within(COMMAND_LIMIT)
    }
}

impl OutputWithin for std::process::Command {
    fn output_within(&mut self, limit: std::time::Duration) -> std::process::Output {
        use std::io::Read;
        use std::process::Stdio;
        let mut child = self
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the command starts");
        let drain = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                v
            })
        };
        let out = drain(Box::new(child.stdout.take().unwrap()));
        let err = drain(Box::new(child.stderr.take().unwrap()));
        let end = std::time::Instant::now() + limit;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > end {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{self:?} ran past {limit:?}; stderr so far:\n{}",
                    String::from_utf8_lossy(&err.join().unwrap())
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        std::process::Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        }
    }
}

/// The labtui binary with the thread count the tests expect.
pub fn labtui_cmd() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"));
    c.env("RAYON_NUM_THREADS", "2");
    c
}

/// Record a run of the synthetic model to `path`; extra arguments follow. Returns the output.
pub fn record_synthetic(
    path: &std::path::Path,
    prompt: &str,
    n: usize,
    extra: &[&str],
) -> std::process::Output {
    let out = labtui_cmd()
        .args([
            "generate",
            "--model",
            "synthetic",
            "--prompt",
            prompt,
            "-n",
            &n.to_string(),
        ])
        .args(extra)
        .arg("--record")
        .arg(path)
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// llama.cpp's `llama-server`: in `$LLAMA_CPP_BIN`, else built (or found cached) by
/// `../shared/tools/llama-cpp`; `None` with a note when neither is there. With
/// `LABTUI_REQUIRE_MODELS=1` (as in CI) a missing server fails the test instead.
pub fn llama_server() -> Option<PathBuf> {
    let dir = std::env::var_os("LLAMA_CPP_BIN")
        .map(PathBuf::from)
        .or_else(|| {
            let tool = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/tools/llama-cpp");
            let out = std::process::Command::new(tool).output().ok()?;
            out.status
                .success()
                .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        });
    let bin = dir.map(|d| d.join("llama-server")).filter(|b| b.exists());
    if bin.is_none() {
        let why = "llama-server is missing: set LLAMA_CPP_BIN or run ../shared/tools/llama-cpp";
        if std::env::var("LABTUI_REQUIRE_MODELS").is_ok_and(|v| v == "1") {
            panic!("LABTUI_REQUIRE_MODELS=1 but {why}");
        }
        eprintln!("skipped: {why}");
    }
    bin
}

/// A process killed (and reaped) when this guard drops, so a failing test leaves no server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How much slower than a quiet machine the timing tests allow this one to be: they scale their
/// scripted gaps and bounds by it. `LABTUI_TIMING_SCALE` (a whole number, default 1) raises it on
/// a loaded machine, where otherwise a test would have to widen its own numbers.
pub fn timing_scale() -> u32 {
    std::env::var("LABTUI_TIMING_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&k| k >= 1)
        .unwrap_or(1)
}

/// A port number for a server in another process that takes a number, not a listener
/// (llama-server). It is free when asked, but another process can take it before the server
/// binds it: the caller starts the server again on a new number when the server cannot bind it.
/// Our own servers bind port 0 instead and say which port they got ([`served_url`],
/// [`loopback_port`]).
pub fn port_for_another_process() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}

/// The port in the first `127.0.0.1:PORT` that `text` names (a screen that shows a server's
/// address).
pub fn loopback_port(text: &str) -> Option<u16> {
    let (_, rest) = text.split_once("127.0.0.1:")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// The URL (`http://127.0.0.1:PORT`) that a `labtui serve --port 0` child serves at, read from
/// the line its stderr starts with. The rest of its stderr is drained on a thread until the child
/// ends, so it never blocks on a full pipe or writes into a closed one.
pub fn served_url(child: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let url = line.split_whitespace().find(|w| w.starts_with("http://"));
            if let (Some(url), Some(tx)) = (url, tx.take()) {
                let _ = tx.send(url.trim_end_matches("/v1").to_string());
            }
        }
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("labtui serve names its address on stderr within a minute")
}
pub mod client;
pub mod engine;
pub mod sched;
pub mod screen;
pub mod tmux;
pub mod worker;

// Not every test binary takes both.
#[allow(unused_imports)]
pub use engine::{greedy_alone, synthetic};

/// The property tests' settings: `LABTUI_FUZZ_CASES` cases (64 unless set), shrinking bounded
/// (it re-runs the loader many times; the failing input is printed either way), nothing persisted.
pub fn proptest_config() -> proptest::test_runner::Config {
    let cases = std::env::var("LABTUI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    proptest::test_runner::Config {
        cases,
        max_shrink_iters: 256,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    }
}
