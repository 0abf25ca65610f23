//! Property-based fuzzing of every reader of outside input: the GGUF loader on mutations of the
//! synthetic model, the recording loader (and the state and panes a replay feeds) on mutations of a
//! recorded session, and the preset parser on mutations of the shipped presets. Each must answer Ok
//! or an error, never panic, never allocate wildly: an allocation over [`MAX_ALLOCATION`] aborts
//! the test.
//!
//! 64 cases each by default; `LABTUI_FUZZ_CASES=5000 cargo test --test fuzz` runs a longer session.
//! Every crash found is fixed and kept below as a fixed input (`*_regressions`).

mod common;

use candle_core::quantized::gguf_file::Value;
use candle_core::Device;
use labtui::engine::synthetic::{gguf_bytes, gguf_bytes_with, SyntheticSpec};
use labtui::engine::{loader, Forward};
use labtui::protocol::Stamped;
use labtui::record::{Header, Line};
use proptest::prelude::*;
use std::io::Cursor;
use std::sync::OnceLock;

/// The largest single allocation any input may cause: a 1M-token context's RoPE tables (the
/// largest thing a valid header may size) stay well under it.
const MAX_ALLOCATION: usize = 1 << 30;

#[global_allocator]
static HEAP: labtui::alloc::Heap = labtui::alloc::Heap;

/// The allocator counts what is held: the memory pane's and the soak's live heap.
#[test]
fn the_live_heap_counts_what_is_held() {
    // Other tests allocate at the same time, so compare with a margin far below the buffer.
    const MIB_64: usize = 64 << 20;
    let before = labtui::alloc::heap_live();
    let buf = vec![1u8; MIB_64];
    let held = labtui::alloc::heap_live();
    assert!(held >= before + MIB_64 as u64 / 2, "{before} → {held}");
    drop(std::hint::black_box(buf));
    let after = labtui::alloc::heap_live();
    assert!(after + MIB_64 as u64 / 2 <= held, "{held} → {after}");
}

fn config() -> ProptestConfig {
    // labtui's allocator refuses any one allocation past the bound from here on.
    labtui::alloc::limit_each_allocation(MAX_ALLOCATION);
    common::proptest_config()
}

/// With `LABTUI_FUZZ_STATS=1`, each input's outcome on stderr (to see what the mutations reach:
/// `--nocapture 2>&1 | grep ^fuzz | sort | uniq -c`).
fn outcome<T, E: std::fmt::Display>(what: &str, r: &Result<T, E>) {
    static ON: OnceLock<bool> = OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("LABTUI_FUZZ_STATS").is_some()) {
        match r {
            Ok(_) => eprintln!("fuzz {what}: ok"),
            Err(e) => eprintln!("fuzz {what}: {e}"),
        }
    }
}

/// Numbers that break arithmetic: zero, one, powers of two around type limits, the maxima.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    3,
    255,
    0x7fff,
    0xffff,
    0x7fff_ffff,
    0xffff_ffff,
    1 << 32,
    1 << 40,
    0x7fff_ffff_ffff_ffff,
    u64::MAX,
    u64::MAX - 1,
];

// ---------------------------------------------------------------------------------------------
// GGUF

fn small_spec() -> SyntheticSpec {
    SyntheticSpec {
        layers: 1,
        ..Default::default()
    }
}

fn base_gguf() -> &'static (Vec<u8>, usize) {
    static BASE: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    BASE.get_or_init(|| {
        let bytes = gguf_bytes(&small_spec()).unwrap();
        let content = loader::read_content(&mut Cursor::new(&bytes), "base").unwrap();
        let header = content.tensor_data_offset as usize;
        (bytes, header)
    })
}

/// One change to a GGUF's bytes; offsets are taken modulo the header's length (the tensor data
/// after it is only numbers), or the file's for `Truncate`.
#[derive(Debug, Clone)]
enum ByteMutation {
    Set { at: usize, byte: u8 },
    Flip { at: usize, bit: u8 },
    Word { at: usize, value: u64, wide: bool },
    Truncate { at: usize },
}

fn byte_mutation() -> impl Strategy<Value = ByteMutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| ByteMutation::Set { at, byte }),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| ByteMutation::Flip { at, bit }),
        (
            any::<usize>(),
            prop::sample::select(&INTERESTING[..]),
            any::<bool>()
        )
            .prop_map(|(at, value, wide)| ByteMutation::Word { at, value, wide }),
        any::<usize>().prop_map(|at| ByteMutation::Truncate { at }),
    ]
}

fn mutate_bytes(bytes: &mut Vec<u8>, header: usize, m: &ByteMutation) {
    let header = header.min(bytes.len());
    if header == 0 {
        return;
    }
    match *m {
        ByteMutation::Set { at, byte } => bytes[at % header] = byte,
        ByteMutation::Flip { at, bit } => bytes[at % header] ^= 1 << bit,
        ByteMutation::Word { at, value, wide } => {
            let at = at % header;
            let le = value.to_le_bytes();
            let n = if wide { 8 } else { 4 };
            for (i, b) in le[..n].iter().enumerate() {
                if let Some(x) = bytes.get_mut(at + i) {
                    *x = *b;
                }
            }
        }
        ByteMutation::Truncate { at } => {
            let len = bytes.len();
            bytes.truncate(at % len);
        }
    }
}

/// Metadata keys of the synthetic model (`ARCH` is the architecture) and values to put there.
const KEYS: [&str; 18] = [
    "general.architecture",
    "general.alignment",
    "ARCH.block_count",
    "ARCH.context_length",
    "ARCH.embedding_length",
    "ARCH.feed_forward_length",
    "ARCH.attention.head_count",
    "ARCH.attention.head_count_kv",
    "ARCH.attention.key_length",
    "ARCH.vocab_size",
    "ARCH.rope.freq_base",
    "ARCH.attention.layer_norm_rms_epsilon",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.token_type",
];

fn meta_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::sample::select(&INTERESTING[..]).prop_map(Value::U64),
        prop::sample::select(&INTERESTING[..]).prop_map(|v| Value::U32(v as u32)),
        prop::sample::select(&INTERESTING[..]).prop_map(|v| Value::I32(v as i32)),
        (0u32..2048).prop_map(Value::U32),
        prop::sample::select(vec![0.0f32, -1.0, 1e-30, 1e30, f32::NAN, f32::INFINITY])
            .prop_map(Value::F32),
        Just(Value::String(String::new())),
        Just(Value::String("llama".into())),
        Just(Value::Array(vec![])),
        Just(Value::Array(vec![Value::String("a".into()); 3])),
        Just(Value::Array(vec![Value::U32(7); 3])),
        Just(Value::Bool(true)),
    ]
}

/// Load a GGUF as `generate` does, then tokenize and run two tokens through the model.
fn load_and_run(bytes: Vec<u8>) {
    let len = bytes.len() as u64;
    let mut r = Cursor::new(bytes);
    let content = loader::read_content(&mut r, "fuzz.gguf");
    outcome("gguf header", &content);
    let Ok(content) = content else {
        return;
    };
    let loaded = loader::load(&content, &mut r, "fuzz.gguf", len, &Device::Cpu);
    outcome("gguf load", &loaded);
    let Ok(loaded) = loaded else {
        return;
    };
    let ids = loaded
        .tokenizer
        .encode_prompt("hello <|im_start|> world")
        .unwrap_or_default();
    if let Some(ids) = ids.get(..2) {
        let mut cache = loaded.model.new_cache(candle_core::DType::F32);
        let _ = loaded.model.forward(ids, &mut cache, Forward::LAST);
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gguf_bytes_mutated_never_panic(ms in prop::collection::vec(byte_mutation(), 1..6)) {
        let (base, header) = base_gguf();
        let mut bytes = base.clone();
        for m in &ms {
            mutate_bytes(&mut bytes, *header, m);
        }
        load_and_run(bytes);
    }

    #[test]
    fn gguf_metadata_mutated_never_panics(
        changes in prop::collection::vec((prop::sample::select(&KEYS[..]), meta_value()), 1..4)
    ) {
        let spec = small_spec();
        let keys: Vec<String> = changes.iter().map(|(k, _)| k.replace("ARCH", spec.arch)).collect();
        let overrides: Vec<(&str, Value)> =
            keys.iter().zip(&changes).map(|(k, (_, v))| (k.as_str(), v.clone())).collect();
        let bytes = gguf_bytes_with(&spec, &overrides).unwrap();
        // Read as `tokenize` does (metadata only) and as `generate` does.
        let mut r = Cursor::new(&bytes);
        if let Ok(content) = loader::read_content(&mut r, "fuzz.gguf") {
            let meta = labtui::engine::config::Meta { content: &content, path: "fuzz.gguf" };
            if labtui::engine::config::check_limits(&meta).is_ok() {
                if let Ok(t) = labtui::engine::Tokenizer::from_gguf(&meta) {
                    let _ = t.encode("hello <|im_end|> world");
                }
            }
        }
        load_and_run(bytes);
    }
}

// ---------------------------------------------------------------------------------------------
// Recordings

fn base_recording() -> &'static String {
    static BASE: OnceLock<String> = OnceLock::new();
    BASE.get_or_init(|| {
        let header = Header::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        );
        let mut text = ron::to_string(&Line::Header(header)).unwrap() + "\n";
        for fixture in [
            include_str!("fixtures/qwen_spec_run.ron"),
            include_str!("fixtures/qwen_variants.ron"),
            include_str!("fixtures/demo_kv_cache.ron"),
            include_str!("fixtures/demo_quantization.ron"),
        ] {
            // Every event but most tokens: mutations land on the rarer events more often.
            let mut tokens = 0;
            for l in fixture.lines().filter(|l| !l.trim().is_empty()) {
                if l.contains("event:Token(") {
                    tokens += 1;
                    if tokens % 8 != 1 {
                        continue;
                    }
                }
                // Fixtures hold bare events or whole recordings (whose header is skipped).
                let e = match ron::from_str::<Line>(l) {
                    Ok(Line::Header(_)) => continue,
                    Ok(Line::Event(e)) => e,
                    Err(_) => ron::from_str::<Stamped>(l).unwrap(),
                };
                text += &ron::to_string(&Line::Event(e)).unwrap();
                text.push('\n');
            }
        }
        text
    })
}

/// Integers and floats that break arithmetic, to put where the text has a number of that kind.
const INTEGERS: [&str; 12] = [
    "0",
    "1",
    "2",
    "17",
    "255",
    "65535",
    "2147483647",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "18446744073709551615",
];
const FLOATS: [&str; 7] = ["0.0", "-0.0", "-1.0", "1e308", "-1e308", "NaN", "inf"];

/// One change to a text: a number replaced by an interesting one of its kind, a byte set, bytes
/// removed, a cut.
#[derive(Debug, Clone)]
enum TextMutation {
    Number { which: usize, value: usize },
    Byte { at: usize, byte: u8 },
    Remove { at: usize, len: u8 },
    Truncate { at: usize },
}

fn text_mutation() -> impl Strategy<Value = TextMutation> {
    prop_oneof![
        8 => (any::<usize>(), any::<usize>()).prop_map(|(which, value)| TextMutation::Number { which, value }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| TextMutation::Byte { at, byte }),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(at, len)| TextMutation::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| TextMutation::Truncate { at }),
    ]
}

fn mutate_text(text: &mut Vec<u8>, m: &TextMutation) {
    if text.is_empty() {
        return;
    }
    match m {
        TextMutation::Number { which, value } => {
            // Runs of digits: the numbers of the text.
            let mut runs = Vec::new();
            let mut i = 0;
            while i < text.len() {
                if text[i].is_ascii_digit() {
                    let start = i;
                    while i < text.len() && (text[i].is_ascii_digit() || text[i] == b'.') {
                        i += 1;
                    }
                    runs.push(start..i);
                }
                i += 1;
            }
            if let Some(r) = runs.get(which % runs.len().max(1)).cloned() {
                let pool: &[&str] = if text[r.clone()].contains(&b'.') {
                    &FLOATS
                } else {
                    &INTEGERS
                };
                text.splice(r, pool[value % pool.len()].bytes());
            }
        }
        TextMutation::Byte { at, byte } => {
            let n = text.len();
            text[at % n] = *byte;
        }
        TextMutation::Remove { at, len } => {
            let start = at % text.len();
            let end = (start + *len as usize).min(text.len());
            text.drain(start..end);
        }
        TextMutation::Truncate { at } => {
            let n = text.len();
            text.truncate(at % n);
        }
    }
}

/// Replay a recording as the dashboard and `labtui report` do: every event into the state, the
/// whole screen drawn at two sizes, the report's rows, tokens and charts' series.
fn replay(rec: &labtui::record::Recording) {
    use ratatui::buffer::Buffer;
    use ratatui::layout::Rect;
    let draw = |state: &labtui::state::AppState| {
        for (w, h) in [(160, 50), (80, 24)] {
            let area = Rect::new(0, 0, w, h);
            let mut buf = Buffer::empty(area);
            labtui::tui::view::render(state, area, &mut buf);
        }
    };
    let mut state = labtui::state::AppState::new("fuzz", "");
    for (i, e) in rec.events.iter().enumerate() {
        state.apply(e);
        // Mid-run frames too: the panes of a run in progress read other fields.
        if i % 16 == 15 {
            draw(&state);
        }
    }
    draw(&state);
    let _ = labtui::report::rows("fuzz.ron", rec);
    let _ = labtui::report::run_tokens(rec);
    let _ = labtui::report::plot::series(&[("fuzz.ron".to_string(), rec.clone())]);
    for e in &rec.events {
        if let labtui::protocol::Event::Demo(run) = &e.event {
            let _ = labtui::report::demo::markdown(run, &[]);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn recordings_mutated_never_panic(ms in prop::collection::vec(text_mutation(), 1..5)) {
        let mut bytes = base_recording().as_bytes().to_vec();
        for m in &ms {
            mutate_text(&mut bytes, m);
        }
        let rec = labtui::record::lines(&bytes, "fuzz.ron")
            .and_then(|lines| labtui::record::parse(&lines, "fuzz.ron"));
        outcome("recording", &rec);
        if let Ok(rec) = rec {
            replay(&rec);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Presets

fn presets() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("presets");
    labtui::preset::list(&dir)
        .unwrap()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn presets_mutated_never_panic(
        which in any::<usize>(),
        ms in prop::collection::vec(text_mutation(), 1..4),
    ) {
        let all = presets();
        let mut bytes = all[which % all.len()].clone().into_bytes();
        for m in &ms {
            mutate_text(&mut bytes, m);
        }
        let text = String::from_utf8_lossy(&bytes);
        let parsed = labtui::preset::parse(&text, "fuzz.ron");
        outcome("preset", &parsed);
        if let Ok(p) = parsed {
            prop_assert!(p.params.validate().is_ok());
            let mut state = labtui::state::AppState::new("synthetic", &p.prompts[0]);
            state.ui.demo = Some(labtui::state::DemoView::from_preset(&p, 0));
            let _ = p.settings().commands();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions: each crash the fuzzing found, as a fixed input.

/// The base recording with the number after the first `key` after `after` replaced by `to`.
fn recording_with(after: &str, key: &str, to: &str) -> Vec<String> {
    let text = base_recording();
    let at = text.find(after).expect("marker") + after.len();
    let i = at + text[at..].find(key).expect("key") + key.len();
    let end = i + text[i..].find(|c: char| !c.is_ascii_digit()).unwrap_or(0);
    let changed = format!("{}{to}{}", &text[..i], &text[end..]);
    labtui::record::lines(changed.as_bytes(), "r.ron").unwrap()
}

/// A KV-cache demo claiming 2⁶⁴−1 bytes per token overflowed the chart of held bytes
/// (`report::demo::charts`, drawn by the demo pane).
#[test]
fn a_demo_with_huge_kv_bytes_replays_regression() {
    labtui::alloc::limit_each_allocation(MAX_ALLOCATION);
    let lines = recording_with(
        "result:KvCache(",
        "kv_bytes_per_token:",
        "18446744073709551615",
    );
    let rec = labtui::record::parse(&lines, "r.ron").unwrap();
    replay(&rec);
}

/// Tokens whose KV bytes shrink within a run underflowed the KV pane's measured growth: refused.
#[test]
fn a_run_whose_kv_cache_shrinks_is_refused_regression() {
    labtui::alloc::limit_each_allocation(MAX_ALLOCATION);
    let lines = recording_with("event:Token(", "kv_bytes:", "18446744073709551615");
    let err = labtui::record::parse(&lines, "r.ron")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kv_bytes = ") && err.contains("the KV cache only grows during a run"),
        "{err}"
    );
}

/// A step of 2⁶⁴−1 seconds overflowed the timing pane's sum of inter-token latencies: refused.
#[test]
fn a_duration_past_the_limit_is_refused_regression() {
    labtui::alloc::limit_each_allocation(MAX_ALLOCATION);
    let lines = recording_with("event:Token(", "step:(secs:", "18446744073709551615");
    let err = labtui::record::parse(&lines, "r.ron")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("step = 18446744073709551615 s is out of range (at most 4294967296 s)"),
        "{err}"
    );
}

/// An alignment of 0 divided by zero inside candle's reader: refused before it.
#[test]
fn an_alignment_of_zero_is_refused_regression() {
    labtui::alloc::limit_each_allocation(MAX_ALLOCATION);
    let bytes = gguf_bytes_with(&small_spec(), &[("general.alignment", Value::U32(0))]).unwrap();
    let err = loader::read_content(&mut Cursor::new(bytes), "a.gguf")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("general.alignment = 0 is out of range"),
        "{err}"
    );
}
