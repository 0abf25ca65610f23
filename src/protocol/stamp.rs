//! The sending end of an event channel: each event leaves stamped with the time on the session's
//! clock, where it happened. A handle, not data: it never crosses the channel itself.

use super::{Event, Stamped};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone)]
pub struct Stamper {
    pub tx: UnboundedSender<Stamped>,
    /// When the session started: every `at` is measured from it.
    pub clock: Instant,
}

impl Stamper {
    pub fn new(tx: UnboundedSender<Stamped>, clock: Instant) -> Self {
        Stamper { tx, clock }
    }

    /// Time on the clock now.
    pub fn elapsed(&self) -> Duration {
        self.clock.elapsed()
    }

    /// Send `event` stamped now; false once the receiver is gone (nobody is left to tell, so
    /// callers that go on anyway may ignore it).
    pub fn send(&self, event: Event) -> bool {
        self.send_at(self.elapsed(), event)
    }

    /// Send `event` stamped `at` (several events of one moment share a stamp).
    pub fn send_at(&self, at: Duration, event: Event) -> bool {
        self.tx.send(Stamped { at, event }).is_ok()
    }
}
