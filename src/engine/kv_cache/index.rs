//! The index of cached prompt blocks: which block holds each key, and which cached blocks no
//! request holds (idle), least recently used first. See [`super::prefix`].

use std::collections::{BTreeMap, HashMap};

/// A block's key: 128 bits of SHA-256 over the previous block's key, the block's tokens and
/// the kind of span that computes it ([`super::prefix::prompt_keys`]).
pub type BlockKey = u128;

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
