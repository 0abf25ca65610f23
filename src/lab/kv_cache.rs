//! Demo 2, the KV cache: one greedy generation decoded with the cache, then its steps again
//! without it — each step a forward pass over the whole sequence in an emptied cache — checking
//! that both pick the same tokens.

use super::measure::{self, bench_tokens};
use crate::engine::{Engine, KvCache, Model};
use crate::protocol::demo::{Comparison, Gap, StepPoint};
use crate::protocol::{DemoKind, DemoSection};
use anyhow::{ensure, Result};
use std::time::Duration;

/// Cached steps within this many tokens of a context are its cached time (one step is noisy).
pub const NEAR: usize = 4;

/// How close, as a fraction of the largest logit's magnitude, two logits are to count as a tie.
/// Prefill and decode logits drift apart by a few thousandths of the largest over hundreds of
/// positions (1.7e-3 measured at 281 tokens on the 0.5B), from the two paths' rounding alone.
pub const TIE: f32 = 5e-3;

/// Whether tokens `a` and `b` are within [`TIE`] of each other in `logits`.
pub fn near_tie(logits: &[f32], a: u32, b: u32) -> bool {
    let top = logits.iter().fold(0f32, |m, l| m.max(l.abs()));
    let (la, lb) = (logits[a as usize], logits[b as usize]);
    (la - lb).abs() <= TIE * top
}

impl Comparison {
    /// The gap at exactly `context`, if it was measured there.
    pub fn gap_at(&self, context: usize) -> Option<&Gap> {
        self.gaps.iter().find(|g| g.context == context)
    }

    /// Total time of the cached steps, and what every step would have cost without the cache,
    /// interpolated linearly between the uncached points.
    /// (Sums saturate: a recording can hold any durations.)
    pub fn totals(&self) -> (Duration, Duration) {
        let sum = |d: Duration, x: Duration| d.saturating_add(x);
        let cached = self.cached.iter().map(|p| p.step).fold(Duration::ZERO, sum);
        let uncached = self
            .cached
            .iter()
            .map(|p| interpolate(&self.no_cache, p.context))
            .fold(Duration::ZERO, sum);
        (cached, uncached)
    }
}

/// The step time at `context` on the line through the nearest measured points (the points are
/// sorted by context); the end points beyond them.
pub fn interpolate(points: &[StepPoint], context: usize) -> Duration {
    let Some(first) = points.first() else {
        return Duration::ZERO;
    };
    let i = points.partition_point(|p| p.context < context);
    if i == 0 {
        return first.step;
    }
    if i == points.len() {
        return points[i - 1].step;
    }
    let (a, b) = (points[i - 1], points[i]);
    if b.context == a.context || b.context == context {
        return b.step;
    }
    // In floats: points read from a recording need not be sorted.
    let f = (context as f64 - a.context as f64) / (b.context as f64 - a.context as f64);
    let s = a.step.as_secs_f64() + f * (b.step.as_secs_f64() - a.step.as_secs_f64());
    Duration::try_from_secs_f64(s.max(0.0)).unwrap_or(Duration::MAX)
}

/// The gap at each uncached point against the median cached step near its context.
pub fn gaps(cached: &[StepPoint], no_cache: &[StepPoint]) -> Vec<Gap> {
    no_cache
        .iter()
        .filter_map(|u| {
            let c = measure::median_step_near(cached, u.context, NEAR)?;
            Some(Gap {
                context: u.context,
                cached: c,
                no_cache: u.step,
                ratio: if c.is_zero() {
                    0.0
                } else {
                    u.step.as_secs_f64() / c.as_secs_f64()
                },
            })
        })
        .collect()
}

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    prompt: &str,
    progress: &mut dyn FnMut(String),
) -> Result<Comparison> {
    let ids = if prompt.trim().is_empty() {
        bench_tokens(16, engine.model.cfg.vocab)
    } else {
        engine.prompt_ids(prompt, false)?
    };
    let Engine {
        model, cache, info, ..
    } = engine;
    let ctx = model.cfg.context_length;
    ensure!(
        ids.len() < ctx,
        "the prompt's {} tokens leave no room to generate in the context of {ctx}",
        ids.len()
    );
    let n = section
        .output_tokens(DemoKind::KvCache)
        .min(ctx - ids.len())
        .max(1);
    let every = section.no_cache_every.unwrap_or(1).max(1);

    // Warm-up, then the generation. Each step runs with the cache; at the chosen context
    // lengths the same step then runs again without it — the prompt and every token so far
    // recomputed in an empty scratch cache — so both see the same machine load.
    let mut scratch = model.new_cache(cache.dtype());
    let (_, first) = measure::prefill(model, cache, &ids)?;
    measure::decode(model, cache, first, 2)?;
    let (prefill, first) = measure::prefill(model, cache, &ids)?;
    let mut seq = ids.clone();
    seq.push(first);
    let Steps {
        cached,
        no_cache,
        mismatches,
        ties,
    } = compare_steps(model, cache, &mut scratch, &mut seq, n, every, progress)?;
    let (kv_bytes, kv_reserved_bytes) = (cache.bytes(), cache.reserved_bytes());
    let tokens = &seq[ids.len()..];
    cache.clear();
    drop(scratch);
    Ok(Comparison {
        prompt_tokens: ids.len(),
        generated_tokens: tokens.len(),
        prefill,
        gaps: gaps(&cached, &no_cache),
        compared: no_cache.len(),
        cached,
        no_cache,
        no_cache_every: every,
        mismatches,
        ties,
        kv_bytes_per_token: info.kv_bytes_per_token,
        kv_bytes,
        kv_reserved_bytes,
        weight_bytes: info.weight_bytes,
    })
}

/// The generation's steps with the cache, and those it ran again without it.
struct Steps {
    cached: Vec<StepPoint>,
    no_cache: Vec<StepPoint>,
    /// Contexts where the two picked different tokens, and where they did so on a near tie.
    mismatches: Vec<usize>,
    ties: Vec<usize>,
}

/// Generate up to `n` tokens after `seq` with the cache, each appended to `seq`; every `every`
/// tokens of context (and at the last) the same step again in `scratch`, from nothing.
fn compare_steps(
    model: &Model,
    cache: &mut KvCache,
    scratch: &mut KvCache,
    seq: &mut Vec<u32>,
    n: usize,
    every: usize,
    progress: &mut dyn FnMut(String),
) -> Result<Steps> {
    let (mut cached, mut no_cache, mut mismatches) = (Vec::new(), Vec::new(), Vec::new());
    let mut ties = Vec::new();
    for i in 1..n {
        let (point, next) = measure::decode(model, cache, seq[seq.len() - 1], 1)?;
        let (Some(&point), Some(&next)) = (point.first(), next.first()) else {
            break;
        };
        cached.push(point);
        let c = point.context;
        if c % every == 0 || i + 1 == n {
            let (step, logits) = measure::prefill_logits(model, scratch, seq)?;
            let pick = crate::engine::sampling::argmax(&logits) as u32;
            if pick != next {
                if near_tie(&logits, pick, next) {
                    ties.push(c);
                } else {
                    mismatches.push(c);
                }
            }
            no_cache.push(StepPoint { context: c, step });
            progress(format!(
                "at {c} tokens: {:.1} ms without the cache, {:.1} ms with it",
                step.as_secs_f64() * 1e3,
                point.step.as_secs_f64() * 1e3
            ));
        }
        seq.push(next);
    }
    Ok(Steps {
        cached,
        no_cache,
        mismatches,
        ties,
    })
}

#[cfg(test)]
mod tests {
    use super::super::measure::point as p;
    use super::*;

    #[test]
    fn totals_and_interpolation_take_any_recorded_points() {
        let at = |context, step| StepPoint { context, step };
        let pts = vec![
            at(300, Duration::MAX),
            at(100, Duration::from_millis(1)),
            at(200, Duration::MAX),
        ];
        // Unsorted, as a crafted recording may have them: no underflow, no overflow.
        let _ = interpolate(&pts, 150);
        let c = Comparison {
            prompt_tokens: 1,
            generated_tokens: 3,
            prefill: Duration::ZERO,
            cached: pts.clone(),
            no_cache: pts,
            no_cache_every: 1,
            gaps: Vec::new(),
            compared: 0,
            mismatches: Vec::new(),
            ties: Vec::new(),
            kv_bytes_per_token: u64::MAX,
            kv_bytes: 0,
            kv_reserved_bytes: 0,
            weight_bytes: 0,
        };
        assert_eq!(c.totals().0, Duration::MAX);
    }

    #[test]
    fn a_near_tie_is_within_the_tolerance_of_the_largest_logit() {
        let logits = [20.0, 19.95, -30.0, 19.0];
        // 0.05 apart, under 5e-3 of the largest magnitude (0.15).
        assert!(near_tie(&logits, 0, 1));
        assert!(near_tie(&logits, 1, 0));
        assert!(!near_tie(&logits, 0, 3));
    }

    #[test]
    fn interpolation_follows_the_line_between_points() {
        let pts = [p(10, 10), p(20, 30)];
        assert_eq!(interpolate(&pts, 15), Duration::from_millis(20));
        assert_eq!(interpolate(&pts, 5), Duration::from_millis(10));
        assert_eq!(interpolate(&pts, 20), Duration::from_millis(30));
        assert_eq!(interpolate(&pts, 99), Duration::from_millis(30));
        assert_eq!(interpolate(&[], 3), Duration::ZERO);
    }

    #[test]
    fn gaps_compare_with_the_cached_steps_nearby() {
        let cached: Vec<StepPoint> = (10..30).map(|c| p(c, 2)).collect();
        let g = gaps(&cached, &[p(16, 20), p(100, 50)]);
        assert_eq!(g.len(), 1, "no cached steps near 100");
        assert_eq!(g[0].context, 16);
        assert!((g[0].ratio - 10.0).abs() < 1e-9);
    }
}
