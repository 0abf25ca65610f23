//! The scheduler's side of automatic prefix caching (see [`crate::engine::kv_cache::prefix`]):
//! an admitted request starts from the longest cached prefix of its prompt that it may take,
//! and each prompt block a step completes is indexed for the requests after it.

use super::{Live, Scheduler};
use crate::engine::kv_cache::prefix::usable_hit;
use crate::engine::kv_cache::{PrefixStats, BLOCK_TOKENS};

impl Scheduler {
    /// The cached blocks a waiting `live` would start with.
    pub(super) fn prefix_hit(&self, live: &Live) -> Vec<u32> {
        if !self.cfg.prefix_cache || !live.table.is_empty() {
            return Vec::new();
        }
        let mut blocks = self.pool.cached_prefix(&live.keys);
        blocks.truncate(usable_hit(
            live.req.prompt.len(),
            self.cfg.step_tokens,
            blocks.len(),
        ));
        blocks
    }

    /// Free blocks admitting a request with cached prefix `hit` takes for it to hold `tokens`:
    /// new ones past the prefix, and the idle cached ones it shares.
    pub(super) fn blocks_to_admit(&self, hit: &[u32], tokens: usize) -> usize {
        tokens.div_ceil(BLOCK_TOKENS).saturating_sub(hit.len()) + self.pool.idle_among(hit)
    }

    /// The first piece a waiting `live` runs once admitted with cached prefix `hit`.
    pub(super) fn first_piece(&self, live: &Live, hit: &[u32]) -> usize {
        let cached = hit.len() * BLOCK_TOKENS;
        live.piece_from(live.table.len().max(cached), self.cfg.step_tokens)
    }

    /// Share cached prefix `hit` (from [`Self::prefix_hit`]) into `live`'s table, counting the
    /// lookup; the tokens it holds.
    pub(super) fn take_prefix(&mut self, live: &mut Live, hit: &[u32]) -> usize {
        if !self.cfg.prefix_cache {
            return 0;
        }
        self.pool.share_prefix(&mut live.table, hit);
        live.indexed = hit.len();
        let cached = hit.len() * BLOCK_TOKENS;
        self.prefix.queried_tokens += live.req.prompt.len() as u64;
        self.prefix.hit_tokens += cached as u64;
        cached
    }

    /// Index the prompt blocks the last step completed.
    pub(super) fn index_prompt_blocks(&mut self) {
        if !self.cfg.prefix_cache {
            return;
        }
        for live in &mut self.running {
            let whole = live.table.len().min(live.req.prompt.len()) / BLOCK_TOKENS;
            while live.indexed < whole.min(live.keys.len()) {
                self.pool
                    .register(&live.table, live.indexed, live.keys[live.indexed]);
                live.indexed += 1;
            }
        }
    }

    /// Prompt tokens looked up and found since the scheduler started, and the blocks cached.
    pub fn prefix_stats(&self) -> PrefixStats {
        let (cached_blocks, idle_blocks) = self.pool.cached_blocks();
        PrefixStats {
            cached_blocks,
            idle_blocks,
            ..self.prefix
        }
    }
}
