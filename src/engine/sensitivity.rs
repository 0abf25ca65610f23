//! Layer-wise quantization sensitivity: each weight matrix squeezed alone to a low type, the rest
//! as loaded, scored on the reference text against the loaded weights (mean KL divergence,
//! top-1 agreement, perplexity), with the bytes it saves. The map says where the bits matter;
//! [`super::mix`] spends them.
//!
//! A cell whose type would not save a byte (the matrix is already that small) is left out; a
//! type that falls back to one measured already for that matrix (Q2_K and Q3_K take Q4_0 on rows
//! that are not whole 256-value super-blocks) repeats that cell instead of running it again.

use super::loader::type_name;
use super::model::Model;
use super::quality::Probe;
use super::quant::{dense_squeezed, ggml, part_bytes_at, part_type, parts};
use super::Engine;
use crate::protocol::sensitivity::{Part, SensCell, SensEvent, SensMap, SensPlan};
use crate::protocol::Quant;
use candle_core::quantized::GgmlDType;
use candle_core::DType;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The low types a sweep tries when none are named: the 4-, 3- and 2-bit ones.
pub const DEFAULT_TYPES: [Quant; 3] = [Quant::Q4_0, Quant::Q3K, Quant::Q2K];

/// What `engine`'s loaded weights sweep at `types`: the cells, and those left out and why.
/// The probe's baseline is `reference`'s ([`super::quant::dense_reference`] of the loaded
/// weights).
pub fn plan(
    engine: &Engine,
    reference: &Model,
    types: &[Quant],
    probe: &mut Probe,
) -> super::Result<SensPlan> {
    let loaded = engine.loaded_model();
    let base = probe.baseline(reference, &mut |_, _| {})?;
    let mut cells = Vec::new();
    let mut skipped = Vec::new();
    let mut matrices = Vec::new();
    for part in parts(loaded) {
        let (lt, lb) = part_type(loaded, part);
        matrices.push((part, type_name(lt), lb));
        for &q in types {
            let Some(want) = ggml(q) else {
                skipped.push((part, q, "the loaded weights are the reference".into()));
                continue;
            };
            let (used, bytes) = part_bytes_at(loaded, part, want);
            if used == lt {
                skipped.push((part, q, format!("already {}", type_name(lt))));
            } else if bytes >= lb {
                skipped.push((
                    part,
                    q,
                    format!(
                        "{} would not save a byte over {}",
                        type_name(used),
                        type_name(lt)
                    ),
                ));
            } else {
                cells.push((part, q));
            }
        }
    }
    Ok(SensPlan {
        model: engine.info.name.clone(),
        types: types.to_vec(),
        layers: loaded.layers.len(),
        cells,
        skipped,
        scored: base.scored,
        perplexity: base.perplexity(),
        loaded: matrices,
        weight_bytes: loaded.weight_bytes(),
        resumed: 0,
        stamp: None,
    })
}

/// Whether `earlier` measured the same sweep as `plan` (its cells can be taken as they are).
pub fn same_sweep(earlier: &SensPlan, plan: &SensPlan) -> bool {
    earlier.model == plan.model
        && earlier.scored == plan.scored
        && earlier.loaded == plan.loaded
        && (earlier.perplexity - plan.perplexity).abs() <= 1e-9 * plan.perplexity
}

/// Measure one cell: `part` at `quant`, everything else as loaded, all in f32 (`reference`).
pub fn measure_cell(
    engine: &Engine,
    reference: &Model,
    probe: &Probe,
    part: Part,
    quant: Quant,
) -> super::Result<SensCell> {
    let start = Instant::now();
    let loaded = engine.loaded_model();
    let want = ggml(quant).ok_or_else(|| {
        super::EngineError::Setting("the loaded weights are not a type to squeeze to".into())
    })?;
    let (lt, lb) = part_type(loaded, part);
    let (used, bytes) = part_bytes_at(loaded, part, want);
    let model = dense_squeezed(reference, loaded, part, want)?;
    let t = probe.compare(&model, DType::F32, &mut |_, _| {})?;
    Ok(SensCell {
        part,
        quant,
        used: type_name(used),
        loaded_type: type_name(lt),
        loaded_bytes: lb,
        bytes,
        kl: t.mean_kl(),
        top1: t.top1(),
        perplexity: t.perplexity(),
        took: start.elapsed(),
    })
}

/// Run the sweep `plan` describes, taking the cells of `earlier` when it measured the same
/// sweep. `emit` hears the plan, every cell (taken or measured) and the end. Stops with an
/// error when the thread's interrupt is raised (see [`super::interrupt`]); the cells emitted
/// before stay measured.
pub fn sweep(
    engine: &Engine,
    reference: &Model,
    probe: &Probe,
    mut plan: SensPlan,
    earlier: Option<&SensMap>,
    emit: &mut dyn FnMut(SensEvent),
) -> super::Result<SensMap> {
    let start = Instant::now();
    let earlier = earlier.filter(|m| same_sweep(&m.plan, &plan));
    let taken: Vec<SensCell> = plan
        .cells
        .iter()
        .filter_map(|&(p, q)| earlier.and_then(|m| m.cell(p, q)).cloned())
        .collect();
    plan.resumed = taken.len();
    let mut map = SensMap::new(plan.clone());
    emit(SensEvent::Started(Box::new(plan.clone())));
    let mut by_type: HashMap<(Part, GgmlDType), SensCell> = HashMap::new();
    let keep = |c: SensCell, map: &mut SensMap, emit: &mut dyn FnMut(SensEvent)| {
        emit(SensEvent::Cell(c.clone()));
        map.cells.push(c);
    };
    for c in taken {
        keep(c, &mut map, emit);
    }
    let loaded = engine.loaded_model();
    for &(part, quant) in &plan.cells {
        if map.cell(part, quant).is_some() {
            continue;
        }
        let want = ggml(quant).expect("planned cells have a type");
        let used = part_bytes_at(loaded, part, want).0;
        let same = map
            .cells
            .iter()
            .find(|c| c.part == part && c.used == type_name(used))
            .or(by_type.get(&(part, used)));
        let cell = match same {
            Some(c) => SensCell {
                quant,
                took: Duration::ZERO,
                ..c.clone()
            },
            None => measure_cell(engine, reference, probe, part, quant)?,
        };
        by_type.insert((part, used), cell.clone());
        keep(cell, &mut map, emit);
    }
    let took = start.elapsed();
    map.took = Some(took);
    emit(SensEvent::Finished { took });
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::quant::dense_reference;
    use crate::engine::synthetic::SyntheticSpec;
    use crate::protocol::sensitivity::TensorKind;
    use candle_core::Device;

    fn engine() -> Engine {
        Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap()
    }

    #[test]
    fn a_sweep_measures_every_planned_cell_and_a_resumed_one_only_the_rest() {
        let e = engine();
        let mut probe = Probe::new(&e, 64, 32).unwrap();
        let r = dense_reference(e.loaded_model()).unwrap();
        let plan = plan(&e, &r, &[Quant::Q4_0], &mut probe).unwrap();
        assert!(!plan.cells.is_empty());
        assert_eq!(plan.loaded.len(), parts(e.loaded_model()).len());
        let mut events = Vec::new();
        let full = sweep(&e, &r, &probe, plan.clone(), None, &mut |ev| {
            events.push(ev)
        })
        .unwrap();
        assert_eq!(full.cells.len(), plan.cells.len());
        assert!(matches!(events.first(), Some(SensEvent::Started(_))));
        assert!(matches!(events.last(), Some(SensEvent::Finished { .. })));
        // Every squeezed matrix changes the distributions and saves bytes.
        for c in &full.cells {
            assert!(c.kl > 0.0, "{}: KL {}", c.part.label(), c.kl);
            assert!(c.bytes < c.loaded_bytes, "{}", c.part.label());
            assert!(c.top1 <= 1.0 && c.top1 > 0.0);
        }
        // Stopped after three cells, then resumed from the events recorded.
        let partial = SensMap::from_events(&events[..4]).unwrap();
        assert_eq!(partial.cells.len(), 3);
        let mut again = Vec::new();
        let resumed = sweep(&e, &r, &probe, plan, Some(&partial), &mut |ev| {
            again.push(ev)
        })
        .unwrap();
        assert_eq!(resumed.plan.resumed, 3);
        assert_eq!(resumed.cells, {
            let mut c = full.cells.clone();
            for (a, b) in c.iter_mut().zip(&resumed.cells) {
                a.took = b.took; // the time is the only thing that may differ
            }
            c
        });
    }

    #[test]
    fn a_type_that_falls_back_to_one_measured_repeats_its_cell() {
        // Rows of 128 values: Q2_K falls back to Q4_0 on every matrix.
        let spec = SyntheticSpec {
            hidden: 128,
            ffn: 384,
            ..SyntheticSpec::default()
        };
        let e = Engine::synthetic(&spec, &Device::Cpu).unwrap();
        let mut probe = Probe::new(&e, 64, 32).unwrap();
        let r = dense_reference(e.loaded_model()).unwrap();
        let plan = plan(&e, &r, &[Quant::Q4_0, Quant::Q2K], &mut probe).unwrap();
        let map = sweep(&e, &r, &probe, plan, None, &mut |_| {}).unwrap();
        let mut repeated = 0;
        for a in map.cells.iter().filter(|c| c.quant == Quant::Q4_0) {
            let b = map.cell(a.part, Quant::Q2K).expect("planned as Q4_0 was");
            assert_eq!(b.used, "Q4_0");
            assert_eq!((a.kl, a.bytes, a.top1), (b.kl, b.bytes, b.top1));
            assert_eq!(b.took, Duration::ZERO);
            repeated += 1;
        }
        assert!(repeated >= 7, "{repeated}");
    }

    #[test]
    fn the_f32_reference_is_the_loaded_model_and_coarser_types_move_it_more() {
        use crate::engine::model::Forward;
        use crate::engine::quant::dense_squeezed;
        let e = engine();
        let loaded = e.loaded_model();
        let r = dense_reference(loaded).unwrap();
        let ids: Vec<u32> = (3..40).collect();
        let logits = |m: &Model| -> Vec<f32> {
            let mut cache = m.new_cache(DType::F32);
            let t = m.forward(&ids, &mut cache, Forward::ALL).unwrap();
            t.flatten_all().unwrap().to_vec1().unwrap()
        };
        let moved = |a: &[f32], b: &[f32]| {
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).abs())
                .fold(0f32, f32::max)
        };
        let base = logits(&r);
        // The loaded weights in their own kernels differ from their values in f32 only by the
        // kernels' rounding, far less than any squeeze.
        let own = moved(&logits(loaded), &base);
        let down = Part::layer(1, TensorKind::Down);
        let by = |q| {
            let m = dense_squeezed(&r, loaded, down, ggml(q).unwrap()).unwrap();
            moved(&logits(&m), &base)
        };
        let (q8, q4, q2) = (by(Quant::Q8_0), by(Quant::Q4_0), by(Quant::Q2K));
        assert!(q8 < q4 && q4 < q2, "Q8_0 {q8}, Q4_0 {q4}, Q2_K {q2}");
        assert!(own < q4, "kernels {own} vs Q4_0 {q4}");
        assert!(q8 > 0.0);
    }
}
