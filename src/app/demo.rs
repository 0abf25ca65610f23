//! `labtui demo NAME --headless`: run a demo through the worker as the dashboard does, record its
//! events to RON and write the Markdown report and the charts.

use crate::preset::Preset;
use crate::protocol::{Command, DemoKind, DraftMode, Event, KPolicy, Quant};
use crate::worker::{Options, Worker};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

/// The demo preset for `name`: `demo-NAME` (from the presets folder, else built in), else the
/// preset or file `name`. The error lists the demos there are.
pub fn find(name: &str) -> Result<Preset> {
    if let Ok(p) = crate::preset::load(&format!("demo-{name}")) {
        return check(p);
    }
    let Ok(preset) = crate::preset::load(name) else {
        let known: Vec<String> = crate::preset::all()
            .into_iter()
            .filter_map(|f| f.name.strip_prefix("demo-").map(String::from))
            .collect();
        bail!(
            "no demo {name:?} (demos: {})",
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        );
    };
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
    /// The stamp the report starts with (none from a recording made before stamps).
    pub stamp: Option<Box<crate::protocol::Stamp>>,
}

/// A worker with a model loaded, running demos one after another: every demo of a session
/// shares the worker's stamp (the roofs are measured once, before the first).
pub struct Session {
    worker: Worker,
    info: crate::protocol::ModelInfo,
}

impl Session {
    /// Load `model`; progress lines go to `progress`.
    pub fn open(model: &str, progress: &mut dyn FnMut(&str)) -> Result<Self> {
        let mut worker = Worker::spawn(Options {
            sample_every: None,
            ..Options::default()
        });
        worker.send(Command::LoadModel { spec: model.into() });
        while let Some(stamped) = worker.events.blocking_recv() {
            match stamped.event {
                Event::ModelLoaded(info) => {
                    progress(&format!("{} loaded", info.name));
                    return Ok(Self { worker, info });
                }
                Event::Notice { message } => progress(&message),
                Event::Note(n) => progress(&crate::tui::panes::status::notice(&n)),
                Event::Error { message } => bail!("{message}"),
                _ => {}
            }
        }
        bail!("the worker stopped before the model loaded")
    }

    /// Run `preset`'s demo, writing `recording.ron`, `report.md` and the charts into `out`.
    pub fn demo(
        &mut self,
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
            crate::record::Header::new(
                Some(self.info.clone()),
                Quant::AsLoaded,
                DraftMode::None,
                KPolicy::Adaptive,
            ),
        )?;
        progress(&format!("running the {} demo", demo.kind));
        self.worker.send(Command::RunDemo {
            demo: Box::new(demo.clone()),
            prompt: preset.prompts[0].clone(),
        });
        while let Some(stamped) = self.worker.events.blocking_recv() {
            recorder.event(&stamped)?;
            match &stamped.event {
                Event::Notice { message } => progress(message),
                Event::Note(n) => progress(&crate::tui::panes::status::notice(n)),
                Event::Error { message } => bail!("{message}"),
                Event::Demo(run) => {
                    let report = crate::report::demo::markdown(run, &preset.notes);
                    let md = out.join("report.md");
                    std::fs::write(&md, &report)
                        .with_context(|| format!("cannot write {}", md.display()))?;
                    let mut files = vec![rec_path, md];
                    files.extend(crate::report::demo::write_charts(out, &run.result)?);
                    return Ok(Written {
                        report,
                        files,
                        stamp: run.stamp.clone(),
                    });
                }
                _ => {}
            }
        }
        bail!("the worker stopped before the demo finished")
    }
}

/// Run `preset`'s demo on `model`, writing `recording.ron`, `report.md` and the charts into `out`.
/// Progress lines go to `progress`.
pub fn run(
    model: &str,
    preset: &Preset,
    out: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Written> {
    Session::open(model, progress)?.demo(preset, out, progress)
}

/// Every demo, in [`DemoKind::ALL`]'s order, on one loaded model: `out/NAME/` each, and
/// `out/README.md` listing them. Returns the index and every file written.
pub fn run_all(model: &str, out: &Path, progress: &mut dyn FnMut(&str)) -> Result<Written> {
    let started = std::time::Instant::now();
    let mut session = Session::open(model, progress)?;
    let (mut files, mut rows, mut stamp) = (Vec::new(), Vec::new(), None);
    for kind in DemoKind::ALL {
        let preset = find(kind.name())?;
        let t = std::time::Instant::now();
        let w = session.demo(&preset, &out.join(kind.name()), progress)?;
        rows.push((kind.name(), preset.description.clone(), t.elapsed()));
        files.extend(w.files);
        stamp = stamp.or(w.stamp);
    }
    let stamp = stamp.map_or(String::new(), |s| crate::report::stamp::markdown(&s));
    let index = index(&session.info.name, &stamp, &rows, started.elapsed());
    let path = out.join("README.md");
    std::fs::write(&path, &index).with_context(|| format!("cannot write {}", path.display()))?;
    files.push(path);
    Ok(Written {
        report: index,
        files,
        stamp: None,
    })
}

/// The index of a `demo all` run: its stamp (every report carries the same), then each demo.
fn index(
    model: &str,
    stamp: &str,
    rows: &[(&str, String, std::time::Duration)],
    took: std::time::Duration,
) -> String {
    let mut s = format!(
        "# The demos, in one run\n\n{stamp}\nModel {model}; all {} demos in {:.0} s \
         (`labtui demo all --headless --out DIR`).\n\n| demo | what it shows | took |\n|---|---|---:|\n",
        rows.len(),
        took.as_secs_f64()
    );
    for (name, what, t) in rows {
        s.push_str(&format!(
            "| [{name}]({name}/report.md) | {what} | {:.0} s |\n",
            t.as_secs_f64()
        ));
    }
    s
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo: prefill-vs-decode, kv-cache, roofline, speculation, quantization, batching or
    /// paged-kv (a `demo-NAME` preset), or a preset file; `all` runs every demo headless, in one
    /// run on one loaded model, each into its own folder of --out.
    pub name: String,
    /// Run without the dashboard: write a recording, a report and charts, and print the report.
    #[arg(long)]
    pub headless: bool,
    /// Where --headless writes (default demo-NAME).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// `labtui demo NAME`: the demo in the dashboard, or headless with `--headless`. `model` and
/// `record` come from the global options.
pub fn main(a: &DemoArgs, model: Option<String>, record: Option<PathBuf>) -> Result<()> {
    if a.name == "all" {
        let model = model.unwrap_or_else(crate::engine::source::default_spec);
        let out = a.out.clone().unwrap_or_else(|| PathBuf::from("demos"));
        let w = run_all(&model, &out, &mut |line| eprintln!("{line}"))?;
        print!("{}", w.report);
        eprintln!("wrote {} files under {}", w.files.len(), out.display());
        return Ok(());
    }
    let preset = find(&a.name)?;
    let model = model.or_else(|| preset.model.clone());
    if !a.headless {
        let opening = crate::tui::Opening {
            prompt: preset.prompts[0].clone(),
            preset: Some(preset),
        };
        return crate::tui::run(crate::tui::Start {
            mode: crate::tui::Mode::Local { model, opening },
            record,
            shots: None,
        });
    }
    let model = model.unwrap_or_else(crate::engine::source::default_spec);
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from(&preset.name));
    let w = run(&model, &preset, &out, &mut |line| eprintln!("{line}"))?;
    print!("{}", w.report);
    for f in &w.files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

/// `labtui presets`: every preset, where it comes from, and what it is (or what is wrong with it).
pub fn list_presets() -> Result<()> {
    for f in crate::preset::all() {
        match &f.preset {
            Ok(p) => println!("{:<24} {:<10} {}", f.name, short(&f.origin), p.description),
            Err(e) => println!("{:<24} {:<10} broken: {e:#}", f.name, short(&f.origin)),
        }
        if let crate::preset::Origin::File(path) = &f.origin {
            println!("{:<24} {:<10} from {}", "", "", path.display());
        }
    }
    Ok(())
}

fn short(o: &crate::preset::Origin) -> &'static str {
    match o {
        crate::preset::Origin::Builtin => "built in",
        crate::preset::Origin::File(_) => "folder",
    }
}
