//! `labtui bench quant`: every weight type side by side on one model, in one run — weight bytes,
//! prefill and decode speed, perplexity on the reference text, and the mean KL divergence and
//! top-1 agreement against the loaded weights, with the time each requantisation took.

use super::{bench_tokens, ours};
use crate::cli::BenchQuantArgs;
use crate::engine::quality::Probe;
use crate::engine::quant::{parse_kv_dtype, Quant};
use crate::engine::{default_device, Engine};
use crate::protocol::{Quality, Variant};
use crate::stats::median;
use anyhow::Result;

/// One row of the table: a variant and what it measured, or why it could not run.
pub struct Row {
    pub variant: Variant,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub quality: Quality,
}

/// The types asked for, in the order given (all of them by default).
pub fn types(names: &[String]) -> Result<Vec<Quant>> {
    if names.is_empty() {
        return Ok(Quant::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| Quant::parse(n).map_err(anyhow::Error::msg))
        .collect()
}

/// Fallbacks as "Q4_K→Q5_0 ×169".
fn fallback_text(v: &Variant) -> String {
    v.fallbacks
        .iter()
        .map(|f| format!("{}→{} ×{}", f.wanted, f.used, f.tensors))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Markdown table.
pub fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| type | weights MiB | prefill tok/s | decode tok/s | perplexity | mean KL | top-1 | requantise s | fallbacks |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        out += &format!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.3} | {:.5} | {:.1}% | {:.1} | {} |\n",
            r.variant.quant,
            r.variant.weight_bytes as f64 / (1024.0 * 1024.0),
            r.prefill_tok_s,
            r.decode_tok_s,
            r.quality.perplexity,
            r.quality.mean_kl,
            r.quality.top1 * 100.0,
            r.variant.took.as_secs_f64(),
            fallback_text(&r.variant),
        );
    }
    out
}

pub fn run(model: &str, a: &BenchQuantArgs) -> Result<()> {
    let device = default_device();
    let mut engine = Engine::open(model, &device, |_, _| {})?;
    let kv = parse_kv_dtype(&a.kv_dtype).map_err(anyhow::Error::msg)?;
    engine.set_kv_dtype(kv)?;
    let mut probe = Probe::new(&engine, a.ppl_tokens, a.ctx)?;
    eprintln!(
        "{}: {} threads, pp{} and tg{} (median of {}), quality over {} tokens in chunks of {}",
        engine.info.name,
        crate::engine::threads(),
        a.pp,
        a.tg,
        a.repeats,
        probe.tokens(),
        a.ctx
    );
    let ids = bench_tokens(a.pp, engine.model.cfg.vocab);
    let mut rows = Vec::new();
    for q in types(&a.types)? {
        let variant = match engine.set_quant(q, &mut |_, _| {}) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{q}: {e}");
                continue;
            }
        };
        ours(&mut engine, ids.clone(), 4)?; // warm-up
        let mut pp = Vec::new();
        let mut tg = Vec::new();
        for _ in 0..a.repeats.max(1) {
            let (p, d) = ours(&mut engine, ids.clone(), a.tg)?;
            pp.push(p);
            tg.push(d);
        }
        let quality = probe.measure(&engine, &mut |_, _| {})?;
        let row = Row {
            variant,
            prefill_tok_s: median(&pp).unwrap_or(0.0),
            decode_tok_s: median(&tg).unwrap_or(0.0),
            quality,
        };
        eprint!(
            "{}",
            markdown(std::slice::from_ref(&row))
                .lines()
                .nth(2)
                .unwrap_or_default()
        );
        eprintln!();
        rows.push(row);
    }
    print!("{}", markdown(&rows));
    Ok(())
}
