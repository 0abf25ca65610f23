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

use super::blocks::BLOCK_TOKENS;

use super::index::BlockKey;

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
}
