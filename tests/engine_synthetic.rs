//! Engine checks on tiny synthetic GGUFs: our forward pass against candle-transformers' own model
//! code on the same bytes, the KV cache against recomputation, and KV accounting.

mod common;

use candle_core::{DType, Device, Tensor};
use common::engine::gemma3_window;
use common::{max_abs, max_abs_diff};
use labtui::engine::config::Activation;
use labtui::engine::quant::requantize;
use labtui::engine::sampling::argmax;
use labtui::engine::synthetic::{gguf_bytes, SyntheticSpec};
use labtui::engine::tiled::PrefillAttention;
use labtui::engine::{Engine, Forward, Logits, Model};
use labtui::lab::measure::bench_tokens;
use labtui::lab::reference::Reference;
use labtui::protocol::Quant;

fn spec(arch: &'static str) -> SyntheticSpec {
    SyntheticSpec {
        arch,
        // Six gemma3 layers: five sliding-window ones and a global one.
        layers: if arch == "gemma3" { 6 } else { 2 },
        ..SyntheticSpec::default()
    }
}

fn both(arch: &'static str) -> (Engine, Reference) {
    let s = spec(arch);
    let ours = Engine::synthetic(&s, &Device::Cpu).unwrap();
    let reference = Reference::from_bytes(gguf_bytes(&s).unwrap(), &Device::Cpu).unwrap();
    (ours, reference)
}

/// Our engine against candle-transformers, prompt attention dense (candle's own arithmetic, the
/// reference path) and then tiled, except for Gemma's quantized layers: run with SiLU (the
/// model they were not trained with) they amplify the tiles' last-bit differences past the
/// 1e-3 bound, through the activations requantized at every layer (tiled against dense is
/// checked on its own below).
fn check_against_reference(arch: &'static str) {
    let kernels: &[PrefillAttention] = match arch {
        "gemma3" => &[PrefillAttention::Dense],
        _ => &[PrefillAttention::Dense, PrefillAttention::Tiled],
    };
    for &how in kernels {
        let (mut e, r) = both(arch);
        e.model.prefill_attention = how;
        if arch == "gemma3" {
            // candle's quantized_gemma3 gates its MLP with SiLU, not Gemma's GELU (candle #3745).
            e.model.cfg.activation = Activation::Silu;
        }
        greedy_matches(&format!("{arch} ({})", how.name()), &mut e, r);
    }
}

/// Last-token logits of `prompt`, prompt attention as `how` says.
fn prompt_logits(model: &Model, prompt: &[u32], how: PrefillAttention) -> Vec<f32> {
    let mut m = model.clone();
    m.prefill_attention = how;
    let mut cache = m.new_cache(DType::F32);
    Model::last_logits(&m.forward(prompt, &mut cache, Forward::LAST).unwrap()).unwrap()
}

/// Tiled prompt attention against dense on every architecture, sliding windows included, over
/// several key and query tiles: with f32 weights (nothing requantized between layers) the
/// logits agree within 1e-5 of the largest; with the quantized weights the greedy pick is the
/// same.
#[test]
fn tiled_prompt_attention_matches_dense() {
    for arch in ["qwen2", "llama", "gemma3"] {
        let s = SyntheticSpec {
            // Gemma's window (160 positions) is shorter than the prompt.
            context: 1024,
            ..spec(arch)
        };
        let q = Engine::synthetic(&s, &Device::Cpu).unwrap();
        let f = requantize(&q.model, Quant::F32, &mut |_, _| {}).unwrap().0;
        let prompt = bench_tokens(300, q.info.vocab);
        let (tiled, dense) = (
            prompt_logits(&f, &prompt, PrefillAttention::Tiled),
            prompt_logits(&f, &prompt, PrefillAttention::Dense),
        );
        let diff = max_abs_diff(&tiled, &dense);
        assert!(
            diff <= 1e-5 * max_abs(&dense),
            "{arch} f32: {diff} vs largest {}",
            max_abs(&dense)
        );
        let (tiled, dense) = (
            prompt_logits(&q.model, &prompt, PrefillAttention::Tiled),
            prompt_logits(&q.model, &prompt, PrefillAttention::Dense),
        );
        assert_eq!(argmax(&tiled), argmax(&dense), "{arch} quantized");
    }
}

/// Last-token logits of a 64-token prompt within 1e-3 of the largest, then 32 greedy tokens
/// alike, step by step with each side's own KV cache.
fn greedy_matches(arch: &str, e: &mut Engine, mut r: Reference) {
    let prompt = bench_tokens(64, e.info.vocab);
    let mut cache = e.model.new_cache(DType::F32);
    let ours =
        Model::last_logits(&e.model.forward(&prompt, &mut cache, Forward::LAST).unwrap()).unwrap();
    let theirs = r.forward(&prompt, 0, &Device::Cpu).unwrap();
    let diff = max_abs_diff(&ours, &theirs);
    assert!(
        diff < 1e-3 * max_abs(&theirs),
        "{arch}: max diff {diff} vs largest logit {}",
        max_abs(&theirs)
    );

    // 32 greedy tokens, step by step with each side's own KV cache.
    let (mut a, mut b) = (argmax(&ours) as u32, argmax(&theirs) as u32);
    let (mut ours_tokens, mut theirs_tokens) = (vec![a], vec![b]);
    for i in 0..31 {
        let lo =
            Model::last_logits(&e.model.forward(&[a], &mut cache, Forward::LAST).unwrap()).unwrap();
        let lt = r.forward(&[b], prompt.len() + i, &Device::Cpu).unwrap();
        a = argmax(&lo) as u32;
        b = argmax(&lt) as u32;
        ours_tokens.push(a);
        theirs_tokens.push(b);
    }
    assert_eq!(
        ours_tokens, theirs_tokens,
        "{arch}: greedy continuations differ"
    );
    e.cache.clear();
}

#[test]
fn qwen2_matches_candle_transformers() {
    check_against_reference("qwen2");
}

#[test]
fn llama_matches_candle_transformers() {
    check_against_reference("llama");
}

/// Gemma 3 as a whole, GELU and windows included: our engine with its weights switched to F32
/// against candle-transformers' full-precision Gemma 3 on the same weights.
#[test]
fn gemma3_matches_candle_transformers_full_precision_model() {
    // One KV head, as the 270M has: with more, candle's global-layer cache refuses the
    // prompt's values (not contiguous after its transpose).
    let s = SyntheticSpec {
        kv_heads: 1,
        ..spec("gemma3")
    };
    let mut e = Engine::synthetic(&s, &Device::Cpu).unwrap();
    assert_eq!(e.model.cfg.activation, Activation::GeluTanh);
    e.model = requantize(&e.model, Quant::F32, &mut |_, _| {}).unwrap().0;
    let mut r = Reference::gemma3_dense(gguf_bytes(&s).unwrap(), &Device::Cpu).unwrap();
    // A prompt at position 0 starts the reference afresh, as it does the quantized ones.
    let prompt = bench_tokens(8, e.info.vocab);
    let first = r.forward(&prompt, 0, &Device::Cpu).unwrap();
    assert_eq!(r.forward(&prompt, 0, &Device::Cpu).unwrap(), first);
    greedy_matches("gemma3 (f32)", &mut e, r);
}

#[test]
fn gemma3_matches_candle_transformers() {
    check_against_reference("gemma3");
    // Our Gemma runs GELU: the activation is not a no-op switch.
    let (e, mut r) = both("gemma3");
    assert_eq!(e.model.cfg.activation, Activation::GeluTanh);
    let prompt = bench_tokens(16, e.info.vocab);
    let ours = Model::last_logits(
        &e.model
            .forward(&prompt, &mut e.model.new_cache(DType::F32), Forward::LAST)
            .unwrap(),
    )
    .unwrap();
    let theirs = r.forward(&prompt, 0, &Device::Cpu).unwrap();
    let mut silu = e.model.clone();
    silu.cfg.activation = Activation::Silu;
    let matched = Model::last_logits(
        &silu
            .forward(&prompt, &mut silu.new_cache(DType::F32), Forward::LAST)
            .unwrap(),
    )
    .unwrap();
    // Measured: GELU 0.65% of the largest logit away, SiLU 0.12% (rounding).
    let (gelu_diff, silu_diff) = (
        max_abs_diff(&ours, &theirs),
        max_abs_diff(&matched, &theirs),
    );
    assert!(
        gelu_diff > 3.0 * silu_diff,
        "GELU {gelu_diff} vs SiLU {silu_diff}"
    );
}

/// The last-token logits of each decode step after prefilling `tokens[..from]`, one step per
/// remaining token, through the KV cache.
fn stepped_after(model: &Model, tokens: &[u32], from: usize) -> Vec<Vec<f32>> {
    let mut cache = model.new_cache(DType::F32);
    model
        .forward(&tokens[..from], &mut cache, Forward::LAST)
        .unwrap();
    tokens[from..]
        .iter()
        .map(|&t| {
            Model::last_logits(&model.forward(&[t], &mut cache, Forward::LAST).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn gemma3_sliding_window_layers_see_the_window_only() {
    let (mut e, _, _dir) = gemma3_window(8);
    let tokens = bench_tokens(40, e.info.vocab);
    // candle's prefill mask lets a row see `window + 1` positions (llama.cpp and Hugging Face:
    // `window`, the row itself included): a prefill of ours at 8 is theirs at 7.
    e.model.cfg.activation = Activation::Silu;
    let (_, seven, _d) = gemma3_window(7);
    let mut r = Reference::from_bytes(seven, &Device::Cpu).unwrap();
    let theirs = r.forward(&tokens, 0, &Device::Cpu).unwrap();
    let full = |e: &Engine, n: usize| {
        let mut fresh = e.model.new_cache(DType::F32);
        Model::last_logits(
            &e.model
                .forward(&tokens[..n], &mut fresh, Forward::LAST)
                .unwrap(),
        )
        .unwrap()
    };
    let ours = full(&e, 40);
    let diff = max_abs_diff(&ours, &theirs);
    assert!(diff < 1e-3 * max_abs(&theirs), "max diff {diff}");
    e.model.cfg.activation = Activation::GeluTanh;

    // Decode steps (the paged path) and verification rows see the same window as a prefill. A
    // prefill of more than SMALL_BATCH rows sums in another order (measured here: up to 0.12% of
    // the largest logit); a wrong window moves the logits by more than 1% (checked at the end).
    let close = |a: &[f32], b: &[f32]| max_abs_diff(a, b) < 3e-3 * max_abs(b).max(1.0);
    for (n, stepped) in (4..).zip(stepped_after(&e.model, &tokens, 4)) {
        let recomputed = full(&e, n + 1);
        assert!(
            close(&stepped, &recomputed),
            "position {n}: diff {}",
            max_abs_diff(&stepped, &recomputed)
        );
    }
    let mut verify = e.model.new_cache(DType::F32);
    e.model
        .forward(&tokens[..28], &mut verify, Forward::LAST)
        .unwrap();
    let rows: Vec<Vec<f32>> = e
        .model
        .forward(&tokens[28..40], &mut verify, Forward::ALL)
        .unwrap()
        .to_vec2()
        .unwrap();
    for (i, row) in rows.iter().enumerate() {
        let recomputed = full(&e, 29 + i);
        assert!(close(row, &recomputed), "verification row {i}");
    }
    // Past the window the logits are not those of full attention.
    let (wide, _, _d) = gemma3_window(64);
    assert_eq!(full(&wide, 8), full(&e, 8));
    let narrow = full(&e, 40);
    assert!(max_abs_diff(&full(&wide, 40), &narrow) > 1e-2 * max_abs(&narrow));
}

#[test]
fn kv_cache_steps_equal_recomputing_the_sequence() {
    let e = Engine::synthetic(&spec("qwen2"), &Device::Cpu).unwrap();
    let tokens = bench_tokens(40, e.info.vocab);
    for (n, stepped) in (4..).zip(stepped_after(&e.model, &tokens, 4)) {
        let mut fresh = e.model.new_cache(DType::F32);
        let full = Model::last_logits(
            &e.model
                .forward(&tokens[..n + 1], &mut fresh, Forward::LAST)
                .unwrap(),
        )
        .unwrap();
        if n < labtui::engine::kernels::SMALL_BATCH {
            // Short recomputations take the batch-invariant path: bitwise the cached steps.
            assert_eq!(stepped, full, "position {n}");
        } else {
            // Longer ones take candle's tiled products, which round differently.
            let diff = max_abs_diff(&stepped, &full);
            assert!(
                diff < 0.05 * max_abs(&full).max(1.0),
                "position {n}: diff {diff}"
            );
            assert_eq!(argmax(&stepped), argmax(&full), "position {n}");
        }
    }
}

#[test]
fn all_position_logits_match_one_at_a_time() {
    let e = Engine::synthetic(&spec("qwen2"), &Device::Cpu).unwrap();
    let tokens = bench_tokens(12, e.info.vocab);
    let mut cache = e.model.new_cache(DType::F32);
    let all = e.model.forward(&tokens, &mut cache, Forward::ALL).unwrap();
    assert_eq!(all.dims(), &[12, e.info.vocab]);
    let all: Vec<Vec<f32>> = all.to_vec2().unwrap();
    let mut step = e.model.new_cache(DType::F32);
    for (i, t) in tokens.iter().enumerate() {
        let one =
            Model::last_logits(&e.model.forward(&[*t], &mut step, Forward::LAST).unwrap()).unwrap();
        assert!(
            max_abs_diff(&one, &all[i]) < 1e-4 * max_abs(&one).max(1.0),
            "row {i}"
        );
    }
}

#[test]
fn a_shallow_pass_runs_fewer_layers_and_rolls_back() {
    let e = Engine::synthetic(
        &SyntheticSpec {
            layers: 3,
            ..spec("qwen2")
        },
        &Device::Cpu,
    )
    .unwrap();
    let tokens = bench_tokens(8, e.info.vocab);
    let mut c = e.model.new_cache(DType::F32);
    let deep = e.model.forward(&tokens, &mut c, Forward::LAST).unwrap();
    let mut s = e.model.new_cache(DType::F32);
    let shallow = e
        .model
        .forward(
            &tokens,
            &mut s,
            Forward {
                logits: Logits::Last,
                layers: Some(1),
            },
        )
        .unwrap();
    assert_eq!(deep.dims(), shallow.dims());
    let diff = (deep - shallow)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        diff > 1e-3,
        "one layer should not give the three-layer logits"
    );
    // Rolling back and re-running the tail gives the same logits as the first time.
    let first = Model::last_logits(
        &e.model
            .forward(&tokens[..1], &mut c, Forward::LAST)
            .unwrap(),
    )
    .unwrap();
    c.truncate(8);
    let again = Model::last_logits(
        &e.model
            .forward(&tokens[..1], &mut c, Forward::LAST)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first, again);
}

#[test]
fn kv_bytes_follow_the_formula_and_the_tensors() {
    let e = Engine::synthetic(&spec("qwen2"), &Device::Cpu).unwrap();
    let s = spec("qwen2");
    let per_token = 2 * s.layers * s.kv_heads * (s.hidden / s.heads) * 4;
    assert_eq!(e.info.kv_bytes_per_token, per_token as u64);
    let mut cache = e.model.new_cache(DType::F32);
    e.model
        .forward(&bench_tokens(37, e.info.vocab), &mut cache, Forward::LAST)
        .unwrap();
    assert_eq!(cache.len(), 37);
    assert_eq!(cache.bytes(), 37 * per_token as u64);
    let held: usize = (0..s.layers)
        .map(|l| {
            let (k, v) = cache.layer(l).unwrap();
            k.elem_count() * 4 + v.elem_count() * 4
        })
        .sum();
    assert_eq!(cache.bytes(), held as u64);
    assert!(cache.reserved_bytes() >= cache.bytes());
}

#[test]
fn embeddings_stay_quantized() {
    let e = Engine::synthetic(&spec("qwen2"), &Device::Cpu).unwrap();
    // The embedding table is held in its GGUF type, and counted once though the head shares it.
    assert_ne!(
        e.model.embed.dtype(),
        candle_core::quantized::GgmlDType::F32
    );
    let table = e.model.embed.storage_size_in_bytes() as u64;
    assert!(e.info.weight_bytes > table);
    assert!(e.info.weight_bytes < e.info.file_bytes);
    let ids = Tensor::new(&[3u32, 5], &Device::Cpu).unwrap();
    let rows = e.model.embed.embedding(&ids).unwrap();
    let dense = e
        .model
        .embed
        .dequantize(&Device::Cpu)
        .unwrap()
        .index_select(&ids, 0)
        .unwrap();
    assert_eq!(
        rows.to_vec2::<f32>().unwrap(),
        dense.to_vec2::<f32>().unwrap()
    );
}
