//! The timed primitives the demos share: a prefill, greedy decode steps with the KV cache, and a
//! step without it (the whole sequence recomputed in a fresh cache). Each is timed around the
//! forward pass and the greedy pick of the next token, as a decode step of the generation loop is.

use crate::engine::sampling::argmax;
use crate::engine::{Forward, KvCache, Model};
use candle_core::Result;
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// One timed step: the tokens the pass attended to (its context) and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepPoint {
    pub context: usize,
    pub step: Duration,
}

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
