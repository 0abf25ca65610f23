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
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
