//! Demo 3, the roofline: measure this machine's memory bandwidth and matmul throughput, turn
//! them into the fastest decode and prefill the model could run at, and set the measured speeds
//! against those ceilings.
//!
//! Decode reads every weight (and the KV cache) once per token, so its ceiling is bandwidth ÷
//! bytes per token. Prefill reads the weights once for the whole prompt, so its ceiling is
//! FLOP/s ÷ FLOPs per token.

use super::measure::{self, bench_tokens};
use crate::engine::config::ModelConfig;
use crate::engine::kv_cache::KvCache;
use crate::engine::model::Model;
use crate::engine::Engine;
use crate::protocol::demo::{ModelCosts, Roofline};
use crate::protocol::{DemoKind, DemoSection};
use crate::stats::tok_per_s;
use anyhow::Result;
use candle_core::{Device, Tensor};
use std::time::{Duration, Instant};

/// Prompt length of the decode measurement.
pub const DECODE_PROMPT: usize = 16;

/// Parameters in the matmuls: per-layer projections (all layers) and the output head.
pub fn matmul_params(c: &ModelConfig) -> (u64, u64) {
    let (h, q, kv, f) = (
        c.hidden as u64,
        (c.heads * c.head_dim) as u64,
        (c.kv_heads * c.head_dim) as u64,
        c.ffn as u64,
    );
    let layer = h * q + 2 * h * kv + q * h + 3 * h * f;
    (c.layers as u64 * layer, c.vocab as u64 * h)
}

/// The FLOP side of `c`'s costs (its shape and matmul parameters; no bytes): the formulas live
/// in [`ModelCosts`], which the narration uses too.
pub fn shape_costs(c: &ModelConfig) -> ModelCosts {
    let (layer_params, head_params) = matmul_params(c);
    ModelCosts {
        layers: c.layers,
        heads: c.heads,
        kv_heads: c.kv_heads,
        head_dim: c.head_dim,
        hidden: c.hidden,
        context_length: c.context_length,
        layer_params,
        head_params,
        ..ModelCosts::default()
    }
}

/// FLOPs of attention for one query over `context` keys: QKᵀ and the weighted sum of V,
/// 2 FLOPs per multiply-add, in every head of every layer.
pub fn attention_flops(c: &ModelConfig, context: f64) -> f64 {
    shape_costs(c).attention_flops(context)
}

/// FLOPs per token of a decode step at `context`: every matmul weight once (head included)
/// plus attention.
pub fn decode_flops_per_token(c: &ModelConfig, context: usize) -> f64 {
    shape_costs(c).decode_flops(context)
}

/// FLOPs per token of a prefill of `len` tokens: the projections for every token, the head for
/// the last one only, attention over (len + 1) / 2 keys on average.
pub fn prefill_flops_per_token(c: &ModelConfig, len: usize) -> f64 {
    shape_costs(c).prefill_flops_per_token(len)
}

/// Bytes a decode step reads at `context`: the weights and the KV cache held.
pub fn decode_bytes_per_token(weight_bytes: u64, kv_bytes_per_token: u64, context: usize) -> f64 {
    weight_bytes as f64 + (kv_bytes_per_token * context as u64) as f64
}

/// Tokens per second at the roof: a rate (bytes/s or FLOP/s) over the cost of one token.
pub fn ceiling(rate: f64, per_token: f64) -> f64 {
    if per_token > 0.0 {
        rate / per_token
    } else {
        f64::INFINITY
    }
}

/// Which roof limits work of `intensity` FLOPs per byte on a machine whose balance point
/// (peak FLOP/s ÷ bandwidth) is `balance`.
pub fn bound_by(intensity: f64, balance: f64) -> &'static str {
    if intensity < balance {
        "memory"
    } else {
        "compute"
    }
}

fn sum_chunk(c: &[u64]) -> u64 {
    let mut acc = [0u64; 8];
    let mut blocks = c.chunks_exact(8);
    for b in &mut blocks {
        for j in 0..8 {
            acc[j] = acc[j].wrapping_add(b[j]);
        }
    }
    blocks
        .remainder()
        .iter()
        .chain(acc.iter())
        .fold(0u64, |a, &x| a.wrapping_add(x))
}

/// Bytes each timed pass reads at least: a buffer smaller than this is read several times in one
/// pass, so that spawning the threads does not dominate what is timed.
const PASS_BYTES: usize = 64 << 20;

/// Best read bandwidth (GB/s) streaming a `bytes` buffer with `threads` threads, over `passes`.
/// A buffer that fits in a cache gives that cache's bandwidth, not main memory's.
pub fn read_bandwidth_gb_s(bytes: usize, passes: usize, threads: usize) -> f64 {
    let n = (bytes / 8).max(1);
    let reps = PASS_BYTES.div_ceil(n * 8);
    // Written once so every page is really mapped (untouched pages read as one shared zero page).
    let buf: Vec<u64> = (0..n as u64).collect();
    let threads = threads.max(1);
    let chunk = n.div_ceil(threads);
    let mut best = 0f64;
    for _ in 0..passes.max(1) {
        let t = Instant::now();
        let total = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|c| {
                    s.spawn(move || {
                        (0..reps).fold(0u64, |a, _| {
                            a.wrapping_add(sum_chunk(std::hint::black_box(c)))
                        })
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a summing thread"))
                .fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.max((reps * n * 8) as f64 / t.elapsed().as_secs_f64() / 1e9);
    }
    best
}

/// GFLOP/s of the fastest of `repeats` runs of `f` (after a warm-up) doing `flops` each.
fn gflop_s(flops: f64, repeats: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut best = Duration::MAX;
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed());
    }
    Ok(flops / best.as_secs_f64() / 1e9)
}

/// candle's f32 matmul `(m, k) × (k, n)` on the CPU.
pub fn f32_matmul_gflop_s(m: usize, k: usize, n: usize, repeats: usize) -> Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (m, k), &Device::Cpu)?;
    let b = Tensor::randn(0f32, 1.0, (k, n), &Device::Cpu)?;
    gflop_s(2.0 * (m * k * n) as f64, repeats, || {
        std::hint::black_box(a.matmul(&b)?);
        Ok(())
    })
}

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<Roofline> {
    let threads = crate::engine::threads();
    let buffer_bytes = section.buffer_mib.unwrap_or(256) << 20;
    let bandwidth_gb_s = read_bandwidth_gb_s(buffer_bytes, 10, threads);
    progress(format!(
        "memory: {bandwidth_gb_s:.1} GB/s reading {} MiB with {threads} threads",
        buffer_bytes >> 20
    ));

    let Engine {
        model, cache, info, ..
    } = engine;
    let cfg = model.cfg.clone();
    let ctx = cfg.context_length;
    let len = section.prefill_tokens.unwrap_or(256).min(ctx - 1).max(1);
    let mm = measure_matmul(model, len, progress)?;
    let memory = Memory {
        buffer_bytes,
        bandwidth_gb_s,
        threads,
    };
    let d = measure_decode(
        model,
        cache,
        info.kv_bytes_per_token,
        section,
        &memory,
        progress,
    )?;
    let (prefill_tok_s, prefill_flops, prefill_ceiling_tok_s) =
        measure_prefill(model, cache, len, mm.peak_gflop_s, progress)?;
    Ok(Roofline {
        threads,
        buffer_bytes: buffer_bytes as u64,
        bandwidth_gb_s,
        working_set_bytes: d.working_set_bytes,
        working_set_gb_s: d.working_set_gb_s,
        matmul_shape: mm.shape,
        matmul_f32_gflop_s: mm.f32_gflop_s,
        matmul_q_gflop_s: mm.q_gflop_s,
        peak_gflop_s: mm.peak_gflop_s,
        weight_bytes_read: d.weight_bytes,
        kv_bytes_per_token: info.kv_bytes_per_token,
        decode_context: d.context,
        decode_bytes_per_token: d.bytes,
        decode_flops_per_token: d.flops,
        decode_ceiling_tok_s: d.ceiling_tok_s,
        decode_tok_s: d.tok_s,
        decode_ratio: d.tok_s / d.ceiling_tok_s,
        prefill_tokens: len,
        prefill_flops_per_token: prefill_flops,
        prefill_ceiling_tok_s,
        prefill_tok_s,
        prefill_ratio: prefill_tok_s / prefill_ceiling_tok_s,
        machine_balance: mm.peak_gflop_s / d.working_set_gb_s,
        decode_intensity: d.flops / d.bytes,
        prefill_intensity: len as f64 * prefill_flops
            / decode_bytes_per_token(d.weight_bytes, info.kv_bytes_per_token, len),
    })
}

/// The main-memory read measured first, and what it took.
struct Memory {
    buffer_bytes: usize,
    bandwidth_gb_s: f64,
    threads: usize,
}

/// Matmul throughput at the FFN's shape: plain f32 and the model's own quantized gate.
struct Matmul {
    shape: (usize, usize, usize),
    f32_gflop_s: f64,
    q_gflop_s: f64,
    peak_gflop_s: f64,
}

/// GFLOP/s of the model's own first FFN gate (its quantized product) on `rows` random rows:
/// the best of `repeats`.
pub fn gate_gflop_s(model: &Model, rows: usize, repeats: usize) -> Result<f64> {
    let (k, n) = (model.cfg.hidden, model.cfg.ffn);
    let x = Tensor::randn(0f32, 1.0, (1, rows, k), model.device())?;
    let gate = &model.layers[0].gate.weight;
    gflop_s(2.0 * (rows * k * n) as f64, repeats, || {
        std::hint::black_box(gate.forward(&x)?);
        Ok(())
    })
}

fn measure_matmul(model: &Model, len: usize, progress: &mut dyn FnMut(String)) -> Result<Matmul> {
    let cfg = &model.cfg;
    let (m, k, n) = (len, cfg.hidden, cfg.ffn);
    let matmul_f32_gflop_s = f32_matmul_gflop_s(m, k, n, 5)?;
    let matmul_q_gflop_s = gate_gflop_s(model, m, 5)?;
    let peak_gflop_s = matmul_f32_gflop_s.max(matmul_q_gflop_s);
    progress(format!(
        "matmul {m}×{k}×{n}: f32 {matmul_f32_gflop_s:.1} GFLOP/s, the model's quantized gate {matmul_q_gflop_s:.1} GFLOP/s"
    ));
    Ok(Matmul {
        shape: (m, k, n),
        f32_gflop_s: matmul_f32_gflop_s,
        q_gflop_s: matmul_q_gflop_s,
        peak_gflop_s,
    })
}

/// Decode measured against its bandwidth ceiling, per token.
struct Decode {
    tok_s: f64,
    context: usize,
    weight_bytes: u64,
    bytes: f64,
    flops: f64,
    working_set_bytes: u64,
    working_set_gb_s: f64,
    ceiling_tok_s: f64,
}

/// Decode: a short prompt, then greedy steps with the cache.
fn measure_decode(
    model: &Model,
    cache: &mut KvCache,
    kv_bytes_per_token: u64,
    section: &DemoSection,
    memory: &Memory,
    progress: &mut dyn FnMut(String),
) -> Result<Decode> {
    let cfg = &model.cfg;
    let vocab = cfg.vocab;
    let steps = section
        .output_tokens(DemoKind::Roofline)
        .min(cfg.context_length - DECODE_PROMPT - 1)
        .max(1);
    let (_, first) = measure::prefill(model, cache, &bench_tokens(DECODE_PROMPT, vocab))?;
    measure::decode(model, cache, first, 2)?; // warm-up
    let (_, first) = measure::prefill(model, cache, &bench_tokens(DECODE_PROMPT, vocab))?;
    let (points, _) = measure::decode(model, cache, first, steps)?;
    let decode_time: Duration = points.iter().map(|p| p.step).sum();
    let decode_tok_s = tok_per_s(points.len(), decode_time);
    let decode_context = points.iter().map(|p| p.context).sum::<usize>() / points.len().max(1);
    let weight_bytes = model.bytes_read_per_token();
    let decode_bytes = decode_bytes_per_token(weight_bytes, kv_bytes_per_token, decode_context);
    let decode_flops = decode_flops_per_token(cfg, decode_context);
    // The roof is the bandwidth at the size decode streams: a model small enough to stay in a
    // cache is read at the cache's speed, not main memory's.
    let working_set_bytes = decode_bytes as u64;
    let bandwidth_gb_s = memory.bandwidth_gb_s;
    let working_set_gb_s = if working_set_bytes < memory.buffer_bytes as u64 {
        read_bandwidth_gb_s(working_set_bytes as usize, 10, memory.threads).max(bandwidth_gb_s)
    } else {
        bandwidth_gb_s
    };
    if working_set_gb_s > bandwidth_gb_s * 1.2 {
        progress(format!(
            "memory at decode's {} per token: {working_set_gb_s:.1} GB/s (it fits in a cache)",
            crate::stats::human_bytes(working_set_bytes)
        ));
    }
    let decode_ceiling_tok_s = ceiling(working_set_gb_s * 1e9, decode_bytes);
    progress(format!(
        "decode: {decode_tok_s:.1} tok/s against a ceiling of {decode_ceiling_tok_s:.1} tok/s"
    ));
    Ok(Decode {
        tok_s: decode_tok_s,
        context: decode_context,
        weight_bytes,
        bytes: decode_bytes,
        flops: decode_flops,
        working_set_bytes,
        working_set_gb_s,
        ceiling_tok_s: decode_ceiling_tok_s,
    })
}

/// Prefill: warm-up, then the best of two. Its speed, FLOPs per token and compute ceiling.
fn measure_prefill(
    model: &Model,
    cache: &mut KvCache,
    len: usize,
    peak_gflop_s: f64,
    progress: &mut dyn FnMut(String),
) -> Result<(f64, f64, f64)> {
    let ids = bench_tokens(len, model.cfg.vocab);
    measure::prefill(model, cache, &ids)?;
    let mut best = Duration::MAX;
    for _ in 0..2 {
        best = best.min(measure::prefill(model, cache, &ids)?.0);
    }
    cache.clear();
    let prefill_tok_s = tok_per_s(len, best);
    let prefill_flops = prefill_flops_per_token(&model.cfg, len);
    let prefill_ceiling_tok_s = ceiling(peak_gflop_s * 1e9, prefill_flops);
    progress(format!(
        "prefill of {len}: {prefill_tok_s:.1} tok/s against a ceiling of {prefill_ceiling_tok_s:.1} tok/s"
    ));
    Ok((prefill_tok_s, prefill_flops, prefill_ceiling_tok_s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::{Activation, Arch, RopeStyle};

    /// Qwen2.5-0.5B's shape.
    fn qwen_05b() -> ModelConfig {
        ModelConfig {
            arch: Arch::Qwen2,
            name: "qwen".into(),
            layers: 24,
            hidden: 896,
            heads: 14,
            kv_heads: 2,
            head_dim: 64,
            ffn: 4864,
            context_length: 32768,
            rms_eps: 1e-6,
            rope_base: 1e6,
            rope_style: RopeStyle::Halves,
            rope_scale: 1.0,
            vocab: 151_936,
            activation: Activation::Silu,
            embed_scale: None,
            attn_scale: 0.125,
            sliding: None,
        }
    }

    #[test]
    fn parameters_match_the_published_count() {
        let (layers, head) = matmul_params(&qwen_05b());
        // 494 M parameters in all: 358 M in the layers' matmuls, 136 M in the tied embeddings,
        // and the rest in norms and biases.
        assert_eq!(layers, 357_826_560);
        assert_eq!(head, 136_134_656);
    }

    #[test]
    fn flops_per_token_follow_the_formulas() {
        let c = qwen_05b();
        let (layers, head) = matmul_params(&c);
        let at = |ctx: f64| 4.0 * 24.0 * 14.0 * 64.0 * ctx;
        assert_eq!(
            decode_flops_per_token(&c, 100),
            2.0 * (layers + head) as f64 + at(100.0)
        );
        // A one-token prefill is a decode step at context 1.
        assert_eq!(
            prefill_flops_per_token(&c, 1),
            decode_flops_per_token(&c, 1)
        );
        // Longer prompts spread the head over more tokens.
        assert!(prefill_flops_per_token(&c, 256) < prefill_flops_per_token(&c, 16));
    }

    #[test]
    fn ceilings_divide_rate_by_cost() {
        assert_eq!(decode_bytes_per_token(1000, 10, 5), 1050.0);
        assert_eq!(ceiling(10e9, 400e6), 25.0);
        assert_eq!(ceiling(1.0, 0.0), f64::INFINITY);
        assert_eq!(bound_by(2.5, 5.3), "memory");
        assert_eq!(bound_by(468.0, 5.3), "compute");
    }

    #[test]
    fn bandwidth_is_positive_and_finite() {
        let gb_s = read_bandwidth_gb_s(8 << 20, 2, 2);
        assert!(gb_s.is_finite() && gb_s > 0.0, "{gb_s}");
        assert_eq!(sum_chunk(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]), 55);
    }
}
