//! The scheduler's state rebuilt from its events alone: what a recording replays and a view
//! draws. Applying a run's events gives each request's tokens, phase and history.

use crate::protocol::{FinishReason, SchedEvent};
use std::collections::BTreeMap;

/// Where a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReqState {
    Waiting,
    Running,
    Done(FinishReason),
}

/// One request as its events tell it; steps are the scheduler's step numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReqView {
    pub state: ReqState,
    pub prompt_tokens: usize,
    pub max_tokens: usize,
    pub arrived: u64,
    /// First admission.
    pub admitted: Option<u64>,
    pub first_token: Option<u64>,
    pub finished: Option<u64>,
    pub tokens: Vec<u32>,
    /// Prompt (and recomputed) tokens run as prefill chunks.
    pub prefilled: usize,
    pub preemptions: usize,
}

/// Every request seen, by id, and the last step's numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replay {
    pub reqs: BTreeMap<u64, ReqView>,
    /// The last [`SchedEvent::Step`].
    pub last_step: Option<SchedEvent>,
    /// The scheduler's [`SchedEvent::Started`]: its policy and budgets.
    pub started: Option<SchedEvent>,
}

impl Replay {
    pub fn apply(&mut self, e: &SchedEvent) {
        if let SchedEvent::Started { .. } = e {
            // A new scheduler: its requests are its own (ids start again).
            *self = Self {
                started: Some(e.clone()),
                ..Self::default()
            };
            return;
        }
        if let SchedEvent::Arrived {
            req,
            step,
            prompt_tokens,
            max_tokens,
        } = *e
        {
            self.reqs.insert(
                req,
                ReqView {
                    state: ReqState::Waiting,
                    prompt_tokens,
                    max_tokens,
                    arrived: step,
                    admitted: None,
                    first_token: None,
                    finished: None,
                    tokens: Vec::new(),
                    prefilled: 0,
                    preemptions: 0,
                },
            );
            return;
        }
        if let SchedEvent::Step { .. } = e {
            self.last_step = Some(e.clone());
            return;
        }
        let Some(r) = e.req().and_then(|id| self.reqs.get_mut(&id)) else {
            return; // a request that arrived before the recording began
        };
        match *e {
            SchedEvent::Admitted { step, .. } => {
                r.state = ReqState::Running;
                r.admitted = Some(step);
            }
            SchedEvent::Resumed { .. } => r.state = ReqState::Running,
            SchedEvent::Prefill { len, .. } => r.prefilled += len,
            SchedEvent::Token { step, id, .. } => {
                r.first_token.get_or_insert(step);
                r.tokens.push(id);
            }
            SchedEvent::Preempted { .. } => {
                r.state = ReqState::Waiting;
                r.preemptions += 1;
            }
            SchedEvent::Finished { step, reason, .. } => {
                r.state = ReqState::Done(reason);
                r.finished = Some(step);
            }
            SchedEvent::Arrived { .. } | SchedEvent::Step { .. } | SchedEvent::Started { .. } => {}
        }
    }

    pub fn count(&self, state: impl Fn(ReqState) -> bool) -> usize {
        self.reqs.values().filter(|r| state(r.state)).count()
    }
}
