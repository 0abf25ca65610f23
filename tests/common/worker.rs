//! Waiting on a worker's events.

use labtui::protocol::{Event, Stamped};
use labtui::worker::Worker;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TryRecvError;

/// The first thing `pick` makes of the worker's next events (every event passes through `pick`
/// until it answers); fails when `within` passes first or the worker stops.
pub fn next_event<T>(
    w: &mut Worker,
    within: Duration,
    mut pick: impl FnMut(Stamped) -> Option<T>,
) -> T {
    let end = Instant::now() + within;
    loop {
        match w.events.try_recv() {
            Ok(s) => {
                if let Some(t) = pick(s) {
                    return t;
                }
            }
            Err(TryRecvError::Disconnected) => panic!("the worker stopped"),
            Err(TryRecvError::Empty) if Instant::now() > end => {
                panic!("no such event within {within:?}")
            }
            Err(TryRecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Every event up to the one `done` accepts (kept last), within `within`; an error event fails.
pub fn events_until(
    w: &mut Worker,
    within: Duration,
    done: impl Fn(&Event) -> bool,
) -> Vec<Stamped> {
    let mut seen = Vec::new();
    next_event(w, within, |s| {
        if let Event::Error { message } = &s.event {
            panic!("worker error: {message}");
        }
        let last = done(&s.event);
        seen.push(s);
        last.then_some(())
    });
    seen
}
