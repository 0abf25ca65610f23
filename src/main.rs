use clap::Parser;
use labtui::cli::{BenchWhat, Cli, Cmd};
use labtui::{bench, headless};
use std::process::ExitCode;

// mimalloc reuses freed memory instead of returning large blocks to the kernel, which otherwise
// zeroes fresh pages for the logits of every decode step.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(n) = cli.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        // candle's CPU kernels size their thread pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var(
            "RAYON_NUM_THREADS",
            labtui::bench::physical_cores().to_string(),
        );
    }
    let preset = cli
        .preset
        .as_deref()
        .map(labtui::preset::load)
        .transpose()?;
    let model = cli
        .model
        .clone()
        .or_else(|| preset.as_ref().and_then(|p| p.model.clone()))
        .unwrap_or_else(labtui::engine::source::default_spec);
    match &cli.command {
        Some(Cmd::Generate(a)) => {
            headless::generate(&model, a, cli.record.as_deref(), preset.as_ref())
        }
        Some(Cmd::Report(a)) => report(a),
        Some(Cmd::Demo(a)) => demo(&cli, a),
        Some(Cmd::Replay(a)) => {
            let rec = labtui::record::load(&a.file)?;
            labtui::tui::run(labtui::tui::Start {
                model: None,
                prompt: String::new(),
                record: None,
                replay: Some((rec, a.speed)),
                preset: None,
            })
        }
        Some(Cmd::Tokenize(a)) => headless::tokenize(&model, a),
        Some(Cmd::Bench(b)) => match &b.what {
            BenchWhat::Engine(a) => bench::engine(&model, a),
            BenchWhat::Ui(a) => bench::ui(&model, a),
            BenchWhat::Record(a) => bench::record(a),
            BenchWhat::Spec(a) => bench::spec::run(&model, a),
            BenchWhat::Quant(a) => bench::quant::run(&model, a),
        },
        None => labtui::tui::run(labtui::tui::Start {
            model: cli
                .model
                .clone()
                .or_else(|| preset.as_ref().and_then(|p| p.model.clone())),
            prompt: cli
                .prompt
                .clone()
                .or_else(|| preset.as_ref().map(|p| p.prompts[0].clone()))
                .unwrap_or_default(),
            record: cli.record.clone(),
            replay: None,
            preset: preset.clone(),
        }),
    }
}

fn demo(cli: &Cli, a: &labtui::cli::DemoArgs) -> anyhow::Result<()> {
    let preset = labtui::demo::headless::find(&a.name)?;
    let model = cli.model.clone().or_else(|| preset.model.clone());
    if !a.headless {
        return labtui::tui::run(labtui::tui::Start {
            model,
            prompt: preset.prompts[0].clone(),
            record: cli.record.clone(),
            replay: None,
            preset: Some(preset),
        });
    }
    let model = model.unwrap_or_else(labtui::engine::source::default_spec);
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from(&preset.name));
    let w = labtui::demo::headless::run(&model, &preset, &out, &mut |line| eprintln!("{line}"))?;
    print!("{}", w.report);
    for f in &w.files {
        eprintln!("wrote {}", f.display());
    }
    Ok(())
}

fn report(a: &labtui::cli::ReportArgs) -> anyhow::Result<()> {
    use labtui::cli::ReportFormat;
    use labtui::report;
    let mut recs = Vec::new();
    for f in &a.files {
        recs.push((f.display().to_string(), labtui::record::load(f)?));
    }
    if let Some(dir) = &a.plot {
        for f in labtui::plot::write(dir, &recs)? {
            eprintln!("wrote {}", f.display());
        }
    }
    if a.diff {
        anyhow::ensure!(recs.len() == 2, "--diff compares exactly two recordings");
        let first = |r: &labtui::record::Recording| {
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
            if let labtui::protocol::Event::Demo(run) = &e.event {
                println!("# {f}: demo {} on {}\n", run.demo, run.model);
                println!("{}", labtui::demo::report::tables(&run.result));
            }
        }
    }
    let rows: Vec<report::Row> = recs.iter().flat_map(|(f, r)| report::rows(f, r)).collect();
    match a.format {
        ReportFormat::Md => print!("{}", report::markdown(&rows)),
        ReportFormat::Csv => print!("{}", report::csv(&rows)),
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A reader that went away (`labtui generate ... | head`) is not an error of ours.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
