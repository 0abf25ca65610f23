//! What `labtui bench batch` measures on the engine: B sequences prefilled in one step, then
//! decoded together, one row each per step, through [`crate::engine::Model::forward_batch`] over
//! one paged pool. Latency is per step (every sequence waits for it), throughput is over all
//! sequences.

use crate::engine::kv_cache::BLOCK_TOKENS;
use crate::engine::sampling::argmax;
use crate::engine::{BlockTable, Forward, Model, Seq};
use crate::lab::measure::bench_tokens;
use crate::stats::{percentile, tok_per_s};
use candle_core::DType;
use serde::Serialize;
use std::time::{Duration, Instant};

/// One batch size's timings.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTimes {
    pub batch: usize,
    pub prompt_tokens: usize,
    /// The one step that prefilled every prompt.
    pub prefill: Duration,
    /// Each decode step (one new token for every sequence).
    pub steps: Vec<Duration>,
}

/// One row of the table: latencies in milliseconds, throughputs in tokens per second.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRow {
    pub batch: usize,
    pub prefill_ms: f64,
    pub prefill_tok_s: f64,
    pub decode_ms_mean: f64,
    pub decode_ms_p50: f64,
    pub decode_ms_p90: f64,
    pub decode_ms_p99: f64,
    pub decode_tok_s: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl BatchTimes {
    /// The table row: prefill tok/s = B × prompt ÷ prefill time; decode tok/s = B × steps ÷ their
    /// total time; decode latency is the step time (each sequence's time between tokens).
    pub fn row(&self) -> BatchRow {
        let total: Duration = self.steps.iter().sum();
        let mean = match self.steps.len() {
            0 => Duration::ZERO,
            n => total / n as u32,
        };
        BatchRow {
            batch: self.batch,
            prefill_ms: ms(self.prefill),
            prefill_tok_s: tok_per_s(self.batch * self.prompt_tokens, self.prefill),
            decode_ms_mean: ms(mean),
            decode_ms_p50: ms(percentile(&self.steps, 50.0)),
            decode_ms_p90: ms(percentile(&self.steps, 90.0)),
            decode_ms_p99: ms(percentile(&self.steps, 99.0)),
            decode_tok_s: tok_per_s(self.batch * self.steps.len(), total),
        }
    }
}

/// `batch` sequences of `prompt` distinct tokens each, prefilled in one step, then `tokens`
/// greedy decode steps of one row per sequence.
pub fn measure(
    model: &Model,
    batch: usize,
    prompt: usize,
    tokens: usize,
) -> candle_core::Result<BatchTimes> {
    let vocab = model.cfg.vocab;
    let all = bench_tokens(batch * prompt + batch, vocab);
    let prompts: Vec<&[u32]> = (0..batch)
        .map(|j| &all[j * (prompt + 1)..j * (prompt + 1) + prompt])
        .collect();
    let per_seq = (prompt + tokens + 1).div_ceil(BLOCK_TOKENS);
    let mut pool = model.new_pool(DType::F32, batch * per_seq);
    let mut tables = vec![BlockTable::default(); batch];
    let step = |pool: &mut _, tables: &mut [BlockTable], inputs: &[&[u32]]| {
        let mut seqs: Vec<Seq> = tables
            .iter_mut()
            .zip(inputs)
            .map(|(table, tokens)| Seq { tokens, table })
            .collect();
        let t = Instant::now();
        let out = model.forward_batch(pool, &mut seqs, Forward::LAST)?;
        let took = t.elapsed();
        let next = out
            .iter()
            .map(|l| Ok(argmax(&Model::last_logits(l)?) as u32))
            .collect::<candle_core::Result<Vec<u32>>>()?;
        Ok::<_, candle_core::Error>((took, next))
    };
    let (prefill, mut next) = step(&mut pool, &mut tables, &prompts)?;
    let mut steps = Vec::with_capacity(tokens);
    for _ in 0..tokens {
        let inputs: Vec<[u32; 1]> = next.iter().map(|&t| [t]).collect();
        let inputs: Vec<&[u32]> = inputs.iter().map(|t| &t[..]).collect();
        let (took, n) = step(&mut pool, &mut tables, &inputs)?;
        steps.push(took);
        next = n;
    }
    for t in &mut tables {
        pool.release(t);
    }
    Ok(BatchTimes {
        batch,
        prompt_tokens: prompt,
        prefill,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_formulas() {
        let t = BatchTimes {
            batch: 4,
            prompt_tokens: 100,
            prefill: Duration::from_millis(500),
            steps: [10, 20, 30, 40].map(Duration::from_millis).to_vec(),
        };
        let r = t.row();
        assert_eq!(r.prefill_tok_s, 800.0);
        assert_eq!(r.decode_ms_mean, 25.0);
        assert_eq!(r.decode_ms_p50, 20.0);
        assert_eq!(r.decode_ms_p99, 40.0);
        // 4 sequences × 4 tokens in 0.1 s.
        assert!((r.decode_tok_s - 160.0).abs() < 1e-9);
    }

    #[test]
    fn a_synthetic_batch_runs_and_gives_back_its_blocks() {
        let e = crate::engine::Engine::synthetic(&Default::default(), &candle_core::Device::Cpu)
            .unwrap();
        let t = measure(&e.model, 3, 20, 4).unwrap();
        assert_eq!((t.batch, t.steps.len()), (3, 4));
        assert!(t.row().decode_tok_s > 0.0);
    }
}
