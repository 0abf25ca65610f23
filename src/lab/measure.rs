//! The timed primitives the demos share: a prefill, greedy decode steps with the KV cache, and a
//! step without it (the whole sequence recomputed in a fresh cache). Each is timed around the
//! forward pass and the greedy pick of the next token, as a decode step of the generation loop is.

use crate::engine::quality::Probe;
use crate::engine::sampling::argmax;
use crate::engine::spec::Speculator;
use crate::engine::{generate, Engine, Forward, KvCache, Model, Prompt, RunRequest, StepControl};
use crate::protocol::demo::{QuantRow, StepPoint};
use crate::protocol::{DraftMode, GenParams, KPolicy, Quant, RunSettings};
use candle_core::Result;
use std::time::{Duration, Instant};

/// Forward `ids` into an emptied cache and pick the next token greedily: a prefill, or a decode
/// step without a KV cache. Returns the time and the token.
pub fn prefill(model: &Model, cache: &mut KvCache, ids: &[u32]) -> Result<(Duration, u32)> {
    let (t, logits) = prefill_logits(model, cache, ids)?;
    Ok((t, argmax(&logits) as u32))
}

/// As [`prefill`], with the last position's logits instead of their pick.
pub fn prefill_logits(
    model: &Model,
    cache: &mut KvCache,
    ids: &[u32],
) -> Result<(Duration, Vec<f32>)> {
    cache.clear();
    let t = Instant::now();
    let logits = model.forward(ids, cache, Forward::LAST)?;
    let t = t.elapsed();
    Ok((t, Model::last_logits(&logits)?))
}

/// The fastest of up to three prefills of `ids`, repeating only while their total time stays
/// under `budget` (a long prompt on a slow machine runs once). The cache holds `ids` afterwards.
pub fn best_prefill(
    model: &Model,
    cache: &mut KvCache,
    ids: &[u32],
    budget: Duration,
) -> Result<(Duration, u32)> {
    let (mut best, next) = prefill(model, cache, ids)?;
    let mut spent = best;
    for _ in 0..2 {
        if spent * 2 > budget {
            break;
        }
        let (t, _) = prefill(model, cache, ids)?;
        spent += t;
        best = best.min(t);
    }
    Ok((best, next))
}

/// `n` greedy decode steps after what `cache` holds, starting by feeding `pending`.
/// Returns each step's point and the tokens produced.
pub fn decode(
    model: &Model,
    cache: &mut KvCache,
    mut pending: u32,
    n: usize,
) -> Result<(Vec<StepPoint>, Vec<u32>)> {
    let mut points = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    for _ in 0..n {
        if cache.len() + 1 > model.cfg.context_length {
            break;
        }
        let t = Instant::now();
        let logits = model.forward(&[pending], cache, Forward::LAST)?;
        pending = argmax(&Model::last_logits(&logits)?) as u32;
        points.push(StepPoint {
            context: cache.len(),
            step: t.elapsed(),
        });
        tokens.push(pending);
    }
    Ok((points, tokens))
}

/// The median step time of the points whose context lies within `ctx ± radius`.
pub fn median_step_near(points: &[StepPoint], ctx: usize, radius: usize) -> Option<Duration> {
    let near: Vec<f64> = points
        .iter()
        .filter(|p| p.context.abs_diff(ctx) <= radius)
        .map(|p| p.step.as_secs_f64())
        .collect();
    crate::stats::median(&near).map(Duration::from_secs_f64)
}

/// The median step time of all points.
pub fn median_step(points: &[StepPoint]) -> Duration {
    let xs: Vec<f64> = points.iter().map(|p| p.step.as_secs_f64()).collect();
    crate::stats::median(&xs)
        .map(Duration::from_secs_f64)
        .unwrap_or_default()
}

/// Deterministic ordinary-token ids for benchmark prompts.
pub fn bench_tokens(n: usize, vocab: usize) -> Vec<u32> {
    let span = vocab.clamp(2, 30_000) as u64 - 1;
    (0..n as u64)
        .map(|i| (1 + (i * 7919 + 13) % span) as u32)
        .collect()
}

/// One engine measurement through the instrumented generation loop; returns (prefill tok/s, decode tok/s).
pub fn ours(engine: &mut Engine, ids: Vec<u32>, decode: usize) -> anyhow::Result<(f64, f64)> {
    let params = GenParams {
        max_tokens: decode + 1,
        ignore_eos: true,
        ..GenParams::default()
    };
    let settings = RunSettings {
        params: params.clone(),
        quantization: engine.quant,
        draft_mode: DraftMode::None,
        k: KPolicy::Adaptive,
        policy: Default::default(),
    };
    let (tx, _rx) = std::sync::mpsc::channel();
    let mut emit = |e| {
        let _ = tx.send(e);
    };
    let request = RunRequest::new(0, Prompt::Ids(ids), settings);
    let mut plain = Speculator::none();
    let s = generate(engine, &mut plain, &request, &mut emit, &mut || {
        StepControl::Continue
    })?;
    Ok((s.prefill_tok_s, s.decode_tok_s))
}

/// Switch `engine` to `q` and measure it: prefill of `pp` tokens and decode of `tg` (medians of
/// `repeats`, after a warm-up) and quality through `probe`.
pub fn measure(
    engine: &mut Engine,
    q: Quant,
    probe: &mut Probe,
    pp: usize,
    tg: usize,
    repeats: usize,
) -> anyhow::Result<QuantRow> {
    let variant = engine.set_quant(q, &mut |_, _| {})?;
    measure_running(engine, variant, probe, pp, tg, repeats)
}

/// As [`measure`], for the `variant` `engine` runs now (a mix, a file).
pub fn measure_running(
    engine: &mut Engine,
    variant: crate::protocol::Variant,
    probe: &mut Probe,
    pp: usize,
    tg: usize,
    repeats: usize,
) -> anyhow::Result<QuantRow> {
    let (prefill_tok_s, decode_tok_s) = speed(engine, pp, tg, repeats)?;
    let quality = probe.measure(engine, &mut |_, _| {})?;
    Ok(QuantRow {
        read_per_token: engine.model.bytes_read_per_token(),
        variant,
        prefill_tok_s,
        decode_tok_s,
        quality,
    })
}

/// Prefill of `pp` tokens and decode of `tg` on what `engine` runs now: medians of `repeats`
/// after a warm-up, in tok/s.
pub fn speed(
    engine: &mut Engine,
    pp: usize,
    tg: usize,
    repeats: usize,
) -> anyhow::Result<(f64, f64)> {
    let ids = bench_tokens(pp, engine.model.cfg.vocab);
    ours(engine, ids.clone(), 4)?; // warm-up
    let mut pps = Vec::new();
    let mut tgs = Vec::new();
    for _ in 0..repeats.max(1) {
        let (p, d) = ours(engine, ids.clone(), tg)?;
        pps.push(p);
        tgs.push(d);
    }
    Ok((
        crate::stats::median(&pps).unwrap_or(0.0),
        crate::stats::median(&tgs).unwrap_or(0.0),
    ))
}

/// A step point of `ms` milliseconds at `context` tokens (tests).
#[cfg(test)]
pub(crate) fn point(context: usize, ms: u64) -> StepPoint {
    StepPoint {
        context,
        step: Duration::from_millis(ms),
    }
}

#[cfg(test)]
mod tests {
    use super::point as p;
    use super::*;

    #[test]
    fn medians_pick_the_points_near_a_context() {
        let pts = [p(10, 1), p(11, 3), p(12, 2), p(50, 100)];
        assert_eq!(
            median_step_near(&pts, 11, 1),
            Some(Duration::from_millis(2))
        );
        assert_eq!(median_step_near(&pts, 30, 2), None);
        assert_eq!(median_step(&pts), Duration::from_micros(2500));
    }
}
