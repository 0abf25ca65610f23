//! Demo 4b, sensitivity: every weight matrix squeezed alone to a low type, the heat map filling
//! in live as each cell is measured (each is an [`Event::Sensitivity`], recorded with the
//! session), then mixed-precision variants chosen from the map, measured beside the uniform
//! types whose sizes they match. The weights the engine ran with are restored at the end.

use super::measure::{measure, measure_running};
use crate::engine::quality::Probe;
use crate::engine::Engine;
use crate::protocol::demo::QuantRow;
use crate::protocol::sensitivity::{MixRow, MixSpec, SensDemo, SensMap};
use crate::protocol::{DemoSection, Event, Quant};
use anyhow::Result;

/// The types a demo sweeps when its section names none: one 4-bit and one 2-bit type.
pub const DEFAULT_TYPES: [Quant; 2] = [Quant::Q4_0, Quant::Q2K];

/// Tokens of the reference text each cell scores when the section does not say.
pub const DEFAULT_TOKENS: usize = 256;

/// The least-KL mix from `map` no larger than `bytes`, built on `engine` and measured (prefill,
/// decode and repeats as `speed` says): its spec, the KL the map predicts and its row; the
/// inner error says why the map cannot reach that size. The mix is left running.
pub fn mix_at(
    engine: &mut Engine,
    map: &SensMap,
    bytes: u64,
    probe: &mut Probe,
    (pp, tg, repeats): (usize, usize, usize),
) -> Result<std::result::Result<(MixSpec, f64, QuantRow), String>> {
    let (spec, predicted) = match crate::engine::mix::plan(map, bytes) {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    let variant = engine.set_mix(&spec, &mut |_, _| {})?;
    let row = measure_running(engine, variant, probe, pp, tg, repeats)?;
    Ok(Ok((spec, predicted, row)))
}

/// The loaded weights and each of `types`, measured, with a mix from `map` at each type's size.
fn uniform_and_mixed(
    engine: &mut Engine,
    map: &SensMap,
    types: &[Quant],
    probe: &mut Probe,
    (pp, decode): (usize, usize),
    progress: &mut dyn FnMut(String),
) -> Result<(Vec<QuantRow>, Vec<MixRow>)> {
    let mut rows: Vec<QuantRow> = Vec::new();
    let mut mixes = Vec::new();
    for q in std::iter::once(Quant::AsLoaded).chain(types.iter().copied()) {
        let row = measure(engine, q, probe, pp, decode, 1)?;
        if q != Quant::AsLoaded {
            match mix_at(
                engine,
                map,
                row.variant.weight_bytes,
                probe,
                (pp, decode, 1),
            )? {
                Ok((spec, predicted_kl, mixed)) => {
                    progress(format!(
                        "{} (the size of {q}): KL {:.4} against {q}'s {:.4}",
                        spec.label, mixed.quality.mean_kl, row.quality.mean_kl
                    ));
                    mixes.push(MixRow {
                        spec,
                        like: q.to_string(),
                        predicted_kl,
                        measured_kl: mixed.quality.mean_kl,
                        like_kl: row.quality.mean_kl,
                    });
                    rows.push(mixed);
                }
                Err(e) => progress(format!("no mix the size of {q}: {e}")),
            }
        }
        rows.push(row);
    }
    Ok((rows, mixes))
}

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
    live: &mut dyn FnMut(Event),
) -> Result<SensDemo> {
    let types = if section.types.is_empty() {
        DEFAULT_TYPES.to_vec()
    } else {
        section.types.clone()
    };
    let before = engine.quant;
    engine.set_quant(Quant::AsLoaded, &mut |_, _| {})?;
    let tokens = section.quality_tokens.unwrap_or(DEFAULT_TOKENS);
    // The map is measured in f32 against the loaded values in f32 (`dense_reference`); the
    // variants built from it are measured in the engine's kernels against the loaded weights.
    let mut reference_probe =
        Probe::new(engine, tokens, crate::engine::quality::CHUNK.min(tokens))?;
    let reference = crate::engine::quant::dense_reference(engine.loaded_model())?;
    let plan = crate::engine::sensitivity::plan(engine, &reference, &types, &mut reference_probe)?;
    progress(format!(
        "{} cells over {} positions: each matrix alone at {}",
        plan.cells.len(),
        plan.scored,
        types
            .iter()
            .map(|q| q.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let map = crate::engine::sensitivity::sweep(
        engine,
        &reference,
        &reference_probe,
        plan,
        None,
        &mut |e| live(Event::Sensitivity(e)),
    )?;
    drop((reference, reference_probe));
    let mut probe = Probe::new(engine, tokens, crate::engine::quality::CHUNK.min(tokens))?;
    let decode = section.output_tokens(crate::protocol::DemoKind::Sensitivity);
    let pp = super::quant::PREFILL_TOKENS;
    let (mut rows, mixes) =
        uniform_and_mixed(engine, &map, &types, &mut probe, (pp, decode), progress)?;
    engine.set_quant(before, &mut |_, _| {})?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.variant.weight_bytes));
    let (layer_params, head_params) = super::roofline::matmul_params(&engine.model.cfg);
    Ok(SensDemo {
        map,
        rows,
        mixes,
        matmul_params: layer_params + head_params,
    })
}
