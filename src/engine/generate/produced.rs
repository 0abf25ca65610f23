//! What a step hands back: its tokens, each with how it came about, held in place.

use crate::engine::kernels::SMALL_BATCH;
use crate::protocol::Phase;
use std::time::Duration;

/// One token of a step, with how it came about.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Produced {
    pub id: u32,
    pub prob: f32,
    pub phase: Phase,
}

/// The tokens one step produced (at most K + 1, and K stays under [`SMALL_BATCH`]), held in
/// place so that a step allocates nothing, and what the step took.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    tokens: [Produced; SMALL_BATCH],
    len: usize,
    pub time: Duration,
}

impl Step {
    pub fn one(token: Produced, time: Duration) -> Self {
        let mut step = Self::empty(time);
        step.push(token);
        step
    }

    pub(super) fn empty(time: Duration) -> Self {
        let none = Produced {
            id: 0,
            prob: 0.0,
            phase: Phase::Decode,
        };
        Self {
            tokens: [none; SMALL_BATCH],
            len: 0,
            time,
        }
    }

    pub(super) fn push(&mut self, token: Produced) {
        self.tokens[self.len] = token;
        self.len += 1;
    }

    pub fn tokens(&self) -> &[Produced] {
        &self.tokens[..self.len]
    }
}
