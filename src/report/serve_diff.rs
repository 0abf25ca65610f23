//! `labtui report` on serving benchmarks: the levels of a `bench serve --format json` result (or
//! of a recording of one) read back as rows, and two runs put side by side level by level, each
//! figure with its ratio, so a change to a server or its flags reads as numbers.

use super::serve::{row, Row};
use super::table::{Align, Table};
use crate::protocol::serve::ServeEvent;
use crate::protocol::Event;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// A serving run read back: its levels, and what its JSON said of itself.
#[derive(Debug, Clone, Default)]
pub struct ServeRun {
    pub name: String,
    pub levels: Vec<Row>,
    pub metadata: Option<serde_json::Value>,
}

/// The levels of a `bench serve` JSON result, or of a recording that holds a serving benchmark
/// (its `LevelDone` events); `None` for a file that is neither (a local run's recording).
pub fn read(path: &Path) -> Result<Option<ServeRun>> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot open {name}"))?;
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{name}: not JSON"))?;
        let Some(levels) = v.get("levels") else {
            bail!("{name}: a JSON result of `bench serve` has a `levels` array; this has none");
        };
        let levels: Vec<Row> = serde_json::from_value(levels.clone())
            .with_context(|| format!("{name}: its levels are not bench serve's rows"))?;
        return Ok(Some(ServeRun {
            name,
            levels,
            metadata: v.get("metadata").cloned(),
        }));
    }
    let rec = crate::record::load(path)?;
    let levels: Vec<Row> = rec
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Serve(ServeEvent::LevelDone { summary, .. }) => Some(row(summary)),
            _ => None,
        })
        .collect();
    Ok((!levels.is_empty()).then_some(ServeRun {
        name,
        levels,
        metadata: None,
    }))
}

/// The figures a diff compares: name, value, and whether more is better.
fn figures(r: &Row) -> Vec<(&'static str, Option<f64>, bool)> {
    vec![
        ("out tok/s", Some(r.output_tok_s), true),
        ("steady out tok/s", r.steady_output_tok_s, true),
        ("req/s", Some(r.req_s), true),
        ("TTFT p50 ms", Some(r.ttft_p50_ms), false),
        ("TTFT p99 ms", Some(r.ttft_p99_ms), false),
        ("TPOT p50 ms", Some(r.tpot_p50_ms), false),
        ("ITL p50 ms", Some(r.itl_p50_ms), false),
        ("E2E p50 ms", Some(r.e2e_p50_ms), false),
        ("goodput req/s", r.goodput_req_s, true),
        ("prefix hit", r.prefix_hit, true),
    ]
}

/// The levels the two runs share: by endpoint position and load, so two servers measured at
/// the same levels line up.
fn pairs<'a>(a: &'a ServeRun, b: &'a ServeRun) -> Vec<(&'a Row, &'a Row)> {
    let mut out = Vec::new();
    let mut used = vec![false; b.levels.len()];
    for (i, ra) in a.levels.iter().enumerate() {
        let same = |j: usize, rb: &Row| !used[j] && rb.load == ra.load;
        // The same place first (the same endpoint of a side-by-side run), else any same load.
        let j = b
            .levels
            .get(i)
            .filter(|rb| same(i, rb))
            .map(|_| i)
            .or_else(|| b.levels.iter().enumerate().position(|(j, rb)| same(j, rb)));
        if let Some(j) = j {
            used[j] = true;
            out.push((ra, &b.levels[j]));
        }
    }
    out
}

/// Two runs level by level: each figure, its ratio B ÷ A, and ✓ where B is better by more
/// than 5% or ✗ where it is worse by more than 5%.
pub fn diff(a: &ServeRun, b: &ServeRun) -> Result<String> {
    let pairs = pairs(a, b);
    if pairs.is_empty() {
        bail!(
            "{} and {} share no level (the same load): nothing to compare",
            a.name,
            b.name
        );
    }
    let mut t = Table::new(vec![
        ("load", Align::Left),
        ("figure", Align::Left),
        ("A", Align::Right),
        ("B", Align::Right),
        ("B ÷ A", Align::Right),
        ("", Align::Left),
    ]);
    for (ra, rb) in &pairs {
        for ((name, va, more_better), (_, vb, _)) in figures(ra).into_iter().zip(figures(rb)) {
            let (Some(va), Some(vb)) = (va, vb) else {
                continue;
            };
            let ratio = (va > 0.0).then(|| vb / va);
            let verdict = match ratio {
                Some(r) if (r > 1.05) == more_better && (r - 1.0).abs() > 0.05 => "✓",
                Some(r) if (r - 1.0).abs() > 0.05 => "✗",
                _ => "",
            };
            t.row(vec![
                ra.load.clone(),
                name.into(),
                format!("{va:.2}"),
                format!("{vb:.2}"),
                ratio.map_or("—".into(), |r| format!("{r:.3}")),
                verdict.into(),
            ]);
        }
    }
    Ok(format!(
        "A: {}\nB: {}\n\n{}\n✓ B better by more than 5%, ✗ worse by more than 5%. {} of {} levels of A matched a level of B by load.\n",
        a.name,
        b.name,
        t.markdown(),
        pairs.len(),
        a.levels.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(load: &str, tok_s: f64, ttft: f64) -> Row {
        Row {
            load: load.into(),
            output_tok_s: tok_s,
            ttft_p50_ms: ttft,
            ..Row::default()
        }
    }

    #[test]
    fn levels_line_up_by_load_and_ratios_say_which_is_better() {
        let a = ServeRun {
            name: "a.json".into(),
            levels: vec![
                level("concurrency 1", 40.0, 100.0),
                level("concurrency 4", 80.0, 300.0),
            ],
            metadata: None,
        };
        let b = ServeRun {
            name: "b.json".into(),
            levels: vec![
                level("concurrency 4", 100.0, 300.0),
                level("concurrency 8", 1.0, 1.0),
            ],
            metadata: None,
        };
        let d = diff(&a, &b).unwrap();
        assert!(
            d.contains("| concurrency 4 | out tok/s | 80.00 | 100.00 | 1.250 | ✓ |"),
            "{d}"
        );
        assert!(
            d.contains("| concurrency 4 | TTFT p50 ms | 300.00 | 300.00 | 1.000 |  |"),
            "{d}"
        );
        assert!(!d.contains("concurrency 1 |"), "{d}");
        assert!(d.contains("1 of 2 levels of A matched"), "{d}");
        let worse = ServeRun {
            levels: vec![level("concurrency 1", 40.0, 150.0)],
            ..a.clone()
        };
        assert!(diff(&a, &worse).unwrap().contains("| 1.500 | ✗ |"));
        let none = ServeRun {
            levels: vec![level("rate 2 req/s", 1.0, 1.0)],
            ..a.clone()
        };
        assert!(diff(&a, &none).is_err());
    }
}
