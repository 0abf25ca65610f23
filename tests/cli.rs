//! The binary as a script uses it: headless generate and tokenize, and clear one-line errors for
//! bad input.

mod common;

use common::OutputWithin;

use labtui::engine::synthetic::{gguf_bytes, SyntheticSpec};
use labtui::protocol::{Event, Stamped};
use std::path::Path;
use std::process::Output;

fn labtui(args: &[&str]) -> Output {
    common::labtui_cmd().args(args).output_bounded()
}

/// Exit non-zero with one `error:` line on stderr that contains `needle`, and no panic.
fn fails_with(out: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "expected failure, stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(needle),
        "{err}"
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn generate_streams_text_and_a_summary() {
    let out = labtui(&[
        "generate",
        "--model",
        "synthetic",
        "--prompt",
        "hello",
        "-n",
        "12",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    for field in ["ttft", "prefill", "decode", "tok/s", "itl p50", "p99", "kv"] {
        assert!(err.contains(field), "{field} missing from {err}");
    }
}

#[test]
fn generate_ron_is_the_event_stream() {
    let out = labtui(&[
        "generate",
        "--model",
        "synthetic",
        "--prompt",
        "hello",
        "-n",
        "6",
        "--format",
        "ron",
    ]);
    assert!(out.status.success());
    let events: Vec<Stamped> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| ron::from_str(l).unwrap())
        .collect();
    let tokens: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let Event::Token(t) = &e.event {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    assert!(!tokens.is_empty() && tokens.len() <= 6);
    assert!(tokens
        .windows(2)
        .all(|w| w[1].index == w[0].index + 1 && w[1].kv_tokens == w[0].kv_tokens + 1));
    assert!(events
        .windows(2)
        .all(|w| w[0].at <= w[1].at || matches!(w[1].event, Event::System(_))));
    assert!(matches!(
        events.last().unwrap().event,
        Event::RunFinished { .. }
    ));
    let json = labtui(&[
        "generate",
        "--model",
        "synthetic",
        "--prompt",
        "hello",
        "-n",
        "3",
        "--format",
        "json",
    ]);
    let first: Stamped = serde_json::from_str(
        String::from_utf8_lossy(&json.stdout)
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let _ = first;
}

#[test]
fn same_seed_same_text() {
    let run = |seed: &str| {
        let o = labtui(&[
            "generate",
            "--model",
            "synthetic",
            "--prompt",
            "hi",
            "-n",
            "16",
            "--temp",
            "0.9",
            "--seed",
            seed,
        ]);
        assert!(o.status.success());
        o.stdout
    };
    assert_eq!(run("5"), run("5"));
}

#[test]
fn tokenize_prints_ids_and_pieces() {
    let out = labtui(&[
        "tokenize",
        "--model",
        "synthetic",
        "--json",
        "<|im_start|> the",
    ]);
    assert!(out.status.success());
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["piece"], "<|im_start|>");
    assert_eq!(rows[1]["piece"], " the");
}

#[test]
fn a_missing_file_says_how_to_get_one() {
    fails_with(
        &labtui(&["generate", "--model", "/nope/missing.gguf", "--prompt", "x"]),
        "not found",
    );
}

#[test]
fn a_truncated_gguf_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = gguf_bytes(&SyntheticSpec::default()).unwrap();
    let p = write(dir.path(), "cut.gguf", &bytes[..bytes.len() * 2 / 3]);
    fails_with(
        &labtui(&["generate", "--model", &p, "--prompt", "x"]),
        "truncated",
    );
    let p = write(dir.path(), "header.gguf", &bytes[..100]);
    fails_with(
        &labtui(&["generate", "--model", &p, "--prompt", "x"]),
        "truncated or corrupt",
    );
}

#[test]
fn a_text_file_named_gguf_is_not_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "notes.gguf", b"just some notes, not a model\n");
    fails_with(
        &labtui(&["generate", "--model", &p, "--prompt", "x"]),
        "is not a GGUF file",
    );
}

#[test]
fn an_unsupported_architecture_is_named() {
    use candle_core::quantized::gguf_file::{write as gguf_write, Value};
    let dir = tempfile::tempdir().unwrap();
    let arch = Value::String("mamba".into());
    let mut buf = std::io::Cursor::new(Vec::new());
    gguf_write(&mut buf, &[("general.architecture", &arch)], &[]).unwrap();
    let p = write(dir.path(), "mamba.gguf", &buf.into_inner());
    fails_with(
        &labtui(&["generate", "--model", &p, "--prompt", "x"]),
        "\"mamba\" is not supported",
    );
}

#[test]
fn an_empty_prompt_is_refused() {
    fails_with(
        &labtui(&["generate", "--model", "synthetic", "--prompt", "  "]),
        "prompt is empty",
    );
}

#[test]
fn a_prompt_longer_than_the_context_is_refused() {
    let long = "word ".repeat(2000);
    fails_with(
        &labtui(&["generate", "--model", "synthetic", "--prompt", &long]),
        "shorten it",
    );
}

#[test]
fn generate_requantises_and_switches_the_kv_dtype() {
    let out = labtui(&[
        "generate",
        "--model",
        "synthetic",
        "--prompt",
        "hello",
        "-n",
        "6",
        "--quant",
        "q4_k",
        "--kv-dtype",
        "f16",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("weights Q4_K"), "{err}");
    assert!(err.contains("KV f16"), "{err}");
}

#[test]
fn an_unknown_quantization_lists_the_valid_ones() {
    let out = labtui(&[
        "generate",
        "--model",
        "synthetic",
        "--prompt",
        "hi",
        "--quant",
        "IQ4_NL",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for t in ["IQ4_NL", "as loaded", "Q8_0", "Q4_K", "Q2_K", "BF16"] {
        assert!(err.contains(t), "{t} missing from: {err}");
    }
    let out = labtui(&[
        "generate",
        "--model",
        "synthetic",
        "--prompt",
        "hi",
        "--kv-dtype",
        "q8_0",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("f32, f16, bf16"));
}
