//! The sensitivity map in tables: by kind of matrix, the most sensitive cells, and the whole map
//! as numbers (the heat map's cells), per low type.

use crate::protocol::sensitivity::{SensCell, SensMap, TensorKind};
use crate::protocol::Quant;
use crate::report::heatmap::milli;
use crate::report::table::{Cell::*, Column, Table};

/// KL, top-1 and bytes of the cells of one kind at one type.
fn kind_row<'a>(cells: &[&'a SensCell]) -> Option<(f64, &'a SensCell, u64)> {
    let worst = cells.iter().max_by(|a, b| a.kl.total_cmp(&b.kl))?;
    let mean = cells.iter().map(|c| c.kl).sum::<f64>() / cells.len() as f64;
    Some((mean, worst, cells.iter().map(|c| c.saved()).sum()))
}

/// Each kind at each type: the mean KL over its matrices, the worst one, and the bytes all of
/// them would save; with the KL per MiB saved, the price a mixed variant pays.
pub fn by_kind(map: &SensMap) -> Table {
    let mut t = Table::new([
        Column::left("type"),
        Column::left("matrices"),
        Column::right("mean KL ×10⁻³"),
        Column::left("worst"),
        Column::right("worst KL ×10⁻³"),
        Column::right("saves MiB"),
        Column::right("KL ×10⁻³ per MiB"),
    ]);
    let kinds = [TensorKind::Embed, TensorKind::Head]
        .into_iter()
        .chain(TensorKind::LAYER);
    // A type that fell back to one shown already (Q2_K → Q4_0 on short rows) repeats its row.
    let mut shown = std::collections::HashSet::new();
    for q in &map.plan.types {
        for kind in kinds.clone() {
            let cells: Vec<&SensCell> = map
                .cells
                .iter()
                .filter(|c| c.quant == *q && c.part.kind == kind)
                .collect();
            let Some((mean, worst, saved)) = kind_row(&cells) else {
                continue;
            };
            if !shown.insert((kind, worst.used.clone())) {
                continue;
            }
            let mib = saved as f64 / (1024.0 * 1024.0);
            let total_kl: f64 = cells.iter().map(|c| c.kl).sum();
            t.row([
                Text(format!("{q} ({})", worst.used)),
                Text(format!("{} × {}", kind.name(), cells.len())),
                Text(milli(mean)),
                Text(worst.part.label()),
                Text(milli(worst.kl)),
                Num(mib, 1),
                Text(if mib > 0.0 {
                    milli(total_kl / mib)
                } else {
                    "—".into()
                }),
            ]);
        }
    }
    t
}

/// The `n` cells with the highest KL at any type.
pub fn most_sensitive(map: &SensMap, n: usize) -> Table {
    let mut t = Table::new([
        Column::left("matrix"),
        Column::left("loaded"),
        Column::left("squeezed to"),
        Column::right("KL ×10⁻³"),
        Column::right("top-1"),
        Column::right("perplexity"),
        Column::right("saves MiB"),
    ]);
    let mut cells: Vec<&SensCell> = map.cells.iter().collect();
    cells.sort_by(|a, b| b.kl.total_cmp(&a.kl));
    let mut seen = std::collections::HashSet::new();
    for c in cells {
        if !seen.insert((c.part, c.used.clone())) {
            continue; // a fallback repeats a cell: show it once
        }
        t.row([
            Text(c.part.label()),
            Text(c.loaded_type.clone()),
            Text(c.used.clone()),
            Text(milli(c.kl)),
            Percent(c.top1, 1),
            Num(c.perplexity, 3),
            Num(c.saved() as f64 / (1024.0 * 1024.0), 2),
        ]);
        if seen.len() >= n {
            break;
        }
    }
    t
}

/// The map at `q` as numbers: KL ×10⁻³ per layer (rows) and kind (columns).
pub fn grid(map: &SensMap, q: Quant) -> Table {
    let mut cols = vec![Column::left("layer")];
    cols.extend(TensorKind::LAYER.iter().map(|k| Column::right(k.name())));
    let mut t = Table::new(cols);
    for (label, parts) in map.rows() {
        let mut row = vec![Text(label)];
        for p in &parts {
            row.push(Text(match map.cell(*p, q) {
                Some(c) if p.layer.is_none() => format!("{} {}", p.kind.name(), milli(c.kl)),
                Some(c) => milli(c.kl),
                None => "—".into(),
            }));
        }
        while row.len() < TensorKind::LAYER.len() + 1 {
            row.push(Text(String::new()));
        }
        t.row(row);
    }
    t
}

/// The Markdown a sweep writes: a summary, the kinds, the `top` most sensitive cells, and the
/// map at each type.
pub fn sensitivity_tables(map: &SensMap, top: usize) -> String {
    let (done, total) = map.progress();
    let mut out = format!(
        "## The sweep\n\n{} · {done} of {total} cells measured ({} left out: the type would \
         not save a byte), each over {} positions of labtui's sources; perplexity {:.3} as \
         loaded, weights {:.1} MiB. KL is the mean KL divergence from the loaded weights' \
         next-token distributions, in thousandths of a nat; every product runs in f32, so a cell \
         measures its matrix's rounding alone.\n\n## By kind\n\n",
        map.plan.model,
        map.plan.skipped.len(),
        map.plan.scored,
        map.plan.perplexity,
        map.plan.weight_bytes as f64 / (1024.0 * 1024.0),
    );
    out.push_str(&by_kind(map).markdown());
    out.push_str(&format!("\n## The {top} most sensitive\n\n"));
    out.push_str(&most_sensitive(map, top).markdown());
    for q in &map.plan.types {
        if map.cells.iter().any(|c| c.quant == *q) {
            out.push_str(&format!("\n## Every matrix alone at {q} (KL ×10⁻³)\n\n"));
            out.push_str(&grid(map, *q).markdown());
        }
    }
    out
}

/// Each mix: the size it matched, what it squeezed, its KL predicted and measured, and the KL
/// of the uniform type of that size.
pub fn mixes(x: &crate::protocol::sensitivity::SensDemo) -> Table {
    let mut t = Table::new([
        Column::left("mix"),
        Column::left("size of"),
        Column::left("matrices squeezed").markdown_only(),
        Column::right("KL predicted"),
        Column::right("KL measured"),
        Column::right("uniform KL"),
    ]);
    for m in &x.mixes {
        t.row([
            Text(m.spec.label.clone()),
            Text(m.like.clone()),
            Text(m.spec.summary()),
            Num(m.predicted_kl, 4),
            Num(m.measured_kl, 4),
            Num(m.like_kl, 4),
        ]);
    }
    t
}

/// The demo's report: the map's tables, then the mixes beside the uniform types.
pub fn demo_markdown(x: &crate::protocol::sensitivity::SensDemo) -> String {
    format!(
        "{}\n## Mixed precision from the map\n\nEach mix is the least-KL choice of types, from \
         the cells above, that is no larger than the uniform type it is named after; measured \
         like it on the same text.\n\n{}\n{}",
        sensitivity_tables(&x.map, 10),
        super::quant_table(&x.rows, x.matmul_params),
        mixes(x).markdown()
    )
}

/// What the demo pane shows: the uniform types and mixes, then the mixes' predictions.
pub fn demo_tables(x: &crate::protocol::sensitivity::SensDemo) -> Vec<Table> {
    vec![super::quant_rows(&x.rows, x.matmul_params), mixes(x)]
}
