//! The batching demo: B sequences decoding together (1 → 32: each step serves more tokens, and
//! takes longer), then one request stream under static and continuous batching — the same
//! arrivals, the same scheduler, only the admission policy differs.

use crate::engine::kv_cache::BLOCK_TOKENS;
use crate::engine::sched::SchedConfig;
use crate::engine::Engine;
use crate::lab::{batch, stream};
use crate::protocol::demo::{BatchPoint, Batching, PolicyPoint};
use crate::protocol::{DemoKind, DemoSection, SchedPolicy};
use crate::stats::percentile;
use anyhow::Result;
use std::time::Duration;

/// Prompt tokens of each sequence in the batch sweep, unless the section says (`prefill_tokens`).
pub const SWEEP_PROMPT: usize = 32;

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<Batching> {
    let model = &engine.model;
    let prompt = section.prefill_tokens.unwrap_or(SWEEP_PROMPT);
    let tokens = section.output_tokens(DemoKind::Batching);
    batch::measure(model, 1, prompt, 2)?; // warm-up
    let mut sweep = Vec::new();
    for b in section.batches() {
        let row = batch::measure(model, b, prompt, tokens)?.row();
        progress(format!(
            "batch {b}: decode step {:.1} ms, {:.1} tok/s",
            row.decode_ms_mean, row.decode_tok_s
        ));
        sweep.push(BatchPoint {
            batch: b,
            step: Duration::from_secs_f64(row.decode_ms_mean / 1e3),
            decode_tok_s: row.decode_tok_s,
            prefill_tok_s: row.prefill_tok_s,
        });
    }
    let arrivals = section.arrivals();
    let max_batch = section.max_batch();
    let reqs = stream::requests(&arrivals, model.cfg.vocab)?;
    let mut policies = Vec::new();
    let mut outputs = Vec::new();
    for policy in [SchedPolicy::Static, SchedPolicy::Continuous] {
        let cfg = SchedConfig {
            policy,
            max_batch,
            kv_blocks: ample_blocks(&reqs, max_batch),
            ..SchedConfig::default()
        };
        let r = stream::run(model, cfg, &reqs, &[], stream::Pace::Skip, &mut |_, _| {})?;
        let p = policy_point(policy, &r);
        progress(format!(
            "{policy}: {:.1} tok/s, TTFT mean {:.0} ms, p99 E2E {:.0} ms",
            p.tok_s,
            ms(p.ttft_mean),
            ms(p.e2e_p99)
        ));
        policies.push(p);
        outputs.push(r.reqs.into_iter().map(|t| t.tokens).collect::<Vec<_>>());
    }
    Ok(Batching {
        prompt_tokens: prompt,
        decode_tokens: tokens,
        sweep,
        arrivals,
        max_batch,
        policies,
        same_tokens: outputs.windows(2).all(|w| w[0] == w[1]),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Blocks enough for `max_batch` of the stream's longest requests at their full length: the
/// budget never limits the batch.
pub fn ample_blocks(reqs: &[stream::Arrival], max_batch: usize) -> usize {
    let longest = reqs
        .iter()
        .map(|a| (a.req.prompt.len() + a.req.max_tokens).div_ceil(BLOCK_TOKENS))
        .max()
        .unwrap_or(1);
    longest * max_batch.max(1)
}

fn mean(xs: &[Duration]) -> Duration {
    match xs.len() {
        0 => Duration::ZERO,
        n => xs.iter().sum::<Duration>() / n as u32,
    }
}

/// A policy's row: TTFT and E2E from each request's times, throughput over the makespan.
pub fn policy_point(policy: SchedPolicy, r: &stream::StreamRun) -> PolicyPoint {
    let ttft: Vec<Duration> = r.reqs.iter().map(stream::Timed::ttft).collect();
    let e2e: Vec<Duration> = r.reqs.iter().map(stream::Timed::e2e).collect();
    let makespan = r.makespan();
    PolicyPoint {
        policy,
        requests: r.reqs.len(),
        generated_tokens: r.generated(),
        steps: r.steps,
        makespan,
        tok_s: crate::stats::tok_per_s(r.generated(), makespan),
        ttft_mean: mean(&ttft),
        ttft_p99: percentile(&ttft, 99.0),
        e2e_mean: mean(&e2e),
        e2e_p99: percentile(&e2e, 99.0),
        mean_batch: r.mean_running(),
        preemptions: r.preemptions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::stream::{StreamRun, Timed};

    #[test]
    fn a_policy_row_follows_the_request_times() {
        let s = |ms: u64| Duration::from_millis(ms);
        let t = |arrival, first, done, n| Timed {
            id: 0,
            arrival: s(arrival),
            first_token: s(first),
            finished: s(done),
            tokens: vec![1; n],
        };
        let r = StreamRun {
            reqs: vec![t(0, 100, 1000, 10), t(500, 700, 2000, 30)],
            steps: 20,
            rows: 30,
            preemptions: 0,
            recomputed: 0,
            kv: Vec::new(),
            kv_bytes_per_token: 1,
            busy: s(1500),
            recompute: Duration::ZERO,
        };
        let p = policy_point(SchedPolicy::Static, &r);
        assert_eq!(p.makespan, s(2000));
        assert_eq!(p.tok_s, 20.0); // 40 tokens in 2 s
        assert_eq!(p.ttft_mean, s(150));
        assert_eq!(p.ttft_p99, s(200));
        assert_eq!(p.e2e_p99, s(1500));
        assert_eq!(p.mean_batch, 1.5);
    }
}
