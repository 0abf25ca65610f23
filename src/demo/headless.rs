//! `labtui demo NAME --headless`: run a demo through the worker as the dashboard does, record its
//! events to RON and write the Markdown report and the charts.

use crate::preset::Preset;
use crate::protocol::{Command, Event};
use crate::worker::{Options, Worker};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// The demo preset for `name`: `demo-NAME` in the presets folder, else the preset or file `name`.
/// The error lists the demo presets there are.
pub fn find(name: &str) -> Result<Preset> {
    let file = crate::preset::dir().join(format!("demo-{name}.ron"));
    if file.exists() {
        // A broken demo preset says what is wrong with it.
        return check(crate::preset::load(&file.display().to_string())?);
    }
    let preset = crate::preset::load(name).map_err(|_| {
        let known: Vec<String> = crate::preset::list(&crate::preset::dir())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| {
                p.file_stem()?
                    .to_str()?
                    .strip_prefix("demo-")
                    .map(String::from)
            })
            .collect();
        anyhow::anyhow!(
            "no demo {name:?} (demos in {}: {})",
            crate::preset::dir().display(),
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        )
    })?;
    check(preset)
}

fn check(preset: Preset) -> Result<Preset> {
    if preset.demo.is_none() {
        bail!(
            "preset {} has no `demo` section: it is not a demo",
            preset.name
        );
    }
    Ok(preset)
}

/// What a headless run wrote.
pub struct Written {
    pub report: String,
    pub files: Vec<PathBuf>,
}

/// Run `preset`'s demo on `model`, writing `recording.ron`, `report.md` and the charts into `out`.
/// Progress lines go to `progress`.
pub fn run(
    model: &str,
    preset: &Preset,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Written> {
    let demo = preset.demo.clone().context("the preset has no demo")?;
    std::fs::create_dir_all(out)
        .with_context(|| format!("cannot create the folder {}", out.display()))?;
    let rec_path = out.join("recording.ron");
    let mut recorder = crate::record::Recorder::create(
        &rec_path,
        crate::record::Header::new(None, "as loaded", "none", 0),
    )?;
    let mut worker = Worker::spawn(Options {
        sample_every: None,
        ..Options::default()
    });
    worker.send(Command::LoadModel { spec: model.into() });
    while let Some(stamped) = worker.events.blocking_recv() {
        recorder.event(&stamped)?;
        match &stamped.event {
            Event::ModelLoaded(info) => {
                progress(&format!(
                    "{} loaded; running the {} demo",
                    info.name, demo.kind
                ));
                worker.send(Command::RunDemo {
                    demo: demo.clone(),
                    prompt: preset.prompts[0].clone(),
                });
            }
            Event::Notice { message } => progress(message),
            Event::Error { message } => bail!("{message}"),
            Event::Demo(run) => {
                let report = super::report::markdown(run, &preset.notes);
                let md = out.join("report.md");
                std::fs::write(&md, &report)
                    .with_context(|| format!("cannot write {}", md.display()))?;
                let mut files = vec![rec_path, md];
                files.extend(super::report::write_charts(out, &run.result)?);
                return Ok(Written { report, files });
            }
            _ => {}
        }
    }
    bail!("the worker stopped before the demo finished")
}
