//! The load generator: levels of offered load against one or more servers, each level bounded
//! by a request count and a duration, stopped early when the server saturates or errors pile up.
//!
//! - Closed loop ([`Load::Concurrency`]): N requests in flight, each sent as one ends.
//! - Open loop ([`Load::Rate`]): arrivals on a schedule ([`arrivals`]), whatever the server does,
//!   at most `max_concurrency` in flight (the rest wait their turn and count as backlog).
//! - Sweep: a closed-loop probe finds the saturation throughput, then open-loop levels measure
//!   rates below it.
//!
//! Every request is reported as it is sent and as it ends ([`ServeEvent`]), so the dashboard
//! draws a benchmark live and a recording keeps each request.

pub use crate::lab::arrivals;
pub mod capacity;
pub mod dataset;
pub mod drive;
mod flight;
pub mod summary;
pub mod turns;
pub mod workload;

use crate::protocol::serve::{
    FailureKind, LevelSummary, Load, Outcome, Request, ServeEvent, ServerLevel, ServerTotals, Slo,
};
use anyhow::{bail, Result};
use flight::{Flight, Pace};
use futures::future::BoxFuture;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use workload::Workload;

/// Something requests are sent to: a server over HTTP, or a stand-in in tests.
pub trait Target: Send + Sync {
    /// The name tables and events show (the endpoint's URL).
    fn name(&self) -> String;
    /// Send one request; its `Outcome::sent` is measured from `origin`.
    fn send(&self, req: Request, origin: Instant) -> BoxFuture<'static, Outcome>;
    /// The server's token counters now, when it publishes metrics; read at each level's start
    /// and end so a level's tokens can be checked against the server's own count.
    fn totals(&self) -> BoxFuture<'static, Option<ServerTotals>> {
        Box::pin(async { None })
    }
    /// Setup times of the connections opened since the last call, when the target tracks them.
    fn connections(&self) -> Option<Vec<Duration>> {
        None
    }
}

/// What is cut from a level's measured window: a linear ramp-up of the load, then a warm-up,
/// and a cool-down before the last send (the drain after the last send is always cut).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cut {
    pub ramp_up: Option<Duration>,
    pub warm_up: Duration,
    pub cool_down: Duration,
}

/// How the levels run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadPlan {
    pub loads: Vec<Load>,
    /// Requests per level (the warm-up not counted).
    pub requests: usize,
    /// Longest a level sends for; requests in flight at the end still finish.
    pub duration: Option<Duration>,
    /// Requests sent one at a time before an endpoint's first level, not measured.
    pub warmup: usize,
    /// A level stops sending once more than this share of at least 10 ended requests failed.
    pub max_error_rate: f64,
    pub slo: Option<Slo>,
    pub usd_per_hour: Option<f64>,
    pub cut: Cut,
    /// Percentiles to report beside p50/p90/p99 (empty for none).
    pub percentiles: Vec<f64>,
    /// Instead of `loads`: search for the highest load that meets the SLO.
    pub search: Option<capacity::Search>,
    /// Conversations of several turns with think time (default: one turn each).
    pub turns: turns::Turns,
}

/// A sweep: a closed-loop probe at `probe` concurrency, then open-loop levels at these shares
/// of the throughput it reached.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    pub probe: usize,
    pub fractions: Vec<f64>,
    pub burstiness: f64,
    pub max_concurrency: Option<usize>,
}

impl Sweep {
    pub const FRACTIONS: [f64; 4] = [0.25, 0.5, 0.75, 0.9];
}

/// Where the run stands: the clock requests are stamped on, the next request id, and the stop flag.
pub struct Run<'a> {
    pub origin: Instant,
    pub stop: Arc<AtomicBool>,
    pub sink: &'a mut (dyn FnMut(ServeEvent) + Send),
    next_id: u64,
    level: usize,
}

impl<'a> Run<'a> {
    pub fn new(sink: &'a mut (dyn FnMut(ServeEvent) + Send), stop: Arc<AtomicBool>) -> Self {
        Self {
            origin: Instant::now(),
            stop,
            sink,
            next_id: 0,
            level: 0,
        }
    }
}

/// Run the plan (or the sweep) against every target in turn, the same workload each; returns the
/// levels measured, in order. Fails when a target cannot be reached at all (its warm-up is
/// refused or its name does not resolve).
pub async fn run(
    targets: &[Arc<dyn Target>],
    workload: &Workload,
    plan: &LoadPlan,
    sweep: Option<&Sweep>,
    run: &mut Run<'_>,
) -> Result<Vec<LevelSummary>> {
    if plan.requests == 0 {
        bail!("a level needs at least one request");
    }
    let per_target = match (sweep, &plan.search) {
        (Some(s), _) => 1 + s.fractions.len(),
        (None, Some(s)) => s.most_levels(),
        (None, None) => plan.loads.len(),
    };
    let levels = per_target * targets.len();
    let n = plan.requests;
    let mut out = Vec::new();
    for target in targets {
        let warm = workload.level_requests(plan.warmup.min(n).max(1), workload::WARM_UP);
        warm_up(target, &warm, plan.warmup, run.origin).await?;
        let at = Place {
            target,
            workload,
            plan,
            levels,
        };
        if let Some(search) = &plan.search {
            out.extend(search_levels(&at, search, run).await);
            continue;
        }
        let loads = match sweep {
            None => plan.loads.clone(),
            Some(s) => {
                let probe = at.level(Load::Concurrency(s.probe), 0, run).await;
                let sat = probe.req_s;
                out.push(probe);
                if sat <= 0.0 || run.stop.load(Ordering::SeqCst) {
                    continue;
                }
                s.fractions
                    .iter()
                    .map(|f| Load::Rate {
                        rate: round3(sat * f),
                        burstiness: s.burstiness,
                        max_concurrency: s.max_concurrency,
                    })
                    .collect()
            }
        };
        let first = usize::from(sweep.is_some());
        for (i, load) in loads.into_iter().enumerate() {
            if run.stop.load(Ordering::SeqCst) {
                break;
            }
            out.push(at.level(load, first + i, run).await);
        }
    }
    Ok(out)
}

/// Where levels run: the target, the workload and plan, and how many levels the run has.
struct Place<'a> {
    target: &'a Arc<dyn Target>,
    workload: &'a Workload,
    plan: &'a LoadPlan,
    levels: usize,
}

impl Place<'_> {
    /// The level at `position` among the target's levels, offered `load`, with its own prompts.
    async fn level(&self, load: Load, position: usize, run: &mut Run<'_>) -> LevelSummary {
        let reqs = self.workload.level_requests(self.plan.requests, position);
        let l = Level {
            target: self.target,
            reqs: &reqs,
            load,
            plan: self.plan,
            levels: self.levels,
            seed: self.workload.seed,
            position,
        };
        level(l, run).await
    }
}

/// A capacity search against one target: a level per probe, each with prompts of its own.
async fn search_levels(
    at: &Place<'_>,
    search: &capacity::Search,
    run: &mut Run<'_>,
) -> Vec<LevelSummary> {
    let mut out: Vec<LevelSummary> = Vec::new();
    let mut bisect = search.start();
    let mut position = 0;
    while let Some(load) = bisect.next(out.last()) {
        if run.stop.load(Ordering::SeqCst) {
            break;
        }
        out.push(at.level(load, position, run).await);
        position += 1;
    }
    out
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn warm_up(
    target: &Arc<dyn Target>,
    reqs: &[Request],
    n: usize,
    origin: Instant,
) -> Result<()> {
    for req in reqs.iter().cycle().take(n) {
        let o = target.send(req.clone(), origin).await;
        if let Some(f) = &o.failure {
            if matches!(
                f.kind,
                FailureKind::Refused | FailureKind::Dns | FailureKind::Tls
            ) {
                bail!("{}: {}", target.name(), f.message);
            }
        }
    }
    Ok(())
}

/// Requests a duration-driven level has ready (no --requests): more than a duration here sends,
/// and its end is the duration's, not an early stop.
pub const DURATION_REQUESTS: usize = 100_000;

/// Requests waiting or in flight beyond which an open-loop level counts as saturated: four times
/// what Little's law expects at this rate from the fastest request so far, and at least 16 (and
/// twice the concurrency cap). None, so no limit, before the first reply (nothing yet says how
/// long a request takes, so any backlog is ordinary) and at an infinite rate (everything is due
/// at once by definition; the cap alone paces it).
pub fn backlog_limit(rate: f64, fastest: Option<Duration>, cap: usize) -> Option<usize> {
    if !rate.is_finite() {
        return None;
    }
    let little = rate * fastest?.as_secs_f64();
    let mut limit = (4.0 * little).ceil().max(16.0) as usize;
    if cap != usize::MAX {
        limit = limit.max(2 * cap);
    }
    Some(limit)
}

/// The seed of a level's arrivals: the run's seed and the level's place among its endpoint's
/// levels, so endpoints side by side get the same schedule at the same level.
pub fn level_seed(seed: u64, position: usize) -> u64 {
    seed.wrapping_add(position as u64)
}

/// One level to run: the requests, the load they are offered at, and against what.
struct Level<'a> {
    target: &'a Arc<dyn Target>,
    reqs: &'a [Request],
    load: Load,
    plan: &'a LoadPlan,
    /// Levels the whole run measures.
    levels: usize,
    seed: u64,
    /// This level's place among its endpoint's levels (the arrivals' seed).
    position: usize,
}

/// When a level's requests go out: arrival times (none for a closed loop), the most in flight,
/// and the rate.
pub fn schedule(
    load: Load,
    n: usize,
    seed: u64,
    ramp: Option<Duration>,
) -> (Option<Vec<Duration>>, usize, f64) {
    match load {
        Load::Concurrency(c) => (None, c.max(1), 0.0),
        Load::Rate {
            rate,
            burstiness,
            max_concurrency,
        } => {
            // Rates and shapes were checked where they were parsed; a bad one sends at once.
            let gaps = arrivals::gaps(rate, burstiness, n, seed)
                .unwrap_or_else(|_| vec![Duration::ZERO; n]);
            let times = arrivals::normalised_times(&gaps, rate);
            (
                Some(arrivals::ramped(&times, ramp.unwrap_or_default())),
                max_concurrency.unwrap_or(usize::MAX).max(1),
                rate,
            )
        }
    }
}

async fn level(l: Level<'_>, run: &mut Run<'_>) -> LevelSummary {
    let Level {
        target,
        reqs,
        load,
        plan,
        levels,
        seed,
        position,
    } = l;
    let (index, n) = (run.level, reqs.len());
    run.level += 1;
    let started = ServeEvent::LevelStarted {
        endpoint: target.name(),
        index,
        levels,
        load,
        requests: n,
    };
    (run.sink)(started);
    let ramp = plan.cut.ramp_up;
    let (arrivals, cap, rate) = schedule(load, n, level_seed(seed, position), ramp);
    let before = target.totals().await;
    // Connections the warm-up or an earlier level opened are not this level's.
    target.connections();
    let t0 = Instant::now();
    let deadline = plan.duration.map(|d| t0 + d);
    let follow = turns::FollowUps::new(plan.turns, level_seed(seed, position));
    let mut f = Flight::new(n, follow);
    loop {
        let now = Instant::now();
        f.check_stop(&run.stop);
        let open = f.sent < n && f.stopped.is_none() && deadline.is_none_or(|d| now < d);
        // A closed loop's ramp lets more in flight as it goes; an open loop's is in its arrivals.
        let cap_now = match arrivals {
            None => arrivals::ramped_cap(cap, ramp, now - t0),
            Some(_) => cap,
        };
        // Before this round's sends, so that every request it sends is at or after it.
        let round = run.origin.elapsed();
        if open {
            let pace = Pace {
                arrivals: arrivals.as_deref(),
                cap: cap_now,
                rate,
                t0,
                now,
            };
            f.dispatch(run, target, reqs, index, pace);
        }
        let ramp_done = ramp.is_none_or(|r| now >= t0 + r);
        f.note_full(round, ramp_done, arrivals.is_none(), cap, n);
        let more = open && (f.started < n || !f.follow.is_empty());
        if f.set.is_empty() && !more {
            break;
        }
        let wake = f.wake(arrivals.as_deref(), t0, open, cap_now, n);
        tokio::select! {
            joined = f.set.join_next_with_id(), if !f.set.is_empty() => {
                if let Some(ended) = joined.and_then(|j| f.ended(j, run.origin)) {
                    f.done(run, index, ended, plan.max_error_rate);
                }
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(now).into()), if wake.is_some() => {}
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
    if n < DURATION_REQUESTS {
        f.stopped_early(n);
    }
    let summary = finish(target, load, plan, f, reqs, before).await;
    (run.sink)(ServeEvent::LevelDone {
        level: index,
        summary: Box::new(summary.clone()),
    });
    summary
}

/// A level's summary once its requests ended: what the server counted meanwhile, requests that
/// stopped at end-of-sequence though asked not to, the send lag and the connections opened.
async fn finish(
    target: &Arc<dyn Target>,
    load: Load,
    plan: &LoadPlan,
    f: Flight,
    reqs: &[Request],
    before: Option<ServerTotals>,
) -> LevelSummary {
    let after = match before {
        Some(_) => target.totals().await,
        None => None,
    };
    let eos_stops = f.eos_stops(reqs.first().is_some_and(|r| r.ignore_eos));
    let send_lag = (!f.lags.is_empty()).then(|| crate::stats::dist(&f.lags));
    let connections = target.connections();
    let mut summary = summarize(target, load, plan, f, (before, after), connections);
    summary.eos_stops = eos_stops;
    summary.send_lag = send_lag;
    summary
}

/// The level's summary, with what the server counted meanwhile if it says.
fn summarize(
    target: &Arc<dyn Target>,
    load: Load,
    plan: &LoadPlan,
    f: Flight,
    (before, after): (Option<ServerTotals>, Option<ServerTotals>),
    connections: Option<Vec<Duration>>,
) -> LevelSummary {
    let window = f.window(plan.cut);
    let mut summary = summary::summarize(summary::Inputs {
        endpoint: &target.name(),
        load,
        outcomes: &f.outcomes,
        slo: plan.slo,
        usd_per_hour: plan.usd_per_hour,
        stopped_early: f.stopped,
        window,
        percentiles: &plan.percentiles,
        connections,
    });
    summary.server = before.zip(after).map(|(a, b)| ServerLevel::between(&a, &b));
    summary
}
