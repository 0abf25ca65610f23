//! The batching and paged-KV demos' tables: one request stream under two policies, and its KV
//! memory reserved three ways.

use crate::protocol::demo::{Batching, PagedKv};
use crate::report::table::{
    Cell::{Bytes, Count, Ms, Num, Percent},
    Column, Show, Table,
};
use crate::stats::{fmt_ms, human_bytes};
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

/// The batch sweep, and the two policies on one stream.
pub(super) fn batching_tables(x: &Batching) -> [Table; 2] {
    let mut sweep = Table::new([
        Column::right("batch"),
        Column::right("decode step ms").short("step"),
        Column::right("decode tok/s"),
        Column::right("prefill tok/s").markdown_only(),
    ]);
    for p in &x.sweep {
        sweep.row([
            Count(p.batch as u64),
            Ms(p.step),
            Num(p.decode_tok_s, 1),
            Num(p.prefill_tok_s, 1),
        ]);
    }
    let mut pol = Table::new([
        Column::left("policy"),
        Column::right("tok/s"),
        Column::right("TTFT mean ms").short("TTFT mean"),
        Column::right("TTFT p99 ms").short("TTFT p99"),
        Column::right("E2E mean ms").markdown_only(),
        Column::right("E2E p99 ms").short("E2E p99"),
        Column::right("mean batch"),
        Column::right("steps").markdown_only(),
    ]);
    for p in &x.policies {
        pol.row([
            p.policy.to_string().into(),
            Num(p.tok_s, 1),
            Ms(p.ttft_mean),
            Ms(p.ttft_p99),
            Ms(p.e2e_mean),
            Ms(p.e2e_p99),
            Num(p.mean_batch, 2),
            Count(p.steps),
        ]);
    }
    [sweep, pol]
}

pub(super) fn batching(x: &Batching) -> String {
    let [sweep, pol] = batching_tables(x);
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
            fmt_ms(a.step, 2),
            fmt_ms(b.step, 2)
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
            fmt_ms(st.ttft_mean, 2),
            fmt_ms(co.ttft_mean, 2),
            fmt_ms(st.ttft_p99, 2),
            fmt_ms(co.ttft_p99, 2),
            fmt_ms(st.e2e_p99, 2),
            fmt_ms(co.e2e_p99, 2)
        );
    }
    s
}

/// KV memory reserved three ways, and the stream with enough blocks and with too few.
pub(super) fn paged_kv_tables(x: &PagedKv) -> [Table; 2] {
    let (u, p, c) = x.totals();
    let (pw, cw) = x.waste();
    let (pu, pp, pc) = x.peaks();
    let b = |tokens: u64| Bytes(tokens * x.kv_bytes_per_token);
    let mut mem = Table::new([
        Column::left("allocation"),
        Column::right("peak reserved").short("peak"),
        Column::right("mean reserved").markdown_only(),
        Column::right("reserved but unused").short("unused"),
    ]);
    let steps = x.points.len().max(1) as u64;
    let paged = |label: String, show| {
        (
            show,
            [label.into(), b(pp as u64), b(p / steps), Percent(pw, 1)],
        )
    };
    let contiguous = |label: String, show| {
        (
            show,
            [label.into(), b(pc as u64), b(c / steps), Percent(cw, 1)],
        )
    };
    // The report names each allocation in full, the pane in a word and contiguous first.
    for (show, cells) in [
        (
            Show::Markdown,
            [
                "tokens held (used)".into(),
                b(pu as u64),
                b(u / steps),
                "—".into(),
            ],
        ),
        paged(
            format!("paged, {}-token blocks", x.block_tokens),
            Show::Markdown,
        ),
        contiguous(
            "contiguous, each sequence's exact length (known in advance: the kindest)".into(),
            Show::Markdown,
        ),
        contiguous("contiguous".into(), Show::Pane),
        paged("paged".into(), Show::Pane),
    ] {
        mem.row_in(show, cells);
    }
    // The coarse baselines: what servers before paging reserved.
    let (cap, ctx) = x.coarse_totals();
    let (wcap, wctx) = x.coarse_waste();
    let peak = |per: &dyn Fn(&crate::protocol::demo::KvPoint) -> usize| {
        x.points.iter().map(per).max().unwrap_or(0) as u64
    };
    mem.row_in(
        Show::Markdown,
        [
            format!(
                "contiguous, prompt + the client's max_tokens ({})",
                x.max_tokens_cap
            )
            .into(),
            b(peak(&|k| k.prompts + k.running * x.max_tokens_cap)),
            b(cap / steps),
            Percent(wcap, 1),
        ],
    );
    mem.row_in(
        Show::Markdown,
        [
            format!(
                "contiguous, the server's context limit ({} tokens)",
                x.max_model_len
            )
            .into(),
            b(peak(&|k| k.running * x.max_model_len)),
            b(ctx / steps),
            Percent(wctx, 1),
        ],
    );
    let mut runs = Table::new([
        Column::right("KV blocks"),
        Column::right("peak held").markdown_only(),
        Column::right("preemptions"),
        Column::right("tokens recomputed").short("recomputed"),
        Column::right("mean running"),
        Column::right("steps").markdown_only(),
        Column::right("mean step ms").markdown_only(),
        Column::right("busy s").markdown_only(),
        Column::right("recompute ms").markdown_only(),
        Column::right("tok/s"),
    ]);
    for r in [&x.ample, &x.scarce] {
        runs.row([
            Count(r.kv_blocks as u64),
            Count(r.peak_blocks as u64),
            Count(r.preemptions as u64),
            Count(r.recomputed_tokens as u64),
            Num(r.mean_running, 2),
            Count(r.steps),
            Ms(r.step_mean()),
            Num(r.busy.as_secs_f64(), 2),
            Ms(r.recompute),
            Num(r.tok_s, 1),
        ]);
    }
    let same = format!(
        "same tokens with too few blocks: {}",
        if x.same_tokens { "yes" } else { "no" }
    );
    [mem, runs.below(same)]
}

pub(super) fn paged_kv(x: &PagedKv) -> String {
    let [mem, runs] = paged_kv_tables(x);
    format!(
        "## Contiguous against paged KV memory on one stream\n\n\
         {}; {} of KV per token. Over the run's {} steps:\n\n{}\n\
         ## Too few blocks: preemption\n\n\
         The same stream with {} blocks ({} tokens) instead of enough: when a running sequence \
         needs a block and none is free, the newest is preempted and recomputed later. \
         Contiguous allocation of each sequence's exact length would fit {:.1} sequences in \
         that budget at once (with the length known in advance). Recompute ms is each step's \
         time shared among its rows, the recomputed prefill rows' part.\n\n{}\n{}\n\nSame tokens with too few blocks as with enough: {}.\n",
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
