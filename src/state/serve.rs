//! A serving benchmark as the dashboard sees it: the level running, its requests in flight and
//! done, and the levels measured so far (the throughput–latency curve grows from them).

use crate::protocol::serve::{Dist, LevelSummary, Load, ServeEvent};
use crate::stats::dist;
use std::time::Duration;

/// The level that runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelProgress {
    pub endpoint: String,
    pub index: usize,
    pub levels: usize,
    pub load: Load,
    pub requests: usize,
    /// When the level started, on the session's clock.
    pub started: Duration,
    pub sent: usize,
    pub done: usize,
    pub failed: usize,
    /// Output tokens of the level's successful requests.
    pub output_tokens: u64,
    /// TTFT, TPOT and E2E of each successful request so far (a level's requests bound them).
    pub ttft: Vec<Duration>,
    pub tpot: Vec<Duration>,
    pub e2e: Vec<Duration>,
    /// The latest ended request's TTFT and E2E.
    pub last_ttft: Option<Duration>,
    pub last_e2e: Option<Duration>,
}

impl LevelProgress {
    pub fn in_flight(&self) -> usize {
        self.sent.saturating_sub(self.done)
    }

    /// Time since the level started, at `now`.
    pub fn elapsed(&self, now: Duration) -> Duration {
        now.saturating_sub(self.started)
    }

    /// Output tokens per second of the successful requests so far, over the level's time to `now`.
    pub fn output_tok_s(&self, now: Duration) -> f64 {
        let s = self.elapsed(now).as_secs_f64();
        if s > 0.0 {
            self.output_tokens as f64 / s
        } else {
            0.0
        }
    }

    /// TTFT over the successful requests so far.
    pub fn ttft_dist(&self) -> Dist {
        dist(&self.ttft)
    }

    /// TPOT over the successful requests so far.
    pub fn tpot_dist(&self) -> Dist {
        dist(&self.tpot)
    }

    /// E2E over the successful requests so far.
    pub fn e2e_dist(&self) -> Dist {
        dist(&self.e2e)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeView {
    /// The level running; `None` between levels and after the last.
    pub current: Option<LevelProgress>,
    /// Levels measured, in the order they ran.
    pub levels: Vec<LevelSummary>,
    /// Levels the benchmark runs in all, as the latest level to start said.
    pub planned: usize,
}

impl ServeView {
    pub fn active(&self) -> bool {
        self.current.is_some() || !self.levels.is_empty()
    }

    /// Whether every planned level was measured (a stopped benchmark never is).
    pub fn finished(&self) -> bool {
        self.current.is_none() && self.planned > 0 && self.levels.len() >= self.planned
    }

    /// The endpoints measured or measuring, first seen first.
    pub fn endpoints(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let names = self.levels.iter().map(|l| l.endpoint.as_str());
        for e in names.chain(self.current.iter().map(|c| c.endpoint.as_str())) {
            if !out.contains(&e) {
                out.push(e);
            }
        }
        out
    }

    /// Take one event of the benchmark, which arrived at `at` on the session's clock.
    pub fn apply(&mut self, at: Duration, e: &ServeEvent) {
        match e {
            ServeEvent::LevelStarted {
                endpoint,
                index,
                levels,
                load,
                requests,
            } => {
                self.planned = *levels;
                self.current = Some(LevelProgress {
                    endpoint: endpoint.clone(),
                    index: *index,
                    levels: *levels,
                    load: *load,
                    requests: *requests,
                    started: at,
                    sent: 0,
                    done: 0,
                    failed: 0,
                    output_tokens: 0,
                    ttft: Vec::new(),
                    tpot: Vec::new(),
                    e2e: Vec::new(),
                    last_ttft: None,
                    last_e2e: None,
                });
            }
            ServeEvent::Sent { .. } => {
                if let Some(c) = self.current.as_mut() {
                    c.sent += 1;
                }
            }
            ServeEvent::Done { outcome, .. } => {
                if let Some(c) = self.current.as_mut() {
                    c.done += 1;
                    c.last_e2e = Some(outcome.e2e);
                    c.last_ttft = outcome.ttft.or(c.last_ttft);
                    if outcome.ok() {
                        c.output_tokens += outcome.output_tokens as u64;
                        c.ttft.extend(outcome.ttft);
                        c.tpot.extend(outcome.tpot());
                        c.e2e.push(outcome.e2e);
                    } else {
                        c.failed += 1;
                    }
                }
            }
            ServeEvent::LevelDone { summary, .. } => {
                self.levels.push((**summary).clone());
                self.current = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::serve::{Failure, FailureKind, Outcome};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn ok(ttft: u64, e2e: u64, tokens: usize) -> Outcome {
        Outcome {
            ttft: Some(ms(ttft)),
            e2e: ms(e2e),
            output_tokens: tokens,
            ..Outcome::default()
        }
    }

    #[test]
    fn a_level_counts_its_requests_and_ends_with_its_summary() {
        let mut v = ServeView::default();
        v.apply(
            ms(1000),
            &ServeEvent::LevelStarted {
                endpoint: "http://a".into(),
                index: 0,
                levels: 2,
                load: Load::Concurrency(2),
                requests: 4,
            },
        );
        for id in 0..3 {
            v.apply(ms(1000), &ServeEvent::Sent { level: 0, id });
        }
        // 11 tokens in 10 + 10 × 9 ms: TPOT 9 ms.
        let done = |outcome| ServeEvent::Done {
            level: 0,
            id: 0,
            outcome,
        };
        v.apply(ms(1500), &done(ok(10, 100, 11)));
        let failed = Outcome {
            e2e: ms(5),
            failure: Some(Failure {
                kind: FailureKind::Status(500),
                message: "boom".into(),
            }),
            ..Outcome::default()
        };
        v.apply(ms(2000), &done(failed));
        let c = v.current.as_ref().unwrap();
        assert_eq!((c.sent, c.done, c.failed, c.in_flight()), (3, 2, 1, 1));
        // Failed requests give no tokens and no latencies.
        assert_eq!(c.output_tokens, 11);
        assert_eq!(c.ttft_dist().p50, ms(10));
        assert_eq!(c.tpot_dist().p50, ms(9));
        assert_eq!(c.e2e_dist().n, 1);
        // 11 tokens in the level's 1 s so far.
        assert!((c.output_tok_s(ms(2000)) - 11.0).abs() < 1e-9);
        assert!(v.active() && !v.finished());
        let outcomes = [ok(10, 100, 11)];
        let summary = crate::serve::load::summary::summarize(
            crate::serve::load::summary::Inputs::plain("http://a", Load::Concurrency(2), &outcomes),
        );
        v.apply(
            ms(2500),
            &ServeEvent::LevelDone {
                level: 0,
                summary: Box::new(summary),
            },
        );
        assert!(v.current.is_none());
        assert_eq!(v.levels.len(), 1);
        assert!(!v.finished(), "one of two levels measured");
        assert_eq!(v.endpoints(), vec!["http://a"]);
    }
}
