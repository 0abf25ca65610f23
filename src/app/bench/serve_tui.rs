//! `labtui bench serve --tui`: the same load, watched in the dashboard. The load runs as a task
//! on a tokio runtime of its own and sends its events (and the scraped server metrics of the
//! endpoint it measures) over the channel a worker would use; the dashboard never waits on it.
//! Quitting stops the load: requests in flight are cancelled, and the wait for them is bounded.

use crate::protocol::serve::{LevelSummary, Outcome, ServeEvent};
use crate::protocol::{Event, Stamped};
use crate::serve::client::Cancel;
use crate::serve::load::workload::Workload;
use crate::serve::load::{self, Plan, Run, Sweep, Target};
use crate::serve::scrape::{self, ScrapeConfig, Scraper};
use anyhow::{anyhow, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};

/// How long a quit waits for the load to wind down (its requests are cancelled first).
const STOP_WAIT: Duration = Duration::from_secs(5);

/// What to run: the servers, the workload and the levels.
pub struct Bench {
    pub targets: Vec<Arc<dyn Target>>,
    pub workload: Workload,
    pub plan: Plan,
    pub sweep: Option<Sweep>,
    /// Sent to the servers' `/metrics` too.
    pub api_key: Option<String>,
}

/// The levels measured and every request, by level.
pub type Measured = (Vec<LevelSummary>, Vec<(usize, Outcome)>);

/// Run the load on the runtime, each event stamped on `clock` and sent to `tx`, the endpoint of
/// the level running scraped into the same channel; ends with a notice (or the error) saying so.
pub async fn drive(
    b: Bench,
    clock: Instant,
    stop: Arc<AtomicBool>,
    tx: UnboundedSender<Stamped>,
) -> Result<Measured> {
    let mut requests = Vec::new();
    let mut scraper: Option<(String, Scraper)> = None;
    let send = |event: Event| {
        let _ = tx.send(Stamped {
            at: clock.elapsed(),
            event,
        });
    };
    let mut sink = |e: ServeEvent| {
        match &e {
            ServeEvent::LevelStarted { endpoint, .. }
                if scraper.as_ref().is_none_or(|(url, _)| url != endpoint) =>
            {
                let config = ScrapeConfig {
                    api_key: b.api_key.clone(),
                    ..ScrapeConfig::new(endpoint)
                };
                // The scraper before stops as it is dropped.
                scraper = Some((endpoint.clone(), scrape::spawn(config, clock, tx.clone())));
            }
            ServeEvent::Done { level, outcome, .. } => requests.push((*level, outcome.clone())),
            _ => {}
        }
        send(Event::Serve(e));
    };
    let mut run = Run::new(&mut sink, stop);
    run.origin = clock;
    let levels = load::run(&b.targets, &b.workload, &b.plan, b.sweep.as_ref(), &mut run).await;
    drop(run);
    // Stopped and waited for, so that no sample comes after the end's notice.
    if let Some((_, s)) = scraper {
        s.stop().await;
    }
    send(match &levels {
        Ok(l) => Event::Notice {
            message: format!("bench serve done: {} levels measured", l.len()),
        },
        Err(e) => Event::Error {
            message: format!("bench serve: {e:#}"),
        },
    });
    levels.map(|l| (l, requests))
}

/// Run the benchmark with the dashboard attached until the user quits; returns the levels
/// measured, every request, and whether the quit stopped the load before its end.
pub fn run(b: Bench, cancel: Cancel, record: Option<&Path>) -> Result<(Measured, bool)> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let urls: Vec<String> = b.targets.iter().map(|t| t.name()).collect();
    let (tx, rx) = unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let load = rt.spawn(drive(b, Instant::now(), stop.clone(), tx));
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
