//! `labtui bench soak`: a long generation with the whole dashboard attached — the app loop,
//! the store, every pane drawn at the frame rate — to see that nothing grows but the KV cache:
//! process memory at the start and the end net of the KV cache, frame time at the start and the
//! end, and the largest backlog of events waiting for the UI.

use crate::protocol::{Command, Event, GenParams};
use crate::report::table::{Align, Table};
use crate::stats::human_bytes;
use crate::sysmon::Sampler;
use crate::tui::{App, Start, FRAME};
use crate::worker::Options;
use anyhow::{bail, Result};
use clap::Args;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BenchSoakArgs {
    /// Tokens to generate (end-of-sequence ignored, the prompt sent raw).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(16..))]
    pub tokens: u32,
    /// Screen size the panes are drawn at.
    #[arg(long, default_value_t = 160)]
    pub width: u16,
    #[arg(long, default_value_t = 50)]
    pub height: u16,
    /// Keep the store but draw nothing: tells the engine's memory from the panes'.
    #[arg(long)]
    pub no_draw: bool,
}

/// Bytes the run's KV cache has allocated: every block of its pool (held or free) once the
/// engine has said how many, else the bytes of the tokens it holds.
fn kv_storage(run: &crate::state::RunView) -> u64 {
    let Some(t) = run.tokens.last() else { return 0 };
    match (&run.kv_blocks, t.kv_tokens) {
        (Some(b), n) if n > 0 => {
            let slots = (b.held + b.free).saturating_mul(b.block_tokens) as u64;
            slots.saturating_mul(t.kv_bytes / n as u64)
        }
        _ => t.kv_bytes,
    }
}

/// What one window of the soak saw.
#[derive(Debug, Default, Clone)]
struct Window {
    frames: Vec<Duration>,
    rss: u64,
    heap: u64,
    kv: u64,
    tokens: usize,
}

fn p(xs: &[Duration], q: f64) -> String {
    format!(
        "{:.2} ms",
        crate::stats::percentile(xs, q).as_secs_f64() * 1e3
    )
}

pub fn run(model: &str, a: &BenchSoakArgs) -> Result<()> {
    super::print_stamp(None, false);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(soak(model, a))
}

async fn soak(model: &str, a: &BenchSoakArgs) -> Result<()> {
    let mut app = App::new(Start::local(Some(model.into())), Options::default());
    let mut events = app.take_events().expect("a live app has a worker's events");
    let mut term = Terminal::new(TestBackend::new(a.width, a.height))?;
    let mut sampler = Sampler::new();
    let tokens = a.tokens as usize;
    let window = (tokens / 10).max(8);
    let mut tally = Tally {
        tokens,
        window,
        first: Window::default(),
        last: Window::default(),
        // A progress line each tenth of the run: how memory net of the KV cache went on the way.
        next_note: window,
    };
    let mut backlog = 0usize;
    let mut started = false;
    let mut done = false;
    let mut frame = tokio::time::interval(FRAME);
    let t0 = Instant::now();
    while !done {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { bail!("the worker stopped") };
                let mut batch = vec![ev];
                while let Ok(ev) = events.try_recv() {
                    batch.push(ev);
                }
                backlog = backlog.max(batch.len());
                for ev in &batch {
                    on_event(&mut app, &ev.event, tokens, &mut started, &mut done)?;
                }
                app.events(batch);
            }
            _ = frame.tick() => {
                let t = Instant::now();
                if !a.no_draw {
                    term.draw(|f| app.draw(f.area(), f.buffer_mut()))?;
                }
                let spent = t.elapsed();
                tally.frame(&app, spent, &mut sampler, t0);
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    print_report(tokens, secs, backlog, &tally.first, &tally.last);
    Ok(())
}

/// Starts the generation once the model is loaded; notes the run's end and the worker's errors.
fn on_event(
    app: &mut App,
    event: &Event,
    tokens: usize,
    started: &mut bool,
    done: &mut bool,
) -> Result<()> {
    match event {
        Event::ModelLoaded(info) if !*started => {
            *started = true;
            eprintln!(
                "{} loaded; generating {tokens} tokens with the dashboard attached …",
                info.name
            );
            app.send(vec![Command::Generate {
                prompt: "Write a long story about a lighthouse keeper.".into(),
                params: GenParams {
                    max_tokens: tokens,
                    raw: true,
                    ignore_eos: true,
                    ..GenParams::default()
                },
            }]);
        }
        Event::RunFinished { .. } => *done = true,
        Event::Error { message } => bail!("{message}"),
        _ => {}
    }
    Ok(())
}

/// The first and the last window of the soak, and when the next progress line is due.
struct Tally {
    tokens: usize,
    window: usize,
    first: Window,
    last: Window,
    next_note: usize,
}

impl Tally {
    /// One frame that took `spent` to draw: a progress line when due, and the frame counted in
    /// the first or the last window if it falls in one.
    fn frame(&mut self, app: &App, spent: Duration, sampler: &mut Sampler, t0: Instant) {
        let run = app.state.store.current.as_ref();
        let n = run.map_or(0, |r| r.tokens.len());
        let kv = run.map_or(0, kv_storage);
        if n >= self.next_note {
            self.next_note += self.window;
            let s = sampler.sample();
            eprintln!(
                "{n} tokens in {:.0} s: RSS {} − KV storage {} = {}; live heap {} − KV = {}",
                t0.elapsed().as_secs_f64(),
                human_bytes(s.process_rss),
                human_bytes(kv),
                human_bytes(s.process_rss.saturating_sub(kv)),
                human_bytes(s.heap_live),
                human_bytes(s.heap_live.saturating_sub(kv))
            );
        }
        let w = if n <= self.window {
            &mut self.first
        } else if n + self.window >= self.tokens {
            &mut self.last
        } else {
            return;
        };
        w.frames.push(spent);
        let s = sampler.sample();
        w.rss = s.process_rss;
        w.heap = s.heap_live;
        w.kv = kv;
        w.tokens = n;
    }
}

/// The start and end windows side by side, and how much memory net of the KV cache grew.
fn print_report(tokens: usize, secs: f64, backlog: usize, first: &Window, last: &Window) {
    let mut t = Table::new([
        ("window", Align::Left),
        ("tokens", Align::Right),
        ("RSS", Align::Right),
        ("KV storage", Align::Right),
        ("RSS − KV", Align::Right),
        ("live heap − KV", Align::Right),
        ("frame p50", Align::Right),
        ("frame p99", Align::Right),
        ("frames", Align::Right),
    ]);
    for (name, w) in [("start", first), ("end", last)] {
        t.row([
            name.to_string(),
            w.tokens.to_string(),
            human_bytes(w.rss),
            human_bytes(w.kv),
            human_bytes(w.rss.saturating_sub(w.kv)),
            human_bytes(w.heap.saturating_sub(w.kv)),
            p(&w.frames, 50.0),
            p(&w.frames, 99.0),
            w.frames.len().to_string(),
        ]);
    }
    print!("{}", t.markdown());
    println!(
        "{tokens} tokens in {secs:.0} s; largest backlog of events drained at once: {backlog}; net of the KV cache, RSS grew by {} and the live heap by {}",
        human_bytes(
            last.rss
                .saturating_sub(last.kv)
                .saturating_sub(first.rss.saturating_sub(first.kv))
        ),
        human_bytes(
            last.heap
                .saturating_sub(last.kv)
                .saturating_sub(first.heap.saturating_sub(first.kv))
        )
    );
}
