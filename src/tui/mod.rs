//! The terminal side: setup and restore (on exit, on error and on panic), the app loop and the
//! panes. The worker never sees any of it.

pub mod app;
pub mod keymap;
pub mod panes;
pub mod replay;
pub mod view;

pub use app::{App, Input, Start};

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

/// Run the dashboard in this terminal until the user quits.
pub fn run(start: Start) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        // ratatui::init enters raw mode and the alternate screen and installs a panic hook that
        // restores the terminal before the panic message prints.
        let mut terminal = ratatui::init();
        let _restore = Restore;
        // A panic inside the worker is caught there and shown as an error event while the
        // dashboard keeps running, so it must not restore the terminal; any other panic does.
        let restore_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current().name() != Some(crate::worker::THREAD_NAME) {
                restore_hook(info);
            }
        }));
        let mut app = App::new(start, crate::worker::Options::default());
        let inputs = EventStream::new().filter_map(|e| async move {
            match e {
                Ok(TermEvent::Key(k)) => Some(Ok(Input::Key(k))),
                Ok(TermEvent::Resize(..)) => Some(Ok(Input::Resize)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            }
        });
        app.run(&mut terminal, Box::pin(inputs), FRAME, |_, _| {})
            .await
    })
}
