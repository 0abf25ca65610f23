//! The terminal side: setup and restore (on exit, on error and on panic), the app loop and the
//! panes. The worker never sees any of it.

pub mod app;
pub mod keymap;
pub mod keys;
pub mod panes;
pub mod replay;
pub mod shot;
pub mod view;

pub use app::{App, Feed, Input, Mode, Opening, Start};

use anyhow::Result;
use crossterm::event::{Event as TermEvent, EventStream};
use futures::StreamExt;
use std::time::Duration;

/// Frames are drawn at most this often.
pub const FRAME: Duration = Duration::from_millis(33);

/// Raw mode, the alternate screen and mouse capture (clicks focus panes, the wheel scrolls).
fn init() -> ratatui::DefaultTerminal {
    let terminal = ratatui::init();
    // Without mouse events the dashboard still works: keys do everything.
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::EnableMouseCapture);
    terminal
}

/// The terminal as it was: mouse capture off, cooked mode, the main screen.
fn restore() {
    let _ = crossterm::execute!(std::io::stdout(), crossterm::event::DisableMouseCapture);
    ratatui::restore();
}

/// Restores the terminal when dropped, whatever way the loop ends.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        restore();
    }
}

/// The panic hook while the dashboard runs. A panic on the UI thread ends labtui: the terminal is
/// restored before the message prints. A panic on any other thread (the worker, candle's pool, the
/// sampler) is caught there and shown as an error in the dashboard, which keeps its terminal: the
/// hook prints nothing over the screen then.
fn install_panic_hook() {
    let ui = std::thread::current().id();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == ui {
            restore();
            previous(info);
        }
    }));
}

/// SIGINT, SIGTERM and SIGHUP as inputs: each ends the dashboard as `q` does.
fn signals() -> Result<impl futures::Stream<Item = std::io::Result<Input>>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut streams = Vec::new();
    for kind in [
        SignalKind::interrupt(),
        SignalKind::terminate(),
        SignalKind::hangup(),
    ] {
        let mut s = signal(kind)?;
        streams.push(Box::pin(futures::stream::poll_fn(move |cx| {
            s.poll_recv(cx).map(|o| o.map(|()| Ok(Input::Quit)))
        })));
    }
    Ok(futures::stream::select_all(streams))
}

/// Run the dashboard in this terminal until the user quits or a signal ends it.
pub fn run(start: Start) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut app = rt.block_on(async {
        let mut terminal = init();
        let restore = Restore;
        install_panic_hook();
        let mut app = App::new(start, crate::worker::Options::default());
        // Decided once: the panes draw from the setting, never from the environment.
        app.state.ui.no_color = panes::palette::no_color(std::env::var_os("NO_COLOR").as_deref());
        let keys = EventStream::new().filter_map(|e| async move {
            match e {
                Ok(TermEvent::Key(k)) => Some(Ok(Input::Key(k))),
                Ok(TermEvent::Resize(..)) => Some(Ok(Input::Resize)),
                Ok(TermEvent::Mouse(m)) => Some(Ok(Input::Mouse(m))),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        });
        let inputs = futures::stream::select(keys, signals()?);
        let result = app
            .run(&mut terminal, Box::pin(inputs), FRAME, |_, _| {})
            .await;
        // The terminal comes back before anything waits on the worker.
        drop(restore);
        result.map(|()| app)
    })?;
    // Whatever the worker still does is interrupted; the wait is bounded.
    app.shutdown();
    Ok(())
}
