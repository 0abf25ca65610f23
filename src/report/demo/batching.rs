//! The batching and paged-KV demos' tables: one request stream under two policies, and its KV
//! memory reserved three ways.

use super::ms;
use crate::protocol::demo::{Batching, PagedKv};
use crate::report::table::{
    Align::{Left, Right},
    Table,
};
use crate::stats::human_bytes;
use std::fmt::Write;

fn stream_text(a: &crate::protocol::Arrivals, max_batch: usize) -> String {
    format!(
        "{} requests arriving at {} per second (Poisson, seed {}), prompts of {}–{} tokens, {}–{} \
         output tokens each, greedy, at most {max_batch} running at once",
        a.requests,
        a.rate,
        a.seed,
        a.prompt_tokens.0,
        a.prompt_tokens.1,
        a.output_tokens.0,
        a.output_tokens.1
    )
}

pub(super) fn batching(x: &Batching) -> String {
    let mut sweep = Table::new([
        ("batch", Right),
        ("decode step ms", Right),
        ("decode tok/s", Right),
        ("prefill tok/s", Right),
    ]);
    for p in &x.sweep {
        sweep.row([
            p.batch.to_string(),
            ms(p.step),
            format!("{:.1}", p.decode_tok_s),
            format!("{:.1}", p.prefill_tok_s),
        ]);
    }
    let mut pol = Table::new([
        ("policy", Left),
        ("tok/s", Right),
        ("TTFT mean ms", Right),
        ("TTFT p99 ms", Right),
        ("E2E mean ms", Right),
        ("E2E p99 ms", Right),
        ("mean batch", Right),
        ("steps", Right),
    ]);
    for p in &x.policies {
        pol.row([
            p.policy.to_string(),
            format!("{:.1}", p.tok_s),
            ms(p.ttft_mean),
            ms(p.ttft_p99),
            ms(p.e2e_mean),
            ms(p.e2e_p99),
            format!("{:.2}", p.mean_batch),
            p.steps.to_string(),
        ]);
    }
    format!(
        "## Batch size: throughput against latency\n\n\
         Each of B sequences has {} prompt tokens, then {} decode steps of one row each.\n\n{}\n\
         ## Static against continuous batching on one stream\n\n\
         {}. Times on the stream's clock (each step as long as it measured, idle gaps skipped).\n\n{}\n\
         {}\n\nSame tokens under both policies: {}.\n",
        x.prompt_tokens,
        x.decode_tokens,
        sweep.markdown(),
        stream_text(&x.arrivals, x.max_batch),
        pol.markdown(),
        batching_summary(x),
        if x.same_tokens { "yes" } else { "no" },
    )
}

/// One sentence of the batching demo's numbers (the README quotes it).
pub fn batching_summary(x: &Batching) -> String {
    let mut s = String::new();
    if let (Some(a), Some(b)) = (x.sweep.first(), x.sweep.last()) {
        let _ = write!(
            s,
            "Batch {} → {}: decode {:.1} → {:.1} tok/s ({:.1}×), each step {} → {} ms.",
            a.batch,
            b.batch,
            a.decode_tok_s,
            b.decode_tok_s,
            b.decode_tok_s / a.decode_tok_s.max(f64::MIN_POSITIVE),
            ms(a.step),
            ms(b.step)
        );
    }
    let find = |p: crate::protocol::SchedPolicy| x.policies.iter().find(|q| q.policy == p);
    if let (Some(st), Some(co)) = (
        find(crate::protocol::SchedPolicy::Static),
        find(crate::protocol::SchedPolicy::Continuous),
    ) {
        let _ = write!(
            s,
            " Static against continuous: {:.1} against {:.1} tok/s, TTFT mean {} against {} ms \
             (p99 {} against {}), E2E p99 {} against {} ms.",
            st.tok_s,
            co.tok_s,
            ms(st.ttft_mean),
            ms(co.ttft_mean),
            ms(st.ttft_p99),
            ms(co.ttft_p99),
            ms(st.e2e_p99),
            ms(co.e2e_p99)
        );
    }
    s
}

pub(super) fn paged_kv(x: &PagedKv) -> String {
    let (u, p, c) = x.totals();
    let (pw, cw) = x.waste();
    let (pu, pp, pc) = x.peaks();
    let b = |tokens: u64| human_bytes(tokens * x.kv_bytes_per_token);
    let mut mem = Table::new([
        ("allocation", Left),
        ("peak reserved", Right),
        ("mean reserved", Right),
        ("reserved but unused", Right),
    ]);
    let steps = x.points.len().max(1) as u64;
    mem.row([
        "tokens held (used)".into(),
        b(pu as u64),
        b(u / steps),
        "—".into(),
    ])
    .row([
        format!("paged, {}-token blocks", x.block_tokens),
        b(pp as u64),
        b(p / steps),
        format!("{:.1}%", pw * 100.0),
    ])
    .row([
        "contiguous, max length per sequence".into(),
        b(pc as u64),
        b(c / steps),
        format!("{:.1}%", cw * 100.0),
    ]);
    let mut runs = Table::new([
        ("KV blocks", Right),
        ("peak held", Right),
        ("preemptions", Right),
        ("tokens recomputed", Right),
        ("mean running", Right),
        ("steps", Right),
        ("tok/s", Right),
    ]);
    for r in [&x.ample, &x.scarce] {
        runs.row([
            r.kv_blocks.to_string(),
            r.peak_blocks.to_string(),
            r.preemptions.to_string(),
            r.recomputed_tokens.to_string(),
            format!("{:.2}", r.mean_running),
            r.steps.to_string(),
            format!("{:.1}", r.tok_s),
        ]);
    }
    format!(
        "## Contiguous against paged KV memory on one stream\n\n\
         {}; {} of KV per token. Over the run's {} steps:\n\n{}\n\
         ## Too few blocks: preemption\n\n\
         The same stream with {} blocks ({} tokens) instead of enough: when a running sequence \
         needs a block and none is free, the newest is preempted and recomputed later. \
         Contiguous allocation of each sequence's maximum length would fit {:.1} sequences in \
         that budget at once.\n\n{}\n{}\n\nSame tokens with too few blocks as with enough: {}.\n",
        stream_text(&x.arrivals, x.max_batch),
        human_bytes(x.kv_bytes_per_token),
        x.points.len(),
        mem.markdown(),
        x.scarce.kv_blocks,
        x.scarce.kv_blocks * x.block_tokens,
        x.contiguous_fit,
        runs.markdown(),
        paged_kv_summary(x),
        if x.same_tokens { "yes" } else { "no" },
    )
}

/// One sentence of the paged-KV demo's numbers (the README quotes it).
pub fn paged_kv_summary(x: &PagedKv) -> String {
    let (u, p, c) = x.totals();
    let (pw, cw) = x.waste();
    let steps = x.points.len().max(1) as u64;
    let b = |tokens: u64| human_bytes(tokens / steps * x.kv_bytes_per_token);
    format!(
        "Mean KV reserved per step: contiguous {} ({:.0}% unused), paged {} ({:.1}% unused), for {} \
         used. With {} blocks instead of {} the stream ran with {} preemptions ({} tokens \
         recomputed), {:.2} requests running on average against {:.2}, {:.1} against {:.1} tok/s.",
        b(c),
        cw * 100.0,
        b(p),
        pw * 100.0,
        b(u),
        x.scarce.kv_blocks,
        x.ample.kv_blocks,
        x.scarce.preemptions,
        x.scarce.recomputed_tokens,
        x.scarce.mean_running,
        x.ample.mean_running,
        x.scarce.tok_s,
        x.ample.tok_s
    )
}
