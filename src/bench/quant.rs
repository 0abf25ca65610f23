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

/// One row of the table: a variant and what it measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub variant: Variant,
    /// Weight bytes one decode step reads.
    pub read_per_token: u64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub quality: Quality,
}

impl Row {
    /// The bandwidth decode draws from memory for the weights: bytes read per token × tok/s.
    pub fn decode_gb_s(&self) -> f64 {
        self.read_per_token as f64 * self.decode_tok_s / 1e9
    }
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

/// Switch `engine` to `q` and measure it: prefill of `pp` tokens and decode of `tg` (medians of
/// `repeats`, after a warm-up) and quality through `probe`.
pub fn measure(
    engine: &mut Engine,
    q: Quant,
    probe: &mut Probe,
    pp: usize,
    tg: usize,
    repeats: usize,
) -> Result<Row> {
    let variant = engine.set_quant(q, &mut |_, _| {})?;
    let ids = bench_tokens(pp, engine.model.cfg.vocab);
    ours(engine, ids.clone(), 4)?; // warm-up
    let mut pps = Vec::new();
    let mut tgs = Vec::new();
    for _ in 0..repeats.max(1) {
        let (p, d) = ours(engine, ids.clone(), tg)?;
        pps.push(p);
        tgs.push(d);
    }
    let quality = probe.measure(engine, &mut |_, _| {})?;
    Ok(Row {
        read_per_token: engine.model.bytes_read_per_token(),
        variant,
        prefill_tok_s: median(&pps).unwrap_or(0.0),
        decode_tok_s: median(&tgs).unwrap_or(0.0),
        quality,
    })
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
    let mut rows = Vec::new();
    for q in types(&a.types)? {
        let row = match measure(&mut engine, q, &mut probe, a.pp, a.tg, a.repeats) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{q}: {e}");
                continue;
            }
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
