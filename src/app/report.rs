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
    /// Token-by-token diff of the first run of two recordings.
    #[arg(long)]
    pub diff: bool,
    /// Also write charts (inter-token latency, KV growth; PNG and SVG) into this folder.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
}

/// `labtui report FILES…`.
pub fn run(a: &ReportArgs) -> Result<()> {
    let mut recs = Vec::new();
    for f in &a.files {
        recs.push((f.display().to_string(), crate::record::load(f)?));
    }
    if let Some(dir) = &a.plot {
        for f in report::plot::write(dir, &recs)? {
            eprintln!("wrote {}", f.display());
        }
    }
    if a.diff {
        anyhow::ensure!(recs.len() == 2, "--diff compares exactly two recordings");
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
