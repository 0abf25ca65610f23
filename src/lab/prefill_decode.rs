//! Demo 1, prefill against decode: prefill each prompt length of a sweep and time a few decode
//! steps after it; then one long generation from a short prompt, to see how the output length
//! shifts the time from prefill to decode.

use super::measure::{self, bench_tokens};
use crate::engine::Engine;
use crate::protocol::demo::{OutputPoint, PromptPoint, StepPoint, Sweep};
use crate::protocol::DemoSection;
use crate::stats::tok_per_s;
use anyhow::Result;
use std::time::Duration;

/// Prompt length of the output-length run.
pub const SHORT_PROMPT: usize = 16;

/// Each prefill is repeated (up to 3 times) while this much time has not passed; the fastest counts.
pub const PREFILL_BUDGET: Duration = Duration::from_secs(2);

/// Output lengths to report for a run of `n` tokens: 1, 4, 16, 64, … below `n`, and `n`.
pub fn output_lengths(n: usize) -> Vec<usize> {
    let mut v: Vec<usize> = std::iter::successors(Some(1usize), |x| Some(x * 4))
        .take_while(|&x| x < n)
        .collect();
    v.push(n);
    v
}

/// Time split of generating each of `lengths` tokens: the prefill gives the first token, each
/// further token costs one decode step of `steps`.
pub fn output_points(
    prefill: Duration,
    steps: &[StepPoint],
    lengths: &[usize],
) -> Vec<OutputPoint> {
    lengths
        .iter()
        .filter(|&&n| n >= 1 && n - 1 <= steps.len())
        .map(|&n| {
            let decode: Duration = steps[..n - 1].iter().map(|p| p.step).sum();
            let total = (prefill + decode).as_secs_f64();
            OutputPoint {
                output_tokens: n,
                prefill,
                decode,
                decode_share: if total > 0.0 {
                    decode.as_secs_f64() / total
                } else {
                    0.0
                },
            }
        })
        .collect()
}

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<Sweep> {
    let Engine { model, cache, .. } = engine;
    let (vocab, ctx) = (model.cfg.vocab, model.cfg.context_length);
    let decode_tokens = section.decode_tokens.unwrap_or(16);
    // Warm-up: the first passes allocate buffers and fill caches.
    let (_, first) = measure::prefill(model, cache, &bench_tokens(SHORT_PROMPT, vocab))?;
    measure::decode(model, cache, first, 2)?;

    let (mut prompts, mut skipped) = (Vec::new(), Vec::new());
    for len in section.prompt_lengths() {
        if len + decode_tokens > ctx {
            skipped.push(len);
            progress(format!(
                "prompt of {len} tokens skipped: with {decode_tokens} decode steps it passes the context of {ctx}"
            ));
            continue;
        }
        let ids = bench_tokens(len, vocab);
        let (prefill, first) = measure::best_prefill(model, cache, &ids, PREFILL_BUDGET)?;
        let (steps, _) = measure::decode(model, cache, first, decode_tokens)?;
        let step = measure::median_step(&steps);
        let p = PromptPoint {
            prompt_tokens: len,
            prefill,
            prefill_tok_s: tok_per_s(len, prefill),
            decode_step: step,
            decode_tok_s: if step.is_zero() {
                0.0
            } else {
                1.0 / step.as_secs_f64()
            },
        };
        progress(format!(
            "prompt {len}: prefill {:.1} ms ({:.0} tok/s), decode {:.1} ms/token ({:.1} tok/s)",
            p.prefill.as_secs_f64() * 1e3,
            p.prefill_tok_s,
            step.as_secs_f64() * 1e3,
            p.decode_tok_s
        ));
        prompts.push(p);
    }

    let n = section
        .output_tokens(super::DemoKind::PrefillVsDecode)
        .min(ctx.saturating_sub(SHORT_PROMPT))
        .max(1);
    let (prefill, first) = measure::prefill(model, cache, &bench_tokens(SHORT_PROMPT, vocab))?;
    let (decode_curve, _) = measure::decode(model, cache, first, n - 1)?;
    let outputs = output_points(prefill, &decode_curve, &output_lengths(n));
    if let Some(o) = outputs.last() {
        progress(format!(
            "{} output tokens after a {SHORT_PROMPT}-token prompt: decode is {:.0}% of the time",
            o.output_tokens,
            o.decode_share * 100.0
        ));
    }
    Ok(Sweep {
        prompts,
        decode_curve,
        outputs,
        skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lengths_are_powers_of_four_then_the_run() {
        assert_eq!(output_lengths(256), vec![1, 4, 16, 64, 256]);
        assert_eq!(output_lengths(100), vec![1, 4, 16, 64, 100]);
        assert_eq!(output_lengths(1), vec![1]);
    }

    #[test]
    fn output_points_add_the_decode_steps_after_the_first_token() {
        let ms = Duration::from_millis;
        let steps: Vec<StepPoint> = (0..3)
            .map(|i| StepPoint {
                context: 17 + i,
                step: ms(10),
            })
            .collect();
        let pts = output_points(ms(30), &steps, &[1, 4, 9]);
        assert_eq!(pts.len(), 2, "9 tokens need 8 steps, only 3 ran");
        assert_eq!(pts[0].decode, Duration::ZERO);
        assert_eq!(pts[1].decode, ms(30));
        assert!((pts[1].decode_share - 0.5).abs() < 1e-12);
    }
}
