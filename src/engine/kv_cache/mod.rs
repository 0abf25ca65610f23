//! Our KV cache, paged: a [`pool::KvPool`] of fixed-size blocks that many sequences share, each
//! sequence reaching its keys and values through its [`blocks::BlockTable`]. [`KvCache`] is one
//! sequence with a pool of its own (generation, speculation): what it holds, measures, truncates
//! and clears.

pub mod blocks;
pub mod index;
pub mod pool;
pub mod prefix;

pub use blocks::{BlockAllocator, BlockTable, BlockUsage, BLOCK_TOKENS};
pub use index::BlockKey;
pub use pool::{KvPool, GROW_BLOCKS, WINDOW_SLACK};
pub use prefix::PrefixStats;

use candle_core::{DType, Device, Tensor};

/// Capacity grows in multiples of this many tokens.
pub const GROW_TOKENS: usize = GROW_BLOCKS * BLOCK_TOKENS;

/// One sequence and the pool that holds its blocks.
#[derive(Debug, Clone)]
pub struct KvCache {
    pool: KvPool,
    table: BlockTable,
}

impl KvCache {
    pub fn new(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        max_tokens: usize,
        dtype: DType,
        device: &Device,
    ) -> Self {
        let max_blocks = max_tokens.div_ceil(BLOCK_TOKENS);
        Self::from_pool(KvPool::new(
            layers, kv_heads, head_dim, max_tokens, max_blocks, dtype, device,
        ))
    }

    /// One sequence over `pool`, a pool of its own.
    pub fn from_pool(pool: KvPool) -> Self {
        Self {
            pool,
            table: BlockTable::default(),
        }
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    pub fn max_tokens(&self) -> usize {
        self.pool.max_tokens()
    }

    pub fn dtype(&self) -> DType {
        self.pool.dtype()
    }

    /// Bytes per token held, over all layers: 2 × layers × KV heads × head dim × dtype bytes.
    pub fn bytes_per_token(&self) -> u64 {
        self.pool.bytes_per_token()
    }

    /// Bytes of the K and V entries held: every token in a full layer, the window (and its
    /// slack) in a sliding-window one.
    pub fn bytes(&self) -> u64 {
        self.pool.bytes_held(&self.table)
    }

    /// Bytes allocated for the buffers (held tokens plus room to grow), measured on the tensors.
    pub fn reserved_bytes(&self) -> u64 {
        self.pool.reserved_bytes()
    }

    /// Blocks held, free and wasted (the slack of the last block).
    pub fn usage(&self) -> BlockUsage {
        self.pool.usage([&self.table])
    }

    /// After a tree verification that appended its rows from position `base`: keep the rows of
    /// `path` (row indices, in order) as positions `base + 1…`, after the pending token's at
    /// `base`, and drop the rest.
    pub fn keep_path(&mut self, base: usize, path: &[usize]) -> candle_core::Result<()> {
        let moves: Vec<(usize, usize)> = path
            .iter()
            .enumerate()
            .map(|(j, &row)| (base + row, base + 1 + j))
            .collect();
        let (pool, table) = self.parts_mut();
        pool.copy_positions(table, &moves)?;
        self.truncate(base + 1 + path.len());
        Ok(())
    }

    /// Keep only the first `n` tokens (speculative rollback); blocks past them go back to the
    /// pool, whose buffers keep their size.
    pub fn truncate(&mut self, n: usize) {
        self.pool.truncate(&mut self.table, n);
    }

    /// Forget every token and free the buffers.
    pub fn clear(&mut self) {
        self.pool.clear([&mut self.table]);
    }

    /// The pool and the sequence's table, for a forward pass.
    pub fn parts_mut(&mut self) -> (&mut KvPool, &mut BlockTable) {
        (&mut self.pool, &mut self.table)
    }

    /// The K and V held for `layer`, `(1, kv_heads, len, head_dim)` (for tests and inspection).
    pub fn layer(&self, layer: usize) -> Option<(Tensor, Tensor)> {
        self.pool.gather(layer, &self.table, self.len()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Result;

    /// `tokens` more tokens in every layer, valued from `base`.
    fn filled(cache: &mut KvCache, tokens: usize, base: f32) -> Result<()> {
        let n = 2 * tokens * 4;
        let data: Vec<f32> = (0..n).map(|i| base + i as f32).collect();
        let k = Tensor::from_vec(data, (tokens, 2, 4), &Device::Cpu)?;
        let (pool, table) = cache.parts_mut();
        let start = table.len();
        pool.reserve(table, start + tokens)?;
        for layer in 0..3 {
            pool.write(layer, table, start, &k, &k)?;
        }
        table.commit(tokens);
        Ok(())
    }

    #[test]
    fn bytes_follow_the_formula_and_reserved_matches_storage() -> Result<()> {
        let mut c = KvCache::new(3, 2, 4, 1000, DType::F32, &Device::Cpu);
        assert_eq!(c.bytes_per_token(), 2 * 3 * 2 * 4 * 4);
        filled(&mut c, 5, 0.0)?;
        assert_eq!(c.len(), 5);
        assert_eq!(c.bytes(), 5 * c.bytes_per_token());
        // 3 layers × (K + V) × 2 heads × 256 slots × 4 dims × 4 bytes.
        assert_eq!(c.reserved_bytes(), 3 * 2 * 2 * 256 * 4 * 4);
        let u = c.usage();
        assert_eq!((u.held, u.free, u.wasted_tokens), (1, 15, 11));
        filled(&mut c, 300, 1.0)?;
        assert_eq!(c.len(), 305);
        assert_eq!(c.reserved_bytes(), 3 * 2 * 2 * 512 * 4 * 4);
        c.clear();
        assert_eq!((c.len(), c.bytes(), c.reserved_bytes()), (0, 0, 0));
        assert_eq!(c.usage().held, 0);
        Ok(())
    }

    #[test]
    fn growth_keeps_contents_and_truncate_rolls_back() -> Result<()> {
        let mut c = KvCache::new(3, 2, 4, 1000, DType::F32, &Device::Cpu);
        filled(&mut c, 250, 0.0)?;
        let (before, _) = c.layer(1).unwrap();
        let before: Vec<f32> = before.flatten_all()?.to_vec1()?;
        filled(&mut c, 10, 5000.0)?; // crosses the 256-token boundary
        let (after, _) = c.layer(1).unwrap();
        let after_prefix: Vec<f32> = after.narrow(2, 0, 250)?.flatten_all()?.to_vec1()?;
        assert_eq!(before, after_prefix);
        // Token t, head h of the gathered view is the row written for it.
        let got: Vec<f32> = after.get(0)?.get(1)?.get(251)?.to_vec1()?;
        let want: Vec<f32> = (0..4).map(|d| 5000.0 + (8 + 4 + d) as f32).collect();
        assert_eq!(got, want);
        c.truncate(100);
        assert_eq!(c.len(), 100);
        assert_eq!(c.layer(0).unwrap().0.dim(2)?, 100);
        assert_eq!(c.usage().held, 100usize.div_ceil(BLOCK_TOKENS));
        Ok(())
    }

    #[test]
    fn refuses_to_pass_the_context() -> Result<()> {
        let mut c = KvCache::new(3, 2, 4, 8, DType::F32, &Device::Cpu);
        filled(&mut c, 8, 0.0)?;
        assert!(filled(&mut c, 1, 0.0).is_err());
        Ok(())
    }
}
