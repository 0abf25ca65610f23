//! The flash-attention demo: one prompt prefilled at several lengths with dense attention (the
//! whole score matrix and a mask, candle's products) and with tiled attention (an online softmax
//! over key blocks, `engine::tiled`): time per prompt token, the heap's peak against what memory
//! admission estimates, the same next token, and attention alone against dense on this model's
//! shape. A length that would not fit in memory is skipped with both numbers.

use crate::engine::footprint::{check, prefill_bytes};
use crate::engine::quality::CORPUS;
use crate::engine::tiled::{gap_from_dense, PrefillAttention, KEY_BLOCK, QUERY_BLOCK};
use crate::engine::{Engine, Model};
use crate::protocol::flash::{FlashAttention, FlashRow, FlashRun};
use crate::protocol::DemoSection;
use crate::stats::human_bytes;
use anyhow::Result;
use candle_core::DType;

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<FlashAttention> {
    let model = &engine.model;
    let cfg = &model.cfg;
    let threads = engine.info.threads;
    let costs = super::roofline::shape_costs(cfg);
    let (lengths, beyond): (Vec<usize>, Vec<usize>) = section
        .flash_lengths()
        .into_iter()
        .partition(|&n| n <= cfg.context_length);
    let corpus = engine.tokenizer.encode_prompt(CORPUS)?;
    let available = crate::sysmon::available_for_runs();
    let mut rows = Vec::new();
    for &n in &lengths {
        let ids: Vec<u32> = corpus.iter().copied().cycle().take(n).collect();
        let measure = |how| prefill(model, how, &ids, threads, available);
        let (tiled, tiled_next) = measure(PrefillAttention::Tiled)?;
        progress(line(n, &tiled));
        let (dense, dense_next) = measure(PrefillAttention::Dense)?;
        progress(line(n, &dense));
        let attention_diff = match dense.prefill {
            Some(_) => Some(gap_from_dense(cfg.heads / cfg.kv_heads, cfg.head_dim, n)?),
            None => None,
        };
        rows.push(FlashRow {
            tokens: n,
            same_next_token: tiled_next.zip(dense_next).map(|(a, b)| a == b),
            tiled,
            dense,
            attention_diff,
            attention_share: costs.attention_share(n),
        });
    }
    Ok(FlashAttention {
        rows,
        beyond_context: beyond,
        context: cfg.context_length,
        query_block: QUERY_BLOCK,
        key_block: KEY_BLOCK,
        tile_bytes: crate::engine::tiled::scratch_bytes(
            PrefillAttention::Tiled,
            cfg.heads,
            cfg.kv_heads,
            cfg.head_dim,
            0,
            0,
            1,
        ),
        crossover: costs.attention_crossover(),
        available,
        l2_bytes: crate::sysmon::l2_cache_bytes(),
    })
}

fn line(n: usize, r: &FlashRun) -> String {
    match (&r.skipped, r.ms_per_token(n)) {
        (Some(why), _) => format!("{n} tokens, {}: skipped ({why})", r.kernel),
        (None, Some(ms)) => format!(
            "{n} tokens, {}: {ms:.2} ms per token, peak {}",
            r.kernel,
            human_bytes(r.peak_bytes)
        ),
        (None, None) => format!("{n} tokens, {}", r.kernel),
    }
}

/// Prefill `ids` into a fresh f32 cache with prompt attention `how`, unless memory says no:
/// the run and the next token it picks.
fn prefill(
    model: &Model,
    how: PrefillAttention,
    ids: &[u32],
    threads: usize,
    available: Option<u64>,
) -> Result<(FlashRun, Option<u32>)> {
    let n = ids.len();
    let mut cache = model.new_cache(DType::F32);
    let kv_bytes = n as u64 * cache.bytes_per_token();
    let predicted_bytes = prefill_bytes(&model.cfg, how, n, 0, threads);
    let mut run = FlashRun {
        kernel: how.name().into(),
        kv_bytes,
        predicted_bytes,
        ..FlashRun::default()
    };
    let what = format!("a {} prefill of {n} tokens", how.name());
    if let Some(Err(why)) = available.map(|a| check(&what, kv_bytes + predicted_bytes, a)) {
        run.skipped = Some(why);
        return Ok((run, None));
    }
    let mut m = model.clone();
    m.prefill_attention = how;
    crate::alloc::reset_heap_peak();
    let before = crate::alloc::heap_live();
    let (took, next) = super::measure::prefill(&m, &mut cache, ids)?;
    run.prefill = Some(took);
    run.peak_bytes = crate::alloc::heap_peak().saturating_sub(before);
    run.kv_bytes = cache.reserved_bytes();
    Ok((run, Some(next)))
}
