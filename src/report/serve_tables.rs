//! The serving tables beside the main one: the steady window and what else each level measured,
//! the percentiles asked for, a capacity search's finding, and synthetic prompt lengths against
//! the server's count.

use super::table::{ms, Align, Table};
use crate::protocol::serve::LevelSummary;

/// A second table: the steady window's rates, the peak second, each user's speed, the time to
/// the second token, the prefix cache's share and the connections opened.
pub fn steady_table(levels: &[LevelSummary], endpoints: bool) -> String {
    let mut cols = Vec::new();
    if endpoints {
        cols.push(("endpoint", Align::Left));
    }
    cols.extend([
        ("load", Align::Left),
        ("steady window s", Align::Right),
        ("steady out tok/s", Align::Right),
        ("peak out tok/s (1 s)", Align::Right),
        ("in / total tok/s", Align::Right),
        ("per-user tok/s p50 / p10", Align::Right),
        ("TTST p50 ms", Align::Right),
        ("prefix hit", Align::Right),
        ("new conns (setup p50 ms)", Align::Right),
    ]);
    let mut t = Table::new(cols);
    for l in levels {
        let mut cells = Vec::new();
        if endpoints {
            cells.push(l.endpoint.clone());
        }
        cells.extend([
            l.load.to_string(),
            l.steady.map_or("—".into(), |w| {
                format!("{:.1}–{:.1}", w.from.as_secs_f64(), w.to.as_secs_f64())
            }),
            l.steady
                .map_or("—".into(), |w| format!("{:.1}", w.output_tok_s)),
            format!("{:.0}", l.peak_output_tok_s),
            format!("{:.1} / {:.1}", l.input_tok_s, l.total_tok_s),
            l.per_user_tok_s
                .map_or("—".into(), |d| format!("{:.1} / {:.1}", d.p50, d.p10)),
            if l.ttst.n > 0 {
                format!("{:.1}", ms(l.ttst.p50))
            } else {
                "—".into()
            },
            l.prefix_hit()
                .map_or("—".into(), |h| format!("{:.0}%", h * 100.0)),
            l.connections.map_or("—".into(), |c| {
                if c.opened == 0 {
                    "0".into()
                } else {
                    format!("{} ({:.2})", c.opened, ms(c.setup.p50))
                }
            }),
        ]);
        t.row(cells);
    }
    t.markdown()
}

/// The asked percentiles, one row per level and latency, with the samples behind each.
pub fn percentile_table(levels: &[LevelSummary], endpoints: bool) -> Option<String> {
    let at = levels
        .iter()
        .find_map(|l| l.percentiles.as_ref())?
        .at
        .clone();
    let heads: Vec<String> = at.iter().map(|q| format!("p{q} ms")).collect();
    let mut cols: Vec<(&str, Align)> = Vec::new();
    if endpoints {
        cols.push(("endpoint", Align::Left));
    }
    cols.extend([
        ("load", Align::Left),
        ("latency", Align::Left),
        ("n", Align::Right),
    ]);
    cols.extend(heads.iter().map(|h| (h.as_str(), Align::Right)));
    cols.extend([("std ms", Align::Right), ("min / max ms", Align::Right)]);
    let mut t = Table::new(cols);
    for l in levels {
        let Some(p) = &l.percentiles else { continue };
        for (name, values, d) in [
            ("TTFT", &p.ttft, &l.ttft),
            ("TPOT", &p.tpot, &l.tpot),
            ("ITL", &p.itl, &l.itl),
            ("E2E", &p.e2e, &l.e2e),
        ] {
            let mut cells = Vec::new();
            if endpoints {
                cells.push(l.endpoint.clone());
            }
            cells.extend([l.load.to_string(), name.into(), d.n.to_string()]);
            cells.extend(values.iter().map(|v| format!("{:.1}", ms(*v))));
            cells.push(format!("{:.1}", ms(d.std)));
            cells.push(format!("{:.1} / {:.1}", ms(d.min), ms(d.max)));
            t.row(cells);
        }
    }
    Some(t.markdown())
}

/// Synthetic prompts of `asked` tokens on average against what each level's server counted
/// (its `usage.prompt_tokens`): the chat template's tokens show as the difference, anything else
/// as a tokenizer that splits the words otherwise.
pub fn prompt_check(levels: &[LevelSummary], asked: usize) -> String {
    let mut out = String::new();
    for l in levels.iter().filter(|l| l.ok > 0 && l.prompt_tokens > 0) {
        let mean = l.prompt_tokens as f64 / l.ok as f64;
        out.push_str(&format!(
            "- {} at {}: asked {asked} prompt tokens a request on average, the server counted {mean:.1} ({:+.1})\n",
            l.endpoint,
            l.load,
            mean - asked as f64
        ));
    }
    if out.is_empty() {
        return out;
    }
    format!("\nSynthetic prompt lengths against the server's count (with --api chat its template adds a fixed number):\n\n{out}")
}

/// What a capacity search found, per endpoint: the highest load whose level met the SLO for
/// `attain` of its requests, and its goodput; or that none did.
pub fn capacity(levels: &[LevelSummary], slo: &crate::protocol::serve::Slo, attain: f64) -> String {
    let targets: Vec<String> = [("TTFT", slo.ttft), ("TPOT", slo.tpot), ("E2E", slo.e2e)]
        .into_iter()
        .filter_map(|(n, t)| t.map(|t| format!("{n} ≤ {:.0} ms", ms(t))))
        .collect();
    let mut out = format!(
        "\nCapacity under the SLO ({}) for at least {:.0}% of requests, the level run to its end and its TTFT not growing past {}× from its first quarter to its last (a queue building up):\n\n",
        targets.join(", "),
        attain * 100.0,
        crate::serve::load::capacity::MOST_TTFT_GROWTH
    );
    let mut endpoints: Vec<&str> = levels.iter().map(|l| l.endpoint.as_str()).collect();
    endpoints.dedup();
    for e in endpoints {
        let probes = levels.iter().filter(|l| l.endpoint == e).count();
        match crate::serve::load::capacity::found(levels, e, attain) {
            Some(l) => out.push_str(&format!(
                "- {e}: **{}**, goodput {:.2} req/s, {:.1} output tok/s ({probes} levels probed)\n",
                l.load,
                l.goodput.unwrap_or(0.0),
                l.output_tok_s
            )),
            None => out.push_str(&format!(
                "- {e}: no level probed met it ({probes} levels probed)\n"
            )),
        }
    }
    out
}
