//! The terminal side: setup and restore (on exit, on error and on panic), the input/event loop and
//! the panes. The worker never sees any of it.

pub mod keymap;
pub mod panes;
pub mod replay;
pub mod view;

use crate::protocol::Command;
use crate::state::AppState;
use crate::worker::{Options, Worker};
use anyhow::Result;
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use std::time::Duration;

/// Frames are drawn at most this often.
pub const FRAME: Duration = Duration::from_millis(33);

/// Restores the terminal when dropped, whatever way the loop ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub struct Start {
    /// `None` means the default model, with the synthetic model as the fallback.
    pub model: Option<String>,
    pub prompt: String,
    /// Record from the start into this file (R toggles recording at any time).
    pub record: Option<std::path::PathBuf>,
    /// Drive the dashboard from a recording instead of the engine, at this speed.
    pub replay: Option<(crate::record::Recording, f64)>,
    /// A preset's parameters and settings to start with.
    pub preset: Option<crate::preset::Preset>,
}

/// Start or stop recording; the answer goes to the status line.
fn toggle_record(
    state: &mut AppState,
    recorder: &mut Option<crate::record::Recorder>,
    path: Option<std::path::PathBuf>,
) {
    use crate::state::{DRAFT_MODES, QUANTS};
    if let Some(r) = recorder.take() {
        state.status = format!("recording saved to {}", r.path().display());
        state.recording = None;
        return;
    }
    let path = path.unwrap_or_else(crate::record::default_path);
    let header = crate::record::Header::new(
        state.model.clone(),
        QUANTS[state.quant],
        DRAFT_MODES[state.draft_mode],
        state.k,
    );
    match crate::record::Recorder::create(&path, header) {
        Ok(r) => {
            state.status = format!("recording to {} (R stops)", path.display());
            state.recording = Some(path.display().to_string());
            *recorder = Some(r);
        }
        Err(e) => state.status = format!("cannot record: {e:#}"),
    }
}

/// Run the dashboard until the user quits.
pub fn run(start: Start) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run_loop(start))
}

async fn run_loop(start: Start) -> Result<()> {
    // ratatui::init enters raw mode and the alternate screen and installs a panic hook that
    // restores the terminal before the panic message prints.
    let mut terminal = ratatui::init();
    let _restore = Restore;
    // A panic inside the worker is caught there and shown as an error event while the dashboard
    // keeps running, so it must not restore the terminal; any other panic does.
    let restore_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().name() != Some(crate::worker::THREAD_NAME) {
            restore_hook(info);
        }
    }));
    let (mut replay, worker, mut state) = match start.replay {
        Some((rec, speed)) => {
            let mut state = AppState::new("replay", "");
            state.focus = crate::state::Focus::Tape;
            state.status =
                format!("replay at {speed}x · space pause · . step · + - speed · q quit");
            (Some(replay::Replay::new(rec.events, speed)), None, state)
        }
        None => {
            let spec = start
                .model
                .clone()
                .unwrap_or_else(crate::engine::source::default_spec);
            let mut state = AppState::new(&spec, &start.prompt);
            state.fallback_to_synthetic = start.model.is_none();
            let worker = Worker::spawn(Options::default());
            worker.send(Command::LoadModel { spec });
            if let Some(p) = &start.preset {
                state.params = p.params.clone();
                for cmd in state.apply_preset(p) {
                    worker.send(cmd);
                }
            }
            (None, Some(worker), state)
        }
    };
    let mut worker = worker;
    let mut recorder = None;
    if start.record.is_some() && replay.is_none() {
        toggle_record(&mut state, &mut recorder, start.record.clone());
    }
    let mut keys = EventStream::new();
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    let mut last_tick = std::time::Instant::now();
    while !state.quit {
        let worker_event = async {
            match worker.as_mut() {
                Some(w) => w.events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(k))) => {
                    if let Some(r) = replay.as_mut() {
                        if replay_key(r, &mut state, k) {
                            dirty = true;
                            continue;
                        }
                    }
                    match keymap::action(&state, k) {
                        Some(crate::state::Action::ToggleRecord) if replay.is_none() => {
                            toggle_record(&mut state, &mut recorder, start.record.clone())
                        }
                        Some(crate::state::Action::OpenPresets) if replay.is_none() => open_presets(&mut state),
                        Some(a) => {
                            let first = state.update(a);
                            for cmd in first.into_iter().chain(state.take_outbox()) {
                                match worker.as_ref() {
                                    Some(w) => w.send(cmd),
                                    None => state.status = "replay: there is no engine to run".into(),
                                }
                            }
                        }
                        None => {}
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            ev = worker_event => {
                let Some(ev) = ev else { break };
                let w = worker.as_mut().expect("events come from a worker");
                let mut batch = vec![ev];
                // Take everything already queued before drawing.
                while let Ok(ev) = w.events.try_recv() {
                    batch.push(ev);
                }
                for ev in batch {
                    if let Some(r) = recorder.as_mut() {
                        if let Err(e) = r.event(&ev) {
                            state.status = format!("recording stopped: {e:#}");
                            state.recording = None;
                            recorder = None;
                        }
                    }
                    if let Some(cmd) = state.apply(&ev) {
                        w.send(cmd);
                    }
                }
                dirty = true;
            }
            _ = frame.tick() => {
                if let Some(r) = replay.as_mut() {
                    let due = r.advance(last_tick.elapsed()).to_vec();
                    dirty |= !due.is_empty();
                    due.iter().for_each(|e| { state.apply(e); });
                }
                last_tick = std::time::Instant::now();
                if dirty {
                    terminal.draw(|f| view::render(&state, f.area(), f.buffer_mut()))?;
                    dirty = false;
                }
            }
        }
    }
    if let Some(w) = worker.as_ref() {
        w.send(Command::Stop);
    }
    Ok(())
}

/// Read the presets folder into the picker; problems go to the status line.
fn open_presets(state: &mut AppState) {
    let dir = crate::preset::dir();
    let files = match crate::preset::list(&dir) {
        Ok(f) => f,
        Err(e) => {
            state.status = format!("{e:#}");
            return;
        }
    };
    let mut presets = Vec::new();
    let mut broken = Vec::new();
    for f in files {
        match crate::preset::load(&f.display().to_string()) {
            Ok(p) => presets.push(p),
            Err(e) => broken.push(format!("{e:#}")),
        }
    }
    if presets.is_empty() {
        state.status = format!("no presets in {}", dir.display());
        return;
    }
    if !broken.is_empty() {
        state.status = format!(
            "skipped {} broken preset(s): {}",
            broken.len(),
            broken.join("; ")
        );
    }
    state.picker = Some(crate::state::Picker {
        presets,
        selected: 0,
    });
}

/// Replay's own keys; returns whether the key was one of them.
fn replay_key(r: &mut replay::Replay, state: &mut AppState, k: crossterm::event::KeyEvent) -> bool {
    use crossterm::event::KeyCode;
    match k.code {
        KeyCode::Char(' ') => r.paused = !r.paused,
        // With a demo on screen, n steps its narration instead.
        KeyCode::Char('n') if state.demo.is_some() => return false,
        KeyCode::Char('.') | KeyCode::Char('n') => {
            r.paused = true;
            for e in r.step().to_vec() {
                state.apply(&e);
            }
        }
        KeyCode::Char('+') | KeyCode::Char('=') => r.faster(),
        KeyCode::Char('-') => r.slower(),
        _ => return false,
    }
    let (done, total) = r.progress();
    state.status = format!(
        "replay {}x{} · event {done}/{total} · space pause · . step · + - speed",
        r.speed,
        if r.paused { " (paused)" } else { "" }
    );
    true
}
