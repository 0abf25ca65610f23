//! The batching scheduler as the dashboard sees it: the queues and every request's history,
//! rebuilt from its [`SchedEvent`]s with [`Replay`] (as a recording replays them), the KV tokens
//! each running request holds (so its blocks), and the tokens generated per step for the live
//! throughput. Bounded: finished requests past [`SCHED_KEPT`] are forgotten, oldest first.

use super::Ring;
use crate::engine::kv_cache::BLOCK_TOKENS;
use crate::engine::sched::{Replay, ReqState};
use crate::protocol::SchedEvent;
use std::collections::BTreeMap;
use std::time::Duration;

/// Finished requests kept for the timeline.
pub const SCHED_KEPT: usize = 256;
/// The span the live throughput is measured over.
pub const SCHED_RECENT: Duration = Duration::from_secs(2);

/// One step as the throughput sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepMark {
    pub at: Duration,
    pub step: u64,
    /// Tokens the step generated (one per request that sampled).
    pub tokens: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SchedView {
    pub replay: Replay,
    /// KV tokens each running request holds now.
    pub kv: BTreeMap<u64, usize>,
    /// The step of each request's latest prefill chunk: a token sampled in that step came from
    /// the prefill, not from a decode row that added a token to the cache.
    last_prefill: BTreeMap<u64, u64>,
    /// Tokens sampled in the step being reported (its `Step` event comes last).
    step_tokens: usize,
    pub steps: Ring<StepMark>,
    pub generated: u64,
    pub preemptions: u64,
    /// When each request not yet finished arrived.
    arrived_at: BTreeMap<u64, Duration>,
    /// Time to first token and end-to-end time of the latest requests.
    pub ttft: Ring<Duration>,
    pub e2e: Ring<Duration>,
    /// Prompt tokens looked up in the prefix cache at admissions, and found there.
    pub prefix: (u64, u64),
}

impl Default for SchedView {
    fn default() -> Self {
        Self {
            replay: Replay::default(),
            kv: BTreeMap::new(),
            last_prefill: BTreeMap::new(),
            step_tokens: 0,
            steps: Ring::new(512),
            generated: 0,
            preemptions: 0,
            arrived_at: BTreeMap::new(),
            ttft: Ring::new(SCHED_LATENCIES),
            e2e: Ring::new(SCHED_LATENCIES),
            prefix: (0, 0),
        }
    }
}

/// Requests whose latencies the view keeps.
pub const SCHED_LATENCIES: usize = 256;

/// Tokens of the running requests' keys and values: those held, those their blocks reserve, and
/// those a contiguous allocation of each one's maximum length (prompt + output) would reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvReserved {
    pub used: usize,
    pub paged: usize,
    pub contiguous: usize,
}

impl SchedView {
    /// Any scheduler event seen.
    pub fn active(&self) -> bool {
        !self.replay.reqs.is_empty()
            || self.replay.last_step.is_some()
            || self.replay.started.is_some()
    }

    pub fn apply(&mut self, at: Duration, e: &SchedEvent) {
        if let SchedEvent::Started { .. } = e {
            *self = Self::default(); // a new scheduler
        }
        let since = |v: &Self, req: u64| v.arrived_at.get(&req).map(|&a| at.saturating_sub(a));
        match *e {
            SchedEvent::Arrived { req, .. } => {
                self.arrived_at.insert(req, at);
            }
            SchedEvent::Token { req, .. }
                if self
                    .replay
                    .reqs
                    .get(&req)
                    .is_some_and(|r| r.first_token.is_none()) =>
            {
                if let Some(t) = since(self, req) {
                    self.ttft.push(t);
                }
            }
            SchedEvent::Finished { req, .. } => {
                if let Some(t) = since(self, req) {
                    self.e2e.push(t);
                }
                self.arrived_at.remove(&req);
            }
            _ => {}
        }
        self.replay.apply(e);
        match *e {
            SchedEvent::Prefill { req, step, len, .. } => {
                *self.kv.entry(req).or_default() += len;
                self.last_prefill.insert(req, step);
            }
            SchedEvent::Token { req, step, .. } => {
                if self.last_prefill.get(&req) != Some(&step) {
                    *self.kv.entry(req).or_default() += 1;
                }
                self.step_tokens += 1;
                self.generated += 1;
            }
            SchedEvent::Preempted { req, .. } => {
                self.kv.remove(&req);
                self.preemptions += 1;
            }
            SchedEvent::Finished { req, .. } => {
                self.kv.remove(&req);
                self.last_prefill.remove(&req);
                self.forget_old();
            }
            SchedEvent::Step { step, .. } => {
                self.steps.push(StepMark {
                    at,
                    step,
                    tokens: std::mem::take(&mut self.step_tokens),
                });
            }
            SchedEvent::Arrived { req, .. } => {
                self.kv.remove(&req);
            }
            SchedEvent::Admitted { req, cached, .. } | SchedEvent::Resumed { req, cached, .. } => {
                self.prefix.0 += self.replay.reqs.get(&req).map_or(0, |r| r.prompt_tokens) as u64;
                self.prefix.1 += cached as u64;
                if cached > 0 {
                    self.kv.insert(req, cached);
                }
            }
            SchedEvent::Started { .. } => {}
        }
    }

    /// Drop the oldest finished requests past [`SCHED_KEPT`].
    fn forget_old(&mut self) {
        let done: Vec<u64> = self
            .replay
            .reqs
            .iter()
            .filter(|(_, r)| matches!(r.state, ReqState::Done(_)))
            .map(|(id, _)| *id)
            .collect();
        for id in done.iter().take(done.len().saturating_sub(SCHED_KEPT)) {
            self.replay.reqs.remove(id);
        }
    }

    /// Ids in a state, oldest first.
    pub fn ids(&self, state: impl Fn(ReqState) -> bool) -> Vec<u64> {
        self.replay
            .reqs
            .iter()
            .filter(|(_, r)| state(r.state))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Blocks each running request holds, oldest first.
    pub fn blocks(&self) -> Vec<(u64, usize)> {
        self.kv
            .iter()
            .map(|(&id, &t)| (id, t.div_ceil(BLOCK_TOKENS)))
            .filter(|&(_, b)| b > 0)
            .collect()
    }

    /// The running requests' KV tokens: held, reserved by their blocks, and what contiguous
    /// allocation of their maximum lengths would reserve (the waste paging avoids).
    pub fn reserved(&self) -> KvReserved {
        let mut r = KvReserved {
            used: 0,
            paged: 0,
            contiguous: 0,
        };
        for id in self.ids(|s| s == ReqState::Running) {
            let used = self.kv.get(&id).copied().unwrap_or(0);
            let q = &self.replay.reqs[&id];
            r.used += used;
            r.paged += used.div_ceil(BLOCK_TOKENS) * BLOCK_TOKENS;
            r.contiguous += (q.prompt_tokens + q.max_tokens).max(used);
        }
        r
    }

    /// Blocks the running requests hold now; with the prefix cache on, as the last step
    /// counted them (a shared block once: the events do not say which blocks are shared).
    pub fn blocks_held(&self) -> usize {
        match (&self.replay.last_step, self.prefix_cache_on()) {
            (Some(SchedEvent::Step { blocks_held, .. }), true) => *blocks_held,
            _ => self.blocks().iter().map(|b| b.1).sum(),
        }
    }

    fn prefix_cache_on(&self) -> bool {
        matches!(
            self.replay.started,
            Some(SchedEvent::Started {
                prefix_cache: true,
                ..
            })
        )
    }

    /// With prefix caching on: the share of the prompt tokens looked up at admissions that
    /// were found in the cache (`None` with it off or before the first admission).
    pub fn prefix_hit_rate(&self) -> Option<f64> {
        (self.prefix_cache_on() && self.prefix.0 > 0)
            .then(|| self.prefix.1 as f64 / self.prefix.0 as f64)
    }

    /// The scheduler's block budget, from the last step (or its start).
    pub fn blocks_total(&self) -> usize {
        match (&self.replay.last_step, &self.replay.started) {
            (Some(SchedEvent::Step { blocks_total, .. }), _) => *blocks_total,
            (_, Some(SchedEvent::Started { kv_blocks, .. })) => *kv_blocks,
            _ => 0,
        }
    }

    /// Tokens per second over the steps of the last [`SCHED_RECENT`] before the latest one
    /// (`None` with fewer than two steps in it).
    pub fn tok_s(&self) -> Option<f64> {
        self.recent_tokens().map(|(n, span)| n as f64 / span)
    }

    /// The tokens of the recent steps after the first, and the seconds they span.
    pub fn recent_tokens(&self) -> Option<(usize, f64)> {
        let last = self.steps.iter().last()?;
        let recent: Vec<&StepMark> = self
            .steps
            .iter()
            .filter(|m| last.at.saturating_sub(m.at) <= SCHED_RECENT)
            .collect();
        let first = recent.first()?;
        let span = last.at.saturating_sub(first.at).as_secs_f64();
        if recent.len() < 2 || span <= 0.0 {
            return None;
        }
        // The first step's tokens came before the span started.
        let tokens: usize = recent[1..].iter().map(|m| m.tokens).sum();
        Some((tokens, span))
    }

    /// The latest step number, or 0.
    pub fn step(&self) -> u64 {
        match self.replay.last_step {
            Some(SchedEvent::Step { step, .. }) => step,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::FinishReason;

    #[test]
    fn latencies_and_reservations_follow_the_events() {
        let mut v = SchedView::default();
        let arrived = |req| SchedEvent::Arrived {
            req,
            step: 0,
            prompt_tokens: 10,
            max_tokens: 20,
        };
        v.apply(ms(0), &arrived(1));
        v.apply(ms(40), &arrived(2));
        v.apply(
            ms(50),
            &SchedEvent::Admitted {
                req: 1,
                step: 0,
                cached: 0,
            },
        );
        let prefill = SchedEvent::Prefill {
            req: 1,
            step: 0,
            start: 0,
            len: 10,
        };
        v.apply(ms(100), &prefill);
        let token = |index, step| SchedEvent::Token {
            req: 1,
            step,
            index,
            id: 7,
        };
        // The first token comes from the prefill's step; the second from a decode row.
        v.apply(ms(100), &token(0, 0));
        v.apply(ms(200), &token(1, 1));
        // 11 tokens held: one block of 16 (5 unused), contiguous 30 (19 unused).
        let r = v.reserved();
        assert_eq!((r.used, r.paged, r.contiguous), (11, 16, 30));
        v.apply(
            ms(250),
            &SchedEvent::Finished {
                req: 1,
                step: 2,
                reason: crate::protocol::FinishReason::MaxTokens,
                generated: 2,
            },
        );
        let got = |r: &Ring<Duration>| r.iter().copied().collect::<Vec<_>>();
        assert_eq!(got(&v.ttft), [ms(100)], "only the first token counts");
        assert_eq!(got(&v.e2e), [ms(250)]);
        assert_eq!(v.reserved().used, 0, "request 2 waits: nothing reserved");
    }

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn kv_tokens_follow_prefill_decode_and_preemption() {
        let mut v = SchedView::default();
        let ev = [
            SchedEvent::Arrived {
                req: 1,
                step: 0,
                prompt_tokens: 20,
                max_tokens: 3,
            },
            SchedEvent::Admitted {
                req: 1,
                step: 0,
                cached: 0,
            },
            SchedEvent::Prefill {
                req: 1,
                step: 0,
                start: 0,
                len: 20,
            },
            // Sampled from the prefill: no token added to the cache.
            SchedEvent::Token {
                req: 1,
                step: 0,
                index: 0,
                id: 5,
            },
        ];
        for e in &ev {
            v.apply(ms(0), e);
        }
        assert_eq!(v.kv[&1], 20);
        assert_eq!(v.blocks(), vec![(1, 2)]);
        v.apply(
            ms(10),
            &SchedEvent::Token {
                req: 1,
                step: 1,
                index: 1,
                id: 6,
            },
        );
        assert_eq!(v.kv[&1], 21, "the decode row wrote the first token");
        v.apply(
            ms(20),
            &SchedEvent::Preempted {
                req: 1,
                step: 2,
                blocks: 2,
            },
        );
        assert!(v.blocks().is_empty());
        assert_eq!(v.ids(|s| s == ReqState::Waiting), vec![1]);
        v.apply(
            ms(30),
            &SchedEvent::Finished {
                req: 1,
                step: 3,
                reason: FinishReason::Stopped,
                generated: 2,
            },
        );
        assert_eq!(v.preemptions, 1);
        assert!(v.kv.is_empty());
    }

    #[test]
    fn throughput_counts_the_tokens_after_the_first_step() {
        let mut v = SchedView::default();
        assert_eq!(v.tok_s(), None);
        for (i, t) in [0u64, 500, 1000].into_iter().enumerate() {
            for r in 0..4 {
                v.apply(
                    ms(t),
                    &SchedEvent::Token {
                        req: r,
                        step: i as u64,
                        index: i,
                        id: 1,
                    },
                );
            }
            v.apply(
                ms(t),
                &SchedEvent::Step {
                    step: i as u64,
                    prefill_tokens: 0,
                    decode_rows: 4,
                    running: 4,
                    waiting: 0,
                    blocks_held: 4,
                    blocks_total: 8,
                },
            );
        }
        // 8 tokens over the 1 s after the first step.
        assert_eq!(v.tok_s(), Some(8.0));
        assert_eq!((v.step(), v.blocks_total(), v.generated), (2, 8, 12));
    }
}
