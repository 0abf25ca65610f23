//! The decode-roofline demo's answer: decode steps over a grid of batch × context (and
//! speculation's verify passes of K + 1 rows), each with the bytes it reads, the FLOPs it does
//! and the time it took, set against this machine's measured roofs.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One measured step: `batch` sequences at `context` tokens each running `rows` rows (1 for a
/// decode step, K + 1 for a verification).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepCost {
    pub batch: usize,
    pub context: usize,
    pub rows: usize,
    /// The median step.
    pub step: Duration,
    /// Bytes the step reads: the weights once, and every sequence's KV cache.
    pub bytes: f64,
    /// FLOPs: 2 per weight per row, and attention over the context.
    pub flops: f64,
}

impl StepCost {
    /// FLOPs per byte read.
    pub fn intensity(&self) -> f64 {
        self.flops / self.bytes.max(1.0)
    }

    pub fn gb_s(&self) -> f64 {
        self.bytes / self.step.as_secs_f64().max(1e-12) / 1e9
    }

    pub fn gflop_s(&self) -> f64 {
        self.flops / self.step.as_secs_f64().max(1e-12) / 1e9
    }

    /// Tokens per second over all rows of the step.
    pub fn tok_s(&self) -> f64 {
        (self.batch * self.rows) as f64 / self.step.as_secs_f64().max(1e-12)
    }
}

/// The whole demo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecodeRoofline {
    /// Decode steps, by context then batch.
    pub points: Vec<StepCost>,
    /// Verification passes of one sequence at the shortest context, K + 1 rows each.
    pub verify: Vec<StepCost>,
    /// Grid points not run, and why (the KV cache they need against the budget).
    pub skipped: Vec<(usize, usize, String)>,
    /// The measured roofs: read bandwidth (GB/s), an f32 matmul's and the model's quantized
    /// product's GFLOP/s.
    pub bandwidth_gb_s: f64,
    pub f32_gflop_s: f64,
    pub q_gflop_s: f64,
    pub weight_bytes_read: u64,
    pub kv_bytes_per_token: u64,
    /// Attention's FLOPs per cached token a row attends to, all layers (4 × layers × heads ×
    /// head dim).
    pub attention_flops_per_token: f64,
    /// The most KV bytes a grid point may hold.
    pub kv_budget: u64,
}

impl DecodeRoofline {
    /// The compute roof the points are set against: the faster of the two products.
    pub fn peak_gflop_s(&self) -> f64 {
        self.f32_gflop_s.max(self.q_gflop_s)
    }

    /// The machine's balance point, FLOP per byte.
    pub fn balance(&self) -> f64 {
        self.peak_gflop_s() / self.bandwidth_gb_s.max(1e-9)
    }

    /// Share of the bandwidth roof a step attains (MBU).
    pub fn mbu(&self, p: &StepCost) -> f64 {
        p.gb_s() / self.bandwidth_gb_s.max(1e-9)
    }

    /// Share of the compute roof a step attains (MFU).
    pub fn mfu(&self, p: &StepCost) -> f64 {
        p.gflop_s() / self.peak_gflop_s().max(1e-9)
    }

    /// The context at which a sequence's KV bytes equal the weights': past it, the cache sets
    /// the speed of a single sequence's decode.
    pub fn kv_equals_weights(&self) -> f64 {
        self.weight_bytes_read as f64 / self.kv_bytes_per_token.max(1) as f64
    }
}
