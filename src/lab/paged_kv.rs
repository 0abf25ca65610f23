//! The paged-KV demo: one request stream, and the memory its KV cache takes when each sequence
//! reserves its maximum length contiguously at admission (as before paging) against 16-token
//! blocks taken as the tokens come; then the same stream with too few blocks, where the scheduler
//! preempts and recomputes, and every request still generates the same tokens.

use crate::engine::kv_cache::BLOCK_TOKENS;
use crate::engine::sched::SchedConfig;
use crate::engine::Engine;
use crate::lab::batching::ample_blocks;
use crate::lab::stream::{self, StreamRun};
use crate::protocol::demo::{BudgetRun, PagedKv};
use crate::protocol::DemoSection;
use anyhow::Result;

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<PagedKv> {
    let model = &engine.model;
    let arrivals = section.arrivals();
    let max_batch = section.max_batch();
    let reqs = stream::requests(&arrivals, model.cfg.vocab)?;
    let cfg = |kv_blocks| SchedConfig {
        max_batch,
        kv_blocks,
        ..SchedConfig::default()
    };
    let ample_budget = ample_blocks(&reqs, max_batch);
    let ample = stream::run(
        model,
        cfg(ample_budget),
        &reqs,
        &[],
        stream::Pace::Skip,
        &mut |_, _| {},
    )?;
    let out = budget_run(ample_budget, &ample);
    progress(format!(
        "enough blocks: peak {} blocks, {} preemptions",
        out.peak_blocks, out.preemptions
    ));
    // Half the peak, but never less than the longest request needs alone.
    let longest = reqs
        .iter()
        .map(|a| (a.req.prompt.len() + a.req.max_tokens).div_ceil(BLOCK_TOKENS))
        .max()
        .unwrap_or(1);
    let scarce_budget = section
        .kv_blocks
        .unwrap_or_else(|| (out.peak_blocks / 2).max(longest));
    let scarce = stream::run(
        model,
        cfg(scarce_budget),
        &reqs,
        &[],
        stream::Pace::Skip,
        &mut |_, _| {},
    )?;
    let scarce_out = budget_run(scarce_budget, &scarce);
    progress(format!(
        "{scarce_budget} blocks: {} preemptions, {} tokens recomputed",
        scarce_out.preemptions, scarce_out.recomputed_tokens
    ));
    let mean_len = reqs
        .iter()
        .map(|a| (a.req.prompt.len() + a.req.max_tokens) as f64)
        .sum::<f64>()
        / reqs.len().max(1) as f64;
    let same_tokens = ample
        .reqs
        .iter()
        .zip(&scarce.reqs)
        .all(|(a, b)| a.tokens == b.tokens);
    let max_tokens_cap = arrivals.output_tokens.1;
    Ok(PagedKv {
        arrivals,
        max_batch,
        block_tokens: BLOCK_TOKENS,
        kv_bytes_per_token: ample.kv_bytes_per_token,
        points: ample.kv,
        ample: out,
        scarce: scarce_out,
        contiguous_fit: (scarce_budget * BLOCK_TOKENS) as f64 / mean_len.max(1.0),
        same_tokens,
        max_model_len: section.max_model_len().min(model.cfg.context_length),
        max_tokens_cap,
    })
}

fn budget_run(kv_blocks: usize, r: &StreamRun) -> BudgetRun {
    BudgetRun {
        kv_blocks,
        steps: r.steps,
        makespan: r.makespan(),
        tok_s: crate::stats::tok_per_s(r.generated(), r.makespan()),
        preemptions: r.preemptions,
        recomputed_tokens: r.recomputed,
        mean_running: r.mean_running(),
        peak_blocks: r.peak_blocks(),
        busy: r.busy,
        recompute: r.recompute,
    }
}
