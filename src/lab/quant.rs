//! Demo 4a, quantization: the same model requantised to several weight types, side by side —
//! bytes, bytes a decode step reads, prefill and decode speed, and the quality each costs
//! (perplexity on labtui's own sources, KL divergence and top-1 agreement against the loaded
//! weights). Measured with `labtui bench quant`'s own code; the weights the engine ran with are
//! restored at the end.

use super::measure::measure;
use crate::engine::quality::Probe;
use crate::engine::Engine;
use crate::protocol::demo::QuantSweep;
use crate::protocol::{DemoKind, DemoSection, KvDtype, Quant, Setting};
use anyhow::Result;

/// The types a tour visits by default: the file's, two float-like references, and three
/// quantizations from 8.5 down to ~2.6 bits a weight (F32, BF16, Q6_K, Q5_K and Q3_K are one
/// `types` entry away).
pub const DEFAULT_TYPES: [Quant; 6] = [
    Quant::AsLoaded,
    Quant::F16,
    Quant::Q8_0,
    Quant::Q4K,
    Quant::Q4_0,
    Quant::Q2K,
];

/// Prompt tokens of each prefill measurement.
pub const PREFILL_TOKENS: usize = 128;

/// The types a section asks for, in its order.
pub fn types(section: &DemoSection) -> Vec<Quant> {
    if section.types.is_empty() {
        DEFAULT_TYPES.to_vec()
    } else {
        section.types.clone()
    }
}

/// The loaded weights with the KV cache in f16 (as llama.cpp and Hugging Face keep it), when it
/// runs in another type: the cache's dtype is a quantization of its own. The cache's type is
/// restored after.
fn kv_row(
    engine: &mut Engine,
    probe: &mut Probe,
    decode_tokens: usize,
    progress: &mut dyn FnMut(String),
) -> Result<Option<crate::protocol::demo::QuantRow>> {
    let kv = engine.info.kv_dtype;
    if kv == KvDtype::F16 {
        return Ok(None);
    }
    engine.set_kv_dtype(KvDtype::F16)?;
    let row = measure(
        engine,
        Quant::AsLoaded,
        probe,
        PREFILL_TOKENS,
        decode_tokens,
        1,
    );
    engine.set_kv_dtype(kv)?;
    let row = row?;
    progress(format!(
        "as loaded, KV f16: decode {:.1} tok/s · KL {:.4}",
        row.decode_tok_s, row.quality.mean_kl
    ));
    Ok(Some(row))
}

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<QuantSweep> {
    let before = engine.quant;
    let decode_tokens = section.output_tokens(DemoKind::Quantization);
    let tokens = section
        .quality_tokens
        .unwrap_or(crate::engine::quality::DEFAULT_TOKENS);
    let mut probe = Probe::new(engine, tokens, crate::engine::quality::CHUNK)?;
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for q in types(section) {
        if let Err(why) = crate::engine::quant::check_backend(q, engine.model.device()) {
            progress(format!("{q}: skipped: {why}"));
            refused.push((q.name().to_string(), why));
            continue;
        }
        let row = measure(engine, q, &mut probe, PREFILL_TOKENS, decode_tokens, 1)?;
        progress(format!(
            "{q}: {} · decode {:.1} tok/s · KL {:.4}",
            crate::stats::human_bytes(row.variant.weight_bytes),
            row.decode_tok_s,
            row.quality.mean_kl
        ));
        rows.push(row);
    }
    rows.extend(kv_row(engine, &mut probe, decode_tokens, progress)?);
    engine.set_quant(before, &mut |_, _| {})?;
    let (layer_params, head_params) = super::roofline::matmul_params(&engine.model.cfg);
    Ok(QuantSweep {
        matmul_params: layer_params + head_params,
        prefill_tokens: PREFILL_TOKENS,
        decode_tokens,
        scored: rows.first().map_or(0, |r| r.quality.scored),
        rows,
        refused,
    })
}
