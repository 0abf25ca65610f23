//! A demo's report: the narration, then its tables in Markdown, and its charts (PNG and SVG), all
//! from the run's own numbers.

use super::plot::Series;
use crate::protocol::demo::{Comparison, QuantRow, QuantSweep, Roofline, SpecSweep, Sweep};
use crate::protocol::{DemoResult, DemoRun, Setting};
use crate::stats::human_bytes;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    }
}

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
    let mut s = format!(
        "## Speculative decoding against plain decoding\n\n\
         Prompt {} tokens, {} generated, greedy; plain decoding {:.1} tok/s (mean of a run before and after).\n\n\
         | draft mode | K | decode tok/s | acceptance | tokens per step | speedup | same text |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
        x.prompt_tokens, x.generated_tokens, x.plain_tok_s
    );
    for p in &x.points {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {:.0}% | {:.2} | {:.2}× | {} |",
            p.mode,
            p.k,
            p.decode_tok_s,
            p.acceptance * 100.0,
            p.mean_accepted_len,
            p.speedup,
            if p.same_text { "yes" } else { "no" }
        );
    }
    s
}

fn sweep(x: &Sweep) -> String {
    let mut s = String::from(
        "## Prefill and decode by prompt length\n\n\
         | prompt tokens | prefill ms | prefill tok/s | decode ms/token | decode tok/s | prefill ÷ decode tok/s |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    for p in &x.prompts {
        let _ = writeln!(
            s,
            "| {} | {} | {:.1} | {} | {:.1} | {:.1}× |",
            p.prompt_tokens,
            ms(p.prefill),
            p.prefill_tok_s,
            ms(p.decode_step),
            p.decode_tok_s,
            p.prefill_tok_s / p.decode_tok_s.max(f64::MIN_POSITIVE)
        );
    }
    if !x.skipped.is_empty() {
        let _ = writeln!(s, "\nSkipped (past the model's context): {:?}", x.skipped);
    }
    s.push_str(
        "\n## Where the time goes by output length (16-token prompt)\n\n\
         | output tokens | prefill ms | decode ms | decode share |\n|---:|---:|---:|---:|\n",
    );
    for o in &x.outputs {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0}% |",
            o.output_tokens,
            ms(o.prefill),
            ms(o.decode),
            o.decode_share * 100.0
        );
    }
    s
}

fn comparison(x: &Comparison) -> String {
    let (cached, uncached) = x.totals();
    let mut s = format!(
        "## Per-token time with and without the KV cache\n\n\
         Prompt {} tokens, {} generated; without the cache, measured at every context length divisible by {} and at the last step.\n\n\
         | context tokens | with cache ms | without cache ms | without ÷ with |\n|---:|---:|---:|---:|\n",
        x.prompt_tokens, x.generated_tokens, x.no_cache_every
    );
    let shown = x.gaps.len().div_ceil(24).max(1);
    for (i, g) in x.gaps.iter().enumerate() {
        if i % shown != 0 && i + 1 != x.gaps.len() && g.context != 256 {
            continue;
        }
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1}× |",
            g.context,
            ms(g.cached),
            ms(g.no_cache),
            g.ratio
        );
    }
    let _ = write!(
        s,
        "\nAll decode steps: {:.2} s with the cache, about {:.2} s without (interpolated between the measured steps).\n\n\
         Same tokens: {} of {} compared steps picked the cached run's token{}.\n\n\
         ## What the cache costs\n\n\
         | | bytes |\n|---|---:|\n\
         | per token | {} |\n| held after {} tokens | {} |\n| allocated | {} |\n| the weights, for scale | {} |\n",
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
        human_bytes(x.kv_bytes_per_token),
        x.prompt_tokens
            .saturating_add(x.generated_tokens)
            .saturating_sub(1),
        human_bytes(x.kv_bytes),
        human_bytes(x.kv_reserved_bytes),
        human_bytes(x.weight_bytes),
    );
    s
}

fn roofline(x: &Roofline) -> String {
    let (m, k, n) = x.matmul_shape;
    format!(
        "## This machine\n\n\
         | measured | value |\n|---|---:|\n\
         | read bandwidth ({} MiB, {} threads) | {:.1} GB/s |\n\
         | f32 matmul {m}×{k}×{n} | {:.1} GFLOP/s |\n\
         | the model's quantized FFN gate, same shape | {:.1} GFLOP/s |\n\
         | machine balance (peak FLOP/s ÷ bytes/s) | {:.1} FLOP/byte |\n\n\
         ## The model against the roofs\n\n\
         | | decode | prefill ({} tokens) |\n|---|---:|---:|\n\
         | cost per token | {} read ({:.1} MFLOP) | {:.1} MFLOP |\n\
         | arithmetic intensity | {:.1} FLOP/byte | {:.1} FLOP/byte |\n\
         | bound by | {} | {} |\n\
         | ceiling | {:.1} tok/s | {:.1} tok/s |\n\
         | measured | {:.1} tok/s | {:.1} tok/s |\n\
         | fraction of the ceiling | {:.0}% | {:.0}% |\n\n\
         Decode bytes per token: {} of weights + {} of KV cache per token × {} tokens of context.\n",
        x.buffer_bytes >> 20,
        x.threads,
        x.bandwidth_gb_s,
        x.matmul_f32_gflop_s,
        x.matmul_q_gflop_s,
        x.machine_balance,
        x.prefill_tokens,
        human_bytes(x.decode_bytes_per_token as u64),
        x.decode_flops_per_token / 1e6,
        x.prefill_flops_per_token / 1e6,
        x.decode_intensity,
        x.prefill_intensity,
        crate::lab::roofline::bound_by(x.decode_intensity, x.machine_balance),
        crate::lab::roofline::bound_by(x.prefill_intensity, x.machine_balance),
        x.decode_ceiling_tok_s,
        x.prefill_ceiling_tok_s,
        x.decode_tok_s,
        x.prefill_tok_s,
        x.decode_ratio * 100.0,
        x.prefill_ratio * 100.0,
        human_bytes(x.weight_bytes_read),
        human_bytes(x.kv_bytes_per_token),
        x.decode_context,
    )
}

fn series(name: &str, points: impl IntoIterator<Item = (f64, f64)>) -> Series {
    Series {
        name: name.into(),
        points: points.into_iter().collect(),
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
    let mut out = String::from(
        "| type | weights MiB | read/token MiB | prefill tok/s | decode tok/s | decode GB/s | perplexity | mean KL | top-1 | requantise s | fallbacks |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    for r in rows {
        out += &format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.3} | {:.5} | {:.1}% | {:.1} | {} |\n",
            r.variant.quant,
            mib(r.variant.weight_bytes),
            mib(r.read_per_token),
            r.prefill_tok_s,
            r.decode_tok_s,
            r.decode_gb_s(),
            r.quality.perplexity,
            r.quality.mean_kl,
            r.quality.top1 * 100.0,
            r.variant.took.as_secs_f64(),
            fallback_text(&r.variant),
        );
    }
    out
}
