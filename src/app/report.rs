//! `labtui report`: the runs of recordings side by side, a demo recording's tables, charts, and a
//! token-by-token diff of two recordings.

use crate::protocol::Event;
use crate::record::Recording;
use crate::report;
use anyhow::Result;
use clap::{Args, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Md,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Token-by-token diff of the first run of two recordings; for a race's recording, its
    /// summary rows; for two serving benchmarks (JSON results or recordings), their levels
    /// side by side with ratios.
    #[arg(long)]
    pub diff: bool,
    /// Also write charts (inter-token latency, KV growth; PNG and SVG) into this folder.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
}

/// `labtui report FILES…`.
pub fn run(a: &ReportArgs) -> Result<()> {
    if let Some(runs) = serve_runs(&a.files)? {
        return serve_report(a, &runs);
    }
    let mut recs = Vec::new();
    for f in &a.files {
        recs.push((f.display().to_string(), crate::record::load(f)?));
    }
    if let Some(dir) = &a.plot {
        for f in report::plot::write(dir, &recs)? {
            eprintln!("wrote {}", f.display());
        }
    }
    let races: Vec<_> = recs
        .iter()
        .flat_map(|(f, r)| report::race::races(r).into_iter().map(move |s| (f, s)))
        .collect();
    if a.diff && !races.is_empty() {
        // A race's recording holds both sides: its summary rows are the diff.
        for (f, s) in races {
            match a.format {
                ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&s)?),
                _ => println!("# {f}: A/B race\n\n{}", report::race::markdown(&s)),
            }
        }
        return Ok(());
    }
    if a.diff {
        anyhow::ensure!(
            recs.len() == 2,
            "--diff compares exactly two recordings (or the sides of a race's recording)"
        );
        let first = |r: &Recording| {
            report::run_tokens(r)
                .into_iter()
                .next()
                .map(|x| x.1)
                .unwrap_or_default()
        };
        let d = report::diff(&first(&recs[0].1), &first(&recs[1].1));
        match a.format {
            ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&d)?),
            _ => print!("{}", report::diff_text(&d, &recs[0].0, &recs[1].0)),
        }
        return Ok(());
    }
    // A demo's recording reports its demo's tables.
    for (f, r) in &recs {
        for e in &r.events {
            if let Event::Demo(run) = &e.event {
                println!("# {f}: demo {} on {}\n", run.demo, run.model);
                println!("{}", report::demo::tables(&run.result));
            }
        }
    }
    let rows: Vec<report::Row> = recs.iter().flat_map(|(f, r)| report::rows(f, r)).collect();
    match a.format {
        ReportFormat::Md => print!("{}", report::markdown(&rows)),
        ReportFormat::Csv => print!("{}", report::csv(&rows)?),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(())
}

/// The files as serving benchmarks (JSON results or recordings of one), when they all are.
fn serve_runs(files: &[std::path::PathBuf]) -> Result<Option<Vec<report::serve_diff::ServeRun>>> {
    let mut runs = Vec::new();
    for f in files {
        match report::serve_diff::read(f)? {
            Some(r) => runs.push(r),
            None => return Ok(None),
        }
    }
    Ok(Some(runs))
}

/// Serving benchmarks read back: each run's levels, or with `--diff` two runs level by level.
fn serve_report(a: &ReportArgs, runs: &[report::serve_diff::ServeRun]) -> Result<()> {
    if a.diff {
        anyhow::ensure!(runs.len() == 2, "--diff compares exactly two runs");
        print!("{}", report::serve_diff::diff(&runs[0], &runs[1])?);
        return Ok(());
    }
    for r in runs {
        match a.format {
            ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&r.levels)?),
            ReportFormat::Csv => {
                let mut w = csv::Writer::from_writer(Vec::new());
                for l in &r.levels {
                    w.serialize(l)?;
                }
                print!("{}", String::from_utf8(w.into_inner()?)?);
            }
            ReportFormat::Md => {
                println!("# {}\n", r.name);
                let mut t = report::table::Table::new(vec![
                    ("load", report::table::Align::Left),
                    ("ok/sent", report::table::Align::Right),
                    ("out tok/s", report::table::Align::Right),
                    ("TTFT p50 / p99 ms", report::table::Align::Right),
                    ("TPOT p50 ms", report::table::Align::Right),
                    ("E2E p50 ms", report::table::Align::Right),
                ]);
                for l in &r.levels {
                    t.row(vec![
                        l.load.clone(),
                        format!("{}/{}", l.ok, l.requests),
                        format!("{:.1}", l.output_tok_s),
                        format!("{:.1} / {:.1}", l.ttft_p50_ms, l.ttft_p99_ms),
                        format!("{:.1}", l.tpot_p50_ms),
                        format!("{:.1}", l.e2e_p50_ms),
                    ]);
                }
                println!("{}", t.markdown());
            }
        }
    }
    Ok(())
}
