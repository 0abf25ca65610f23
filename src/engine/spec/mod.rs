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

pub use adaptive::{Controller, KPolicy, Plan};
pub use draft::Drafter;
pub use stats::SpecStats;

/// Where drafts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DraftMode {
    None,
    DraftModel,
    PromptLookup,
    LayerSkip,
}

impl DraftMode {
    pub const ALL: [DraftMode; 4] = [
        Self::None,
        Self::DraftModel,
        Self::PromptLookup,
        Self::LayerSkip,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DraftModel => "draft-model",
            Self::PromptLookup => "prompt-lookup",
            Self::LayerSkip => "layer-skip",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s.trim())
            .ok_or_else(|| {
                let valid: Vec<_> = Self::ALL.iter().map(|m| m.name()).collect();
                format!("unknown draft mode `{s}`: use one of {}", valid.join(", "))
            })
    }
}

/// A drafter and the K controller: what a speculative run needs besides the target.
pub struct Speculator {
    pub drafter: Drafter,
    pub controller: Controller,
}

impl Speculator {
    pub fn none() -> Self {
        Self {
            drafter: Drafter::None,
            controller: Controller::new(KPolicy::Fixed(4)),
        }
    }

    pub fn new(drafter: Drafter, k: KPolicy) -> Self {
        Self {
            drafter,
            controller: Controller::new(k),
        }
    }

    pub fn is_on(&self) -> bool {
        !matches!(self.drafter, Drafter::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draft_modes_parse_and_errors_list_the_valid_ones() {
        for m in DraftMode::ALL {
            assert_eq!(DraftMode::parse(m.name()), Ok(m));
        }
        let e = DraftMode::parse("medusa").unwrap_err();
        assert!(
            e.contains("prompt-lookup") && e.contains("layer-skip"),
            "{e}"
        );
    }
}
