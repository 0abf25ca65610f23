//! A request inside the scheduler: its table, what it generated, and the pieces it runs next.

use super::SeqRequest;
use crate::engine::kernels::SMALL_BATCH;
use crate::engine::kv_cache::{BlockKey, BlockTable, BLOCK_TOKENS};
use crate::engine::sampling::Sampler;

/// A request between its submission and its end.
#[derive(Debug)]
pub(super) struct Live {
    pub(super) req: SeqRequest,
    pub(super) table: BlockTable,
    pub(super) generated: Vec<u32>,
    pub(super) sampler: Sampler,
    /// Order of submission: the oldest request runs first and is preempted last.
    pub(super) order: u64,
    /// Admitted before (a preempted request resumes).
    pub(super) started: bool,
    /// The keys of its prompt's whole blocks (with prefix caching).
    pub(super) keys: Vec<BlockKey>,
    /// Of its blocks, how many lead the table from the cache or were indexed since.
    pub(super) indexed: usize,
}

impl Live {
    /// Tokens of the sequence: the prompt, then those generated.
    pub(super) fn total(&self) -> usize {
        self.req.prompt.len() + self.generated.len()
    }

    /// Tokens to run before the next token can be sampled.
    pub(super) fn pending(&self) -> usize {
        self.total() - self.table.len()
    }

    pub(super) fn tokens(&self, start: usize, len: usize) -> Vec<u32> {
        let p = &self.req.prompt;
        (start..start + len)
            .map(|i| match p.get(i) {
                Some(&t) => t,
                None => self.generated[i - p.len()],
            })
            .collect()
    }

    /// Tokens its next piece runs: the rest of the prompt chunk ending at the next multiple of
    /// `chunk`, or (recomputing after preemption) up to [`SMALL_BATCH`] generated tokens, or a
    /// decode row. A function of the position only, so that its outputs are too.
    pub(super) fn next_piece(&self, chunk: usize) -> usize {
        self.piece_from(self.table.len(), chunk)
    }

    /// Its next piece with `done` tokens held.
    pub(super) fn piece_from(&self, done: usize, chunk: usize) -> usize {
        let prompt = self.req.prompt.len();
        match done < prompt {
            true => (chunk - done % chunk).min(prompt - done),
            false => (self.total() - done).min(SMALL_BATCH),
        }
    }

    /// Tokens the sequence can add with `free` more blocks (the slack of its last block first).
    pub(super) fn room(&self, free: usize) -> usize {
        self.table.wasted() + free * BLOCK_TOKENS
    }
}
