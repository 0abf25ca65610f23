//! Automatic prefix caching, as vLLM's: a block whose 16 tokens were all computed from a prompt
//! keeps them after its request ends, indexed by a key that names its tokens and every token
//! before it, so a later request whose prompt starts the same way reads those blocks instead of
//! computing them. A cached block no request holds is *idle*: it counts as free, and the
//! allocator takes the least recently used idle block when its free list is empty (the index
//! forgets it then).
//!
//! The key also names the *kind of span* that computed the block: a prompt chunk of more than
//! [`SMALL_BATCH`] rows runs other kernels than a short one, with other bits (see
//! [`crate::engine::kernels`]), so a block is reused only where the request would have computed
//! it in a span of the same kind. Reused blocks are then bitwise what the request would compute:
//! outputs do not depend on what was cached.

use crate::engine::kernels::SMALL_BATCH;
use crate::engine::tiled::QUERY_BLOCK;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};

use super::blocks::BLOCK_TOKENS;

/// A block's key: 128 bits of SHA-256 over the previous block's key, the block's tokens and
/// the kind of span that computes it.
pub type BlockKey = u128;

/// The keys of `prompt`'s whole blocks, as a scheduler prefilling it in chunks ending at
/// multiples of `chunk` tokens computes them.
pub fn prompt_keys(prompt: &[u32], chunk: usize) -> Vec<BlockKey> {
    let chunk = chunk.max(1);
    let mut keys = Vec::with_capacity(prompt.len() / BLOCK_TOKENS);
    let mut parent: BlockKey = 0;
    for (i, block) in prompt.chunks_exact(BLOCK_TOKENS).enumerate() {
        let start = (i * BLOCK_TOKENS) / chunk * chunk;
        let span = (start + chunk).min(prompt.len()) - start;
        let mut h = Sha256::new();
        h.update(parent.to_le_bytes());
        for t in block {
            h.update(t.to_le_bytes());
        }
        h.update([u8::from(span > SMALL_BATCH)]);
        let digest = h.finalize();
        parent = u128::from_le_bytes(digest[..16].try_into().expect("32 bytes"));
        keys.push(parent);
    }
    keys
}

/// How many of a prompt's leading `hit` cached blocks a request may take: at least its last
/// token must run (its logits choose the first token), and the span it then starts with must
/// run its rows as they would run without the cache: a span of the same kind, and (a long one)
/// starting on the prompt attention's tile grid of [`QUERY_BLOCK`] rows from its chunk's start,
/// since a tile's height picks its products' blocking.
pub fn usable_hit(prompt_len: usize, chunk: usize, hit: usize) -> usize {
    let chunk = chunk.max(1);
    let mut blocks = hit.min((prompt_len.saturating_sub(1)) / BLOCK_TOKENS);
    while blocks > 0 {
        let from = blocks * BLOCK_TOKENS;
        let start = from / chunk * chunk;
        let end = (start + chunk).min(prompt_len);
        let whole = end - start > SMALL_BATCH;
        if !whole || (end - from > SMALL_BATCH && (from - start).is_multiple_of(QUERY_BLOCK)) {
            break;
        }
        blocks -= 1;
    }
    blocks
}

/// Counts of prompt tokens looked up and found, over a scheduler's life (vLLM's
/// `prefix_cache_queries` and `prefix_cache_hits`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrefixStats {
    pub queried_tokens: u64,
    pub hit_tokens: u64,
    /// Blocks in the index now (held by requests or idle).
    pub cached_blocks: usize,
    /// Of those, the ones no request holds: free to evict.
    pub idle_blocks: usize,
}

impl PrefixStats {
    /// Hit tokens over queried tokens (`None` before the first lookup).
    pub fn hit_rate(&self) -> Option<f64> {
        (self.queried_tokens > 0).then(|| self.hit_tokens as f64 / self.queried_tokens as f64)
    }
}

/// The blocks that hold computed prompt prefixes, by key; and the idle ones in the order they
/// were last used.
#[derive(Debug, Clone, Default)]
pub struct PrefixIndex {
    by_key: HashMap<BlockKey, u32>,
    key_of: HashMap<u32, BlockKey>,
    /// Idle blocks by the tick they went idle: the first is the least recently used.
    idle: BTreeMap<u64, u32>,
    idle_at: HashMap<u32, u64>,
    tick: u64,
}

impl PrefixIndex {
    pub fn get(&self, key: &BlockKey) -> Option<u32> {
        self.by_key.get(key).copied()
    }

    pub fn contains_block(&self, b: u32) -> bool {
        self.key_of.contains_key(&b)
    }

    /// Index block `b` under `key`, unless another block holds that key already (two requests
    /// computed the same prefix in one step) or `b` is indexed.
    pub fn insert(&mut self, b: u32, key: BlockKey) {
        if self.by_key.contains_key(&key) || self.key_of.contains_key(&b) {
            return;
        }
        self.by_key.insert(key, b);
        self.key_of.insert(b, key);
    }

    pub fn is_idle(&self, b: u32) -> bool {
        self.idle_at.contains_key(&b)
    }

    /// No request holds indexed block `b` any more: it is idle, the most recently used.
    pub fn park(&mut self, b: u32) {
        self.tick += 1;
        self.idle.insert(self.tick, b);
        self.idle_at.insert(b, self.tick);
    }

    /// A request holds idle block `b` again.
    pub fn unpark(&mut self, b: u32) {
        if let Some(t) = self.idle_at.remove(&b) {
            self.idle.remove(&t);
        }
    }

    /// Take the least recently used idle block out of the index, for reuse.
    pub fn evict(&mut self) -> Option<u32> {
        let (_, b) = self.idle.pop_first()?;
        self.idle_at.remove(&b);
        if let Some(k) = self.key_of.remove(&b) {
            self.by_key.remove(&k);
        }
        Some(b)
    }

    pub fn idle_count(&self) -> usize {
        self.idle.len()
    }

    pub fn len(&self) -> usize {
        self.key_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.key_of.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_whole_prefix_and_the_span_kind() {
        let a: Vec<u32> = (0..100).collect();
        let mut b = a.clone();
        b[40] = 7;
        let (ka, kb) = (prompt_keys(&a, 256), prompt_keys(&b, 256));
        assert_eq!(ka.len(), 6);
        // Blocks 0 and 1 match; block 2 holds the change, and every block after it differs.
        assert_eq!(ka[..2], kb[..2]);
        assert!(ka[2..].iter().zip(&kb[2..]).all(|(x, y)| x != y));
        // A 20-token prompt runs one wide span, a 17-token one a short span: block 0 differs.
        assert_ne!(prompt_keys(&a[..20], 256)[0], prompt_keys(&a[..17], 256)[0]);
        assert_eq!(prompt_keys(&a[..20], 256)[0], prompt_keys(&a[..90], 256)[0]);
    }

    #[test]
    fn a_hit_leaves_the_last_token_and_a_span_of_its_own_kind_on_the_tile_grid() {
        // 100 tokens, one wide chunk: the suffix must stay wide (> 17 rows) and start at a
        // multiple of 32.
        assert_eq!(usable_hit(100, 256, 6), 4); // 80..100 is wide but off the grid: 64..100
        assert_eq!(usable_hit(100, 256, 4), 4);
        assert_eq!(usable_hit(100, 256, 3), 2);
        // 96 tokens: the whole prompt cached still runs its last block's rows (80..96: 16
        // rows, short) so one more block goes: 64..96 is 32 rows.
        assert_eq!(usable_hit(96, 256, 6), 4);
        // A short prompt (one short span): any hit but the last token is fine.
        assert_eq!(usable_hit(17, 256, 1), 1);
        // Chunks of 48: 100 tokens run 0..48, 48..96, 96..100 (short).
        assert_eq!(usable_hit(100, 48, 6), 6); // 96..100, the short tail it would run anyway
        assert_eq!(usable_hit(100, 48, 5), 3); // 80..96 is short in a wide chunk: back to 48
        assert_eq!(usable_hit(100, 48, 4), 3); // 64..96: 16 rows from the chunk's start
    }

    #[test]
    fn the_least_recently_parked_block_is_evicted_first_and_forgotten() {
        let mut ix = PrefixIndex::default();
        for b in 0..3 {
            ix.insert(b, b as u128 + 10);
        }
        ix.park(2);
        ix.park(0);
        ix.park(1);
        ix.unpark(0);
        assert_eq!(ix.evict(), Some(2));
        assert_eq!(ix.get(&12), None);
        assert_eq!(ix.evict(), Some(1));
        assert_eq!(ix.evict(), None);
        assert_eq!(ix.get(&10), Some(0));
    }
}
