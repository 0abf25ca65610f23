//! One row of the quantization table: a weight variant and what it measured. The quantization
//! demo, `bench quant`, `bench mixed` and the sensitivity demo's mixes all fill it.

use super::{Quality, Variant};
use serde::{Deserialize, Serialize};

/// One row of the table: a variant and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantRow {
    pub variant: Variant,
    /// Weight bytes one decode step reads.
    pub read_per_token: u64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub quality: Quality,
}

impl QuantRow {
    /// The bandwidth decode draws from memory for the weights: bytes read per token × tok/s.
    pub fn decode_gb_s(&self) -> f64 {
        self.read_per_token as f64 * self.decode_tok_s / 1e9
    }
}
