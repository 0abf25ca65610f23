//! A demo's report: the narration, then its tables in Markdown, and its charts (PNG and SVG), all
//! from the run's own numbers.

use super::plot::Series;
use super::table::{
    Align::{Left, Right},
    Table,
};
use crate::protocol::demo::{Comparison, QuantRow, QuantSweep, Roofline, SpecSweep, Sweep};
use crate::protocol::{DemoResult, DemoRun, Setting};
use crate::stats::human_bytes;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod batching;

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

/// The whole report: title, what ran, the narration steps and the tables.
pub fn markdown(run: &DemoRun, steps: &[String]) -> String {
    let mut s = format!(
        "# Demo: {}\n\nModel {} · {} threads\n\n",
        run.demo, run.model, run.threads
    );
    if !steps.is_empty() {
        s.push_str("## Steps\n\n");
        for (i, n) in steps.iter().enumerate() {
            let _ = writeln!(s, "{}. {n}", i + 1);
        }
        s.push('\n');
    }
    s.push_str(&tables(&run.result));
    s
}

/// The tables of one result.
pub fn tables(r: &DemoResult) -> String {
    match r {
        DemoResult::PrefillVsDecode(x) => sweep(x),
        DemoResult::KvCache(x) => comparison(x),
        DemoResult::Roofline(x) => roofline(x),
        DemoResult::Speculation(x) => speculation(x),
        DemoResult::Quantization(x) => quantization(x),
        DemoResult::Batching(x) => batching::batching(x),
        DemoResult::PagedKv(x) => batching::paged_kv(x),
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
    s.push_str(&quant_table(&x.rows));
    for (t, why) in &x.refused {
        let _ = writeln!(s, "\n{t} skipped: {why}");
    }
    s
}

fn speculation(x: &SpecSweep) -> String {
    let mut t = Table::new([
        ("draft mode", Left),
        ("K", Right),
        ("decode tok/s", Right),
        ("acceptance", Right),
        ("tokens per step", Right),
        ("speedup", Right),
        ("same text", Left),
    ]);
    for p in &x.points {
        t.row([
            p.mode.to_string(),
            p.k.to_string(),
            format!("{:.1}", p.decode_tok_s),
            format!("{:.0}%", p.acceptance * 100.0),
            format!("{:.2}", p.mean_accepted_len),
            format!("{:.2}×", p.speedup),
            (if p.same_text { "yes" } else { "no" }).into(),
        ]);
    }
    format!(
        "## Speculative decoding against plain decoding\n\n\
         Prompt {} tokens, {} generated, greedy; plain decoding {:.1} tok/s (mean of a run before and after).\n\n{}",
        x.prompt_tokens,
        x.generated_tokens,
        x.plain_tok_s,
        t.markdown()
    )
}

fn sweep(x: &Sweep) -> String {
    let mut prompts = Table::new([
        ("prompt tokens", Right),
        ("prefill ms", Right),
        ("prefill tok/s", Right),
        ("decode ms/token", Right),
        ("decode tok/s", Right),
        ("prefill ÷ decode tok/s", Right),
    ]);
    for p in &x.prompts {
        prompts.row([
            p.prompt_tokens.to_string(),
            ms(p.prefill),
            format!("{:.1}", p.prefill_tok_s),
            ms(p.decode_step),
            format!("{:.1}", p.decode_tok_s),
            format!(
                "{:.1}×",
                p.prefill_tok_s / p.decode_tok_s.max(f64::MIN_POSITIVE)
            ),
        ]);
    }
    let mut s = format!(
        "## Prefill and decode by prompt length\n\n{}",
        prompts.markdown()
    );
    if !x.skipped.is_empty() {
        let _ = writeln!(s, "\nSkipped (past the model's context): {:?}", x.skipped);
    }
    let mut outputs = Table::new([
        ("output tokens", Right),
        ("prefill ms", Right),
        ("decode ms", Right),
        ("decode share", Right),
    ]);
    for o in &x.outputs {
        outputs.row([
            o.output_tokens.to_string(),
            ms(o.prefill),
            ms(o.decode),
            format!("{:.0}%", o.decode_share * 100.0),
        ]);
    }
    s.push_str("\n## Where the time goes by output length (16-token prompt)\n\n");
    s.push_str(&outputs.markdown());
    s
}

fn comparison(x: &Comparison) -> String {
    let (cached, uncached) = x.totals();
    let mut steps = Table::new([
        ("context tokens", Right),
        ("with cache ms", Right),
        ("without cache ms", Right),
        ("without ÷ with", Right),
    ]);
    let shown = x.gaps.len().div_ceil(24).max(1);
    for (i, g) in x.gaps.iter().enumerate() {
        if i % shown != 0 && i + 1 != x.gaps.len() && g.context != 256 {
            continue;
        }
        steps.row([
            g.context.to_string(),
            ms(g.cached),
            ms(g.no_cache),
            format!("{:.1}×", g.ratio),
        ]);
    }
    let mut costs = Table::new([("", Left), ("bytes", Right)]);
    costs
        .row(["per token".into(), human_bytes(x.kv_bytes_per_token)])
        .row([
            format!(
                "held after {} tokens",
                x.prompt_tokens
                    .saturating_add(x.generated_tokens)
                    .saturating_sub(1)
            ),
            human_bytes(x.kv_bytes),
        ])
        .row(["allocated".into(), human_bytes(x.kv_reserved_bytes)])
        .row(["the weights, for scale".into(), human_bytes(x.weight_bytes)]);
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
        },
        costs.markdown(),
    )
}

fn roofline(x: &Roofline) -> String {
    let (m, k, n) = x.matmul_shape;
    let mut machine = Table::new([("measured", Left), ("value", Right)]);
    machine
        .row([
            format!(
                "read bandwidth ({} MiB, {} threads)",
                x.buffer_bytes >> 20,
                x.threads
            ),
            format!("{:.1} GB/s", x.bandwidth_gb_s),
        ])
        .row([
            format!("f32 matmul {m}×{k}×{n}"),
            format!("{:.1} GFLOP/s", x.matmul_f32_gflop_s),
        ])
        .row([
            "the model's quantized FFN gate, same shape".into(),
            format!("{:.1} GFLOP/s", x.matmul_q_gflop_s),
        ])
        .row([
            "machine balance (peak FLOP/s ÷ bytes/s)".into(),
            format!("{:.1} FLOP/byte", x.machine_balance),
        ]);
    if x.working_set_bytes > 0 {
        machine.row([
            format!(
                "read bandwidth at decode's working set ({}): the decode roof",
                crate::stats::human_bytes(x.working_set_bytes)
            ),
            format!("{:.1} GB/s", x.working_set_gb_s),
        ]);
    }
    let mut model = Table::new([
        ("", Left),
        ("decode", Right),
        (&*format!("prefill ({} tokens)", x.prefill_tokens), Right),
    ]);
    let bound = |i| crate::lab::roofline::bound_by(i, x.machine_balance).to_string();
    let tok_s = |v: f64| format!("{v:.1} tok/s");
    model
        .row([
            "cost per token".into(),
            format!(
                "{} read ({:.1} MFLOP)",
                human_bytes(x.decode_bytes_per_token as u64),
                x.decode_flops_per_token / 1e6
            ),
            format!("{:.1} MFLOP", x.prefill_flops_per_token / 1e6),
        ])
        .row([
            "arithmetic intensity".into(),
            format!("{:.1} FLOP/byte", x.decode_intensity),
            format!("{:.1} FLOP/byte", x.prefill_intensity),
        ])
        .row([
            "bound by".into(),
            bound(x.decode_intensity),
            bound(x.prefill_intensity),
        ])
        .row([
            "ceiling".into(),
            tok_s(x.decode_ceiling_tok_s),
            tok_s(x.prefill_ceiling_tok_s),
        ])
        .row([
            "measured".into(),
            tok_s(x.decode_tok_s),
            tok_s(x.prefill_tok_s),
        ])
        .row([
            "fraction of the ceiling".into(),
            format!("{:.0}%", x.decode_ratio * 100.0),
            format!("{:.0}%", x.prefill_ratio * 100.0),
        ]);
    format!(
        "## This machine\n\n{}\n## The model against the roofs\n\n{}\n\
         Decode bytes per token: {} of weights + {} of KV cache per token × {} tokens of context.\n",
        machine.markdown(),
        model.markdown(),
        human_bytes(x.weight_bytes_read),
        human_bytes(x.kv_bytes_per_token),
        x.decode_context,
    )
}

fn series(name: &str, points: impl IntoIterator<Item = (f64, f64)>) -> Series {
    Series {
        name: name.into(),
        points: points.into_iter().collect(),
        labels: Vec::new(),
    }
}

/// The charts of a result: (file stem, title, x label, y label, series).
pub fn charts(
    r: &DemoResult,
) -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<Series>,
)> {
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    match r {
        DemoResult::PrefillVsDecode(x) => vec![
            (
                "prefill",
                "Prefill time by prompt length",
                "prompt tokens",
                "prefill (ms)",
                vec![series(
                    "prefill",
                    x.prompts
                        .iter()
                        .map(|p| (p.prompt_tokens as f64, ms(p.prefill))),
                )],
            ),
            (
                "decode",
                "Decode time per token by context length",
                "context tokens",
                "decode step (ms)",
                vec![
                    series(
                        "long run",
                        x.decode_curve
                            .iter()
                            .map(|p| (p.context as f64, ms(p.step))),
                    ),
                    series(
                        "after each prompt",
                        x.prompts
                            .iter()
                            .map(|p| (p.prompt_tokens as f64, ms(p.decode_step))),
                    ),
                ],
            ),
        ],
        DemoResult::KvCache(x) => vec![
            (
                "per-token",
                "Per-token time with and without the KV cache",
                "context tokens",
                "step (ms)",
                vec![
                    series(
                        "with the cache",
                        x.cached.iter().map(|p| (p.context as f64, ms(p.step))),
                    ),
                    series(
                        "without",
                        x.no_cache.iter().map(|p| (p.context as f64, ms(p.step))),
                    ),
                ],
            ),
            (
                "kv-bytes",
                "KV cache size",
                "context tokens",
                "KV cache (MiB)",
                vec![series(
                    "held",
                    x.cached.iter().map(|p| {
                        (
                            p.context as f64,
                            p.context as f64 * x.kv_bytes_per_token as f64 / (1024.0 * 1024.0),
                        )
                    }),
                )],
            ),
        ],
        DemoResult::Roofline(_) => Vec::new(),
        DemoResult::Batching(x) => vec![(
            "batch",
            "Decode throughput and step time by batch size",
            "batch size",
            "decode tok/s · step ms",
            vec![
                series(
                    "decode tok/s",
                    x.sweep.iter().map(|p| (p.batch as f64, p.decode_tok_s)),
                ),
                series(
                    "step ms",
                    x.sweep.iter().map(|p| (p.batch as f64, ms(p.step))),
                ),
            ],
        )],
        DemoResult::PagedKv(x) => {
            let mib = |t: usize| (t as u64 * x.kv_bytes_per_token) as f64 / (1024.0 * 1024.0);
            let line = |name: &str, f: fn(&crate::protocol::demo::KvPoint) -> usize| {
                series(name, x.points.iter().map(|k| (k.step as f64, mib(f(k)))))
            };
            vec![(
                "memory",
                "KV memory reserved per step: contiguous against paged",
                "step",
                "KV (MiB)",
                vec![
                    line("contiguous", |k| k.contiguous),
                    line("paged", |k| k.paged),
                    line("used", |k| k.used),
                ],
            )]
        }
        DemoResult::Quantization(x) => {
            let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
            // Lines join the points left to right.
            let sorted = |mut v: Vec<(f64, f64)>| {
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            };
            vec![
                (
                    "decode",
                    "Decode speed by weight bytes read per token",
                    "MiB read per token",
                    "decode tok/s",
                    vec![series(
                        "decode",
                        sorted(
                            x.rows
                                .iter()
                                .map(|r| (mib(r.read_per_token), r.decode_tok_s))
                                .collect(),
                        ),
                    )],
                ),
                (
                    "kl",
                    "KL divergence from the loaded weights by weight bytes",
                    "weights (MiB)",
                    "mean KL (nats)",
                    vec![series(
                        "KL",
                        sorted(
                            x.rows
                                .iter()
                                .map(|r| (mib(r.variant.weight_bytes), r.quality.mean_kl))
                                .collect(),
                        ),
                    )],
                ),
            ]
        }
        DemoResult::Speculation(x) => vec![(
            "speedup",
            "Speedup over plain decoding by K",
            "K (drafted tokens per step)",
            "speedup (×)",
            crate::lab::speculation::MODES
                .iter()
                .map(|m| {
                    series(
                        m.name(),
                        x.points
                            .iter()
                            .filter(|p| p.mode == *m)
                            .map(|p| (p.k as f64, p.speedup)),
                    )
                })
                .collect(),
        )],
    }
}

/// Write the charts of `r` into `dir`; returns the files written.
pub fn write_charts(dir: &Path, r: &DemoResult) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for (stem, title, x, y, s) in charts(r) {
        out.extend(super::plot::chart(dir, stem, title, x, y, &s)?);
    }
    Ok(out)
}

/// Fallbacks as "Q4_K→Q5_0 ×169".
fn fallback_text(v: &crate::protocol::Variant) -> String {
    v.fallbacks
        .iter()
        .map(|f| format!("{}→{} ×{}", f.wanted, f.used, f.tensors))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown table.
pub fn quant_table(rows: &[QuantRow]) -> String {
    let mut t = Table::new(
        [
            "type",
            "weights MiB",
            "read/token MiB",
            "prefill tok/s",
            "decode tok/s",
            "decode GB/s",
            "perplexity",
            "mean KL",
            "top-1",
            "requantise s",
            "fallbacks",
        ]
        .map(|h| (h, Left)),
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    for r in rows {
        t.row([
            r.variant.quant.to_string(),
            format!("{:.1}", mib(r.variant.weight_bytes)),
            format!("{:.1}", mib(r.read_per_token)),
            format!("{:.1}", r.prefill_tok_s),
            format!("{:.1}", r.decode_tok_s),
            format!("{:.1}", r.decode_gb_s()),
            format!("{:.3}", r.quality.perplexity),
            format!("{:.5}", r.quality.mean_kl),
            format!("{:.1}%", r.quality.top1 * 100.0),
            format!("{:.1}", r.variant.took.as_secs_f64()),
            fallback_text(&r.variant),
        ]);
    }
    t.markdown()
}
