//! `bench ui`: decode tok/s through the worker with and without the dashboard's drawing, and
//! the time of one frame.

use super::{time, MAX_TOKENS};
use crate::app::args;
use crate::engine;
use crate::protocol::GenParams;
use crate::stats::median;
use anyhow::{bail, Result};
use clap::Args;
use std::time::Instant;

/// One run through the worker; with `ui`, every event goes through `AppState::apply` and a frame is
/// drawn at most every [`crate::tui::FRAME`] into an off-screen 160×50 buffer, as the dashboard does.
/// Returns the decode tok/s the worker measured.
fn worker_run(
    worker: &mut crate::worker::Worker,
    prompt: &str,
    tokens: usize,
    ui: bool,
) -> Result<f64> {
    use crate::protocol::{Command, Event};
    use ratatui::{backend::TestBackend, Terminal};
    let mut state = crate::state::AppState::new("bench", prompt);
    let mut term = Terminal::new(TestBackend::new(160, 50))?;
    let params = GenParams {
        max_tokens: tokens + 1,
        ignore_eos: true,
        ..GenParams::default()
    };
    worker.send(Command::Generate {
        prompt: prompt.into(),
        params,
    });
    let mut last_frame = Instant::now();
    while let Some(ev) = worker.events.blocking_recv() {
        if ui {
            state.apply(&ev);
            if last_frame.elapsed() >= crate::tui::FRAME {
                term.draw(|f| crate::tui::view::render(&state, f.area(), f.buffer_mut()))?;
                last_frame = Instant::now();
            }
        }
        match ev.event {
            Event::RunFinished { summary, .. } => return Ok(summary.decode_tok_s),
            Event::Error { message } => bail!("{message}"),
            _ => {}
        }
    }
    bail!("the worker stopped")
}

pub fn ui(spec: &str, args: &BenchUiArgs) -> Result<()> {
    super::print_stamp(None, false);
    use crate::protocol::{Command, Event};
    use crate::worker::{Options, Worker};
    let mut worker = Worker::spawn(Options::default());
    worker.send(Command::LoadModel { spec: spec.into() });
    let info = loop {
        match worker.events.blocking_recv().map(|e| e.event) {
            Some(Event::ModelLoaded(i)) => break i,
            Some(Event::Error { message }) => bail!("{message}"),
            Some(_) => {}
            None => bail!("the worker stopped"),
        }
    };
    let prompt = "Write a Rust function that reverses the words of a sentence.";
    worker_run(&mut worker, prompt, 8, true)?; // warm-up
    let (mut headless, mut dashboard) = (Vec::new(), Vec::new());
    for _ in 0..args.repeats {
        headless.push(worker_run(&mut worker, prompt, args.tokens, false)?);
        dashboard.push(worker_run(&mut worker, prompt, args.tokens, true)?);
    }
    let (h, d) = (
        median(&headless).unwrap_or(0.0),
        median(&dashboard).unwrap_or(0.0),
    );
    println!(
        "model {} · {} threads · {} decode tokens · median of {}",
        info.name,
        engine::threads(),
        args.tokens,
        args.repeats
    );
    println!(
        "decode tok/s headless {h:.2} · with dashboard {d:.2} · overhead {:.2}%",
        (1.0 - d / h) * 100.0
    );

    // Frame time: a finished run's screen drawn at 160×50.
    let mut state = crate::state::AppState::new("bench", prompt);
    worker.send(Command::Generate {
        prompt: prompt.into(),
        params: GenParams {
            max_tokens: 64,
            ..GenParams::default()
        },
    });
    while let Some(ev) = worker.events.blocking_recv() {
        state.apply(&ev);
        if matches!(ev.event, Event::RunFinished { .. } | Event::Error { .. }) {
            break;
        }
    }
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 50))?;
    let secs = time(200, || {
        term.draw(|f| crate::tui::view::render(&state, f.area(), f.buffer_mut()))?;
        Ok(())
    })?;
    println!(
        "frame at 160x50: median {:.3} ms over {} draws",
        median(&secs).unwrap_or(0.0) * 1e3,
        secs.len()
    );
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchUiArgs {
    /// Alternating runs of each kind (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = args::count(1, args::MAX_REPEATS))]
    pub repeats: usize,
    /// Tokens each run decodes.
    #[arg(long, default_value_t = 128, value_parser = args::count(1, MAX_TOKENS))]
    pub tokens: usize,
}
