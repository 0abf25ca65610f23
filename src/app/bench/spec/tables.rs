//! What `bench spec` prints and draws from its rows: the main table, the K controllers'
//! table, and the chart of each acceptance policy's speed against its fidelity.

use super::Row;
use crate::protocol::DraftMode;
use crate::report::table::{Align, Table};
use anyhow::Result;

/// Each policy's speed against its fidelity: a series per policy, a point per speculative row
/// (its share of positions agreeing with plain decoding, its speedup), labelled by prompt.
pub(super) fn fidelity_chart(
    dir: &std::path::Path,
    rows: &[Row],
) -> Result<Vec<std::path::PathBuf>> {
    use crate::report::plot::{chart, Axes, Series};
    let mut series: Vec<Series> = Vec::new();
    for r in rows.iter().filter(|r| r.k.is_some()) {
        let name = r.policy_text();
        let agree = match r.agreement {
            Some((_, share)) => share * 100.0,
            None if r.same => 100.0,
            None => continue,
        };
        let label = format!("{} {}", r.prompt, r.mode);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => {
                s.points.push((agree, r.speedup));
                s.labels.push(label);
            }
            None => series.push(Series {
                name,
                points: vec![(agree, r.speedup)],
                labels: vec![label],
            }),
        }
    }
    chart(
        dir,
        "policy-speed-fidelity",
        "Acceptance policies: speed against fidelity",
        "positions agreeing with plain decoding, %",
        "speedup over plain decoding",
        &series,
        Axes {
            scatter: true,
            ..Axes::default()
        },
    )
}

/// Per prompt and mode (lossless rows): the best fixed K's speedup, and each controller's
/// (adaptive, acceptance target) speed against it and against plain decoding, with whether it
/// keeps 0.9× of the best fixed K and 0.97× of plain.
pub(super) fn controllers_table(rows: &[Row]) -> Option<Table> {
    let mut table = Table::new(
        [
            "prompt",
            "mode",
            "best fixed K",
            "its speedup",
            "controller",
            "speedup",
            "of best fixed",
            "≥ 0.9× best, ≥ 0.97× plain",
        ]
        .map(|h| (h, Align::Left)),
    );
    let mut any = false;
    let lossless = |r: &&Row| r.policy.is_none() && r.k.is_some();
    let mut keys: Vec<(&str, DraftMode)> = rows
        .iter()
        .filter(lossless)
        .map(|r| (r.prompt, r.mode))
        .collect();
    keys.dedup();
    for (prompt, mode) in keys {
        let of = |r: &&Row| lossless(r) && r.prompt == prompt && r.mode == mode;
        let best = rows
            .iter()
            .filter(of)
            .filter(|r| !r.k.is_some_and(|k| k.is_controlled()))
            .max_by(|a, b| a.speedup.total_cmp(&b.speedup));
        let Some(best) = best else { continue };
        for c in rows
            .iter()
            .filter(of)
            .filter(|r| r.k.is_some_and(|k| k.is_controlled()))
        {
            any = true;
            let ratio = c.speedup / best.speedup.max(1e-9);
            let ok = ratio >= 0.9 && c.speedup >= 0.97;
            table.row([
                prompt.to_string(),
                mode.to_string(),
                best.k_text(),
                format!("{:.2}×", best.speedup),
                c.k_text(),
                format!("{:.2}×", c.speedup),
                format!("{ratio:.2}"),
                (if ok { "yes" } else { "NO" }).to_string(),
            ]);
        }
    }
    any.then_some(table)
}

pub(super) fn table(rows: &[Row]) -> Table {
    let mut table = Table::new(
        [
            "prompt",
            "mode",
            "K",
            "policy",
            "tok/s",
            "acceptance",
            "mean accepted length",
            "speedup",
            "theory",
            "same text as plain (lossy: agreement)",
            "log-prob gap at kept drafts (nats)",
            "perplexity",
        ]
        .map(|h| (h, Align::Left)),
    );
    let pct = |x: Option<f64>| x.map_or("-".into(), |x| format!("{:.0}%", x * 100.0));
    let num = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
    for r in rows {
        table.row([
            r.prompt.to_string(),
            r.mode.to_string(),
            r.k_text(),
            r.policy_text(),
            format!("{:.2}", r.tok_s),
            pct(r.acceptance),
            num(r.mean_len),
            format!("{:.2}×", r.speedup),
            r.predicted.map_or("-".into(), |p| format!("{p:.2}×")),
            r.fidelity(),
            r.gap.map_or("-".into(), |g| format!("{g:.3}")),
            r.perplexity.map_or("-".into(), |p| format!("{p:.3}")),
        ]);
    }
    table
}
