//! The KV cache a model needs: a sequence's cache or a pool for many, whose sliding-window
//! layers keep only their window, and the bytes a sequence holds at its peak.

use super::Model;
use crate::engine::kv_cache::{KvCache, KvPool, BLOCK_TOKENS, WINDOW_SLACK};
use candle_core::DType;

/// The shortest prompt chunk of a model with sliding-window layers ([`Model::prefill_chunk`]).
pub const MIN_PREFILL_CHUNK: usize = 256;

impl Model {
    /// A fresh, empty KV cache sized for this model's context; its sliding-window layers keep
    /// only their window.
    pub fn new_cache(&self, dtype: DType) -> KvCache {
        let blocks = self.cfg.context_length.div_ceil(BLOCK_TOKENS);
        KvCache::from_pool(self.new_pool(dtype, blocks))
    }

    /// The sliding window and which layers attend within it, if any do.
    pub fn sliding_layers(&self) -> Option<(usize, Vec<bool>)> {
        let c = &self.cfg;
        let s = c.sliding?;
        Some((
            s.window,
            (0..c.layers).map(|l| c.window(l).is_some()).collect(),
        ))
    }

    /// A fresh pool for many sequences (up to this model's context each), holding at most
    /// `max_blocks` blocks of [`super::kv_cache::BLOCK_TOKENS`] tokens over all of them.
    pub fn new_pool(&self, dtype: DType, max_blocks: usize) -> KvPool {
        let c = &self.cfg;
        let pool = KvPool::new(
            c.layers,
            c.kv_heads,
            c.head_dim,
            c.context_length,
            max_blocks,
            dtype,
            &self.device,
        );
        match self.sliding_layers() {
            Some((size, sliding)) => pool.with_window(size, sliding),
            None => pool,
        }
    }

    /// Prompt tokens a model with sliding-window layers prefills in one pass: twice its window,
    /// at least [`MIN_PREFILL_CHUNK`]; those layers then hold no more than the window, one chunk
    /// and the slack ([`KvPool::with_window`]). `None` for a model without them: one pass.
    pub fn prefill_chunk(&self) -> Option<usize> {
        self.cfg
            .sliding
            .map(|s| (2 * s.window).max(MIN_PREFILL_CHUNK))
    }

    /// Bytes of KV cache a sequence of `tokens` holds at its peak, `per_token` over all layers:
    /// a sliding-window layer holds its window, a prefill chunk and the slack at most.
    pub fn kv_bytes(&self, tokens: usize, per_token: u64) -> u64 {
        let layers = self.cfg.layers.max(1) as u64;
        let Some((window, sliding)) = self.sliding_layers() else {
            return tokens as u64 * per_token;
        };
        let slides = sliding.iter().filter(|&&s| s).count() as u64;
        let held = tokens.min(window + self.window_kept_beyond().unwrap_or(0));
        per_token / layers * ((layers - slides) * tokens as u64 + slides * held as u64)
    }

    /// Positions a sliding-window layer holds at most beyond its window: one prefill chunk, the
    /// rollback slack and block rounding at both ends. `None` without such layers.
    pub fn window_kept_beyond(&self) -> Option<usize> {
        Some(self.prefill_chunk()? + WINDOW_SLACK + 2 * BLOCK_TOKENS)
    }
}
