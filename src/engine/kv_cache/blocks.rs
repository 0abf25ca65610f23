//! Paged KV bookkeeping, as vLLM's PagedAttention: a [`BlockAllocator`] of fixed-size blocks with
//! a free list, and a [`BlockTable`] per sequence mapping its positions to blocks. Pure integers:
//! the K and V values live in [`super::pool::KvPool`].

use super::index::{BlockKey, PrefixIndex};

/// Tokens per block (vLLM's default).
pub const BLOCK_TOKENS: usize = 16;

/// Hands out block ids from a free list; never the same block to two sequences, except a
/// cached prefix block that they share (counted by its references).
#[derive(Debug, Clone, Default)]
pub struct BlockAllocator {
    /// Free ids, the next one handed out last (lowest ids first after growth).
    free: Vec<u32>,
    /// How many tables hold each block: 0 when free or idle. Catches a double free.
    refs: Vec<u32>,
    /// Cached prompt blocks, where prefix caching is on.
    prefix: Option<PrefixIndex>,
}

impl BlockAllocator {
    /// Blocks in the pool, held or free.
    pub fn total(&self) -> usize {
        self.refs.len()
    }

    /// Blocks a table can take: never used or given back, and idle cached ones (evicted then).
    pub fn free_count(&self) -> usize {
        self.free.len() + self.idle_count()
    }

    /// Blocks on the free list: taking one evicts nothing.
    pub fn fresh_count(&self) -> usize {
        self.free.len()
    }

    /// Cached blocks no table holds.
    pub fn idle_count(&self) -> usize {
        self.prefix.as_ref().map_or(0, PrefixIndex::idle_count)
    }

    /// Blocks some table holds (a shared one once).
    pub fn held_count(&self) -> usize {
        self.total() - self.free_count()
    }

    /// Add `n` new blocks to the pool (ids after the existing ones), all free.
    pub fn grow(&mut self, n: usize) {
        let start = self.total() as u32;
        self.refs.resize(self.total() + n, 0);
        self.free.extend((start..start + n as u32).rev());
    }

    /// A free block, now held: from the free list, else the least recently used idle cached
    /// block (which the index forgets); `None` when every block is held.
    pub fn allocate(&mut self) -> Option<u32> {
        let b = match self.free.pop() {
            Some(b) => b,
            None => self.prefix.as_mut()?.evict()?,
        };
        debug_assert_eq!(self.refs[b as usize], 0, "block {b} was free and held");
        self.refs[b as usize] = 1;
        Some(b)
    }

    /// One more table holds block `b` (a cached prefix block; an idle one is held again).
    pub fn share(&mut self, b: u32) {
        if self.refs[b as usize] == 0 {
            let ix = self.prefix.as_mut().expect("only cached blocks are shared");
            assert!(ix.is_idle(b), "block {b} is neither held nor idle");
            ix.unpark(b);
        }
        self.refs[b as usize] += 1;
    }

    /// A table gives block `b` back. Panics on a block that is not held (a double free is a bug
    /// that would hand one block to two sequences). The last holder of a cached block leaves
    /// it idle, still found by its key.
    pub fn free(&mut self, b: u32) {
        let refs = &mut self.refs[b as usize];
        assert!(*refs > 0, "block {b} freed but not held");
        *refs -= 1;
        if *refs > 0 {
            return;
        }
        match &mut self.prefix {
            Some(ix) if ix.contains_block(b) => ix.park(b),
            _ => self.free.push(b),
        }
    }

    /// Keep computed prompt blocks for later requests from now on.
    pub fn enable_prefix_cache(&mut self) {
        self.prefix.get_or_insert_with(PrefixIndex::default);
    }

    pub fn prefix(&self) -> Option<&PrefixIndex> {
        self.prefix.as_ref()
    }

    /// Index held block `b`, whose positions are all written, under `key`.
    pub fn register(&mut self, b: u32, key: BlockKey) {
        debug_assert!(self.refs[b as usize] > 0, "only a held block is written");
        if let Some(ix) = &mut self.prefix {
            ix.insert(b, key);
        }
    }

    /// Forget every block (the pool's storage is dropped), and the cached prefixes.
    pub fn reset(&mut self) {
        self.free.clear();
        self.refs.clear();
        if let Some(ix) = &mut self.prefix {
            *ix = PrefixIndex::default();
        }
    }
}

/// In a sliding-window table, a block given back: its positions left every window.
const DROPPED: u32 = u32::MAX;

/// One sequence's blocks, in position order, and its length in tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockTable {
    blocks: Vec<u32>,
    len: usize,
    /// The sliding-window layers' own blocks, where the pool has such layers: the same
    /// positions, the ones before the window given back ([`Self::drop_before`]).
    window: Option<Box<BlockTable>>,
}

impl BlockTable {
    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn blocks(&self) -> &[u32] {
        &self.blocks
    }

    /// Token slots held but not (yet) filled: the slack of the last block.
    pub fn wasted(&self) -> usize {
        self.blocks.len() * BLOCK_TOKENS - self.len
    }

    /// The pool slot of position `pos` (`block × BLOCK_TOKENS + offset`). A position a
    /// sliding-window table gave back reads slot 0: whatever it holds, the window masks it.
    pub fn slot(&self, pos: usize) -> usize {
        match self.blocks[pos / BLOCK_TOKENS] {
            DROPPED => 0,
            b => b as usize * BLOCK_TOKENS + pos % BLOCK_TOKENS,
        }
    }

    /// The table the layers read through: this one, or for a sliding-window layer the window's
    /// own (this one while nothing was reserved for it).
    pub fn for_layer(&self, sliding: bool) -> &BlockTable {
        match (sliding, &self.window) {
            (true, Some(w)) => w,
            _ => self,
        }
    }

    /// The sliding-window layers' table, made empty on first use.
    pub(super) fn window_mut(&mut self) -> &mut BlockTable {
        debug_assert!(
            self.window.is_some() || self.len == 0,
            "a window table starts with its sequence"
        );
        self.window.get_or_insert_with(Default::default)
    }

    pub(super) fn window(&self) -> Option<&BlockTable> {
        self.window.as_deref()
    }

    /// The first position still held: 0 but in a window table that gave blocks back.
    pub fn live_from(&self) -> usize {
        self.blocks.iter().take_while(|&&b| b == DROPPED).count() * BLOCK_TOKENS
    }

    /// Give back the blocks wholly before position `pos` (they left the window); returns how
    /// many.
    pub(super) fn drop_before(&mut self, alloc: &mut BlockAllocator, pos: usize) -> usize {
        let mut n = 0;
        for b in self.blocks.iter_mut().take(pos / BLOCK_TOKENS) {
            if *b != DROPPED {
                alloc.free(*b);
                *b = DROPPED;
                n += 1;
            }
        }
        n
    }

    /// Blocks held (a window table's given-back ones not counted).
    pub fn held(&self) -> usize {
        self.blocks.iter().filter(|&&b| b != DROPPED).count()
    }

    /// Blocks still to allocate for this sequence to hold `tokens`.
    pub fn blocks_short(&self, tokens: usize) -> usize {
        tokens
            .div_ceil(BLOCK_TOKENS)
            .saturating_sub(self.blocks.len())
    }

    /// Hold blocks for `tokens` positions; `false` (and nothing taken) if the pool has too few.
    pub fn reserve(&mut self, alloc: &mut BlockAllocator, tokens: usize) -> bool {
        let short = self.blocks_short(tokens);
        if short > alloc.free_count() {
            return false;
        }
        for _ in 0..short {
            self.blocks
                .push(alloc.allocate().expect("counted free blocks"));
        }
        true
    }

    /// Start an empty table with `blocks`, a cached prefix whose positions are all written:
    /// each is shared, not copied.
    pub fn share_prefix(&mut self, alloc: &mut BlockAllocator, blocks: &[u32]) {
        assert!(
            self.is_empty() && self.blocks.is_empty(),
            "a prefix starts a table"
        );
        for &b in blocks {
            alloc.share(b);
        }
        self.blocks.extend_from_slice(blocks);
        self.len = blocks.len() * BLOCK_TOKENS;
    }

    /// Record `n` more tokens written (their blocks reserved before).
    pub fn commit(&mut self, n: usize) {
        assert!(
            self.len + n <= self.blocks.len() * BLOCK_TOKENS,
            "committed past the reserved blocks"
        );
        self.len += n;
        if let Some(w) = &mut self.window {
            w.commit(n);
        }
    }

    /// Keep the first `n` tokens and give back the blocks past them (speculative rollback).
    pub fn truncate(&mut self, alloc: &mut BlockAllocator, n: usize) {
        self.len = self.len.min(n);
        let keep = self.len.div_ceil(BLOCK_TOKENS);
        // The last block first: a cached prefix's tail goes idle (and is evicted) before its head.
        for b in self.blocks.drain(keep..).rev().filter(|&b| b != DROPPED) {
            alloc.free(b);
        }
    }

    /// Give every block back: the sequence is finished.
    pub fn release(&mut self, alloc: &mut BlockAllocator) {
        self.truncate(alloc, 0);
    }

    /// Forget the blocks without freeing them (their allocator was reset).
    pub(super) fn forget(&mut self) {
        self.blocks.clear();
        self.len = 0;
        self.window = None;
    }

    /// The window table, for the pool to roll back or release with its own allocator.
    pub(super) fn window_parts(&mut self) -> Option<&mut BlockTable> {
        self.window.as_deref_mut()
    }
}

/// What the KV pane shows of the paged cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockUsage {
    pub block_tokens: usize,
    pub held: usize,
    pub free: usize,
    /// Token slots held but empty: the slack in each sequence's last block.
    pub wasted_tokens: usize,
}

impl BlockUsage {
    pub fn of<'a>(
        alloc: &BlockAllocator,
        tables: impl IntoIterator<Item = &'a BlockTable>,
    ) -> Self {
        Self {
            block_tokens: BLOCK_TOKENS,
            held: alloc.held_count(),
            free: alloc.free_count(),
            wasted_tokens: tables.into_iter().map(BlockTable::wasted).sum(),
        }
    }
}

impl From<BlockUsage> for crate::protocol::KvBlocks {
    fn from(u: BlockUsage) -> Self {
        Self {
            block_tokens: u.block_tokens,
            held: u.held,
            free: u.free,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn slots_follow_the_table_and_slack_is_the_last_blocks_rest() {
        let mut a = BlockAllocator::default();
        a.grow(4);
        let (mut s, mut t) = (BlockTable::default(), BlockTable::default());
        assert!(s.reserve(&mut a, 5));
        assert!(t.reserve(&mut a, 20));
        s.commit(5);
        t.commit(20);
        assert_eq!((s.blocks(), t.blocks()), (&[0][..], &[1, 2][..]));
        assert_eq!(t.slot(17), 2 * BLOCK_TOKENS + 1);
        assert_eq!((s.wasted(), t.wasted()), (11, 12));
        let u = BlockUsage::of(&a, [&s, &t]);
        assert_eq!((u.held, u.free, u.wasted_tokens), (3, 1, 23));
        // Two blocks more than the pool has: nothing taken.
        assert!(!s.reserve(&mut a, 3 * BLOCK_TOKENS));
        assert_eq!(a.free_count(), 1);
        t.truncate(&mut a, 16);
        assert_eq!((t.blocks(), a.free_count()), (&[1][..], 2));
    }

    #[test]
    #[should_panic(expected = "not held")]
    fn a_double_free_is_caught() {
        let mut a = BlockAllocator::default();
        a.grow(2);
        let b = a.allocate().unwrap();
        a.free(b);
        a.free(b);
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Grow sequence `s` to `n` tokens (if the pool has room).
        Grow(usize, usize),
        Truncate(usize, usize),
        Finish(usize),
        AddBlocks(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..6usize, 0..80usize).prop_map(|(s, n)| Op::Grow(s, n)),
            2 => (0..6usize, 0..80usize).prop_map(|(s, n)| Op::Truncate(s, n)),
            1 => (0..6usize).prop_map(Op::Finish),
            1 => (0..4usize).prop_map(Op::AddBlocks),
        ]
    }

    proptest! {
        /// Whatever sequences grow, roll back and finish, no block is held by two of them, the
        /// allocator's counts are the tables', and finishing them all returns every block.
        #[test]
        fn never_hands_a_block_out_twice_and_gets_every_block_back(
            start in 0..12usize,
            ops in proptest::collection::vec(op(), 0..200),
        ) {
            let mut a = BlockAllocator::default();
            a.grow(start);
            let mut seqs = vec![BlockTable::default(); 6];
            for op in ops {
                match op {
                    Op::Grow(s, n) => {
                        let t = &mut seqs[s];
                        let n = n.max(t.len());
                        if t.reserve(&mut a, n) {
                            let more = n - t.len();
                            t.commit(more);
                        }
                    }
                    Op::Truncate(s, n) => seqs[s].truncate(&mut a, n),
                    Op::Finish(s) => seqs[s].release(&mut a),
                    Op::AddBlocks(n) => a.grow(n),
                }
                let mut seen = HashSet::new();
                for t in &seqs {
                    prop_assert_eq!(t.blocks().len(), t.len().div_ceil(BLOCK_TOKENS));
                    for &b in t.blocks() {
                        prop_assert!(seen.insert(b), "block {} held twice", b);
                        prop_assert!((b as usize) < a.total());
                    }
                }
                prop_assert_eq!(seen.len(), a.held_count());
                prop_assert_eq!(a.held_count() + a.free_count(), a.total());
            }
            for t in &mut seqs {
                t.release(&mut a);
            }
            prop_assert_eq!(a.free_count(), a.total());
            let mut ids: Vec<u32> = (0..a.total()).map(|_| a.allocate().unwrap()).collect();
            ids.sort_unstable();
            prop_assert_eq!(ids, (0..a.total() as u32).collect::<Vec<_>>());
        }
    }
}
