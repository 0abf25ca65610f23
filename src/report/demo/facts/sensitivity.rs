//! The facts of the sensitivity demo: the most and least sensitive matrices and kinds, how the
//! layers compare, and each mix against the uniform type of its size.

use super::{Facts, MIB};
use crate::protocol::sensitivity::SensDemo;
use crate::protocol::sensitivity::{SensCell, TensorKind};
use crate::protocol::Setting;
use crate::report::heatmap::milli;

/// `Q4_0` → `q4_0`: a type as a fact's name takes it.
fn t(q: crate::protocol::Quant) -> String {
    q.name().to_lowercase()
}

pub(super) fn sensitivity(f: &mut Facts, x: &SensDemo) {
    let m = &x.map;
    f.num("cells", m.cells.len() as f64, 0);
    f.num("scored", m.plan.scored as f64, 0);
    f.num("ppl_loaded", m.plan.perplexity, 3);
    f.num("weights_mib", m.plan.weight_bytes as f64 / MIB, 1);
    for &q in &m.plan.types {
        let cells: Vec<&SensCell> = m.cells.iter().filter(|c| c.quant == q).collect();
        let k = t(q);
        if let Some(w) = cells.iter().max_by(|a, b| a.kl.total_cmp(&b.kl)) {
            f.set(&format!("worst_{k}"), w.part.label());
            f.set(&format!("worst_kl_{k}"), milli(w.kl));
            f.set(
                &format!("worst_top1_{k}"),
                format!("{:.1}%", w.top1 * 100.0),
            );
        }
        if let Some(b) = cells.iter().min_by(|a, b| a.kl.total_cmp(&b.kl)) {
            f.set(&format!("least_{k}"), b.part.label());
            f.set(&format!("least_kl_{k}"), milli(b.kl));
        }
        // Kinds by their mean KL per MiB saved: what a byte of each costs.
        let mut kinds: Vec<(TensorKind, f64, f64)> = [TensorKind::Embed, TensorKind::Head]
            .into_iter()
            .chain(TensorKind::LAYER)
            .filter_map(|kind| {
                let of: Vec<&&SensCell> = cells.iter().filter(|c| c.part.kind == kind).collect();
                let saved: u64 = of.iter().map(|c| c.saved()).sum();
                (saved > 0).then(|| {
                    let kl: f64 = of.iter().map(|c| c.kl).sum();
                    (kind, kl / of.len() as f64, kl / (saved as f64 / MIB))
                })
            })
            .collect();
        kinds.sort_by(|a, b| b.2.total_cmp(&a.2));
        if let (Some(dear), Some(cheap)) = (kinds.first(), kinds.last()) {
            f.set(&format!("dearest_kind_{k}"), dear.0.name());
            f.set(&format!("dearest_per_mib_{k}"), milli(dear.2));
            f.set(&format!("cheapest_kind_{k}"), cheap.0.name());
            f.set(&format!("cheapest_per_mib_{k}"), milli(cheap.2));
        }
        layer_thirds(f, &cells, m.plan.layers, &k);
    }
    for mix in &x.mixes {
        let k = mix.like.to_lowercase();
        f.set(&format!("mix_{k}"), mix.spec.label.clone());
        f.set(&format!("mix_summary_{k}"), mix.spec.summary());
        f.set(&format!("mix_kl_{k}"), format!("{:.4}", mix.measured_kl));
        f.set(
            &format!("mix_predicted_{k}"),
            format!("{:.4}", mix.predicted_kl),
        );
        f.set(&format!("uniform_kl_{k}"), format!("{:.4}", mix.like_kl));
        let gain = mix.like_kl / mix.measured_kl.max(1e-12);
        f.num(&format!("mix_gain_{k}"), gain, 1);
        f.set(
            &format!("mix_verdict_{k}"),
            if (gain - 1.0).abs() < 0.01 {
                "the same: at this size there is no room to choose, every matrix takes its \
                 lowest type"
                    .to_string()
            } else if gain > 1.0 {
                format!("{gain:.1}× less")
            } else {
                format!("{:.1}× more: the cells do not add here", 1.0 / gain)
            },
        );
    }
}

/// The mean KL of a matrix in the first layer, in the last, and over every layer.
fn layer_thirds(f: &mut Facts, cells: &[&SensCell], layers: usize, k: &str) {
    let mean = |keep: &dyn Fn(usize) -> bool| {
        let of: Vec<f64> = cells
            .iter()
            .filter(|c| c.part.layer.is_some_and(keep))
            .map(|c| c.kl)
            .collect();
        (!of.is_empty()).then(|| milli(of.iter().sum::<f64>() / of.len() as f64))
    };
    let last = layers.saturating_sub(1);
    for (name, v) in [
        ("first_layer_kl", mean(&|l| l == 0)),
        ("last_layer_kl", mean(&|l| l == last)),
        ("mean_layer_kl", mean(&|_| true)),
    ] {
        if let Some(v) = v {
            f.set(&format!("{name}_{k}"), v);
        }
    }
}
