//! What the batching scheduler decided, step by step: one [`SchedEvent`] per decision, plain data,
//! so a run is drawn live, written to RON and replayed ([`crate::engine::sched::Replay`]).

use super::FinishReason;
use serde::{Deserialize, Serialize};

/// How requests join the running batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchedPolicy {
    /// Admit waiting requests between any two steps, as long as blocks and the batch allow
    /// (vLLM, TGI, SGLang, llama.cpp's slots).
    #[default]
    Continuous,
    /// Admit a batch only when the previous one has finished: every request waits for the
    /// slowest of its batch.
    Static,
}

impl std::fmt::Display for SchedPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Continuous => "continuous",
            Self::Static => "static",
        })
    }
}

/// One decision of the scheduler. `req` is the request's id as submitted; `step` counts forward
/// steps from 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchedEvent {
    /// A request joined the waiting queue.
    Arrived {
        req: u64,
        step: u64,
        prompt_tokens: usize,
        max_tokens: usize,
    },
    /// A waiting request joined the running batch for the first time.
    Admitted { req: u64, step: u64 },
    /// A preempted request joined the running batch again; it recomputes its prompt and the
    /// tokens it had generated.
    Resumed { req: u64, step: u64 },
    /// `len` tokens from position `start` ran as one chunk of the request's prefill (or of its
    /// recomputation after a preemption).
    Prefill {
        req: u64,
        step: u64,
        start: usize,
        len: usize,
    },
    /// The request's next token.
    Token {
        req: u64,
        step: u64,
        index: usize,
        id: u32,
    },
    /// Blocks ran out: the request gave its `blocks` back and waits again, at the head of the queue.
    Preempted { req: u64, step: u64, blocks: usize },
    /// The request is done (or was cancelled: `Stopped`); its blocks are free.
    Finished {
        req: u64,
        step: u64,
        reason: FinishReason,
        generated: usize,
    },
    /// A forward step ran: its rows (prefill tokens + decode rows), and the queues and blocks after it.
    Step {
        step: u64,
        prefill_tokens: usize,
        decode_rows: usize,
        running: usize,
        waiting: usize,
        blocks_held: usize,
        blocks_total: usize,
    },
}

impl SchedEvent {
    /// The request the event is about (`None` for a step).
    pub fn req(&self) -> Option<u64> {
        match *self {
            Self::Arrived { req, .. }
            | Self::Admitted { req, .. }
            | Self::Resumed { req, .. }
            | Self::Prefill { req, .. }
            | Self::Token { req, .. }
            | Self::Preempted { req, .. }
            | Self::Finished { req, .. } => Some(req),
            Self::Step { .. } => None,
        }
    }
}
