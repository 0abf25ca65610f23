//! The teaching demos measure what their narration says: on the synthetic model (fast), through
//! the CLI, and on the real 0.5B (skipped with a note when it is not downloaded).

mod common;

use common::{synthetic, OutputWithin};

use candle_core::Device;
use labtui::engine::kernels::SMALL_BATCH;
use labtui::engine::{synthetic::SyntheticSpec, Engine};
use labtui::protocol::{DemoKind, DemoResult, DemoSection, KvDtype, Quant, Setting};
use labtui::serve::lesson as demo;
use std::path::PathBuf;

/// Timing tests run one at a time: on a 2-core machine they would otherwise time each other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Every test here takes this first. The engine runs on one thread: the shapes checked do not
/// depend on the thread count, and one thread is not stalled by a sibling that another process
/// keeps off its core.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::env::set_var("RAYON_NUM_THREADS", "1");
    guard
}

fn median(xs: impl IntoIterator<Item = f64>) -> f64 {
    labtui::stats::median(&xs.into_iter().collect::<Vec<_>>()).unwrap()
}

/// Wider than the default synthetic model, so the work of a pass outweighs its fixed cost.
fn wider_synthetic() -> Engine {
    let spec = SyntheticSpec {
        layers: 4,
        hidden: 512,
        heads: 8,
        ffn: 1024,
        ..SyntheticSpec::default()
    };
    Engine::synthetic(&spec, &Device::Cpu).unwrap()
}

fn run(engine: &mut Engine, section: &DemoSection, prompt: &str) -> DemoResult {
    demo::run_demo(
        engine,
        section,
        prompt,
        &mut |line| eprintln!("{line}"),
        &mut |_| {},
    )
    .unwrap()
    .result
}

/// Timing shapes are checked up to three times: a busy machine (another build on these cores)
/// can stall any single measurement. Token and byte counts are checked every time.
fn shape_holds(what: &str, mut attempt: impl FnMut() -> Result<(), String>) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        match attempt() {
            Ok(()) => return,
            Err(e) => {
                eprintln!("{what}: {e}; measuring again");
                failures.push(e);
            }
        }
    }
    panic!("{what} failed three times: {failures:#?}");
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(msg())
    }
}

#[test]
fn prefill_grows_with_the_prompt_and_beats_decode() {
    let _serial = serial();
    let mut e = wider_synthetic();
    let section = DemoSection {
        prompt_lengths: vec![16, 64, 256, 1024],
        decode_tokens: Some(8),
        output_tokens: Some(64),
        ..DemoSection::new(DemoKind::PrefillVsDecode)
    };
    shape_holds("prefill-vs-decode", || {
        let DemoResult::PrefillVsDecode(s) = run(&mut e, &section, "") else {
            panic!("a sweep")
        };
        assert_eq!(
            s.skipped,
            vec![1024],
            "past the synthetic model's 512 tokens"
        );
        let lens: Vec<usize> = s.prompts.iter().map(|p| p.prompt_tokens).collect();
        assert_eq!(lens, vec![16, 64, 256]);
        assert_eq!(s.decode_curve.len(), 63);
        for w in s.prompts.windows(2) {
            check(w[1].prefill > w[0].prefill, || {
                format!("prefill time grows: {:?} then {:?}", w[0], w[1])
            })?;
        }
        for p in s.prompts.iter().filter(|p| p.prompt_tokens > SMALL_BATCH) {
            check(p.prefill_tok_s > 2.0 * p.decode_tok_s, || {
                format!("prefill tok/s beats decode tok/s: {p:?}")
            })?;
        }
        let shares: Vec<f64> = s.outputs.iter().map(|o| o.decode_share).collect();
        check(
            shares.windows(2).all(|w| w[1] >= w[0]) && shares[0] == 0.0,
            || format!("decode takes a growing share with the output length: {shares:?}"),
        )
    });
}

#[test]
fn without_the_cache_steps_grow_and_pick_the_same_tokens() {
    let _serial = serial();
    let mut e = wider_synthetic();
    let section = DemoSection {
        output_tokens: Some(240),
        no_cache_every: Some(4),
        ..DemoSection::new(DemoKind::KvCache)
    };
    shape_holds("kv-cache", || {
        let DemoResult::KvCache(c) = run(&mut e, &section, "Explain how a hash map works.") else {
            panic!("a comparison")
        };
        assert_eq!(c.generated_tokens, 240);
        assert_eq!(c.cached.len(), 239);
        assert!(
            c.compared >= 59,
            "every 4th step recomputed: {}",
            c.compared
        );
        assert!(c.mismatches.is_empty(), "differed at {:?}", c.mismatches);
        assert_eq!(
            c.kv_bytes,
            (c.prompt_tokens + 239) as u64 * c.kv_bytes_per_token
        );
        // Medians of the first and last 10 uncached steps: single steps are noisy.
        let ms = |p: &labtui::protocol::demo::StepPoint| p.step.as_secs_f64() * 1e3;
        let n = c.no_cache.len();
        let (early, late) = (
            median(c.no_cache[..10].iter().map(ms)),
            median(c.no_cache[n - 10..].iter().map(ms)),
        );
        check(late > 2.0 * early, || {
            format!("uncached steps grow with the length: {early:.2} → {late:.2} ms")
        })?;
        let ratio = |g: &[labtui::protocol::demo::Gap]| median(g.iter().map(|g| g.ratio));
        let n = c.gaps.len();
        let (r0, r1) = (ratio(&c.gaps[..10]), ratio(&c.gaps[n - 10..]));
        check(r0 > 1.0, || format!("uncached is slower: {r0:.1}×"))?;
        check(r1 > r0, || format!("the gap widens: {r0:.1}× → {r1:.1}×"))?;
        let (cached, uncached) = c.totals();
        check(uncached > cached * 3, || {
            format!("{cached:?} vs {uncached:?}")
        })
    });
}

#[test]
fn roofline_ratios_are_fractions_of_finite_ceilings() {
    let _serial = serial();
    let mut e = synthetic();
    let section = DemoSection {
        output_tokens: Some(32),
        prefill_tokens: Some(128),
        ..DemoSection::new(DemoKind::Roofline)
    };
    let DemoResult::Roofline(r) = run(&mut e, &section, "") else {
        panic!("a roofline")
    };
    eprintln!("{r:#?}");
    for (name, x) in [
        ("bandwidth", r.bandwidth_gb_s),
        ("peak", r.peak_gflop_s),
        ("decode ceiling", r.decode_ceiling_tok_s),
        ("prefill ceiling", r.prefill_ceiling_tok_s),
    ] {
        assert!(x.is_finite() && x > 0.0, "{name} = {x}");
    }
    for (name, x) in [("decode", r.decode_ratio), ("prefill", r.prefill_ratio)] {
        assert!(x > 0.0 && x <= 1.5, "{name} ratio {x}");
    }
    assert!(r.buffer_bytes >= 256 << 20);
    // The synthetic model is small enough to sit in a cache: its roof is the cache's bandwidth.
    assert_eq!(r.working_set_bytes, r.decode_bytes_per_token as u64);
    assert!(r.working_set_gb_s >= r.bandwidth_gb_s);
    assert!(
        r.prefill_intensity > r.decode_intensity * 10.0,
        "prefill reuses each byte: {} vs {}",
        r.prefill_intensity,
        r.decode_intensity
    );
}

#[test]
fn speculation_keeps_the_plain_greedy_text() {
    let _serial = serial();
    let mut e = synthetic();
    let section = DemoSection {
        ks: vec![2, 4],
        output_tokens: Some(32),
        ..DemoSection::new(DemoKind::Speculation)
    };
    let DemoResult::Speculation(s) = run(&mut e, &section, "Repeat: one two three one two three.")
    else {
        panic!("a speculation sweep")
    };
    assert_eq!(s.points.len(), 4, "two modes at two Ks");
    assert!(s.plain_tok_s > 0.0);
    for p in &s.points {
        assert!(p.same_text, "greedy speculation is lossless: {p:?}");
        assert!((0.0..=1.0).contains(&p.acceptance), "{p:?}");
        assert!(p.mean_accepted_len >= 1.0, "{p:?}");
        assert!(p.decode_tok_s > 0.0 && p.speedup > 0.0, "{p:?}");
    }
}

#[test]
fn quantization_tours_the_types_and_restores_the_weights() {
    let _serial = serial();
    // The llama-shaped synthetic model has spread-out next-token distributions (its own head).
    let spec = SyntheticSpec {
        arch: "llama",
        ..SyntheticSpec::default()
    };
    let mut e = Engine::synthetic(&spec, &Device::Cpu).unwrap();
    let loaded_bytes = e.model.weight_bytes();
    let section = DemoSection {
        types: vec![Quant::AsLoaded, Quant::Q8_0, Quant::BF16, Quant::Q2K],
        output_tokens: Some(4),
        quality_tokens: Some(128),
        ..DemoSection::new(DemoKind::Quantization)
    };
    let DemoResult::Quantization(x) = run(&mut e, &section, "") else {
        panic!("a quantization result");
    };
    let types: Vec<Quant> = x.rows.iter().map(|r| r.variant.quant).collect();
    // The types asked for, then the loaded weights with the KV cache in f16.
    assert_eq!(
        types,
        [Quant::AsLoaded, Quant::Q8_0, Quant::Q2K, Quant::AsLoaded]
    );
    let kv = |i: usize| x.rows[i].variant.kv_dtype;
    assert_eq!((kv(0), kv(3)), (KvDtype::F32, KvDtype::F16));
    assert!(
        x.rows[3].quality.mean_kl > 0.0 && x.rows[3].quality.mean_kl < x.rows[2].quality.mean_kl
    );
    assert_eq!(
        e.info.kv_dtype,
        KvDtype::F32,
        "the cache's type is restored"
    );
    assert_eq!(x.refused.len(), 1, "BF16 has no CPU matrix multiply");
    assert!(x.refused[0].1.contains("not available on cpu"));
    let kl: Vec<f64> = x.rows.iter().map(|r| r.quality.mean_kl).collect();
    assert_eq!(kl[0], 0.0);
    assert!(
        kl[1] < kl[2],
        "2-bit weights move further from the loaded ones: {kl:?}"
    );
    assert!(x.rows[1].variant.weight_bytes > x.rows[2].variant.weight_bytes);
    assert!(x
        .rows
        .iter()
        .all(|r| r.decode_tok_s > 0.0 && r.prefill_tok_s > 0.0));
    let report = labtui::report::demo::tables(&DemoResult::Quantization(x));
    assert!(
        report.contains("| Q2_K |") && report.contains("BF16 skipped"),
        "{report}"
    );
    // The weights the engine ran with before the demo run again.
    assert_eq!(e.quant, Quant::AsLoaded);
    assert_eq!(e.model.weight_bytes(), loaded_bytes);
}

#[test]
fn headless_demo_writes_a_recording_a_report_and_charts() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("kv");
    let presets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("presets");
    let o = common::labtui_cmd()
        .args([
            "demo",
            "kv-cache",
            "--headless",
            "--model",
            "synthetic",
            "--out",
        ])
        .arg(&out)
        .env("LABTUI_PRESETS", &presets)
        .output_bounded();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(stdout.starts_with("# Demo: kv-cache"), "{stdout}");
    assert!(
        stdout.contains("| context tokens | with cache ms |"),
        "{stdout}"
    );
    for f in [
        "recording.ron",
        "report.md",
        "per-token.png",
        "kv-bytes.svg",
    ] {
        assert!(out.join(f).exists(), "{f} written; {stderr}");
    }
    let rec = labtui::record::load(&out.join("recording.ron")).unwrap();
    assert!(rec
        .events
        .iter()
        .any(|e| matches!(&e.event, labtui::protocol::Event::Demo(r) if r.demo == "kv-cache")));

    let o = common::labtui_cmd()
        .args(["demo", "no-such", "--headless", "--model", "synthetic"])
        .env("LABTUI_PRESETS", &presets)
        .output_bounded();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("no demo \"no-such\"")
            && err.contains(
                "batching, decode-roofline, flash-attention, kv-cache, paged-kv, prefill-vs-decode, quantization, roofline, sensitivity, serving-metrics, speculation"
            ),
        "{err}"
    );
}

/// A stream where every request arrives at once: the scheduler's decisions (steps, batches,
/// preemptions) then depend on the queue alone, not on how fast the machine is.
fn at_once(requests: usize, output: (usize, usize)) -> labtui::protocol::Arrivals {
    labtui::protocol::Arrivals {
        rate: f64::INFINITY,
        requests,
        prompt_tokens: (8, 40),
        output_tokens: output,
        seed: 3,
    }
}

#[test]
fn batching_sweeps_the_batch_and_continuous_keeps_the_batch_full() {
    let _serial = serial();
    let mut e = synthetic();
    let section = DemoSection {
        batches: vec![1, 4],
        prefill_tokens: Some(16),
        output_tokens: Some(4),
        max_batch: Some(4),
        arrivals: Some(at_once(12, (2, 24))),
        ..DemoSection::new(DemoKind::Batching)
    };
    let DemoResult::Batching(b) = run(&mut e, &section, "") else {
        panic!("a batching result")
    };
    let batches: Vec<usize> = b.sweep.iter().map(|p| p.batch).collect();
    assert_eq!(batches, [1, 4]);
    assert!(b.sweep.iter().all(|p| p.decode_tok_s > 0.0));
    assert!(b.same_tokens, "scheduling changes when, not what");
    let [st, co] = [&b.policies[0], &b.policies[1]];
    assert_eq!(st.policy, labtui::protocol::SchedPolicy::Static);
    assert_eq!(st.requests, 12);
    assert_eq!(st.generated_tokens, co.generated_tokens);
    // Static waits for the longest of each batch of four; continuous refills the batch.
    assert!(co.steps < st.steps, "{co:?} vs {st:?}");
    assert!(co.mean_batch > st.mean_batch, "{co:?} vs {st:?}");
    assert!(st.mean_batch <= 4.0 && co.mean_batch <= 4.0);
    assert!(co.ttft_p99 >= co.ttft_mean && co.e2e_p99 >= co.ttft_p99);
    let report = labtui::report::demo::tables(&DemoResult::Batching(b));
    assert!(
        report.contains("| continuous |") && report.contains("| static |"),
        "{report}"
    );
}

#[test]
fn paged_blocks_waste_less_than_contiguous_and_preemption_recomputes_the_same_tokens() {
    let _serial = serial();
    let mut e = synthetic();
    let section = DemoSection {
        max_batch: Some(4),
        arrivals: Some(at_once(10, (8, 40))),
        ..DemoSection::new(DemoKind::PagedKv)
    };
    let DemoResult::PagedKv(p) = run(&mut e, &section, "") else {
        panic!("a paged-kv result")
    };
    let (paged, contiguous) = p.waste();
    assert!(paged < contiguous, "{paged} vs {contiguous}");
    // Only each running sequence's last block has slack.
    for k in &p.points {
        assert!(k.used <= k.paged && k.paged < k.used + 16 * k.running.max(1));
        assert!(k.paged <= k.contiguous + 16 * k.running, "{k:?}");
        assert!(k.paged <= p.ample.kv_blocks * 16);
    }
    assert_eq!(p.ample.preemptions, 0);
    assert!(p.scarce.kv_blocks < p.ample.peak_blocks);
    assert!(p.scarce.peak_blocks <= p.scarce.kv_blocks);
    assert!(
        p.scarce.preemptions > 0 && p.scarce.recomputed_tokens > 0,
        "{p:?}"
    );
    assert!(p.same_tokens);
    assert!(p.scarce.steps > p.ample.steps);
}

#[test]
fn headless_batching_and_paged_kv_write_their_reports() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let presets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("presets");
    for (name, needles) in [
        (
            "batching",
            ["| policy |", "Same tokens under both policies: yes"],
        ),
        (
            "paged-kv",
            [
                "| contiguous, each sequence's exact length (known in advance: the kindest) |",
                "Same tokens with too few blocks as with enough: yes",
            ],
        ),
    ] {
        let out = dir.path().join(name);
        let o = common::labtui_cmd()
            .args(["demo", name, "--headless", "--model", "synthetic", "--out"])
            .arg(&out)
            .env("LABTUI_PRESETS", &presets)
            .output_bounded();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
        );
        assert!(o.status.success(), "{stderr}");
        assert!(stdout.starts_with(&format!("# Demo: {name}")), "{stdout}");
        for n in needles {
            assert!(stdout.contains(n), "{name}: {n} missing in {stdout}");
        }
        assert!(out.join("report.md").exists() && out.join("recording.ron").exists());
        labtui::record::load(&out.join("recording.ron")).unwrap();
    }
}

/// On the real 0.5B the uncached step at 256 tokens costs at least 10× the cached one.
#[test]
fn real_model_kv_cache_gap_at_256_tokens() {
    let _serial = serial();
    let Some(path) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let mut e = Engine::from_file(&path, &Device::Cpu).unwrap();
    let section = DemoSection {
        output_tokens: Some(240),
        no_cache_every: Some(64),
        ..DemoSection::new(DemoKind::KvCache)
    };
    let DemoResult::KvCache(c) = run(
        &mut e,
        &section,
        "Explain how a hash map handles collisions, step by step.",
    ) else {
        panic!("a comparison")
    };
    let g = c.gap_at(256).expect("measured at 256 tokens");
    eprintln!("at 256 tokens: {g:?}; all: {:?}", c.gaps);
    // Against the median of the cached steps within 16 tokens of it: one cached step stalled on
    // a busy machine (1.4 s where the others took tens of ms) does not decide it.
    let mut near: Vec<_> = c
        .cached
        .iter()
        .filter(|p| p.context.abs_diff(256) <= 16)
        .map(|p| p.step)
        .collect();
    near.sort();
    assert!(near.len() >= 16, "{} cached steps near 256", near.len());
    let ratio = g.no_cache.as_secs_f64() / near[near.len() / 2].as_secs_f64();
    assert!(
        ratio >= 10.0,
        "{ratio:.1}× ({g:?}, cached near it {near:?})"
    );
    // Uncached steps grow with the context (the last recomputes ~5× the first's tokens): the last
    // against the quickest, which a stall on a busy machine cannot make quicker.
    let last = c.no_cache[c.no_cache.len() - 1].step;
    let quickest = c.no_cache.iter().map(|p| p.step).min().unwrap();
    assert!(
        c.no_cache.len() >= 4 && last > quickest * 2,
        "uncached steps grow: {:?}",
        c.no_cache
    );
    assert!(c.mismatches.is_empty(), "differed at {:?}", c.mismatches);
    assert!(
        c.ties.len() * 4 <= c.compared,
        "near ties at {:?} of {} compared",
        c.ties,
        c.compared
    );
}

/// The dashboard after a demo preset is picked and its recorded result arrives: the narration
/// steps with n / N, the pane shows the run's numbers.
#[test]
fn the_demo_pane_narrates_and_shows_the_numbers() {
    let _serial = serial();
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use labtui::protocol::Command;
    use labtui::state::{Action, AppState, Overlay, Picker};
    use ratatui::{backend::TestBackend, Terminal};

    let presets = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("presets");
    let preset = labtui::preset::load(presets.join("demo-kv-cache.ron").to_str().unwrap()).unwrap();
    let mut s = AppState::new("synthetic", "");
    s.ui.overlay = Some(Overlay::Presets(Picker {
        presets: vec![preset.clone()],
        selected: 0,
    }));
    assert!(
        s.update(Action::PickerChoose).is_empty(),
        "no model yet: the demo waits"
    );
    let rec = labtui::record::load(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/demo_kv_cache.ron"),
    )
    .unwrap();
    let sent: Vec<Command> = rec.events.iter().flat_map(|e| s.apply(e)).collect();
    assert!(
        matches!(sent.as_slice(), [Command::RunDemo { demo, .. }] if demo.kind == "kv-cache"),
        "the demo runs once the model is loaded: {sent:?}"
    );
    // With a model loaded, picking a demo runs it at once.
    s.ui.overlay = Some(Overlay::Presets(Picker {
        presets: vec![preset.clone()],
        selected: 0,
    }));
    assert!(matches!(
        s.update(Action::PickerChoose).as_slice(),
        [Command::RunDemo { .. }]
    ));
    for e in &rec.events {
        if matches!(e.event, labtui::protocol::Event::Demo(_)) {
            s.apply(e);
        }
    }
    let key = |c| KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE);
    for c in ['n', 'n', 'N'] {
        let a = labtui::tui::keymap::action(&s, key(c)).unwrap();
        s.update(a);
    }
    assert_eq!(s.ui.demo.as_ref().unwrap().step, 1);
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| labtui::tui::view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    insta::assert_snapshot!("demo_kv_cache_step_2", t.backend());
    s.update(Action::Escape);
    assert!(s.ui.demo.is_none(), "Esc closes the demo");
}

/// The quantization demo as the dashboard shows it, from a recorded run on the real 0.5B.
#[test]
fn the_quantization_demo_pane_shows_every_type_measured() {
    use labtui::state::{Action, AppState, Overlay, Picker};
    use ratatui::{backend::TestBackend, Terminal};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let preset =
        labtui::preset::load(root.join("presets/demo-quantization.ron").to_str().unwrap()).unwrap();
    let rec = labtui::record::load(&root.join("tests/fixtures/demo_quantization.ron")).unwrap();
    let mut s = AppState::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "");
    s.ui.overlay = Some(Overlay::Presets(Picker {
        presets: vec![preset],
        selected: 0,
    }));
    s.update(Action::PickerChoose);
    for e in &rec.events {
        s.apply(e);
    }
    let Some(DemoResult::Quantization(x)) = rec.events.iter().find_map(|e| match &e.event {
        labtui::protocol::Event::Demo(r) => Some(r.result.clone()),
        _ => None,
    }) else {
        panic!("the recording holds the demo's result");
    };
    let mut t = Terminal::new(TestBackend::new(160, 50)).unwrap();
    t.draw(|f| labtui::tui::view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{}", t.backend());
    for r in &x.rows {
        assert!(
            screen.contains(r.variant.quant.name()),
            "{} missing",
            r.variant.quant
        );
        assert!(screen.contains(&format!("{:.4}", r.quality.mean_kl)));
    }
    insta::assert_snapshot!("demo_quantization", t.backend());
}

/// The flash-attention demo on the synthetic model (context 512): both kernels at every length
/// that fits the context, the same next token, attention alone within rounding of dense, dense's
/// estimate growing with the square where the tiles' grows linearly; lengths past the context
/// listed, and a dense prefill that memory cannot hold skipped with both numbers.
#[test]
fn flash_attention_tiles_agree_with_dense_and_skip_what_does_not_fit() {
    let _serial = serial();
    let mut e = synthetic();
    let section = DemoSection {
        prompt_lengths: vec![128, 512, 1024],
        ..DemoSection::new(DemoKind::FlashAttention)
    };
    let DemoResult::FlashAttention(x) = run(&mut e, &section, "") else {
        panic!("a flash-attention result")
    };
    assert_eq!(x.beyond_context, vec![1024]);
    assert_eq!(x.rows.len(), 2);
    for r in &x.rows {
        assert!(
            r.tiled.prefill.is_some() && r.dense.prefill.is_some(),
            "{r:?}"
        );
        assert_eq!(r.same_next_token, Some(true), "{r:?}");
        let gap = r.attention_diff.unwrap();
        assert!(gap > 0.0 && gap < 1e-5, "{gap}");
        assert!(r.dense.predicted_bytes > r.tiled.predicted_bytes);
    }
    let (a, b) = (&x.rows[0], &x.rows[1]);
    let growth = |f: fn(&labtui::protocol::flash::FlashRow) -> u64| f(b) as f64 / f(a) as f64;
    assert!(growth(|r| r.dense.predicted_bytes) > 6.0);
    assert!(growth(|r| r.tiled.predicted_bytes) < 4.1);
    let report = labtui::report::demo::tables(&DemoResult::FlashAttention(x.clone()));
    assert!(
        report.contains("| 512 |") && report.contains("beyond the model's context"),
        "{report}"
    );

    // Room for the tiles at 512 tokens but not for the dense score matrix.
    let tiled_need = b.tiled.predicted_bytes + b.tiled.kv_bytes + (256 << 20);
    std::env::set_var("LABTUI_MEMORY_LIMIT", (tiled_need + (1 << 20)).to_string());
    let section = DemoSection {
        prompt_lengths: vec![512],
        ..DemoSection::new(DemoKind::FlashAttention)
    };
    let result = run(&mut e, &section, "");
    std::env::remove_var("LABTUI_MEMORY_LIMIT");
    let DemoResult::FlashAttention(x) = result else {
        panic!("a flash-attention result")
    };
    let r = &x.rows[0];
    assert!(r.tiled.prefill.is_some(), "{r:?}");
    let why = r.dense.skipped.as_deref().unwrap_or_default();
    assert!(
        r.dense.prefill.is_none() && why.contains("needs about") && why.contains("is available"),
        "{why}"
    );
    assert_eq!(r.same_next_token, None);
}

/// The decode-roofline demo on the synthetic model: a point per batch at each context that fits,
/// bytes and intensity growing with the batch, the verification passes K + 1 rows of one
/// sequence, and what the KV budget (half the available memory) cannot hold listed.
#[test]
fn decode_roofline_points_climb_with_the_batch_and_skip_what_does_not_fit() {
    let _serial = serial();
    let mut e = synthetic();
    let section = DemoSection {
        batches: vec![1, 4, 16],
        prompt_lengths: vec![64, 256, 4096],
        decode_tokens: Some(2),
        buffer_mib: Some(16),
        ..DemoSection::new(DemoKind::DecodeRoofline)
    };
    // Room for 16 sequences of 64 tokens but not of 256: the budget is half of this.
    let per_token = e.info.kv_bytes_per_token;
    let limit = 2 * 16 * (64 + 2 + 16) * per_token + 2 * 4 * (256 + 2 + 16) * per_token;
    std::env::set_var("LABTUI_MEMORY_LIMIT", limit.to_string());
    let result = run(&mut e, &section, "");
    std::env::remove_var("LABTUI_MEMORY_LIMIT");
    let DemoResult::DecodeRoofline(x) = result else {
        panic!("a decode-roofline result")
    };
    let at = |c: usize| -> Vec<_> { x.points.iter().filter(|p| p.context == c).collect() };
    assert_eq!(
        at(64).iter().map(|p| p.batch).collect::<Vec<_>>(),
        [1, 4, 16]
    );
    assert_eq!(at(256).iter().map(|p| p.batch).collect::<Vec<_>>(), [1, 4]);
    for w in at(64).windows(2) {
        assert!(
            w[1].bytes > w[0].bytes && w[1].intensity() > w[0].intensity(),
            "{w:?}"
        );
        assert_eq!(w[1].flops / w[0].flops, (w[1].batch / w[0].batch) as f64);
    }
    // A longer context reads more per step: its point sits further left.
    assert!(at(256)[0].intensity() < at(64)[0].intensity());
    assert_eq!(
        x.verify.iter().map(|p| p.rows).collect::<Vec<_>>(),
        [2, 4, 8, 16]
    );
    assert!(x.verify.iter().all(|p| p.batch == 1 && p.context == 64));
    let skipped: Vec<(usize, usize)> = x.skipped.iter().map(|s| (s.0, s.1)).collect();
    assert_eq!(skipped, [(16, 256), (0, 4096)], "{:?}", x.skipped);
    assert!(
        x.skipped[0].2.contains("over the budget"),
        "{:?}",
        x.skipped
    );
    assert!(x.bandwidth_gb_s > 0.0 && x.mbu(&x.points[0]) > 0.0);
}
