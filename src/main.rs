use clap::Parser;
use labtui::app::{bench, demo, headless, report, serve};
use labtui::cli::{BenchWhat, Cli, Cmd};
use std::process::ExitCode;

#[global_allocator]
static HEAP: labtui::alloc::Heap = labtui::alloc::Heap;

fn run(mut cli: Cli) -> anyhow::Result<()> {
    labtui::alloc::keep_freed_pages();
    if let Some(n) = cli.threads {
        // candle's CPU kernels size their thread pools from this variable.
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    } else if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var(
            "RAYON_NUM_THREADS",
            labtui::engine::physical_cores().to_string(),
        );
    }
    let preset = cli
        .preset
        .as_deref()
        .map(labtui::preset::load)
        .transpose()?;
    let chosen = cli
        .model
        .clone()
        .or_else(|| preset.as_ref().and_then(|p| p.model.clone()));
    let model = chosen
        .clone()
        .unwrap_or_else(labtui::engine::source::default_spec);
    match cli.command.take() {
        Some(Cmd::Generate(a)) => {
            headless::generate(&model, &a, cli.record.as_deref(), preset.as_ref())
        }
        Some(Cmd::Report(a)) => report::run(&a),
        Some(Cmd::Race(a)) => {
            labtui::app::race::run(&model, &a, cli.record.as_deref(), preset.as_ref())
        }
        Some(Cmd::Demo(a)) => demo::main(&a, cli.model, cli.record),
        Some(Cmd::TrainDraft(a)) => labtui::app::train::run(&model, &a),
        Some(Cmd::Presets) => demo::list_presets(),
        Some(Cmd::Serve(a)) => serve::run(&model, &a, cli.record.as_deref()),
        Some(Cmd::Replay(a)) if a.snapshot_at.is_some() => labtui::app::snapshot::run(
            &a.file,
            a.snapshot_at.unwrap_or_default(),
            a.size,
            a.out
                .as_deref()
                .unwrap_or(std::path::Path::new("snapshot.svg")),
        ),
        Some(Cmd::Replay(a)) => {
            let rec = labtui::record::load(&a.file)?;
            labtui::tui::run(labtui::tui::Start {
                shots: cli.shots.clone(),
                ..labtui::tui::Start::replay(rec, a.speed)
            })
        }
        Some(Cmd::Tokenize(a)) => headless::tokenize(&model, &a),
        Some(Cmd::Bench(b)) => match &b.what {
            BenchWhat::Engine(a) => bench::engine(&model, a),
            BenchWhat::Ui(a) => bench::ui(&model, a),
            BenchWhat::Record(a) => bench::record(a),
            BenchWhat::Soak(a) => bench::soak::run(&model, a),
            BenchWhat::Spec(a) => bench::spec::run(&model, a),
            BenchWhat::Quant(a) => bench::quant::run(&model, a),
            BenchWhat::Sensitivity(a) => bench::sensitivity::run(&model, a),
            BenchWhat::Mixed(a) => bench::mixed::run(&model, a),
            BenchWhat::Serve(a) => {
                bench::serve::run(cli.model.as_deref(), cli.record.as_deref(), a)
            }
            BenchWhat::Client(a) => bench::client::run(a),
            BenchWhat::Batch(a) => bench::batch::run(&model, a),
        },
        None => labtui::tui::run(dashboard(&cli, chosen, preset)),
    }
}

/// The dashboard's start from the command line: a local model, or the one an endpoint serves.
fn dashboard(
    cli: &Cli,
    model: Option<String>,
    preset: Option<labtui::preset::Preset>,
) -> labtui::tui::Start {
    use labtui::tui::{Mode, Opening, Start};
    let opening = Opening {
        prompt: cli
            .prompt
            .clone()
            .or_else(|| preset.as_ref().map(|p| p.prompts[0].clone()))
            .unwrap_or_default(),
        preset,
    };
    let mode = match cli.endpoint.clone() {
        Some(url) => Mode::Remote {
            endpoint: labtui::serve::Endpoint {
                url,
                api_key: cli.api_key.clone(),
                model,
                api: cli.api.into(),
            },
            opening,
        },
        None => Mode::Local { model, opening },
    };
    Start {
        mode,
        record: cli.record.clone(),
        shots: cli.shots.clone(),
    }
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
