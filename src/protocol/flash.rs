//! The flash-attention demo's answer: prompt prefill with dense attention (the whole score
//! matrix) against tiled attention (an online softmax over key blocks), by prompt length: time
//! per prompt token, the heap's peak against the estimate admission uses, and how far the tiles'
//! outputs are from the dense ones.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One prefill of one prompt length with one attention kernel.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlashRun {
    /// "tiled" or "dense".
    pub kernel: String,
    /// The prefill, when it ran.
    pub prefill: Option<Duration>,
    /// The heap's peak above what was live before the prefill: the KV cache it filled, the
    /// activations and attention's scratch (0 where the allocator does not count).
    pub peak_bytes: u64,
    /// Of that, the KV cache.
    pub kv_bytes: u64,
    /// What memory admission estimates the prefill holds beyond the KV cache.
    pub predicted_bytes: u64,
    /// Why it did not run (memory, time), with the numbers.
    pub skipped: Option<String>,
}

impl FlashRun {
    /// Milliseconds per prompt token.
    pub fn ms_per_token(&self, tokens: usize) -> Option<f64> {
        self.prefill
            .map(|d| d.as_secs_f64() * 1e3 / tokens.max(1) as f64)
    }

    /// The peak beyond the KV cache: activations and attention's scratch, measured.
    pub fn scratch_bytes(&self) -> u64 {
        self.peak_bytes.saturating_sub(self.kv_bytes)
    }
}

/// One prompt length, both kernels.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlashRow {
    pub tokens: usize,
    pub tiled: FlashRun,
    pub dense: FlashRun,
    /// Both prefills picked the same next token.
    pub same_next_token: Option<bool>,
    /// Attention alone on this model's shape (one KV head's group, random values): the largest
    /// difference between the tiles' outputs and the dense ones, relative to the largest output.
    pub attention_diff: Option<f64>,
    /// Attention's share of the prefill's FLOPs at this length (causal: each row sees its past).
    pub attention_share: f64,
}

/// The whole demo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FlashAttention {
    pub rows: Vec<FlashRow>,
    /// Lengths not run: beyond the context.
    pub beyond_context: Vec<usize>,
    pub context: usize,
    /// The tiles' shape: query positions and keys per tile, and one thread's tiles in bytes.
    pub query_block: usize,
    pub key_block: usize,
    pub tile_bytes: u64,
    /// The prompt length at which attention's FLOPs equal the weights' (the O(n²) term
    /// overtaking the O(n) one).
    pub crossover: f64,
    /// The machine's available memory when the demo started, when known.
    pub available: Option<u64>,
    /// Each core's L2 cache in bytes, when the system says.
    pub l2_bytes: Option<u64>,
}

impl FlashAttention {
    /// Dense time over tiled time at `tokens`, when both ran.
    pub fn speedup(&self, row: &FlashRow) -> Option<f64> {
        match (row.dense.prefill, row.tiled.prefill) {
            (Some(d), Some(t)) if t > Duration::ZERO => Some(d.as_secs_f64() / t.as_secs_f64()),
            _ => None,
        }
    }
}
