//! A demo's report: the narration, then its tables in Markdown, and its charts (PNG and SVG), all
//! from the run's own numbers. The tables are [`Table`] values that the demo pane draws too
//! ([`result_tables`]).

use super::table::{
    yes_no, Cell,
    Cell::{Bytes, Count, Ms, Num, Percent, Times},
    Column, Show, Table,
};
use crate::protocol::demo::{Comparison, ModelCosts, QuantRow, QuantSweep, SpecSweep, Sweep};
use crate::protocol::{DemoResult, DemoRun};
use crate::stats::human_bytes;
use std::fmt::Write;

mod batching;
mod charts;
mod decode_roofline;
pub mod facts;
pub mod flash;
mod roofline;
pub mod sensitivity;
mod serving;

pub use charts::{charts, write_charts, Chart};
pub use facts::{facts, narrate};
pub use sensitivity::sensitivity_tables;

/// The whole report: title, the stamp, what ran, the narration steps (templates filled with
/// this run's numbers) and the tables.
pub fn markdown(run: &DemoRun, steps: &[String]) -> String {
    let mut s = format!("# Demo: {}\n\n", run.demo);
    if let Some(stamp) = &run.stamp {
        s.push_str(&super::stamp::markdown(stamp));
        s.push('\n');
    }
    let _ = write!(s, "Model {} · {} threads\n\n", run.model, run.threads);
    if !steps.is_empty() {
        s.push_str("## Steps\n\n");
        for (i, n) in narrate(steps, run).iter().enumerate() {
            let _ = writeln!(s, "{}. {n}", i + 1);
        }
        s.push('\n');
    }
    s.push_str(&tables(&run.result));
    if let Some(c) = &run.costs {
        s.push_str(&model_notes(&run.result, c));
    }
    s
}

/// What the model's shape adds to a result: the KV cache's layouts, dtypes and scale, or how
/// the quantization table counts the head.
fn model_notes(r: &DemoResult, c: &ModelCosts) -> String {
    match r {
        DemoResult::KvCache(_) => kv_what_if(c),
        DemoResult::Quantization(_) => format!(
            "\nBits per weight read: 8 × the bytes a decode step reads ÷ the {:.1} M parameters \
             of its matmuls (the output head included, the embedding row it looks up not). The \
             output head {}.\n",
            c.layer_params as f64 / 1e6 + c.head_params as f64 / 1e6,
            if c.tied {
                "is the token embeddings' own blocks: held once and read once"
            } else {
                "is held apart from the token embeddings (the file stores both, or the \
                 requantised head no longer shares the embeddings' blocks): weights MiB holds \
                 both, a decode step reads the head and one embedding row"
            }
        ),
        _ => String::new(),
    }
}

/// KV bytes per token for other attention layouts and element types, and at a server's scale.
fn kv_what_if(c: &ModelCosts) -> String {
    let mut layouts = Table::new([
        Column::left("attention layout"),
        Column::right("KV heads"),
        Column::right(format!("per token, {}", c.kv_dtype)),
        Column::right("per token, f16"),
    ]);
    let this = format!(
        "this model: grouped-query, {} query heads share each KV head",
        c.heads / c.kv_heads.max(1)
    );
    for (name, kv) in [
        (this, c.kv_heads),
        (
            "multi-head (one KV head per query head)".to_string(),
            c.heads,
        ),
        ("multi-query (one KV head)".to_string(), 1),
    ] {
        layouts.row([
            name.into(),
            Count(kv as u64),
            Bytes(c.kv_bytes_with(kv, c.kv_dtype_bytes)),
            Bytes(c.kv_bytes_with(kv, 2)),
        ]);
    }
    let mut scale = Table::new([
        Column::right("sequences"),
        Column::right("context tokens"),
        Column::right(format!("this model, {}", c.kv_dtype)),
        Column::right("this model, f16"),
        Column::right("multi-head, f16"),
    ]);
    for seqs in [1u64, 8, 32] {
        for ctx in [4096u64, 32_768] {
            let at = |per: u64| Bytes(per * seqs * ctx);
            scale.row([
                Count(seqs),
                Count(ctx),
                at(c.kv_bytes_per_token),
                at(c.kv_bytes_with(c.kv_heads, 2)),
                at(c.kv_bytes_with(c.heads, 2)),
            ]);
        }
    }
    format!(
        "\n## Per token: 2 × layers × KV heads × head dim × bytes\n\n\
         2 (K and V) × {} layers × {} KV heads × {} dims × {} B ({}) = {}. labtui keeps the cache in \
         {} (`--kv-dtype f16` halves it); llama.cpp and Hugging Face keep f16.\n\n{}\n\
         ## At a server's scale\n\n{}",
        c.layers,
        c.kv_heads,
        c.head_dim,
        c.kv_dtype_bytes,
        c.kv_dtype,
        human_bytes(c.kv_bytes_per_token),
        c.kv_dtype,
        layouts.markdown(),
        scale.markdown()
    )
}

/// The tables of one result in Markdown, with the prose around them.
pub fn tables(r: &DemoResult) -> String {
    match r {
        DemoResult::PrefillVsDecode(x) => sweep(x),
        DemoResult::KvCache(x) => comparison(x),
        DemoResult::Roofline(x) => roofline::markdown(x),
        DemoResult::Speculation(x) => speculation(x),
        DemoResult::Quantization(x) => quantization(x),
        DemoResult::Batching(x) => batching::batching(x),
        DemoResult::PagedKv(x) => batching::paged_kv(x),
        DemoResult::Sensitivity(x) => sensitivity::demo_markdown(x),
        DemoResult::FlashAttention(x) => flash::markdown(x),
        DemoResult::DecodeRoofline(x) => decode_roofline::markdown(x),
        DemoResult::ServingMetrics(x) => serving::markdown(x),
    }
}

/// Every table of one result, in the report's order: the report writes the columns and rows it
/// shows, the demo pane draws its own (see [`Show`]).
pub fn result_tables(r: &DemoResult) -> Vec<Table> {
    match r {
        DemoResult::PrefillVsDecode(x) => sweep_tables(x).into(),
        DemoResult::KvCache(x) => comparison_tables(x).into(),
        DemoResult::Roofline(x) => roofline::tables(x).into(),
        DemoResult::Speculation(x) => vec![speculation_table(x)],
        DemoResult::Quantization(x) => vec![quant_rows(&x.rows, x.matmul_params)],
        DemoResult::Batching(x) => batching::batching_tables(x).into(),
        DemoResult::PagedKv(x) => batching::paged_kv_tables(x).into(),
        DemoResult::Sensitivity(x) => sensitivity::demo_tables(x),
        DemoResult::FlashAttention(x) => flash::tables(x),
        DemoResult::DecodeRoofline(x) => decode_roofline::tables(x),
        DemoResult::ServingMetrics(x) => serving::tables(x),
    }
}

/// The stream a demo ran, in words.
fn quantization(x: &QuantSweep) -> String {
    let mut s = format!(
        "## Weight types side by side\n\n\
         Prefill of {} tokens, decode of {}; quality over {} positions of labtui's own sources, \
         KL and top-1 against the loaded weights.\n\n",
        x.prefill_tokens, x.decode_tokens, x.scored
    );
    s.push_str(&quant_table(&x.rows, x.matmul_params));
    for (t, why) in &x.refused {
        let _ = writeln!(s, "\n{t} skipped: {why}");
    }
    s
}

fn speculation_table(x: &SpecSweep) -> Table {
    let mut t = Table::new([
        Column::right("mode · K").pane_only(),
        Column::left("draft mode").markdown_only(),
        Column::right("K").markdown_only(),
        Column::right("decode tok/s").short("tok/s"),
        Column::right("acceptance"),
        Column::right("tokens per step").markdown_only(),
        Column::right("speedup"),
        Column::left("same text"),
    ]);
    for p in &x.points {
        t.row([
            Cell::Text(format!("{} {}", p.mode, p.k)),
            p.mode.to_string().into(),
            Count(p.k as u64),
            Num(p.decode_tok_s, 1),
            Percent(p.acceptance, 0),
            Num(p.mean_accepted_len, 2),
            Times(p.speedup, 2),
            yes_no(p.same_text),
        ]);
    }
    t.above(format!("plain decoding {:.1} tok/s", x.plain_tok_s))
}

fn speculation(x: &SpecSweep) -> String {
    format!(
        "## Speculative decoding against plain decoding\n\n\
         Prompt {} tokens, {} generated, greedy; plain decoding {:.1} tok/s (mean of a run before and after).\n\n{}",
        x.prompt_tokens,
        x.generated_tokens,
        x.plain_tok_s,
        speculation_table(x).markdown()
    )
}

/// By prompt length, and by output length (the report's alone).
fn sweep_tables(x: &Sweep) -> [Table; 2] {
    let mut prompts = Table::new([
        Column::right("prompt tokens").short("prompt"),
        Column::right("prefill ms").short("prefill"),
        Column::right("prefill tok/s").markdown_only(),
        Column::right("prefill tok/s").pane_only(),
        Column::right("decode ms/token").short("decode/token"),
        Column::right("decode tok/s"),
        Column::right("prefill ÷ decode tok/s").markdown_only(),
    ]);
    for p in &x.prompts {
        prompts.row([
            Count(p.prompt_tokens as u64),
            Ms(p.prefill),
            Num(p.prefill_tok_s, 1),
            Num(p.prefill_tok_s, 0),
            Ms(p.decode_step),
            Num(p.decode_tok_s, 1),
            Times(p.prefill_tok_s / p.decode_tok_s.max(f64::MIN_POSITIVE), 1),
        ]);
    }
    let mut outputs = Table::new([
        Column::right("output tokens"),
        Column::right("prefill ms"),
        Column::right("decode ms"),
        Column::right("decode share"),
    ])
    .report_only();
    for o in &x.outputs {
        outputs.row([
            Count(o.output_tokens as u64),
            Ms(o.prefill),
            Ms(o.decode),
            Percent(o.decode_share, 0),
        ]);
    }
    [prompts, outputs]
}

fn sweep(x: &Sweep) -> String {
    let [prompts, outputs] = sweep_tables(x);
    let mut s = format!(
        "## Prefill and decode by prompt length\n\n{}",
        prompts.markdown()
    );
    if !x.skipped.is_empty() {
        let _ = writeln!(s, "\nSkipped (past the model's context): {:?}", x.skipped);
    }
    s.push_str("\n## Where the time goes by output length (16-token prompt)\n\n");
    s.push_str(&outputs.markdown());
    s
}

/// Per-token time with and without the cache, and what the cache costs (the report's alone).
fn comparison_tables(x: &Comparison) -> [Table; 2] {
    let mut steps = Table::new([
        Column::right("context tokens").short("context"),
        Column::right("with cache ms").short("with cache"),
        Column::right("without cache ms").short("without"),
        Column::right("without ÷ with").short("ratio"),
    ]);
    // The report shows about 24 steps and the one at 256 tokens, the pane about 6; both the last.
    let (shown, every) = (
        x.gaps.len().div_ceil(24).max(1),
        x.gaps.len().div_ceil(6).max(1),
    );
    for (i, g) in x.gaps.iter().enumerate() {
        let last = i + 1 == x.gaps.len();
        let markdown = i % shown == 0 || last || g.context == 256;
        let Some(show) = Show::of(markdown, i % every == 0 || last) else {
            continue;
        };
        steps.row_in(
            show,
            [
                Count(g.context as u64),
                Ms(g.cached),
                Ms(g.no_cache),
                Times(g.ratio, 1),
            ],
        );
    }
    [steps.below(cache_line(x)), costs_table(x)]
}

/// The pane's line under the steps: what the cache holds and whether the tokens agreed.
fn cache_line(x: &Comparison) -> String {
    format!(
        "cache {} per token, {} held · same tokens {}/{}{}",
        human_bytes(x.kv_bytes_per_token),
        human_bytes(x.kv_bytes),
        x.compared - x.mismatches.len() - x.ties.len(),
        x.compared,
        match x.ties.len() {
            0 => String::new(),
            n => format!(" ({n} near tie{})", if n == 1 { "" } else { "s" }),
        }
    )
}

fn costs_table(x: &Comparison) -> Table {
    let mut costs = Table::new([Column::left(""), Column::right("bytes")]).report_only();
    costs
        .row(["per token".into(), Bytes(x.kv_bytes_per_token)])
        .row([
            Cell::Text(format!(
                "held after {} tokens",
                x.prompt_tokens
                    .saturating_add(x.generated_tokens)
                    .saturating_sub(1)
            )),
            Bytes(x.kv_bytes),
        ])
        .row([
            Cell::Text(format!(
                "allocated (the pool grows {} tokens at a time)",
                crate::engine::kv_cache::GROW_TOKENS
            )),
            Bytes(x.kv_reserved_bytes),
        ])
        .row(["the weights, for scale".into(), Bytes(x.weight_bytes)]);
    costs
}

/// "(differed at contexts …)" when the cached and uncached runs disagreed somewhere.
fn differences(x: &Comparison) -> String {
    match (x.mismatches.is_empty(), x.ties.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" (differed at contexts {:?})", x.mismatches),
        (true, false) => format!(
            " (near ties at contexts {:?}: prefill and decode round differently)",
            x.ties
        ),
        (false, false) => format!(
            " (differed at contexts {:?}; near ties at {:?})",
            x.mismatches, x.ties
        ),
    }
}

fn comparison(x: &Comparison) -> String {
    let (cached, uncached) = x.totals();
    let [steps, costs] = comparison_tables(x);
    format!(
        "## Per-token time with and without the KV cache\n\n\
         Prompt {} tokens, {} generated; without the cache, measured at every context length divisible by {} and at the last step.\n\n\
         {}\n\
         All decode steps: {:.2} s with the cache, about {:.2} s without (interpolated between the measured steps).\n\n\
         Same tokens: {} of {} compared steps picked the cached run's token{}.\n\n\
         ## What the cache costs\n\n{}",
        x.prompt_tokens,
        x.generated_tokens,
        x.no_cache_every,
        steps.markdown(),
        cached.as_secs_f64(),
        uncached.as_secs_f64(),
        x.compared
            .saturating_sub(x.mismatches.len())
            .saturating_sub(x.ties.len()),
        x.compared,
        differences(x),
        costs.markdown(),
    )
}

/// Fallbacks as "Q4_K→Q5_0 ×169".
fn fallback_text(v: &crate::protocol::Variant) -> String {
    v.fallbacks
        .iter()
        .map(|f| format!("{}→{} ×{}", f.wanted, f.used, f.tensors))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A row's type: the weights', and the KV cache's when it is not f32.
pub fn type_label(v: &crate::protocol::Variant) -> String {
    let weights = v.mix.clone().unwrap_or_else(|| v.quant.to_string());
    match v.kv_dtype {
        crate::protocol::KvDtype::F32 => weights,
        kv => format!("{weights}, KV {kv}"),
    }
}

/// The weight types side by side: the report's twelve columns, the pane's six. `params` are
/// the matmuls' parameters (0: bits per weight not known).
fn quant_rows(rows: &[QuantRow], params: u64) -> Table {
    let md = |h: &str| Column::left(h).markdown_only();
    let mut t = Table::new([
        Column::left("type"),
        Column::left("weights").pane_only(),
        md("weights MiB"),
        md("read/token MiB"),
        md("bits/weight read"),
        md("prefill tok/s"),
        Column::left("decode tok/s"),
        md("decode GB/s"),
        Column::left("perplexity"),
        Column::left("mean KL").pane_only(),
        md("mean KL"),
        Column::left("top-1"),
        md("requantise s"),
        md("fallbacks"),
    ]);
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    for r in rows {
        t.row([
            type_label(&r.variant).into(),
            Bytes(r.variant.weight_bytes),
            Num(mib(r.variant.weight_bytes), 1),
            Num(mib(r.read_per_token), 1),
            if params > 0 {
                Num(8.0 * r.read_per_token as f64 / params as f64, 2)
            } else {
                "—".into()
            },
            Num(r.prefill_tok_s, 1),
            Num(r.decode_tok_s, 1),
            Num(r.decode_gb_s(), 1),
            Num(r.quality.perplexity, 3),
            Num(r.quality.mean_kl, 4),
            Num(r.quality.mean_kl, 5),
            Percent(r.quality.top1, 1),
            Num(r.variant.took.as_secs_f64(), 1),
            fallback_text(&r.variant).into(),
        ]);
    }
    t
}

/// The Markdown table.
pub fn quant_table(rows: &[QuantRow], params: u64) -> String {
    quant_rows(rows, params).markdown()
}
