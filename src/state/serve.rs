//! A serving benchmark as the dashboard sees it: the level running, its requests in flight and
//! done, and the levels measured so far (the throughput–latency curve grows from them).

use crate::protocol::serve::{LevelSummary, Load, ServeEvent};
use std::time::Duration;

/// The level that runs now.
#[derive(Debug, Clone, PartialEq)]
pub struct LevelProgress {
    pub endpoint: String,
    pub index: usize,
    pub levels: usize,
    pub load: Load,
    pub requests: usize,
    pub sent: usize,
    pub done: usize,
    pub failed: usize,
    pub output_tokens: u64,
    /// The latest ended request's TTFT and E2E.
    pub last_ttft: Option<Duration>,
    pub last_e2e: Option<Duration>,
}

impl LevelProgress {
    pub fn in_flight(&self) -> usize {
        self.sent.saturating_sub(self.done)
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServeView {
    pub current: Option<LevelProgress>,
    /// Levels measured, in the order they ran.
    pub levels: Vec<LevelSummary>,
}

impl ServeView {
    pub fn active(&self) -> bool {
        self.current.is_some() || !self.levels.is_empty()
    }

    pub fn apply(&mut self, e: &ServeEvent) {
        match e {
            ServeEvent::LevelStarted {
                endpoint,
                index,
                levels,
                load,
                requests,
            } => {
                self.current = Some(LevelProgress {
                    endpoint: endpoint.clone(),
                    index: *index,
                    levels: *levels,
                    load: *load,
                    requests: *requests,
                    sent: 0,
                    done: 0,
                    failed: 0,
                    output_tokens: 0,
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
                    c.failed += usize::from(!outcome.ok());
                    c.output_tokens += outcome.output_tokens as u64;
                    c.last_ttft = outcome.ttft.or(c.last_ttft);
                    c.last_e2e = Some(outcome.e2e);
                }
            }
            ServeEvent::LevelDone { summary, .. } => {
                self.levels.push(summary.clone());
                if let Some(c) = self.current.as_mut() {
                    c.sent = c.sent.max(c.done);
                }
            }
        }
    }
}
