//! The terminal side: setup and restore (on exit, on error and on panic), the input/event loop and
//! the panes. The worker never sees any of it.

pub mod keymap;
pub mod panes;
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
    let spec = start
        .model
        .clone()
        .unwrap_or_else(|| crate::engine::source::default_spec());
    let mut state = AppState::new(&spec, &start.prompt);
    state.fallback_to_synthetic = start.model.is_none();
    let mut worker = Worker::spawn(Options::default());
    worker.send(Command::LoadModel { spec });
    let mut keys = EventStream::new();
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut dirty = true;
    while !state.quit {
        tokio::select! {
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(k))) => {
                    if let Some(a) = keymap::action(&state, k) {
                        if let Some(cmd) = state.update(a) {
                            worker.send(cmd);
                        }
                    }
                    dirty = true;
                }
                Some(Ok(TermEvent::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => break,
            },
            ev = worker.events.recv() => {
                let Some(ev) = ev else { break };
                if let Some(cmd) = state.apply(&ev) {
                    worker.send(cmd);
                }
                // Take everything already queued before drawing.
                while let Ok(ev) = worker.events.try_recv() {
                    if let Some(cmd) = state.apply(&ev) {
                        worker.send(cmd);
                    }
                }
                dirty = true;
            }
            _ = frame.tick() => {
                if dirty {
                    terminal.draw(|f| view::render(&state, f.area(), f.buffer_mut()))?;
                    dirty = false;
                }
            }
        }
    }
    worker.send(Command::Stop);
    Ok(())
}
