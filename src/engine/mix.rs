//! Mixed precision from a sensitivity map: choose each matrix's type so the weights fit a size
//! and the summed KL of the choices is as small as it can be.
//!
//! Each matrix has its loaded type (KL 0) and every low type the map measured for it (the KL
//! and the bytes saved when it alone is squeezed). Taking the KLs as additive — they are small
//! perturbations of different matrices — the choice is a multiple-choice knapsack: save at least
//! the bytes asked for at the least total KL. It is solved exactly by dynamic programming over
//! the bytes saved, counted in 16 KiB units rounded down, so the variant is never larger than
//! asked. (Ranking single moves by KL per byte, the greedy rule, can overshoot by a whole head
//! matrix; the program does not.) The KL the variant really has is measured after it is built.

use crate::protocol::sensitivity::{MixSpec, Part, SensMap};
use crate::protocol::Quant;
use std::collections::BTreeMap;

/// The unit the program counts saved bytes in: a 65,536th of the weights, at least 1 KiB.
fn unit(total: u64) -> u64 {
    (total / 65_536).max(1024)
}

/// One way to hold a matrix: its type, the bytes it saves and the KL it costs.
#[derive(Debug, Clone, Copy)]
struct Choice {
    quant: Quant,
    saved: u64,
    kl: f64,
}

/// The options of each matrix the map measured (the loaded type, saving nothing, is implied).
fn options(map: &SensMap) -> Vec<(Part, Vec<Choice>)> {
    let mut by: BTreeMap<Part, Vec<Choice>> = BTreeMap::new();
    for c in &map.cells {
        if c.saved() == 0 {
            continue;
        }
        let opts = by.entry(c.part).or_default();
        // A KL that is not a number is no bargain.
        let kl = if c.kl.is_nan() {
            f64::INFINITY
        } else {
            c.kl.max(0.0)
        };
        let choice = Choice {
            quant: c.quant,
            saved: c.saved(),
            kl,
        };
        // Two types of one size (a fallback repeating a cell, or Q4_0 beside Q4_K) are one
        // choice: the one that costs less.
        match opts.iter_mut().find(|o| o.saved == c.saved()) {
            Some(o) if kl < o.kl => *o = choice,
            Some(_) => {}
            None => opts.push(choice),
        }
    }
    by.into_iter().collect()
}

/// The plan for weights of at most `target` bytes: which matrices take which type, and the KL
/// the map predicts for it (the sum of the cells chosen). An error says the smallest size the
/// map can reach.
pub fn plan(map: &SensMap, target: u64) -> Result<(MixSpec, f64), String> {
    let total = map.plan.weight_bytes;
    let want = total.saturating_sub(target);
    let opts = options(map);
    let most: u64 = opts
        .iter()
        .map(|(_, o)| o.iter().map(|c| c.saved).max().unwrap_or(0))
        .sum();
    if most < want {
        return Err(format!(
            "the map's types reach {} at the smallest; {} was asked",
            crate::stats::human_bytes(total - most),
            crate::stats::human_bytes(target)
        ));
    }
    // Savings are counted in whole units, rounded down, so a choice that saves `need` units
    // saves the bytes asked for. Where rounding down leaves no such choice, every matrix takes
    // its smallest type, which saves enough (`most >= want`).
    let unit = unit(total);
    let need = want.div_ceil(unit) as usize;
    let chosen = backtrack(&opts, need, unit).unwrap_or_else(|_| {
        opts.iter()
            .filter_map(|(p, o)| o.iter().max_by_key(|c| c.saved).map(|c| (*p, *c)))
            .collect()
    });
    let kl: f64 = chosen.iter().map(|(_, c)| c.kl).sum();
    let saved: u64 = chosen.iter().map(|(_, c)| c.saved).sum();
    let types = chosen
        .iter()
        .map(|(p, c)| (p.gguf_name(), c.quant))
        .collect();
    let size = total - saved;
    Ok((
        MixSpec {
            label: match size as f64 / (1024.0 * 1024.0) {
                mib if mib < 10.0 => format!("mixed {mib:.2} MiB"),
                mib => format!("mixed {mib:.0} MiB"),
            },
            types,
        },
        kl,
    ))
}

/// The least-KL choice saving at least `need` units, rebuilt from a table that keeps, for each
/// matrix and each saving, the option taken and the saving before it.
fn backtrack(
    opts: &[(Part, Vec<Choice>)],
    need: usize,
    unit: u64,
) -> Result<Vec<(Part, Choice)>, String> {
    let n = opts.len();
    // best[i][s]: least KL of matrices 0..i saving at least s; from[i][s]: (option, origin).
    let mut best = vec![f64::INFINITY; need + 1];
    best[0] = 0.0;
    let mut from: Vec<Vec<(u8, u32)>> = Vec::with_capacity(n);
    for (_, choices) in opts {
        let mut next = best.clone();
        let mut f: Vec<(u8, u32)> = (0..=need as u32).map(|s| (0, s)).collect();
        for (i, c) in choices.iter().enumerate() {
            let units = (c.saved / unit) as usize;
            for (s, &b) in best.iter().enumerate() {
                if !b.is_finite() {
                    continue;
                }
                let to = (s + units).min(need);
                let kl = b + c.kl;
                if kl < next[to] {
                    next[to] = kl;
                    f[to] = (i as u8 + 1, s as u32);
                }
            }
        }
        from.push(f);
        best = next;
    }
    if !best[need].is_finite() {
        return Err("no choice of the map's types saves enough".into());
    }
    let mut out = Vec::new();
    let mut s = need;
    for i in (0..n).rev() {
        let (o, origin) = from[i][s];
        if o > 0 {
            out.push((opts[i].0, opts[i].1[o as usize - 1]));
        }
        s = origin as usize;
    }
    out.reverse();
    Ok(out)
}

/// The bytes a variant of `spec` would save over the loaded weights, by the map's cells.
pub fn saved(map: &SensMap, spec: &MixSpec) -> Result<u64, String> {
    let parts = spec.parts()?;
    Ok(parts
        .iter()
        .filter_map(|(p, q)| map.cell(*p, *q).map(|c| c.saved()))
        .sum())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::sensitivity::{SensCell, SensPlan, TensorKind};
    use std::time::Duration;

    /// 100 units of weights: the unit is 1 KiB.
    const UNIT: u64 = 1024;

    fn map(cells: &[(Part, Quant, u64, f64)]) -> SensMap {
        let mut m = SensMap::new(SensPlan {
            model: "m".into(),
            types: vec![Quant::Q4_0, Quant::Q2K],
            layers: 2,
            cells: cells.iter().map(|c| (c.0, c.1)).collect(),
            skipped: vec![],
            scored: 1,
            perplexity: 1.0,
            loaded: vec![],
            weight_bytes: 100 * UNIT,
            resumed: 0,
            stamp: None,
        });
        m.cells = cells
            .iter()
            .map(|&(part, quant, saved, kl)| SensCell {
                part,
                quant,
                used: quant.to_string(),
                loaded_type: "Q8_0".into(),
                loaded_bytes: 50 * UNIT,
                bytes: 50 * UNIT - saved * UNIT,
                kl,
                top1: 1.0,
                perplexity: 1.0,
                took: Duration::ZERO,
            })
            .collect();
        m
    }

    #[test]
    fn the_plan_saves_enough_at_the_least_summed_kl() {
        let a = Part::layer(0, TensorKind::Q);
        let b = Part::layer(1, TensorKind::Down);
        let h = Part::head();
        let m = map(&[
            (a, Quant::Q4_0, 10, 0.01),
            (a, Quant::Q2K, 20, 0.05),
            (b, Quant::Q4_0, 10, 0.02),
            (b, Quant::Q2K, 20, 0.03),
            (h, Quant::Q4_0, 40, 0.5),
        ]);
        // Save 30 units: a@Q4_0 + b@Q2K (0.04) beats a@Q2K + b@Q4_0 (0.07) and the head (0.5).
        let (spec, kl) = plan(&m, 70 * UNIT).unwrap();
        assert!((kl - 0.04).abs() < 1e-12, "{kl}");
        assert_eq!(spec.types[&a.gguf_name()], Quant::Q4_0);
        assert_eq!(spec.types[&b.gguf_name()], Quant::Q2K);
        assert_eq!(spec.types.len(), 2);
        assert_eq!(saved(&m, &spec).unwrap(), 30 * UNIT);
        // Saving nothing changes nothing; saving 41 units needs the head.
        assert!(plan(&m, 100 * UNIT).unwrap().0.types.is_empty());
        let (big, _) = plan(&m, 59 * UNIT).unwrap();
        assert!(big.types.contains_key(&h.gguf_name()));
        assert!(saved(&m, &big).unwrap() >= 41 * UNIT);
        // Fractions of a unit add up: where rounding down reaches too little, every matrix takes
        // its smallest type, which saves enough.
        let frac = map(&[(a, Quant::Q4_0, 0, 0.01), (b, Quant::Q4_0, 0, 0.02)]);
        let mut frac = frac;
        for c in &mut frac.cells {
            c.bytes = c.loaded_bytes - UNIT * 3 / 4;
        }
        let (spec, _) = plan(&frac, 100 * UNIT - UNIT * 3 / 2).unwrap();
        assert_eq!(spec.types.len(), 2);
        // Two types of one size: the cheaper one is the choice.
        let same = map(&[(a, Quant::Q4K, 10, 0.02), (a, Quant::Q4_0, 10, 0.01)]);
        assert_eq!(
            plan(&same, 95 * UNIT).unwrap().0.types[&a.gguf_name()],
            Quant::Q4_0
        );
        // 80 units is more than every option together saves.
        let e = plan(&m, 19 * UNIT).unwrap_err();
        assert!(e.contains("smallest"), "{e}");
    }
}
