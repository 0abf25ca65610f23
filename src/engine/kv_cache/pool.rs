//! The paged K and V storage: per layer one buffer of token slots, `(blocks × BLOCK_TOKENS,
//! kv_heads, head_dim)`, shared by every sequence through its [`BlockTable`]. A slot holds one
//! token's keys (or values) for all KV heads side by side, so the tokens of a block that a step
//! writes are one copy. The pool grows in [`GROW_BLOCKS`] steps, keeping block ids, so a decode
//! step never copies the cache.

use super::blocks::{BlockAllocator, BlockTable, BlockUsage, BLOCK_TOKENS};
use super::index::BlockKey;
use candle_core::{DType, Device, Result, Tensor};

/// The pool grows by multiples of this many blocks (256 tokens).
pub const GROW_BLOCKS: usize = 16;

#[derive(Debug, Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

/// Positions a sliding-window table keeps before its window: a rollback of up to this many
/// (a verification of at most [`crate::engine::kernels::SMALL_BATCH`] rows, a layer-skip draft)
/// finds the positions the next step reads still held.
pub const WINDOW_SLACK: usize = 2 * BLOCK_TOKENS;

/// The sliding-window layers' own blocks: each sequence keeps only the positions its window
/// can still see.
#[derive(Debug, Clone)]
struct Window {
    size: usize,
    /// Which layers slide.
    sliding: Vec<bool>,
    alloc: BlockAllocator,
}

/// Every layer's K and V slots and the allocator of their blocks.
#[derive(Debug, Clone)]
pub struct KvPool {
    layers: Vec<Option<LayerKv>>,
    alloc: BlockAllocator,
    window: Option<Window>,
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
            window: None,
            kv_heads,
            head_dim,
            max_tokens,
            max_blocks,
            dtype,
            device: device.clone(),
        }
    }

    /// The same pool, whose `sliding` layers keep only the last `size` positions of each
    /// sequence (and [`WINDOW_SLACK`] before them) in blocks of their own.
    pub fn with_window(mut self, size: usize, sliding: Vec<bool>) -> Self {
        assert_eq!(sliding.len(), self.layers.len(), "a flag per layer");
        self.window = sliding.iter().any(|&s| s).then(|| Window {
            size,
            sliding,
            alloc: BlockAllocator::default(),
        });
        self
    }

    /// Whether `layer` keeps only its window.
    pub fn slides(&self, layer: usize) -> bool {
        self.window.as_ref().is_some_and(|w| w.sliding[layer])
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

    /// Bytes of the K and V entries `table` holds: every position in a full layer, the ones
    /// still held in a sliding-window one.
    pub fn bytes_held(&self, table: &BlockTable) -> u64 {
        let per_layer = self.bytes_per_token() / self.layers.len().max(1) as u64;
        let window = table
            .window()
            .map_or(table.len(), |w| w.len() - w.live_from());
        (0..self.layers.len())
            .map(|l| match self.slides(l) {
                true => window as u64,
                false => table.len() as u64,
            })
            .sum::<u64>()
            * per_layer
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
        // Fresh blocks while the budget allows; past it, idle cached prefixes are evicted.
        let fresh = self.alloc.fresh_count();
        if short > fresh {
            let within = (self.alloc.total() + short - fresh).min(self.max_blocks);
            if within > self.alloc.total() {
                self.grow(false, within)?;
            }
            if short > self.alloc.free_count() {
                self.grow(false, self.alloc.held_count() + short)?; // past the budget: an error
            }
        }
        if !table.reserve(&mut self.alloc, tokens) {
            candle_core::bail!("KV pool out of blocks")
        }
        if self.window.is_some() {
            self.reserve_window(table, tokens)?;
        }
        Ok(())
    }

    /// The window table's blocks for `tokens`, after giving back the ones no row of the
    /// coming step (at `table.len()` on) can see.
    fn reserve_window(&mut self, table: &mut BlockTable, tokens: usize) -> Result<()> {
        let w = self.window.as_mut().expect("a window");
        let keep_from = table.len().saturating_sub(w.size + WINDOW_SLACK);
        let wt = table.window_mut();
        wt.drop_before(&mut w.alloc, keep_from);
        let short = wt.blocks_short(tokens);
        if short > w.alloc.free_count() {
            let needed = w.alloc.held_count() + short;
            self.grow(true, needed)?;
        }
        let w = self.window.as_mut().expect("a window");
        if !table.window_mut().reserve(&mut w.alloc, tokens) {
            candle_core::bail!("KV pool out of window blocks")
        }
        Ok(())
    }

    /// Give back `table`'s blocks past its first `n` tokens. Panics where a sliding-window
    /// layer no longer holds what the next step at `n` would read: a rollback longer than
    /// [`WINDOW_SLACK`] is a bug.
    pub fn truncate(&mut self, table: &mut BlockTable, n: usize) {
        table.truncate(&mut self.alloc, n);
        if let (Some(w), Some(wt)) = (&mut self.window, table.window_parts()) {
            wt.truncate(&mut w.alloc, n);
            assert!(
                n == 0 || wt.live_from() <= n.saturating_sub(w.size),
                "rolled back to {n} tokens past the sliding window's slack ({} held from {})",
                wt.len(),
                wt.live_from()
            );
        }
    }

    /// Keep computed prompt blocks for later sequences (not with sliding-window layers, whose
    /// blocks leave the window).
    pub fn enable_prefix_cache(&mut self) -> bool {
        if self.window.is_none() {
            self.alloc.enable_prefix_cache();
        }
        self.window.is_none()
    }

    /// The cached blocks of `keys`' longest prefix that the index holds, in order.
    pub fn cached_prefix(&self, keys: &[BlockKey]) -> Vec<u32> {
        let Some(ix) = self.alloc.prefix() else {
            return Vec::new();
        };
        keys.iter().map_while(|k| ix.get(k)).collect()
    }

    /// Of `blocks`, those no sequence holds now: taking them takes free blocks.
    pub fn idle_among(&self, blocks: &[u32]) -> usize {
        self.alloc
            .prefix()
            .map_or(0, |ix| blocks.iter().filter(|&&b| ix.is_idle(b)).count())
    }

    /// Start empty `table` with cached `blocks` (from [`Self::cached_prefix`]).
    pub fn share_prefix(&mut self, table: &mut BlockTable, blocks: &[u32]) {
        table.share_prefix(&mut self.alloc, blocks);
    }

    /// Index `table`'s block `i`, its positions all written, under `key`.
    pub fn register(&mut self, table: &BlockTable, i: usize, key: BlockKey) {
        debug_assert!((i + 1) * BLOCK_TOKENS <= table.len(), "a whole block");
        self.alloc.register(table.blocks()[i], key);
    }

    /// Blocks the index holds, and how many of them are idle.
    pub fn cached_blocks(&self) -> (usize, usize) {
        self.alloc
            .prefix()
            .map_or((0, 0), |ix| (ix.len(), ix.idle_count()))
    }

    /// Blocks some sequence holds (a shared one once).
    pub fn held_blocks(&self) -> usize {
        self.alloc.held_count()
    }

    /// Give back every block of a finished sequence.
    pub fn release(&mut self, table: &mut BlockTable) {
        self.truncate(table, 0);
    }

    /// Free the storage; `tables` (every sequence of this pool) start empty.
    pub fn clear<'a>(&mut self, tables: impl IntoIterator<Item = &'a mut BlockTable>) {
        tables.into_iter().for_each(BlockTable::forget);
        self.alloc.reset();
        if let Some(w) = &mut self.window {
            w.alloc.reset();
        }
        self.layers.iter_mut().for_each(|l| *l = None);
    }

    /// Resize the full layers' buffers (or the sliding ones') to at least `needed` blocks,
    /// keeping what they hold.
    fn grow(&mut self, sliding: bool, needed: usize) -> Result<()> {
        if needed > self.max_blocks {
            candle_core::bail!(
                "KV pool full: {needed} blocks of {BLOCK_TOKENS} tokens exceed its {}",
                self.max_blocks
            )
        }
        let old = self.blocks(sliding);
        let new = needed
            .div_ceil(GROW_BLOCKS)
            .saturating_mul(GROW_BLOCKS)
            .min(self.max_blocks)
            .max(needed);
        let shape = (new * BLOCK_TOKENS, self.kv_heads, self.head_dim);
        for (i, slot) in self.layers.iter_mut().enumerate() {
            let slides = self.window.as_ref().is_some_and(|w| w.sliding[i]);
            if slides != sliding {
                continue;
            }
            if let Some(l) = slot.take() {
                let k = Tensor::zeros(shape, self.dtype, &self.device)?;
                let v = Tensor::zeros(shape, self.dtype, &self.device)?;
                k.slice_set(&l.k, 0, 0)?;
                v.slice_set(&l.v, 0, 0)?;
                *slot = Some(LayerKv { k, v });
            }
        }
        match (sliding, &mut self.window) {
            (true, Some(w)) => w.alloc.grow(new - old),
            _ => self.alloc.grow(new - old),
        }
        Ok(())
    }

    /// Blocks the full layers' buffers hold (or the sliding ones').
    fn blocks(&self, sliding: bool) -> usize {
        match (sliding, &self.window) {
            (true, Some(w)) => w.alloc.total(),
            _ => self.alloc.total(),
        }
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
        let slides = self.slides(layer);
        let slots = self.blocks(slides) * BLOCK_TOKENS;
        let table = table.for_layer(slides);
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
        let sliding: Vec<bool> = (0..self.layers.len()).map(|l| self.slides(l)).collect();
        for (l, slides) in self.layers.iter_mut().zip(sliding) {
            let Some(l) = l else { continue };
            let table = table.for_layer(slides);
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
        let table = table.for_layer(self.slides(layer));
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
