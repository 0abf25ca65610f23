//! Speculative decoding: a drafter proposes K tokens, the target scores all of them in one
//! forward pass of K + 1 positions, keeps the longest acceptable prefix plus one token of its
//! own, and both KV caches roll back to what was kept.
//!
//! Lossless: greedy runs produce exactly the tokens of plain greedy decoding (our products and
//! attention are batch-invariant up to [`super::kernels::SMALL_BATCH`] rows), and sampled runs
//! keep the target's distribution (speculative sampling, see [`accept`]).

pub mod accept;
pub mod adaptive;
pub mod draft;
pub mod lookup;
pub mod pick;
pub mod stats;
pub mod theory;
pub mod tree;

pub use crate::protocol::DraftMode;
pub use adaptive::{Controller, KPolicy, SpecPlan};
pub use draft::Drafter;
pub use stats::SpecStats;

/// A drafter, the K controller and the acceptance rule: what a speculative run needs besides
/// the target.
pub struct Speculator {
    pub drafter: Drafter,
    pub controller: Controller,
    /// A lossy rule to verify by; `None` takes the run's lossless one (greedy match, or
    /// speculative sampling when it samples).
    pub policy: Option<accept::Acceptance>,
    /// Medusa heads verify a tree of candidates ([`tree`]) in greedy runs on the CPU with an f32
    /// cache; off (the default), they verify one chain. Each verified row costs a CPU about a
    /// quarter of a decode step on two cores, so the 16-row tree pays only at very high
    /// acceptance there.
    pub tree: bool,
}

impl Speculator {
    pub fn none() -> Self {
        Self {
            drafter: Drafter::None,
            controller: Controller::new(crate::protocol::DEFAULT_K),
            policy: None,
            tree: false,
        }
    }

    pub fn new(drafter: Drafter, k: KPolicy) -> Self {
        Self {
            drafter,
            controller: Controller::new(k),
            policy: None,
            tree: false,
        }
    }

    pub fn is_on(&self) -> bool {
        !matches!(self.drafter, Drafter::None)
    }
}
