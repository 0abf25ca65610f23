//! What `bench serve` does around the load when no dashboard watches: a line of progress per
//! level, the recording of every event, and Ctrl-C stopping the load and its requests.

use crate::protocol::serve::ServeEvent;
use crate::protocol::{Event, Stamped};
use crate::record::{Header, Recorder};
use crate::serve::client::Cancel;
use anyhow::Result;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedReceiver;

/// One line of progress on stderr for a level's start and end.
pub fn progress(e: &ServeEvent) {
    match e {
        ServeEvent::LevelStarted {
            index,
            levels,
            load,
            endpoint,
            ..
        } => eprintln!("level {}/{levels}: {load} against {endpoint} …", index + 1),
        ServeEvent::LevelDone { summary: s, .. } => eprintln!(
            "  {}/{} ok in {:.1} s: {:.2} req/s, {:.1} output tok/s{}",
            s.ok,
            s.requests,
            s.duration.as_secs_f64(),
            s.req_s,
            s.output_tok_s,
            s.stopped_early
                .as_ref()
                .map(|w| format!(" ({w})"))
                .unwrap_or_default()
        ),
        ServeEvent::Done { .. } | ServeEvent::Sent { .. } => {}
    }
}

/// A recording of the benchmark's events at `path`, with an empty header.
pub fn create_recorder(path: &std::path::Path) -> Result<Recorder> {
    Recorder::create(
        path,
        Header::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        ),
    )
}

/// On Ctrl-C: set `stop` and cancel the requests in flight.
pub fn stop_on_ctrl_c(rt: &tokio::runtime::Runtime, stop: &Arc<AtomicBool>, cancel: &Cancel) {
    let stop_on_signal = stop.clone();
    let cancel_on_signal = cancel.clone();
    rt.spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("stopping: requests in flight are cancelled");
            stop_on_signal.store(true, Ordering::SeqCst);
            cancel_on_signal.cancel();
        }
    });
}

/// Prints the load's progress and records every event until the load ends; the first error
/// writing the recording stops the recording, not the load.
pub async fn follow(
    rx: &mut UnboundedReceiver<Stamped>,
    mut recorder: Option<&mut Recorder>,
) -> Option<anyhow::Error> {
    let mut record_error: Option<anyhow::Error> = None;
    while let Some(stamped) = rx.recv().await {
        if let Event::Serve(e) = &stamped.event {
            progress(e);
        }
        if let Some(r) = recorder.as_mut().filter(|_| record_error.is_none()) {
            if let Err(err) = r.event(&stamped) {
                record_error = Some(err);
            }
        }
    }
    record_error
}
