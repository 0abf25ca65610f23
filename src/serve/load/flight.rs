//! A level in flight: its requests sent and running, their outcomes, when it reached its full
//! load, and why it stopped early; sending what falls due under the concurrency cap, and the
//! conversations' follow-up turns when they are due.

use super::turns::FollowUps;
use super::{backlog_limit, Cut, Run, Target};
use crate::protocol::serve::{FailureKind, Outcome, Request, ServeEvent, StopReason};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// When a level's requests fall due, as of `now`.
pub struct Pace<'a> {
    /// Arrival times from `t0` (none for a closed loop).
    pub arrivals: Option<&'a [Duration]>,
    /// The most in flight.
    pub cap: usize,
    pub rate: f64,
    pub t0: Instant,
    pub now: Instant,
}

/// A level's requests so far: in flight, ended, and why it stopped early.
pub struct Flight {
    pub set: JoinSet<(u64, Outcome)>,
    /// Each task's request id and when it was sent (on the run's clock), so a request aborted
    /// by a stop is still counted, as cancelled; in conversations, its request and turn too.
    pub tasks: std::collections::HashMap<tokio::task::Id, Task>,
    /// Conversations' next turns, waiting for their users' think time.
    pub follow: FollowUps,
    /// Conversations (or single requests) started from the level's list.
    pub started: usize,
    /// Open loop: each send's lag behind its scheduled arrival.
    pub lags: Vec<Duration>,
    pub outcomes: Vec<Outcome>,
    pub sent: usize,
    pub failed: usize,
    /// The fastest request that succeeded.
    pub fastest: Option<Duration>,
    pub stopped: Option<StopReason>,
    /// When the load was first fully offered (the ramp done, a closed loop's slots all
    /// filled), on the run's clock: the start of the round of sends that filled it.
    pub full_at: Option<Duration>,
}

/// A request in flight: its id, when it was sent, and (in conversations) it and its turn.
pub struct Task {
    id: u64,
    sent: Duration,
    turn: Option<(Request, usize)>,
}

/// A request that ended: its id, outcome, and (in conversations) it and its turn.
pub type Ended = (u64, Outcome, Option<(Request, usize)>);

impl Flight {
    pub fn new(n: usize, follow: FollowUps) -> Self {
        Self {
            set: JoinSet::new(),
            tasks: std::collections::HashMap::new(),
            follow,
            started: 0,
            lags: Vec::new(),
            outcomes: Vec::with_capacity(n.min(4096)),
            sent: 0,
            failed: 0,
            fastest: None,
            stopped: None,
            full_at: None,
        }
    }

    /// On a stop: every request in flight is aborted (and counted as cancelled when it ends).
    pub fn check_stop(&mut self, stop: &std::sync::atomic::AtomicBool) {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            self.set.abort_all();
            self.stopped.get_or_insert(StopReason::Stopped);
        }
    }

    /// Marks the level fully loaded the first time it is: its ramp done and, in a closed loop,
    /// every place taken (or every request sent).
    pub fn note_full(
        &mut self,
        round: Duration,
        ramp_done: bool,
        closed: bool,
        cap: usize,
        n: usize,
    ) {
        if self.full_at.is_some() || self.sent == 0 {
            return;
        }
        let taken = self.set.len() + self.follow.len();
        if ramp_done && (!closed || taken >= cap || self.sent == n) {
            self.full_at = Some(round);
        }
    }

    /// When the loop next has something to send: the next arrival, while there is room for it,
    /// or a user back from thinking.
    pub fn wake(
        &self,
        arrivals: Option<&[Duration]>,
        t0: Instant,
        open: bool,
        cap: usize,
        n: usize,
    ) -> Option<Instant> {
        let next_arrival = arrivals
            .filter(|_| open && self.started < n && self.set.len() + self.follow.len() < cap)
            .map(|at| t0 + at[self.started]);
        [next_arrival, self.follow.next_due().filter(|_| open)]
            .into_iter()
            .flatten()
            .min()
    }

    /// The steady window: from the full load plus the warm-up to the last send less the
    /// cool-down (`None` when that leaves nothing).
    pub fn window(&self, cut: Cut) -> Option<(Duration, Duration)> {
        let from = self.full_at? + cut.warm_up;
        let last_send = self.outcomes.iter().map(|o| o.sent).max()?;
        let to = last_send.checked_sub(cut.cool_down)?;
        (to > from).then_some((from, to))
    }

    /// A level that ended before sending all its `n` requests ran out of time.
    pub fn stopped_early(&mut self, n: usize) {
        if self.stopped.is_none() && self.sent < n {
            self.stopped = Some(StopReason::Duration {
                sent: self.sent,
                requests: n,
            });
        }
    }

    /// Sends the requests that are due and fit under the cap; an open loop whose backlog grows
    /// past its limit is saturated.
    pub fn dispatch(
        &mut self,
        run: &mut Run<'_>,
        target: &Arc<dyn Target>,
        reqs: &[Request],
        index: usize,
        pace: Pace<'_>,
    ) {
        let Pace {
            arrivals,
            cap,
            rate,
            t0,
            now,
        } = pace;
        let n = reqs.len();
        // Users back from thinking go first: their place under the cap is theirs.
        while self.sent < n {
            let Some((req, turn)) = self.follow.pop_due(now) else {
                break;
            };
            self.send(run, target, index, req, turn);
        }
        while self.sent < n && self.started < n && self.set.len() + self.follow.len() < cap {
            if arrivals.is_some_and(|at| t0 + at[self.started] > now) {
                break;
            }
            if let Some(at) = arrivals {
                self.lags
                    .push(now.saturating_duration_since(t0 + at[self.started]));
            }
            self.send(run, target, index, reqs[self.started].clone(), 0);
            self.started += 1;
        }
        if let Some(at) = arrivals {
            let due = at[self.started..].partition_point(|a| t0 + *a <= now);
            let Some(limit) = backlog_limit(rate, self.fastest, cap) else {
                return;
            };
            if self.set.len() + due > limit {
                self.stopped = Some(StopReason::Saturated {
                    outstanding: self.set.len() + due,
                    limit,
                });
            }
        }
    }

    /// Sends one request (turn `turn` of its conversation) and keeps its task.
    fn send(
        &mut self,
        run: &mut Run<'_>,
        target: &Arc<dyn Target>,
        index: usize,
        req: Request,
        turn: usize,
    ) {
        let id = run.next_id;
        run.next_id += 1;
        (run.sink)(ServeEvent::Sent { level: index, id });
        let kept = self.follow.on().then(|| (req.clone(), turn));
        let fut = target.send(req, run.origin);
        let task = self.set.spawn(async move { (id, fut.await) });
        self.tasks.insert(
            task.id(),
            Task {
                id,
                sent: run.origin.elapsed(),
                turn: kept,
            },
        );
        self.sent += 1;
    }

    /// Asked to ignore end-of-sequence (`asked`), the requests that still stopped there: a
    /// server that does not honour the flag.
    pub fn eos_stops(&self, asked: bool) -> Option<usize> {
        asked.then(|| {
            self.outcomes
                .iter()
                .filter(|o| o.ok() && o.finish.as_deref() == Some("stop"))
                .count()
        })
    }

    /// A task that ended: its request's outcome, or, for a request aborted by a stop, a
    /// cancelled outcome that keeps it in the counts.
    pub fn ended(
        &mut self,
        joined: Result<(tokio::task::Id, (u64, Outcome)), tokio::task::JoinError>,
        origin: Instant,
    ) -> Option<Ended> {
        match joined {
            Ok((task, (id, outcome))) => {
                let turn = self.tasks.remove(&task).and_then(|t| t.turn);
                Some((id, outcome, turn))
            }
            Err(e) => {
                let Task { id, sent, .. } = self.tasks.remove(&e.id())?;
                let failure = crate::protocol::serve::Failure::new(
                    FailureKind::Cancelled,
                    "stopped before it finished",
                );
                let outcome = Outcome {
                    sent,
                    e2e: origin.elapsed().saturating_sub(sent),
                    failure: Some(failure),
                    ..Outcome::default()
                };
                Some((id, outcome, None))
            }
        }
    }

    /// A request ended; too many failures stop the level.
    pub fn done(&mut self, run: &mut Run<'_>, index: usize, ended: Ended, max_error_rate: f64) {
        let (id, outcome, turn) = ended;
        // A conversation's next turn falls due after its user's think time.
        if let Some((req, turn)) = &turn {
            self.follow.after(req, *turn, &outcome, Instant::now());
        }
        self.failed += usize::from(!outcome.ok());
        if outcome.ok() {
            self.fastest = Some(self.fastest.map_or(outcome.e2e, |f| f.min(outcome.e2e)));
        }
        (run.sink)(ServeEvent::Done {
            level: index,
            id,
            outcome: outcome.clone(),
        });
        self.outcomes.push(outcome);
        let (failed, ended) = (self.failed, self.outcomes.len());
        if self.stopped.is_none() && ended >= 10 && failed as f64 > max_error_rate * ended as f64 {
            self.stopped = Some(StopReason::Errors {
                max_error_rate,
                failed,
                ended,
            });
        }
    }
}
