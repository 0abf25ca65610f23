//! `labtui bench serve --tui`: the same load, watched in the dashboard. The load runs as a task
//! on a tokio runtime of its own and sends its events (and the scraped server metrics of the
//! endpoint it measures) over the channel a worker would use; the dashboard never waits on it.
//! Quitting stops the load: requests in flight are cancelled, and the wait for them is bounded.

use crate::protocol::Stamper;
use crate::serve::client::Cancel;
pub use crate::serve::load::drive::{drive, Bench, Measured};
use anyhow::{anyhow, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::unbounded_channel;

/// How long a quit waits for the load to wind down (its requests are cancelled first).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Run the benchmark with the dashboard attached until the user quits; returns the levels
/// measured, every request, and whether the quit stopped the load before its end.
pub fn run(b: Bench, cancel: Cancel, record: Option<&Path>) -> Result<(Measured, bool)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let urls: Vec<String> = b.targets.iter().map(|t| t.name()).collect();
    let (tx, rx) = unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt.spawn(drive(b, Stamper::new(tx, Instant::now()), stop.clone()));
    let feed = crate::tui::Feed {
        events: rx,
        status: format!(
            "bench serve against {} · q quits and stops the load",
            urls.join(", ")
        ),
    };
    let watched = crate::tui::run(crate::tui::Start::watching(
        feed,
        record.map(Path::to_path_buf),
    ));
    let stopped = !load.is_finished();
    stop.store(true, Ordering::SeqCst);
    cancel.cancel();
    let measured = rt.block_on(tokio::time::timeout(STOP_WAIT, load));
    rt.shutdown_timeout(Duration::from_secs(1));
    watched?;
    let (levels, requests) = measured
        .map_err(|_| anyhow!("the load did not stop within {} s", STOP_WAIT.as_secs()))?
        .map_err(|e| anyhow!("the load crashed: {e}"))??;
    Ok(((levels, requests), stopped))
}
