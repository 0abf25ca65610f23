//! The decode-roofline demo: decode steps over a grid of batch × context, each sequence's KV
//! cache filled to its context with random keys and values (what a step reads, not what they
//! say, sets its time), and speculation's verify passes of K + 1 rows on the same axes. Each
//! point's bytes (the weights once, every sequence's cache) and FLOPs (2 per weight per row,
//! attention over the context) against its median step give attained GB/s and GFLOP/s, set
//! against this machine's measured bandwidth and compute roofs.

use super::measure::bench_tokens;
use super::roofline::{f32_matmul_gflop_s, gate_gflop_s, read_bandwidth_gb_s, shape_costs};
use crate::engine::kv_cache::{BlockTable, KvPool, BLOCK_TOKENS};
use crate::engine::step::Seq;
use crate::engine::{Engine, Forward, Model};
use crate::protocol::decode_roofline::{DecodeRoofline, StepCost};
use crate::protocol::demo::ModelCosts;
use crate::protocol::DemoSection;
use crate::stats::human_bytes;
use anyhow::Result;
use candle_core::{DType, Tensor};
use std::time::{Duration, Instant};

/// The Ks of the verification passes (K + 1 rows each, at most the 17 a pass takes).
const VERIFY_KS: [usize; 4] = [1, 3, 7, 15];

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<DecodeRoofline> {
    let model = &engine.model;
    let cfg = &model.cfg;
    let costs = shape_costs(cfg);
    let threads = engine.info.threads;
    let steps = section.decode_tokens.unwrap_or(4);
    let mut out = DecodeRoofline {
        bandwidth_gb_s: read_bandwidth_gb_s(section.buffer_mib.unwrap_or(256) << 20, 6, threads),
        f32_gflop_s: f32_matmul_gflop_s(256, cfg.hidden, cfg.ffn, 3)?,
        q_gflop_s: gate_gflop_s(model, 256, 3)?,
        weight_bytes_read: model.bytes_read_per_token(),
        kv_bytes_per_token: engine.info.kv_bytes_per_token,
        attention_flops_per_token: costs.attention_flops(1.0),
        kv_budget: budget(),
        ..DecodeRoofline::default()
    };
    progress(format!(
        "roofs: {:.1} GB/s, f32 {:.0} GFLOP/s, quantized {:.0} GFLOP/s",
        out.bandwidth_gb_s, out.f32_gflop_s, out.q_gflop_s
    ));
    let batches = match section.batches.is_empty() {
        true => vec![1, 2, 4, 8, 16, 32],
        false => section.batches.clone(),
    };
    let contexts: Vec<usize> = match section.prompt_lengths.is_empty() {
        true => vec![256, 2048, 8192, 16384],
        false => section.prompt_lengths.clone(),
    };
    let kv = |b: usize, c: usize| (b * (c + steps + 16)) as u64 * out.kv_bytes_per_token;
    for (i, &c) in contexts.iter().enumerate() {
        if c + steps + 16 > cfg.context_length {
            out.skipped.push((
                0,
                c,
                format!("beyond the context of {}", cfg.context_length),
            ));
            continue;
        }
        let fits: Vec<usize> = batches
            .iter()
            .copied()
            .filter(|&b| kv(b, c) <= out.kv_budget)
            .collect();
        for &b in batches.iter().filter(|&&b| kv(b, c) > out.kv_budget) {
            let why = format!(
                "needs {} of KV cache, over the budget of {}",
                human_bytes(kv(b, c)),
                human_bytes(out.kv_budget)
            );
            out.skipped.push((b, c, why));
        }
        let Some(&most) = fits.iter().max() else {
            continue;
        };
        let mut grid = Grid::filled(model, most, c)?;
        for &b in &fits {
            let step = grid.median_step(model, b, 1, steps)?;
            let p = cost(&costs, &out, b, c, 1, step);
            progress(format!(
                "batch {b} at {c} tokens: {:.2} ms, {:.1} GB/s, {:.1} GFLOP/s",
                crate::stats::millis(step),
                p.gb_s(),
                p.gflop_s()
            ));
            out.points.push(p);
        }
        if i == 0 {
            for k in VERIFY_KS {
                let step = grid.median_step(model, 1, k + 1, steps)?;
                out.verify.push(cost(&costs, &out, 1, c, k + 1, step));
            }
            progress(format!("verify passes at {c} tokens: K = {VERIFY_KS:?}"));
        }
    }
    Ok(out)
}

/// The most KV bytes one grid point may hold: half the available memory (else 8 GiB).
fn budget() -> u64 {
    crate::sysmon::available_for_runs().map_or(8 << 30, |a| a / 2)
}

/// A step's bytes and FLOPs: the weights read once, each sequence's cache at `c`; 2 FLOPs per
/// weight per row, and each row's attention over the context.
fn cost(
    costs: &ModelCosts,
    out: &DecodeRoofline,
    b: usize,
    c: usize,
    rows: usize,
    step: Duration,
) -> StepCost {
    StepCost {
        batch: b,
        context: c,
        rows,
        step,
        bytes: out.weight_bytes_read as f64 + (b * c) as f64 * out.kv_bytes_per_token as f64,
        flops: (b * rows) as f64 * costs.decode_flops(c),
    }
}

/// `batch` sequences' caches, each filled to the same context with random keys and values.
struct Grid {
    pool: KvPool,
    tables: Vec<BlockTable>,
    context: usize,
}

impl Grid {
    fn filled(model: &Model, batch: usize, context: usize) -> Result<Grid> {
        let c = &model.cfg;
        let per = (context + 32).div_ceil(BLOCK_TOKENS);
        let mut pool = model.new_pool(DType::F32, batch * per);
        let k = Tensor::randn(0f32, 1.0, (context, c.kv_heads, c.head_dim), model.device())?;
        let mut tables = Vec::with_capacity(batch);
        for _ in 0..batch {
            let mut t = BlockTable::default();
            pool.reserve(&mut t, context)?;
            for layer in 0..c.layers {
                pool.write(layer, &t, 0, &k, &k)?;
            }
            t.commit(context);
            tables.push(t);
        }
        Ok(Grid {
            pool,
            tables,
            context,
        })
    }

    /// The median of `steps` passes of `rows` tokens for each of the first `batch` sequences;
    /// the caches go back to the context after each.
    fn median_step(
        &mut self,
        model: &Model,
        batch: usize,
        rows: usize,
        steps: usize,
    ) -> Result<Duration> {
        let ids = bench_tokens(rows, model.cfg.vocab);
        // A verification needs every row's logits; a decode step each sequence's last.
        let opts = match rows {
            1 => Forward::LAST,
            _ => Forward::ALL,
        };
        let mut times = Vec::with_capacity(steps);
        for _ in 0..steps.max(1) {
            let mut seqs: Vec<Seq> = self.tables[..batch]
                .iter_mut()
                .map(|table| Seq {
                    tokens: &ids,
                    table,
                })
                .collect();
            let t = Instant::now();
            model.forward_batch(&mut self.pool, &mut seqs, opts)?;
            times.push(t.elapsed());
            for table in &mut self.tables[..batch] {
                self.pool.truncate(table, self.context);
            }
        }
        times.sort();
        Ok(times[times.len() / 2])
    }
}
