//! A simulated request stream run through the batching [`Scheduler`]: the requests an
//! [`Arrivals`] spec draws, submitted when the stream's clock reaches their arrival, one measured
//! step at a time. The clock advances by each step's measured time and jumps over idle gaps (it
//! never sleeps), so a stream of minutes runs as fast as the model computes, and two policies see
//! the same arrivals.

use crate::engine::kv_cache::BLOCK_TOKENS;
use crate::engine::sampling::SamplingParams;
use crate::engine::sched::{Replay, ReqState, SchedConfig, Scheduler, SeqRequest};
use crate::engine::Model;
use crate::lab::arrivals;
use crate::lab::measure::bench_tokens;
use crate::protocol::demo::KvPoint;
use crate::protocol::{Arrivals, GenParams, SchedEvent};
use rand::{Rng, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One request of a stream and when it arrives.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub at: Duration,
    pub req: SeqRequest,
}

/// The requests `a` draws: ids from 0, arrival times from its rate, prompt and output lengths
/// uniform in its ranges (prompt tokens distinct across requests), greedy, ignoring EOS so each
/// generates its drawn length. Errors name the field that is out of range.
pub fn requests(a: &Arrivals, vocab: usize) -> anyhow::Result<Vec<Arrival>> {
    a.validate().map_err(anyhow::Error::msg)?;
    let times = arrivals::times(&arrivals::gaps(a.rate, 1.0, a.requests, a.seed)?);
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed ^ 0x9e37_79b9);
    let lens: Vec<(usize, usize)> = (0..a.requests)
        .map(|_| {
            (
                rng.random_range(a.prompt_tokens.0..=a.prompt_tokens.1),
                rng.random_range(a.output_tokens.0..=a.output_tokens.1),
            )
        })
        .collect();
    let all = bench_tokens(lens.iter().map(|l| l.0).sum(), vocab);
    let mut at_token = 0;
    Ok(times
        .into_iter()
        .zip(lens)
        .enumerate()
        .map(|(i, (at, (prompt, out)))| {
            let tokens = all[at_token..at_token + prompt].to_vec();
            at_token += prompt;
            Arrival {
                at,
                req: SeqRequest {
                    id: i as u64,
                    prompt: tokens,
                    max_tokens: out,
                    sampling: SamplingParams::greedy(),
                    ignore_eos: true,
                },
            }
        })
        .collect())
}

/// `batch` copies of one prompt, all arriving at once: the dashboard's batch run. Copy `i`
/// samples with seed `params.seed + i`, so with a temperature the copies differ, and greedy they
/// must all be the one sequence (batch invariance).
pub fn copies(prompt: &[u32], params: &GenParams, batch: usize) -> Vec<Arrival> {
    (0..batch as u64)
        .map(|i| Arrival {
            at: Duration::ZERO,
            req: SeqRequest {
                id: i,
                prompt: prompt.to_vec(),
                max_tokens: params.max_tokens.max(1),
                sampling: SamplingParams {
                    temperature: params.temperature,
                    top_k: params.top_k,
                    top_p: params.top_p,
                    seed: params.seed.wrapping_add(i),
                },
                ignore_eos: params.ignore_eos,
            },
        })
        .collect()
}

/// KV blocks for every copy of [`copies`] to run at once to its end, within the context: each
/// copy's blocks, and the one spare block per running request that admission keeps free.
pub fn blocks_for(prompt: usize, params: &GenParams, batch: usize, context: usize) -> usize {
    batch
        * ((prompt + params.max_tokens.max(1))
            .min(context)
            .div_ceil(BLOCK_TOKENS)
            + 1)
}

/// One request's times on the stream's clock, and its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub id: u64,
    pub arrival: Duration,
    pub first_token: Duration,
    pub finished: Duration,
    pub tokens: Vec<u32>,
}

impl Timed {
    pub fn ttft(&self) -> Duration {
        self.first_token.saturating_sub(self.arrival)
    }

    pub fn e2e(&self) -> Duration {
        self.finished.saturating_sub(self.arrival)
    }
}

/// What a stream's run did.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRun {
    /// By id.
    pub reqs: Vec<Timed>,
    pub steps: u64,
    /// Requests the steps ran, summed over steps (decode rows and prefill chunks).
    pub rows: u64,
    pub preemptions: usize,
    /// Prefill tokens past each request's prompt: recomputation after preemption.
    pub recomputed: usize,
    /// KV memory after each step.
    pub kv: Vec<KvPoint>,
    pub kv_bytes_per_token: u64,
    /// The steps' own time, and the part spent recomputing preempted tokens (each step's time
    /// shared among its rows).
    pub busy: Duration,
    pub recompute: Duration,
}

impl StreamRun {
    /// First arrival to last finish.
    pub fn makespan(&self) -> Duration {
        let first = self
            .reqs
            .iter()
            .map(|r| r.arrival)
            .min()
            .unwrap_or_default();
        let last = self
            .reqs
            .iter()
            .map(|r| r.finished)
            .max()
            .unwrap_or_default();
        last.saturating_sub(first)
    }

    pub fn generated(&self) -> usize {
        self.reqs.iter().map(|r| r.tokens.len()).sum()
    }

    pub fn mean_running(&self) -> f64 {
        self.rows as f64 / (self.steps.max(1)) as f64
    }

    pub fn peak_blocks(&self) -> usize {
        self.kv
            .iter()
            .map(|k| k.paged / BLOCK_TOKENS)
            .max()
            .unwrap_or(0)
    }
}

/// How the stream's clock passes while nothing runs.
#[derive(Debug, Clone, Copy)]
pub enum Pace<'a> {
    /// Jump to the next arrival: a measurement, as fast as the model computes.
    Skip,
    /// Wait for it, as a person watching would (the dashboard's simulated stream); `stop` set
    /// cancels every request left and ends the run.
    Live { stop: &'a AtomicBool },
}

impl Pace<'_> {
    fn stopped(&self) -> bool {
        match self {
            Pace::Skip => false,
            Pace::Live { stop } => stop.load(Ordering::SeqCst),
        }
    }

    /// Let the clock reach `at`: at once, or by sleeping (in slices, to notice a stop).
    fn wait(&self, clock: Duration, at: Duration) {
        if let Pace::Live { .. } = self {
            let until = Instant::now() + at.saturating_sub(clock);
            while !self.stopped() && Instant::now() < until {
                std::thread::sleep(until.saturating_duration_since(Instant::now()).min(SLICE));
            }
        }
    }
}

const SLICE: Duration = Duration::from_millis(50);

/// Run `stream` through a scheduler of `cfg` on `model`; `on_event` hears every scheduler event
/// with the stream's clock when it happened. Fails if a request cannot be served at all (see
/// [`Scheduler::submit`]).
pub fn run(
    model: &Model,
    cfg: SchedConfig,
    stream: &[Arrival],
    eog: &[u32],
    pace: Pace,
    on_event: &mut dyn FnMut(Duration, &SchedEvent),
) -> anyhow::Result<StreamRun> {
    let context = model.cfg.context_length;
    let mut sched = Scheduler::new(model, cfg, eog.to_vec());
    let mut replay = Replay::default();
    let mut clock = Duration::ZERO;
    let mut next = 0;
    let mut tally = Tally::new(stream.len());
    loop {
        while let Some(a) = stream.get(next).filter(|a| a.at <= clock) {
            sched.submit(a.req.clone())?;
            next += 1;
        }
        // Arrivals are heard when they happen, not after the step that admits them: a view's
        // TTFT runs from them.
        for e in sched.take_events() {
            replay.apply(&e);
            on_event(clock, &e);
        }
        if pace.stopped() {
            for a in &stream[..next] {
                sched.cancel(a.req.id);
            }
            next = stream.len();
        } else if sched.is_idle() {
            match stream.get(next) {
                Some(a) => {
                    pace.wait(clock, a.at);
                    clock = a.at;
                    continue;
                }
                None => break,
            }
        }
        let t = Instant::now();
        let events = sched.step(model)?;
        let took = t.elapsed();
        clock += took;
        tally.time(took, &events, &replay);
        if events.is_empty() && sched.is_idle() && next == stream.len() {
            break;
        }
        for e in &events {
            replay.apply(e);
            on_event(clock, e);
            tally.hear(e, clock, &sched, &replay, context);
        }
    }
    Ok(tally.finish(stream, &replay, &sched, clock))
}

/// What a stream's run counts as its steps' events come: first tokens and finishes by request
/// id, rows run, and the KV cache after each step.
struct Tally {
    first: Vec<Option<Duration>>,
    done: Vec<Option<Duration>>,
    rows: u64,
    kv: Vec<KvPoint>,
    busy: Duration,
    recompute: Duration,
}

impl Tally {
    fn new(requests: usize) -> Self {
        Self {
            first: vec![None; requests],
            done: vec![None; requests],
            rows: 0,
            kv: Vec::new(),
            busy: Duration::ZERO,
            recompute: Duration::ZERO,
        }
    }

    /// A step of `took` ran `events` (heard before `replay` applies them): its time, and the
    /// share of it its recomputed prefill rows took.
    fn time(&mut self, took: Duration, events: &[SchedEvent], replay: &Replay) {
        self.busy += took;
        let (mut rows, mut again) = (0usize, 0usize);
        for e in events {
            match *e {
                SchedEvent::Step {
                    prefill_tokens,
                    decode_rows,
                    ..
                } => rows = prefill_tokens + decode_rows,
                SchedEvent::Prefill { req, len, .. } => {
                    // Prefilled tokens past the prompt's first pass are recomputation.
                    if let Some(r) = replay.reqs.get(&req) {
                        let before = r.prefilled.max(r.prompt_tokens);
                        let after = r.prefilled + len;
                        again += after.saturating_sub(before).min(len);
                    }
                }
                _ => {}
            }
        }
        if rows > 0 && again > 0 {
            self.recompute += took.mul_f64(again.min(rows) as f64 / rows as f64);
        }
    }

    fn hear(
        &mut self,
        e: &SchedEvent,
        clock: Duration,
        sched: &Scheduler,
        replay: &Replay,
        context: usize,
    ) {
        match *e {
            SchedEvent::Token { req, index: 0, .. } => {
                self.first[req as usize].get_or_insert(clock);
            }
            SchedEvent::Finished { req, .. } => self.done[req as usize] = Some(clock),
            SchedEvent::Prefill { .. } => self.rows += 1,
            SchedEvent::Step {
                step, decode_rows, ..
            } => {
                self.rows += decode_rows as u64;
                let u = sched.usage();
                let paged = u.held * u.block_tokens;
                let running = || {
                    replay
                        .reqs
                        .values()
                        .filter(|r| r.state == ReqState::Running)
                };
                self.kv.push(KvPoint {
                    step,
                    running: sched.running(),
                    used: paged - u.wasted_tokens,
                    paged,
                    contiguous: running()
                        .map(|r| (r.prompt_tokens + r.max_tokens).min(context))
                        .sum(),
                    prompts: running().map(|r| r.prompt_tokens).sum(),
                });
            }
            _ => {}
        }
    }

    /// The run's result once the stream ends at `clock`.
    fn finish(
        self,
        stream: &[Arrival],
        replay: &Replay,
        sched: &Scheduler,
        clock: Duration,
    ) -> StreamRun {
        let reqs = stream
            .iter()
            .map(|a| {
                let id = a.req.id;
                Timed {
                    id,
                    arrival: a.at,
                    first_token: self.first[id as usize].unwrap_or(clock),
                    finished: self.done[id as usize].unwrap_or(clock),
                    // A stopped stream never submitted the rest.
                    tokens: replay
                        .reqs
                        .get(&id)
                        .map(|v| v.tokens.clone())
                        .unwrap_or_default(),
                }
            })
            .collect();
        StreamRun {
            reqs,
            steps: sched.steps(),
            rows: self.rows,
            preemptions: replay.reqs.values().map(|r| r.preemptions).sum(),
            recomputed: replay
                .reqs
                .values()
                .map(|r| r.prefilled.saturating_sub(r.prompt_tokens))
                .sum(),
            kv: self.kv,
            kv_bytes_per_token: sched.kv_bytes_per_token(),
            busy: self.busy,
            recompute: self.recompute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_follows_its_spec_and_repeats_from_its_seed() {
        let a = Arrivals {
            rate: 10.0,
            requests: 50,
            prompt_tokens: (3, 9),
            output_tokens: (2, 5),
            seed: 1,
        };
        let s = requests(&a, 100).unwrap();
        assert_eq!(s.len(), 50);
        assert_eq!(s, requests(&a, 100).unwrap());
        assert!(s.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(s
            .iter()
            .all(|r| (3..=9).contains(&r.req.prompt.len()) && (2..=5).contains(&r.req.max_tokens)));
        let other = requests(
            &Arrivals {
                seed: 2,
                ..a.clone()
            },
            100,
        )
        .unwrap();
        assert_ne!(s, other);
        let bad = Arrivals {
            prompt_tokens: (9, 3),
            ..a
        };
        assert!(requests(&bad, 100)
            .unwrap_err()
            .to_string()
            .contains("prompt_tokens = (9, 3)"));
    }
}
