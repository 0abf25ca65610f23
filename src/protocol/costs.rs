//! A model's shape and what one token costs it (FLOPs from the shape, bytes as the engine holds
//! and reads them): the arithmetic the roofline demo and every demo's narration share.

use serde::{Deserialize, Serialize};

/// The model's shape and what one token costs it, for the narration's arithmetic: FLOPs from
/// the shape (2 per multiply-add), bytes as the engine holds and reads them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelCosts {
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub context_length: usize,
    /// Parameters in the layers' matmuls, and in the output head.
    pub layer_params: u64,
    pub head_params: u64,
    /// The head is the token embeddings' own blocks (tied, held once).
    pub tied: bool,
    /// Weight bytes held, and read by one decode step (one embedding row, every matrix once).
    pub weight_bytes: u64,
    pub weight_bytes_read: u64,
    /// The KV cache's element type and its bytes per token (2 × layers × KV heads × head dim ×
    /// element bytes).
    pub kv_dtype: String,
    pub kv_dtype_bytes: u64,
    pub kv_bytes_per_token: u64,
}

impl ModelCosts {
    /// Attention FLOPs for one query over `context` keys (QKᵀ and the weighted V), all layers.
    pub fn attention_flops(&self, context: f64) -> f64 {
        4.0 * (self.layers * self.heads * self.head_dim) as f64 * context
    }

    /// FLOPs per token of a prefill of `len` tokens: projections for every token, the head for
    /// the last, attention over (len + 1) / 2 keys on average.
    pub fn prefill_flops_per_token(&self, len: usize) -> f64 {
        let len = len.max(1) as f64;
        2.0 * self.layer_params as f64
            + 2.0 * self.head_params as f64 / len
            + self.attention_flops((len + 1.0) / 2.0)
    }

    /// Attention's share of a `len`-token prefill's FLOPs.
    pub fn attention_share(&self, len: usize) -> f64 {
        let len = len.max(1);
        self.attention_flops((len as f64 + 1.0) / 2.0) / self.prefill_flops_per_token(len)
    }

    /// The prompt length at which prefill's attention FLOPs equal its matmuls' (the O(n²) term
    /// overtakes the O(n) one).
    pub fn attention_crossover(&self) -> f64 {
        let per_key = self.attention_flops(1.0);
        if per_key > 0.0 {
            2.0 * (2.0 * self.layer_params as f64) / per_key - 1.0
        } else {
            f64::INFINITY
        }
    }

    /// FLOPs and bytes of a decode step at `context`.
    pub fn decode_flops(&self, context: usize) -> f64 {
        2.0 * (self.layer_params + self.head_params) as f64 + self.attention_flops(context as f64)
    }

    pub fn decode_bytes(&self, context: usize) -> f64 {
        self.weight_bytes_read as f64 + (self.kv_bytes_per_token * context as u64) as f64
    }

    /// KV bytes per token with `kv_heads` heads and `dtype_bytes` per element.
    pub fn kv_bytes_with(&self, kv_heads: usize, dtype_bytes: u64) -> u64 {
        2 * (self.layers * kv_heads * self.head_dim) as u64 * dtype_bytes
    }

    /// Effective bits per matmul weight of `bytes_read` a decode step.
    pub fn bits_per_weight(&self, bytes_read: u64) -> f64 {
        let params = self.layer_params + self.head_params;
        if params == 0 {
            0.0
        } else {
            8.0 * bytes_read as f64 / params as f64
        }
    }
}
