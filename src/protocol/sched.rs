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
    /// The scheduler started, with this policy and these budgets (before any request).
    Started {
        policy: SchedPolicy,
        max_batch: usize,
        kv_blocks: usize,
        step_tokens: usize,
        /// Automatic prefix caching is on.
        #[serde(default)]
        prefix_cache: bool,
    },
    /// A request joined the waiting queue.
    Arrived {
        req: u64,
        step: u64,
        prompt_tokens: usize,
        max_tokens: usize,
    },
    /// A waiting request joined the running batch for the first time, the first `cached` tokens
    /// of its prompt read from the prefix cache.
    Admitted {
        req: u64,
        step: u64,
        #[serde(default)]
        cached: usize,
    },
    /// A preempted request joined the running batch again; it recomputes its prompt (past the
    /// `cached` tokens) and the tokens it had generated.
    Resumed {
        req: u64,
        step: u64,
        #[serde(default)]
        cached: usize,
    },
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
    /// The request the event is about (`None` for a step or the start).
    pub fn req(&self) -> Option<u64> {
        match *self {
            Self::Arrived { req, .. }
            | Self::Admitted { req, .. }
            | Self::Resumed { req, .. }
            | Self::Prefill { req, .. }
            | Self::Token { req, .. }
            | Self::Preempted { req, .. }
            | Self::Finished { req, .. } => Some(req),
            Self::Step { .. } | Self::Started { .. } => None,
        }
    }
}

/// A simulated arrival process (a preset's, or a demo's): `requests` requests at `rate` per second
/// (Poisson: exponential gaps; `inf` sends all at once), prompt and output lengths drawn uniformly
/// from the inclusive ranges, all from `seed`, so two policies see the same stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Arrivals {
    pub rate: f64,
    pub requests: usize,
    pub prompt_tokens: (usize, usize),
    pub output_tokens: (usize, usize),
    pub seed: u64,
}

impl Default for Arrivals {
    fn default() -> Self {
        Self {
            rate: 4.0,
            requests: 24,
            prompt_tokens: (16, 64),
            output_tokens: (4, 48),
            seed: 7,
        }
    }
}

/// Most requests a simulated stream may hold.
pub const MAX_ARRIVALS: usize = 4096;

impl Arrivals {
    /// Check the values a person wrote; errors name the field and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        if self.rate.is_nan() || self.rate <= 0.0 {
            return Err(format!(
                "arrivals rate = {} must be above 0 requests/s (inf: all at once)",
                self.rate
            ));
        }
        if !(1..=MAX_ARRIVALS).contains(&self.requests) {
            return Err(format!(
                "arrivals requests = {} is out of range (1 to {MAX_ARRIVALS})",
                self.requests
            ));
        }
        for (name, (lo, hi), max) in [
            ("prompt_tokens", self.prompt_tokens, 32_768),
            ("output_tokens", self.output_tokens, 32_768),
        ] {
            if lo == 0 || lo > hi || hi > max {
                return Err(format!(
                    "arrivals {name} = ({lo}, {hi}) must be a range from 1 to {max}, low first"
                ));
            }
        }
        Ok(())
    }
}

/// A simulated request stream for the dashboard's scheduler view (a preset's `stream`): the
/// arrivals, and the scheduler they run on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StreamSpec {
    pub arrivals: Arrivals,
    pub policy: SchedPolicy,
    /// Most requests running at once.
    pub max_batch: usize,
    /// KV blocks of 16 tokens over all running requests.
    pub kv_blocks: usize,
}

impl Default for StreamSpec {
    fn default() -> Self {
        Self {
            arrivals: Arrivals::default(),
            policy: SchedPolicy::Continuous,
            max_batch: 8,
            kv_blocks: 64,
        }
    }
}

impl StreamSpec {
    pub fn validate(&self) -> Result<(), String> {
        self.arrivals.validate()?;
        for (name, v, hi) in [
            ("max_batch", self.max_batch, 256),
            ("kv_blocks", self.kv_blocks, 1 << 20),
        ] {
            if !(1..=hi).contains(&v) {
                return Err(format!("stream {name} = {v} is out of range (1 to {hi})"));
            }
        }
        Ok(())
    }
}
