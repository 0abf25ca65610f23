//! The model thread of `labtui serve`: it owns the model and the [`Scheduler`], takes requests
//! from the HTTP handlers by channel, runs one step after another while any request is queued or
//! running, and sends each request its tokens as they come. A request whose handler has gone (the
//! client disconnected) is cancelled before the next step.

use super::metrics::Metrics;
use crate::engine::sampling::SamplingParams;
use crate::engine::sched::{SchedConfig, Scheduler, SeqRequest};
use crate::engine::Model;
use crate::protocol::{Event, FinishReason, SchedEvent, Stamper};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedSender;

/// A request for the model thread.
#[derive(Debug)]
pub struct Job {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub ignore_eos: bool,
    pub out: UnboundedSender<Out>,
}

/// What the model thread tells a request's handler.
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    /// Accepted and queued.
    Queued,
    /// Refused (it cannot fit the context or the block budget).
    Refused(String),
    Token(u32),
    Done {
        reason: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    /// The forward pass failed; the request ends.
    Failed(String),
}

struct Live {
    out: UnboundedSender<Out>,
    arrived: Instant,
    prompt_tokens: usize,
    first: bool,
}

/// Where the scheduler's decisions go besides the handlers: the dashboard of `labtui serve --tui`,
/// or a recording.
pub type Tap = Stamper;

/// The decisions of one step, sharing its stamp.
fn send_tapped(out: &Tap, events: &[SchedEvent]) {
    let at = out.elapsed();
    for e in events {
        let _ = out.send_at(at, Event::Sched(e.clone()));
    }
}

/// How long an idle model thread waits for a request before looking at the stop flag again.
const IDLE_POLL: Duration = Duration::from_millis(50);

/// Serve `jobs` until every sender is gone or `stop` is set.
pub fn run(
    model: Model,
    eog: Vec<u32>,
    cfg: SchedConfig,
    jobs: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
    tap: Option<Tap>,
) {
    Metrics::set(&metrics.blocks_total, cfg.kv_blocks);
    let mut sched = Scheduler::new(&model, cfg, eog);
    if let Some(t) = &tap {
        send_tapped(t, &sched.take_events()); // its start: the view shows the budgets before a request
    }
    let mut live: HashMap<u64, Live> = HashMap::new();
    let mut next_id = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let incoming = match receive(&jobs, sched.is_idle()) {
            Inbox::Jobs(incoming) => incoming,
            Inbox::Nothing => continue,
            Inbox::Closed => return,
        };
        for job in incoming {
            let id = next_id;
            next_id += 1;
            admit(&mut sched, &mut live, id, job);
        }
        drop_gone(&mut sched, &mut live);
        let events = match sched.step(&model) {
            Ok(e) => e,
            Err(e) => {
                for (id, l) in live.drain() {
                    sched.cancel(id);
                    let _ = l.out.send(Out::Failed(e.to_string()));
                }
                sched.take_events();
                continue;
            }
        };
        // The gauges first: a client that reads /metrics once its answer ended sees the
        // step that ended it.
        Metrics::set(&metrics.running, sched.running());
        Metrics::set(&metrics.waiting, sched.waiting());
        Metrics::set(&metrics.blocks_held, sched.blocks_held());
        let prefix = sched.prefix_stats();
        Metrics::set(&metrics.prefix_queries, prefix.queried_tokens as usize);
        Metrics::set(&metrics.prefix_hits, prefix.hit_tokens as usize);
        for e in &events {
            apply(e, &mut live, &metrics);
        }
        if let Some(t) = &tap {
            send_tapped(t, &events);
        }
    }
}

/// What came in for the model thread.
enum Inbox {
    Jobs(Vec<Job>),
    /// An idle thread waited and nothing came.
    Nothing,
    /// Every sender is gone and nothing is left to do.
    Closed,
}

/// Requests that came in, without waiting; when the scheduler is `idle`, wait for one.
fn receive(jobs: &mpsc::Receiver<Job>, idle: bool) -> Inbox {
    let mut incoming = Vec::new();
    if idle {
        match jobs.recv_timeout(IDLE_POLL) {
            Ok(j) => incoming.push(j),
            Err(mpsc::RecvTimeoutError::Timeout) => return Inbox::Nothing,
            Err(mpsc::RecvTimeoutError::Disconnected) => return Inbox::Closed,
        }
    }
    loop {
        match jobs.try_recv() {
            Ok(j) => incoming.push(j),
            Err(mpsc::TryRecvError::Empty) => break,
            Err(mpsc::TryRecvError::Disconnected) if incoming.is_empty() && idle => {
                return Inbox::Closed
            }
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
    }
    Inbox::Jobs(incoming)
}

/// Submits a request as `id`; its handler hears whether it was queued or refused.
fn admit(sched: &mut Scheduler, live: &mut HashMap<u64, Live>, id: u64, job: Job) {
    let prompt_tokens = job.prompt.len();
    let req = SeqRequest {
        id,
        prompt: job.prompt,
        max_tokens: job.max_tokens,
        sampling: job.sampling,
        ignore_eos: job.ignore_eos,
    };
    match sched.submit(req) {
        Ok(()) => {
            let _ = job.out.send(Out::Queued);
            live.insert(
                id,
                Live {
                    out: job.out,
                    arrived: Instant::now(),
                    prompt_tokens,
                    first: true,
                },
            );
        }
        Err(e) => {
            let _ = job.out.send(Out::Refused(e.to_string()));
        }
    }
}

/// Cancels the requests of clients that went away.
fn drop_gone(sched: &mut Scheduler, live: &mut HashMap<u64, Live>) {
    let gone: Vec<u64> = live
        .iter()
        .filter(|(_, l)| l.out.is_closed())
        .map(|(&id, _)| id)
        .collect();
    for id in gone {
        sched.cancel(id);
        live.remove(&id);
    }
}

/// One event's effect on the handlers and the metrics.
fn apply(e: &SchedEvent, live: &mut HashMap<u64, Live>, m: &Metrics) {
    match *e {
        SchedEvent::Admitted { req, .. } => {
            if let Some(l) = live.get(&req) {
                Metrics::add(&m.prompt_tokens, l.prompt_tokens);
            }
        }
        SchedEvent::Token { req, id, .. } => {
            Metrics::add(&m.generation_tokens, 1);
            if let Some(l) = live.get_mut(&req) {
                if std::mem::take(&mut l.first) {
                    m.ttft.observe(l.arrived.elapsed());
                }
                let _ = l.out.send(Out::Token(id));
            }
        }
        SchedEvent::Preempted { .. } => Metrics::add(&m.preemptions, 1),
        SchedEvent::Finished {
            req,
            reason,
            generated,
            ..
        } => {
            if let Some(l) = live.remove(&req) {
                Metrics::add(&m.requests_done, 1);
                m.e2e.observe(l.arrived.elapsed());
                let _ = l.out.send(Out::Done {
                    reason,
                    prompt_tokens: l.prompt_tokens,
                    completion_tokens: generated,
                });
            }
        }
        _ => {}
    }
}
