//! `labtui bench sensitivity`: every weight matrix squeezed alone to each low type, scored
//! against the loaded weights. The sweep's events go to a recording as they happen (a killed
//! sweep keeps every cell it finished; `--resume` measures only the rest); at the end, or on
//! Ctrl-C, the tables and one heat map per type are written beside it.

use super::MAX_TOKENS;
use crate::app::args;
use crate::engine::quality::Probe;
use crate::engine::sensitivity::{plan, sweep, DEFAULT_TYPES};
use crate::engine::{default_device, Engine};
use crate::protocol::sensitivity::{SensEvent, SensMap};
use crate::protocol::{DraftMode, Event, KPolicy, Quant, Stamped};
use crate::record::{Header, Recorder};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

/// The recording's name in the output folder.
pub const RECORDING: &str = "sensitivity.ron";

#[derive(Debug, Args)]
pub struct BenchSensitivityArgs {
    /// The low types each matrix is tried at (default: Q4_0, Q3_K, Q2_K).
    #[arg(long, value_delimiter = ',', value_parser = crate::app::args::setting::<Quant>())]
    pub types: Vec<Quant>,
    /// Tokens of the reference text each cell scores.
    #[arg(long, default_value_t = 512, value_parser = args::count(2, MAX_TOKENS))]
    pub tokens: usize,
    /// Tokens per chunk (each chunk's second half is scored).
    #[arg(long, default_value_t = 256, value_parser = args::count(2, MAX_TOKENS))]
    pub ctx: usize,
    /// Folder for the recording, the tables and the heat maps.
    #[arg(long, default_value = "sensitivity")]
    pub out: PathBuf,
    /// Continue the sweep recorded in the folder (only the cells it lacks are measured; a
    /// finished one is only drawn again).
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start over, replacing a sweep recorded in the folder.
    #[arg(long)]
    pub force: bool,
}

/// The sweep recorded at `path`, if the file holds one.
pub fn recorded(path: &Path) -> Result<Option<SensMap>> {
    let rec = crate::record::load(path)?;
    Ok(SensMap::from_events(rec.events.iter().filter_map(
        |e| match &e.event {
            Event::Sensitivity(s) => Some(s),
            _ => None,
        },
    )))
}

/// The sweep recorded in the folder, if `--resume` asks for it; an error if the folder holds
/// one and neither `--resume` nor `--force` says what to do with it.
fn earlier(a: &BenchSensitivityArgs, recording: &Path) -> Result<Option<SensMap>> {
    match (recording.exists(), a.resume, a.force) {
        (true, true, _) => recorded(recording),
        (true, false, false) => bail!(
            "{} holds a sweep already: --resume continues it, --force starts over",
            recording.display()
        ),
        (false, true, _) => bail!("there is no sweep to resume at {}", recording.display()),
        _ => Ok(None),
    }
}

/// An error when `earlier` is a sweep of another text or model than `plan`: resuming would mix
/// two measurements.
fn resumable(
    earlier: Option<&SensMap>,
    plan: &crate::protocol::sensitivity::SensPlan,
    recording: &Path,
) -> Result<()> {
    match earlier {
        Some(e) if !crate::engine::sensitivity::same_sweep(&e.plan, plan) => bail!(
            "the sweep recorded at {} is of {} over {} positions, not this one ({} over {}): \
             resume it with the same model and --tokens/--ctx, or --force starts over",
            recording.display(),
            e.plan.model,
            e.plan.scored,
            plan.model,
            plan.scored
        ),
        _ => Ok(()),
    }
}

/// One line per cell on stderr: where the sweep is, what the cell cost, the time left.
fn say_cell(map: &SensMap, c: &crate::protocol::sensitivity::SensCell) {
    let (done, total) = map.progress();
    let eta = map
        .eta()
        .map(|d| format!(" · ETA {}", crate::stats::human_secs(d)))
        .unwrap_or_default();
    eprintln!(
        "[{done}/{total}] {} at {}: KL {:.5}, top-1 {:.1}%, saves {}{eta}",
        c.part.label(),
        c.quant,
        c.kl,
        c.top1 * 100.0,
        crate::stats::human_bytes(c.saved())
    );
}

pub fn run(model: &str, a: &BenchSensitivityArgs) -> Result<()> {
    let recording = a.out.join(RECORDING);
    let earlier = earlier(a, &recording)?;
    let engine = Engine::open(model, &default_device(), |_, _| {})?;
    let stamp = crate::worker::stamp::measure(Some(&engine.model), crate::engine::threads()).ok();
    if let Some(s) = &stamp {
        println!("{}", crate::report::stamp::markdown(s));
    }
    // A resumed sweep keeps its types unless the command line names others.
    let types = match (a.types.is_empty(), &earlier) {
        (true, Some(e)) => e.plan.types.clone(),
        (true, None) => DEFAULT_TYPES.to_vec(),
        (false, _) => a.types.clone(),
    };
    let mut probe = Probe::new(&engine, a.tokens, a.ctx)?;
    let reference = crate::engine::quant::dense_reference(engine.loaded_model())?;
    let mut plan = plan(&engine, &reference, &types, &mut probe)?;
    plan.stamp = stamp.map(Box::new);
    resumable(earlier.as_ref(), &plan, &recording)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut rec = Recorder::create(
        &recording,
        Header::new(
            Some(engine.info.clone()),
            Quant::AsLoaded,
            DraftMode::None,
            KPolicy::Adaptive,
        ),
    )?;
    let flag = Arc::new(AtomicBool::new(false));
    crate::engine::interrupt::install(flag.clone());
    crate::app::train::stop_on_ctrl_c(flag);
    eprintln!(
        "{}: {} cells ({} left out) over {} positions, perplexity {:.3} as loaded",
        engine.info.name,
        plan.cells.len(),
        plan.skipped.len(),
        plan.scored,
        plan.perplexity
    );
    let start = Instant::now();
    let mut live: Option<SensMap> = None;
    let mut write_err = None;
    let outcome = sweep(
        &engine,
        &reference,
        &probe,
        plan,
        earlier.as_ref(),
        &mut |e| {
            SensMap::apply(&mut live, &e);
            if let (SensEvent::Cell(c), Some(m)) = (&e, &live) {
                say_cell(m, c);
            }
            let line = Stamped {
                at: start.elapsed(),
                event: Event::Sensitivity(e),
            };
            if let Err(err) = rec.event(&line) {
                write_err.get_or_insert(err);
            }
        },
    );
    if let Some(e) = write_err {
        return Err(e);
    }
    let map = match outcome {
        Ok(map) => map,
        Err(_) if crate::engine::interrupt::requested() => {
            return stopped(&a.out, live, &recording);
        }
        Err(e) => return Err(e.into()),
    };
    let files = write_outputs(&a.out, &map)?;
    print!("{}", crate::report::demo::sensitivity_tables(&map, 12));
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    eprintln!("wrote {} and {}", recording.display(), files.join(", "));
    Ok(())
}

/// A sweep stopped by Ctrl-C: the outputs of what it measured, and how to go on.
fn stopped(out: &Path, live: Option<SensMap>, recording: &Path) -> Result<()> {
    let map = live.context("stopped before the sweep began")?;
    let (done, total) = map.progress();
    write_outputs(out, &map)?;
    eprintln!(
        "stopped after {done} of {total} cells; `--resume` measures the rest ({})",
        recording.display()
    );
    Ok(())
}

/// The tables (`sensitivity.md`) and a heat map per type (`heatmap-TYPE.png`/`.svg`).
pub fn write_outputs(dir: &Path, map: &SensMap) -> Result<Vec<PathBuf>> {
    let mut files = crate::report::heatmap::write_all(dir, map)?;
    let md = dir.join("sensitivity.md");
    let stamp = map
        .plan
        .stamp
        .as_deref()
        .map(crate::report::stamp::markdown)
        .unwrap_or_default();
    std::fs::write(
        &md,
        format!(
            "{stamp}\n{}",
            crate::report::demo::sensitivity_tables(map, 12)
        ),
    )?;
    files.push(md);
    Ok(files)
}
