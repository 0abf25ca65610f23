//! The headless driver of `labtui bench serve`: the load, its events stamped into one channel
//! with the scraped metrics of the endpoint each level measures. The dashboard (`--tui`), the
//! plain run and the tests all watch that channel.

use super::workload::Workload;
use super::{LoadPlan, Run, Sweep, Target};
use crate::protocol::serve::{LevelSummary, Outcome, ServeEvent};
use crate::protocol::{Event, Stamper};
use crate::serve::scrape::{self, ScrapeConfig, Scraper};
use anyhow::Result;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What to run: the servers, the workload and the levels.
pub struct Bench {
    pub targets: Vec<Arc<dyn Target>>,
    pub workload: Workload,
    pub plan: LoadPlan,
    pub sweep: Option<Sweep>,
    /// Sent to the servers' `/metrics` too.
    pub api_key: Option<String>,
}

/// The levels measured and every request, by level.
pub type Measured = (Vec<LevelSummary>, Vec<(usize, Outcome)>);

/// Run the load, each event stamped and sent through `out`, the endpoint of the level running
/// scraped into the same channel; ends with a notice (or the error) saying so.
pub async fn drive(b: Bench, out: Stamper, stop: Arc<AtomicBool>) -> Result<Measured> {
    let mut requests = Vec::new();
    let mut scraper: Option<(String, Scraper)> = None;
    let send = |event: Event| {
        out.send(event);
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
                scraper = Some((
                    endpoint.clone(),
                    scrape::spawn(config, out.clock, out.tx.clone()),
                ));
            }
            ServeEvent::Done { level, outcome, .. } => requests.push((*level, outcome.clone())),
            _ => {}
        }
        send(Event::Serve(e));
    };
    let mut run = Run::new(&mut sink, stop);
    run.origin = out.clock;
    let levels = super::run(&b.targets, &b.workload, &b.plan, b.sweep.as_ref(), &mut run).await;
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
