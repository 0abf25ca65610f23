//! Where each command goes, the same for both backends (the local engine's jobs and a remote
//! server), and the coalescer that takes the settings waiting in the channel.

use super::Outbox;
use crate::protocol::{Command, Event, KPolicy, Notice, SettingChange, Settings};
use std::collections::VecDeque;
use tokio::sync::mpsc::UnboundedReceiver;

/// What a command asks of a backend, whatever it is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Route {
    /// Change a setting: taken at once, between the steps of a run.
    Setting,
    /// Stop the run or the job in progress.
    Stop,
    /// End the worker.
    Shutdown,
    /// Work that needs the engine (a load, a run, a demo): a run in progress ends first.
    Engine,
    /// A measurement of the weights a run in progress runs with: it waits for the run's end.
    AfterRun,
}

pub(super) fn route(c: &Command) -> Route {
    match c {
        Command::Set(_) => Route::Setting,
        Command::Stop => Route::Stop,
        Command::Shutdown => Route::Shutdown,
        Command::LoadModel { .. }
        | Command::Generate { .. }
        | Command::RunDemo { .. }
        | Command::RunStream { .. }
        | Command::RunBatch { .. }
        | Command::Race { .. } => Route::Engine,
        Command::MeasureQuality { .. } => Route::AfterRun,
    }
}

/// The commands a backend reads: those kept for later first, then the channel's.
pub(super) struct Inbox {
    rx: UnboundedReceiver<Command>,
    later: VecDeque<Command>,
}

impl Inbox {
    pub(super) fn new(rx: UnboundedReceiver<Command>) -> Self {
        Self {
            rx,
            later: VecDeque::new(),
        }
    }

    /// The next command, waiting for one on this thread; `None` once the handle is gone.
    pub(super) fn next_blocking(&mut self) -> Option<Command> {
        self.later.pop_front().or_else(|| self.rx.blocking_recv())
    }

    /// The next command kept for later, if any.
    pub(super) fn next_later(&mut self) -> Option<Command> {
        self.later.pop_front()
    }

    /// The channel's next command, waiting for one; `None` once the handle is gone.
    pub(super) async fn recv(&mut self) -> Option<Command> {
        self.rx.recv().await
    }

    /// Keep a command for after the work in progress.
    pub(super) fn later(&mut self, c: Command) {
        self.later.push_back(c);
    }

    fn try_recv(&mut self) -> Option<Command> {
        self.rx.try_recv().ok()
    }
}

/// Newest setting wins, as gitui's `AsyncSingleJob` keeps one next job, overwritten until it is
/// taken: the commands that wait in the channel are read without waiting, each setting is taken
/// into `settings` and answered with a notice, and reading stops at the first command of another
/// kind. The weight and KV switches the settings ask for are made after, once, for the newest.
pub(super) struct Coalesce<'a> {
    pub(super) inbox: &'a mut Inbox,
    pub(super) settings: &'a mut Settings,
    pub(super) out: &'a Outbox,
    /// The newest K taken (a run takes it at its next step).
    pub(super) k: Option<KPolicy>,
}

impl<'a> Coalesce<'a> {
    pub(super) fn new(inbox: &'a mut Inbox, settings: &'a mut Settings, out: &'a Outbox) -> Self {
        Self {
            inbox,
            settings,
            out,
            k: None,
        }
    }

    /// Take one setting and say so.
    pub(super) fn take(&mut self, change: SettingChange) {
        let change = match change {
            SettingChange::DraftLayers(n) => SettingChange::DraftLayers(n.max(1)),
            SettingChange::K(k) => {
                self.k = Some(k);
                SettingChange::K(k)
            }
            c => c,
        };
        self.settings.set(change.clone());
        self.out.send(Event::Note(Notice::SettingTaken(change)));
    }

    /// Take the settings that wait; returns the first command of another kind (`None`: nothing
    /// else waits).
    pub(super) fn drain(&mut self) -> Option<Command> {
        while let Some(c) = self.inbox.try_recv() {
            match c {
                Command::Set(change) => self.take(change),
                other => return Some(other),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{Quant, Stamped};
    use std::time::Instant;
    use tokio::sync::mpsc::unbounded_channel;

    #[test]
    fn a_burst_of_settings_is_taken_together_and_the_newest_wins() {
        let (tx, rx) = unbounded_channel();
        let (ev_tx, mut ev_rx) = unbounded_channel::<Stamped>();
        let out = Outbox(crate::protocol::Stamper {
            tx: ev_tx,
            clock: Instant::now(),
        });
        let mut inbox = Inbox::new(rx);
        let mut settings = Settings::default();
        for q in [Quant::Q8_0, Quant::Q4K] {
            tx.send(Command::Set(SettingChange::Quant(q))).unwrap();
        }
        tx.send(Command::Stop).unwrap();
        tx.send(Command::Set(SettingChange::K(KPolicy::Adaptive)))
            .unwrap();
        let mut c = Coalesce::new(&mut inbox, &mut settings, &out);
        assert_eq!(c.drain(), Some(Command::Stop));
        assert_eq!(c.k, None, "reading stopped at Stop");
        assert_eq!(settings.quant, Some(Quant::Q4K));
        let notices = std::iter::from_fn(|| ev_rx.try_recv().ok()).count();
        assert_eq!(notices, 2, "each setting is answered");
        assert_eq!(route(&Command::Stop), Route::Stop);
    }
}
