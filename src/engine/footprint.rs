//! What a prompt's prefill holds beyond the weights and the KV cache while it runs: the
//! activations of its rows (the largest set one layer keeps live at once) and its attention's
//! scratch. Memory admission counts it; the flash-attention demo sets it against the heap's
//! measured peak.

use super::config::ModelConfig;
use super::tiled::{scratch_bytes, PrefillAttention};
use super::Model;
use crate::stats::human_bytes;
use candle_core::DType;

/// Room kept for everything else (activations, logits, the allocator's slack).
pub const WORKING_BYTES: u64 = 256 << 20;

/// What a step needs against what the machine has; `Err` says both.
pub fn check(what: &str, need: u64, available: u64) -> Result<(), String> {
    if need.saturating_add(WORKING_BYTES) <= available {
        return Ok(());
    }
    Err(format!(
        "{what} needs about {} (+ {} working room) but {} of memory is available: free memory or choose a smaller model, type or context",
        human_bytes(need),
        human_bytes(WORKING_BYTES),
        human_bytes(available)
    ))
}

/// Bytes a prefill of `tokens` rows after `pos` cached ones holds at its peak, beyond the weights
/// and the KV cache, with prompt attention `how` on `threads` threads.
pub fn prefill_bytes(
    cfg: &ModelConfig,
    how: PrefillAttention,
    tokens: usize,
    pos: usize,
    threads: usize,
) -> u64 {
    activation_bytes(cfg, tokens)
        + scratch_bytes(
            how,
            cfg.heads,
            cfg.kv_heads,
            cfg.head_dim,
            tokens,
            pos,
            threads,
        )
}

/// f32 activations one layer keeps live at once for `tokens` rows: the residual stream and its
/// norm, the queries (before and after RoPE), keys and values, attention's output and its
/// projection, then the MLP's gate, up and gated product. Measured against the heap's peak by
/// the flash-attention demo.
pub fn activation_bytes(cfg: &ModelConfig, tokens: usize) -> u64 {
    let q = cfg.heads * cfg.head_dim;
    let kv = cfg.kv_heads * cfg.head_dim;
    let per_row = 4 * cfg.hidden + 3 * q + 4 * kv + 3 * cfg.ffn;
    4 * (tokens * per_row) as u64
}

impl Model {
    /// The prompt attention a prefill takes with a cache of `kv_dtype`: the tiles where the
    /// model asks for them and can have them (the CPU; an f32, f16 or bf16 cache), else dense.
    pub fn prompt_attention(&self, kv_dtype: DType) -> PrefillAttention {
        let widths = [DType::F32, DType::F16, DType::BF16];
        match self.device().is_cpu() && widths.contains(&kv_dtype) {
            true => self.prefill_attention,
            false => PrefillAttention::Dense,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::synthetic::SyntheticSpec;
    use candle_core::Device;

    #[test]
    fn tiled_prefill_grows_linearly_and_dense_with_the_square() {
        let e = crate::engine::Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap();
        let cfg = &e.model.cfg;
        let at = |how, n| prefill_bytes(cfg, how, n, 0, 2) as f64;
        let tiled = at(PrefillAttention::Tiled, 8192) - at(PrefillAttention::Tiled, 4096);
        let tiled_before = at(PrefillAttention::Tiled, 4096) - at(PrefillAttention::Tiled, 2048);
        assert!(
            (tiled / tiled_before - 2.0).abs() < 1e-9,
            "{tiled} {tiled_before}"
        );
        let dense = at(PrefillAttention::Dense, 8192);
        assert!(dense > 10.0 * at(PrefillAttention::Tiled, 8192), "{dense}");
        assert_eq!(
            e.model.prompt_attention(DType::F32),
            PrefillAttention::Tiled
        );
        assert_eq!(
            e.model.prompt_attention(DType::F16),
            PrefillAttention::Tiled
        );
        assert_eq!(e.model.prompt_attention(DType::U8), PrefillAttention::Dense);
    }
}
