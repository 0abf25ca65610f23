//! Drafters: what proposes the K tokens a speculative step verifies.
//!
//! A draft model keeps its own KV cache, which holds a prefix of the text; before drafting it
//! catches up on the tokens it has not seen, and after verification it rolls back to the part of
//! its drafts the target kept. Layer-skip drafting needs no cache of its own: the target's cache
//! already holds the first L layers of the text (a shallow pass computes exactly what the full
//! pass does there), so drafts are appended to it and then cut off again before verification,
//! which rewrites those positions with the target's own values.

use super::super::error::{EngineError, Result};
use super::super::kv_cache::KvCache;
use super::super::model::{Forward, Logits, Model};
use super::super::sampling::Sampler;
use super::super::Engine;
use super::lookup;
use super::DraftMode;
use candle_core::DType;

/// Longest and shortest n-gram prompt lookup tries to match. One token (a newline, a space)
/// matches almost anywhere and proposes noise that costs a verification row per token.
pub const LOOKUP_MAX_NGRAM: usize = 3;
pub const LOOKUP_MIN_NGRAM: usize = 2;

/// Proposed tokens and, when drafted by sampling, the draft's distribution for each.
#[derive(Debug, Default)]
pub struct Draft {
    pub tokens: Vec<u32>,
    /// `None` per token for deterministic drafts (greedy or lookup): a point mass.
    pub q: Vec<Option<Vec<f32>>>,
}

/// A model that drafts, with the cache of what it has seen.
pub struct ModelDraft {
    cache: KvCache,
    /// Tokens of the text its cache holds.
    seen: usize,
}

pub enum Drafter {
    None,
    PromptLookup,
    /// A second model with the same tokenizer.
    DraftModel {
        engine: Box<Engine>,
        state: ModelDraft,
    },
    /// The target's first `layers` layers and its head, on the target's own cache.
    LayerSkip {
        layers: usize,
    },
}

impl Drafter {
    pub fn mode(&self) -> DraftMode {
        match self {
            Self::None => DraftMode::None,
            Self::PromptLookup => DraftMode::PromptLookup,
            Self::DraftModel { .. } => DraftMode::DraftModel,
            Self::LayerSkip { .. } => DraftMode::LayerSkip,
        }
    }

    /// A drafter using `draft` for `target`; refused when their tokenizers differ.
    pub fn draft_model(target: &Engine, draft: Engine) -> Result<Self> {
        check_same_tokenizer(target, &draft)?;
        let cache = draft.model.new_cache(DType::F32);
        Ok(Self::DraftModel {
            engine: Box::new(draft),
            state: ModelDraft { cache, seen: 0 },
        })
    }

    /// Self-speculation through the first `layers` layers of `target` (clamped to 1..layers-1).
    pub fn layer_skip(target: &Model, layers: usize) -> Self {
        let layers = layers.clamp(1, target.cfg.layers.saturating_sub(1).max(1));
        Self::LayerSkip { layers }
    }

    /// Forget the text drafted from (a new run starts).
    pub fn reset(&mut self) {
        if let Self::DraftModel { state, .. } = self {
            state.cache.clear();
            state.seen = 0;
        }
    }

    /// Up to `k` tokens to follow `text` (prompt and generated tokens so far); `cache` is the
    /// target's, holding all of `text` but its last token, and is left as it was.
    pub fn draft(
        &mut self,
        target: &Model,
        cache: &mut KvCache,
        text: &[u32],
        k: usize,
        sampler: &mut Sampler,
    ) -> Result<Draft> {
        match self {
            Self::None => Ok(Draft::default()),
            Self::PromptLookup => {
                let tokens = lookup::propose(text, k, LOOKUP_MIN_NGRAM, LOOKUP_MAX_NGRAM);
                let q = vec![None; tokens.len()];
                Ok(Draft { tokens, q })
            }
            Self::DraftModel { engine, state } => draft_tokens(
                &engine.model,
                None,
                &mut state.cache,
                &mut state.seen,
                text,
                k,
                sampler,
            ),
            Self::LayerSkip { layers } => {
                let held = cache.len();
                let mut seen = held;
                let out = draft_tokens(target, Some(*layers), cache, &mut seen, text, k, sampler);
                cache.truncate(held);
                out
            }
        }
    }

    /// After verification: `kept` tokens of the text are final (the accepted drafts included).
    pub fn rollback(&mut self, kept: usize) {
        if let Self::DraftModel { state, .. } = self {
            state.seen = state.seen.min(kept);
            state.cache.truncate(state.seen);
        }
    }

    /// The draft model's own KV cache (tests and inspection).
    pub fn cache(&self) -> Option<&KvCache> {
        match self {
            Self::DraftModel { state, .. } => Some(&state.cache),
            _ => None,
        }
    }
}

/// Draft `k` tokens after `text` with `model` (its first `layers`), on a cache that holds the
/// first `seen` tokens of `text`: it catches up on the rest first.
#[allow(clippy::too_many_arguments)]
fn draft_tokens(
    model: &Model,
    layers: Option<usize>,
    cache: &mut KvCache,
    seen: &mut usize,
    text: &[u32],
    k: usize,
    sampler: &mut Sampler,
) -> Result<Draft> {
    let room = model.cfg.context_length.saturating_sub(text.len());
    let k = k.min(room);
    let mut out = Draft::default();
    if k == 0 {
        return Ok(out);
    }
    let opts = Forward {
        logits: Logits::Last,
        layers,
    };
    let mut feed: Vec<u32> = text[*seen..].to_vec();
    for i in 0..k {
        let logits = model.forward(&feed, cache, opts)?;
        *seen += feed.len();
        let row = Model::last_logits(&logits)?;
        let (token, q) = if sampler.params().is_greedy() {
            (super::super::sampling::argmax(&row) as u32, None)
        } else {
            let q = sampler.distribution(&row);
            (sampler.draw(&q), Some(q))
        };
        out.tokens.push(token);
        out.q.push(q);
        if i + 1 < k {
            feed = vec![token];
        }
    }
    Ok(out)
}

/// Two models can share drafts only when the same ids mean the same text.
pub fn check_same_tokenizer(target: &Engine, draft: &Engine) -> Result<()> {
    let refuse = |why: String| EngineError::DraftMismatch {
        draft: draft.info.name.clone(),
        target: target.info.name.clone(),
        why,
    };
    let (a, b) = (&target.tokenizer.inner, &draft.tokenizer.inner);
    if a.get_vocab_size(true) != b.get_vocab_size(true) {
        return Err(refuse(format!(
            "their vocabularies differ ({} and {} tokens)",
            b.get_vocab_size(true),
            a.get_vocab_size(true)
        )));
    }
    if a.get_vocab(true) != b.get_vocab(true) {
        return Err(refuse("the same ids stand for different text".into()));
    }
    if draft.model.cfg.vocab < target.tokenizer.inner.get_vocab_size(true) {
        return Err(refuse(
            "its output head is smaller than the vocabulary".into(),
        ));
    }
    Ok(())
}
