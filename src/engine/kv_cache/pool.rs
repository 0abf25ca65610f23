//! The paged K and V storage: per layer one buffer of token slots, `(blocks × BLOCK_TOKENS,
//! kv_heads, head_dim)`, shared by every sequence through its [`BlockTable`]. A slot holds one
//! token's keys (or values) for all KV heads side by side, so the tokens of a block that a step
//! writes are one copy. The pool grows in [`GROW_BLOCKS`] steps, keeping block ids, so a decode
//! step never copies the cache.

use super::blocks::{BlockAllocator, BlockTable, BlockUsage, BLOCK_TOKENS};
use candle_core::{DType, Device, Result, Tensor};

/// The pool grows by multiples of this many blocks (256 tokens).
pub const GROW_BLOCKS: usize = 16;

#[derive(Debug, Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// Every layer's K and V slots and the allocator of their blocks.
#[derive(Debug, Clone)]
pub struct KvPool {
    layers: Vec<Option<LayerKv>>,
    alloc: BlockAllocator,
    kv_heads: usize,
    head_dim: usize,
    /// Most tokens one sequence may hold (the model's context).
    max_tokens: usize,
    /// Most blocks the pool may hold, over all sequences.
    max_blocks: usize,
    dtype: DType,
    device: Device,
}

impl KvPool {
    pub fn new(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        max_tokens: usize,
        max_blocks: usize,
        dtype: DType,
        device: &Device,
    ) -> Self {
        Self {
            layers: vec![None; layers],
            alloc: BlockAllocator::default(),
            kv_heads,
            head_dim,
            max_tokens,
            max_blocks,
            dtype,
            device: device.clone(),
        }
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Bytes per token held, over all layers: 2 × layers × KV heads × head dim × dtype bytes.
    pub fn bytes_per_token(&self) -> u64 {
        let value = self.dtype.size_in_bytes() as f64;
        crate::stats::kv_bytes(self.layers.len(), self.kv_heads, self.head_dim, value, 1, 1) as u64
    }

    /// Bytes allocated for the buffers (held blocks and free ones), measured on the tensors.
    pub fn reserved_bytes(&self) -> u64 {
        self.layers
            .iter()
            .flatten()
            .map(|l| ((l.k.elem_count() + l.v.elem_count()) * l.k.dtype().size_in_bytes()) as u64)
            .sum()
    }

    /// Blocks held and free, and the slack of `tables` (the sequences using this pool).
    pub fn usage<'a>(&self, tables: impl IntoIterator<Item = &'a BlockTable>) -> BlockUsage {
        BlockUsage::of(&self.alloc, tables)
    }

    /// Hold blocks for `table` to reach `tokens`, growing the pool if its free blocks are short.
    pub fn reserve(&mut self, table: &mut BlockTable, tokens: usize) -> Result<()> {
        if tokens > self.max_tokens {
            candle_core::bail!(
                "KV cache full: {tokens} tokens exceed the context of {}",
                self.max_tokens
            )
        }
        let short = table.blocks_short(tokens);
        if short > self.alloc.free_count() {
            self.grow(self.alloc.held_count() + short)?;
        }
        if !table.reserve(&mut self.alloc, tokens) {
            candle_core::bail!("KV pool out of blocks")
        }
        Ok(())
    }

    /// Give back `table`'s blocks past its first `n` tokens.
    pub fn truncate(&mut self, table: &mut BlockTable, n: usize) {
        table.truncate(&mut self.alloc, n);
    }

    /// Give back every block of a finished sequence.
    pub fn release(&mut self, table: &mut BlockTable) {
        table.release(&mut self.alloc);
    }

    /// Free the storage; `tables` (every sequence of this pool) start empty.
    pub fn clear<'a>(&mut self, tables: impl IntoIterator<Item = &'a mut BlockTable>) {
        tables.into_iter().for_each(BlockTable::forget);
        self.alloc.reset();
        self.layers.iter_mut().for_each(|l| *l = None);
    }

    /// Resize every layer's buffers to at least `needed` blocks, keeping what they hold.
    fn grow(&mut self, needed: usize) -> Result<()> {
        if needed > self.max_blocks {
            candle_core::bail!(
                "KV pool full: {needed} blocks of {BLOCK_TOKENS} tokens exceed its {}",
                self.max_blocks
            )
        }
        let old = self.alloc.total();
        let new = needed
            .div_ceil(GROW_BLOCKS)
            .saturating_mul(GROW_BLOCKS)
            .min(self.max_blocks)
            .max(needed);
        let shape = (new * BLOCK_TOKENS, self.kv_heads, self.head_dim);
        for slot in self.layers.iter_mut() {
            if let Some(l) = slot.take() {
                let k = Tensor::zeros(shape, self.dtype, &self.device)?;
                let v = Tensor::zeros(shape, self.dtype, &self.device)?;
                k.slice_set(&l.k, 0, 0)?;
                v.slice_set(&l.v, 0, 0)?;
                *slot = Some(LayerKv { k, v });
            }
        }
        self.alloc.grow(new - old);
        Ok(())
    }

    /// Write `k`, `v` (`(n, kv_heads, head_dim)`, contiguous) of `layer` at positions
    /// `start..start + n` of `table` (reserved before).
    pub fn write(
        &mut self,
        layer: usize,
        table: &BlockTable,
        start: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<()> {
        let slots = self.alloc.total() * BLOCK_TOKENS;
        let entry = match &mut self.layers[layer] {
            Some(e) => e,
            slot @ None => {
                let shape = (slots, self.kv_heads, self.head_dim);
                slot.insert(LayerKv {
                    k: Tensor::zeros(shape, self.dtype, &self.device)?,
                    v: Tensor::zeros(shape, self.dtype, &self.device)?,
                })
            }
        };
        let (k, v) = (k.to_dtype(self.dtype)?, v.to_dtype(self.dtype)?);
        let n = k.dim(0)?;
        let mut done = 0;
        // One copy per block the positions fall in.
        while done < n {
            let pos = start + done;
            let run = (BLOCK_TOKENS - pos % BLOCK_TOKENS).min(n - done);
            let slot = table.slot(pos);
            entry.k.slice_set(&k.narrow(0, done, run)?, 0, slot)?;
            entry.v.slice_set(&v.narrow(0, done, run)?, 0, slot)?;
            done += run;
        }
        Ok(())
    }

    /// Copy, in every layer written, the K and V of each `(from, to)` pair of `table`'s
    /// positions, in order (a verified tree branch moved down to follow the text).
    pub fn copy_positions(&mut self, table: &BlockTable, moves: &[(usize, usize)]) -> Result<()> {
        for l in self.layers.iter_mut().flatten() {
            for &(from, to) in moves {
                if from == to {
                    continue;
                }
                let (a, b) = (table.slot(from), table.slot(to));
                let k = l.k.narrow(0, a, 1)?.copy()?;
                let v = l.v.narrow(0, a, 1)?.copy()?;
                l.k.slice_set(&k, 0, b)?;
                l.v.slice_set(&v, 0, b)?;
            }
        }
        Ok(())
    }

    /// The slot buffers of `layer`, `(slots, kv_heads, head_dim)`, if it was ever written.
    pub fn slots(&self, layer: usize) -> Option<(&Tensor, &Tensor)> {
        let l = self.layers.get(layer)?.as_ref()?;
        Some((&l.k, &l.v))
    }

    /// The first `n` tokens of `table` in `layer`, gathered into `(1, kv_heads, n, head_dim)`
    /// tensors (attention through candle's products, inspection).
    pub fn gather(&self, layer: usize, table: &BlockTable, n: usize) -> Result<(Tensor, Tensor)> {
        let Some((k, v)) = self.slots(layer) else {
            candle_core::bail!("layer {layer} of the KV cache holds nothing")
        };
        let idx: Vec<u32> = (0..n).map(|p| table.slot(p) as u32).collect();
        let idx = Tensor::new(idx.as_slice(), &self.device)?;
        let pick = |t: &Tensor| -> Result<Tensor> {
            t.index_select(&idx, 0)?
                .transpose(0, 1)?
                .contiguous()?
                .unsqueeze(0)
        };
        Ok((pick(k)?, pick(v)?))
    }
}
