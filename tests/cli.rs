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

/// The synthetic GGUF with some metadata replaced, written to `dir`.
fn crafted(
    dir: &Path,
    name: &str,
    key: &str,
    value: candle_core::quantized::gguf_file::Value,
) -> String {
    let a = SyntheticSpec::default().arch;
    let key = key.replace("ARCH", a);
    let bytes =
        labtui::engine::synthetic::gguf_bytes_with(&SyntheticSpec::default(), &[(&key, value)])
            .unwrap();
    write(dir, name, &bytes)
}

/// A header that would size gigabytes or divide by zero: `tokenize` and `generate` each exit
/// non-zero within a second with one line naming the field, its value and the limit.
#[test]
fn a_header_that_would_exhaust_memory_is_refused_at_once_naming_the_field() {
    use candle_core::quantized::gguf_file::Value;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            crafted(
                dir.path(),
                "align0.gguf",
                "general.alignment",
                Value::U32(0),
            ),
            "general.alignment = 0 is out of range (a power of two from 1 to 1048576)",
        ),
        (
            crafted(
                dir.path(),
                "layers.gguf",
                "ARCH.block_count",
                Value::U64(1 << 40),
            ),
            "qwen2.block_count = 1099511627776 is out of range (1 to 1024)",
        ),
        (
            crafted(
                dir.path(),
                "context.gguf",
                "ARCH.context_length",
                Value::U64(1 << 40),
            ),
            "qwen2.context_length = 1099511627776 is out of range (1 to 1048576)",
        ),
    ];
    for (file, needle) in &cases {
        for args in [
            vec!["tokenize", "--model", file, "hello"],
            vec!["generate", "--model", file, "--prompt", "hello", "-n", "4"],
        ] {
            let start = std::time::Instant::now();
            let out = labtui(&args);
            let took = start.elapsed();
            fails_with(&out, needle);
            assert!(
                took < std::time::Duration::from_secs(1),
                "{args:?} took {took:?}"
            );
        }
    }
}

#[test]
fn hyper_parameters_that_disagree_are_named() {
    use candle_core::quantized::gguf_file::Value;
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "ARCH.attention.head_count_kv",
            Value::U32(3),
            "qwen2.attention.head_count = 4 is not a multiple of qwen2.attention.head_count_kv = 3",
        ),
        (
            "ARCH.embedding_length",
            Value::U32(254),
            "qwen2.embedding_length = 254 is not a multiple of qwen2.attention.head_count = 4",
        ),
        (
            "ARCH.context_length",
            Value::U32(0),
            "qwen2.context_length = 0 is out of range (1 to 1048576)",
        ),
        (
            "ARCH.attention.key_length",
            Value::U32(0),
            "qwen2.attention.key_length = 0 is out of range (1 to 512)",
        ),
        (
            "ARCH.vocab_size",
            Value::U32(0),
            "qwen2.vocab_size = 0 is out of range (1 to 4194304)",
        ),
        (
            "ARCH.attention.head_count",
            Value::I32(-4),
            "qwen2.attention.head_count = -4 is out of range (1 to 1024)",
        ),
        (
            "ARCH.feed_forward_length",
            Value::U32(384),
            "tensor blk.0.ffn_gate.weight is [512, 256]",
        ),
        (
            "ARCH.attention.key_length",
            Value::U32(32),
            "tensor blk.0.attn_q.weight is [256, 256]",
        ),
        (
            "ARCH.vocab_size",
            Value::U32(1000),
            "tensor token_embd.weight is [284, 256]",
        ),
        (
            "ARCH.rope.freq_base",
            Value::F32(f32::NAN),
            "qwen2.rope.freq_base = NaN is out of range",
        ),
        (
            "tokenizer.ggml.tokens",
            Value::Array(vec![]),
            "tokenizer.ggml.tokens has 0 entries (1 to 4194304)",
        ),
        (
            "tokenizer.ggml.bos_token_id",
            Value::U32(100_000),
            "tokenizer.ggml.bos_token_id = 100000 is out of range (0 to 283, the last token)",
        ),
    ];
    for (i, (key, value, needle)) in cases.into_iter().enumerate() {
        let file = crafted(dir.path(), &format!("{i}.gguf"), key, value);
        fails_with(
            &labtui(&["generate", "--model", &file, "--prompt", "hello", "-n", "2"]),
            needle,
        );
    }
}

/// Flags out of range are refused by the parser, naming the flag, the value and the limit.
#[test]
fn flags_out_of_range_are_refused_naming_the_limit() {
    let gen = |extra: &[&str]| {
        let mut a = vec!["generate", "--model", "synthetic", "--prompt", "hi"];
        a.extend_from_slice(extra);
        labtui(&a)
    };
    let cases: [(Output, &str); 12] = [
        (
            gen(&["-n", "0"]),
            "'--max-tokens <MAX_TOKENS>': 0 is not in 1..=1048576",
        ),
        (
            gen(&["-n", "99999999999"]),
            "99999999999 is not in 1..=1048576",
        ),
        (
            gen(&["--temp", "NaN"]),
            "NaN is out of range (0 to 10; 0 is greedy)",
        ),
        (gen(&["--temp", "inf"]), "inf is out of range"),
        (gen(&["--temp=-1"]), "-1 is out of range"),
        (
            gen(&["--top-p", "0"]),
            "'--top-p <TOP_P>': 0 is out of range (above 0, at most 1)",
        ),
        (gen(&["--top-p", "1.5"]), "1.5 is out of range"),
        (
            gen(&["--top-k", "0"]),
            "'--top-k <TOP_K>': 0 is not in 1..=4194304",
        ),
        (
            gen(&["--threads", "0"]),
            "'--threads <THREADS>': 0 is not in 1..=1024",
        ),
        (
            labtui(&["bench", "engine", "--repeats", "0"]),
            "'--repeats <REPEATS>': 0 is not in 1..=10000",
        ),
        (
            labtui(&["replay", "x.ron", "--speed", "0"]),
            "'--speed <SPEED>': 0 is out of range (above 0, at most 1000)",
        ),
        (
            labtui(&["replay", "x.ron", "--speed", "NaN"]),
            "NaN is out of range",
        ),
    ];
    for (out, needle) in cases {
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{needle}: {err}");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{needle}: {err}"
        );
    }
    for bench in [
        vec!["bench", "ui", "--repeats", "0"],
        vec!["bench", "quant", "--repeats", "0"],
        vec!["bench", "quant", "--ctx", "1"],
        vec!["bench", "spec", "--prompts", "7"],
        vec!["bench", "batch", "--batch", "0"],
        vec!["replay", "x.ron", "--speed", "inf"],
    ] {
        let out = labtui(&bench);
        assert_eq!(out.status.code(), Some(2), "{bench:?}");
    }
}

/// More tokens than the context holds: the run stops when the context is full, and says so.
#[test]
fn max_tokens_past_the_context_is_capped_with_a_note() {
    let out = labtui(&[
        "generate",
        "--model",
        "synthetic",
        "--prompt",
        "hi",
        "-n",
        "100000",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(
            "note: --max-tokens 100000 is more than synthetic-qwen2's context holds (512 tokens)"
        ),
        "{err}"
    );
}

/// `bench batch` on the synthetic model: one row per batch size, in each format.
#[test]
fn bench_batch_prints_a_row_per_batch_size() {
    let run = |format: &str| {
        let out = labtui(&[
            "bench",
            "batch",
            "--model",
            "synthetic",
            "--batch",
            "1,3",
            "--prompt-tokens",
            "20",
            "--tokens",
            "3",
            "--format",
            format,
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{format}: {err}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    let rows = json.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["batch"], 3);
    assert!(rows[1]["decode_tok_s"].as_f64().unwrap() > 0.0);
    assert!(rows[1]["llama_decode_tok_s"].is_null());
    let csv = run("csv");
    assert!(csv.starts_with("batch,prefill_ms,"), "{csv}");
    assert_eq!(csv.lines().count(), 3);
    let md = run("md");
    // The stamp, then the table.
    assert!(md.starts_with("> **Machine**"), "{md}");
    let table: Vec<&str> = md.lines().skip_while(|l| !l.starts_with('|')).collect();
    assert!(table[0].starts_with("| batch | prefill ms |"), "{md}");
    assert_eq!(table.len(), 4, "{md}");
}

/// `bench batch --charts DIR`: the throughput-latency chart as PNG and SVG, a labelled point per
/// batch size.
#[test]
fn bench_batch_charts_label_each_batch_size() {
    let dir = tempfile::tempdir().unwrap();
    let out = labtui(&[
        "bench",
        "batch",
        "--model",
        "synthetic",
        "--batch",
        "1,3",
        "--prompt-tokens",
        "8",
        "--tokens",
        "2",
        "--charts",
        dir.path().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let png = std::fs::read(dir.path().join("batch-throughput-latency.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(dir.path().join("batch-throughput-latency.svg")).unwrap();
    for text in ["labtui", "B=1", "B=3", "step latency (ms)"] {
        assert!(svg.contains(text), "{text} missing from the SVG");
    }
}
