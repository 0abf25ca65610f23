//! Drafters: what proposes the K tokens a speculative step verifies.
//!
//! A draft model keeps its own KV cache, which holds a prefix of the text; before drafting it
//! catches up on the tokens it has not seen, and after verification it rolls back to the part of
//! its drafts the target kept. Layer-skip drafting needs no cache of its own: the target's cache
//! already holds the first L layers of the text (a shallow pass computes exactly what the full
//! pass does there), so drafts are appended to it and then cut off again before verification,
//! which rewrites those positions with the target's own values.

use super::super::error::{EngineError, Result};
use super::super::heads::{Drafting, HeadKind};
use super::super::kv_cache::KvCache;
use super::super::model::{Forward, Logits, Model};
use super::super::sampling::Sampler;
use super::super::Engine;
use super::lookup;
use super::DraftMode;
use candle_core::{DType, Tensor};

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

impl Draft {
    /// Draft one more token from the drafter's logits `row`: its argmax when `sampler` is
    /// greedy, else drawn, with the distribution kept for speculative sampling.
    pub fn push_from(&mut self, row: &[f32], sampler: &mut Sampler) -> u32 {
        let (token, q) = if sampler.params().is_greedy() {
            (super::super::sampling::argmax(row) as u32, None)
        } else {
            let q = sampler.distribution(row);
            (sampler.draw(&q), Some(q))
        };
        self.tokens.push(token);
        self.q.push(q);
        token
    }
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
        state: Box<ModelDraft>,
    },
    /// The target's first `layers` layers and its head, on the target's own cache.
    LayerSkip {
        layers: usize,
    },
    /// Medusa-lite or EAGLE-lite heads trained on the target, reading its last hidden state.
    Heads(std::sync::Arc<Drafting>),
}

impl Drafter {
    pub fn mode(&self) -> DraftMode {
        match self {
            Self::None => DraftMode::None,
            Self::PromptLookup => DraftMode::PromptLookup,
            Self::DraftModel { .. } => DraftMode::DraftModel,
            Self::LayerSkip { .. } => DraftMode::LayerSkip,
            Self::Heads(h) => match h.kind() {
                HeadKind::Medusa => DraftMode::Medusa,
                HeadKind::Eagle => DraftMode::Eagle,
            },
        }
    }

    /// A drafter using `draft` for `target`; refused when their tokenizers differ.
    pub fn draft_model(target: &Engine, draft: Engine) -> Result<Self> {
        check_same_tokenizer(target, &draft)?;
        let cache = draft.model.new_cache(DType::F32);
        Ok(Self::DraftModel {
            engine: Box::new(draft),
            state: Box::new(ModelDraft { cache, seen: 0 }),
        })
    }

    /// The drafter `mode` names when it drafts from the target alone: none, prompt lookup, or
    /// layer skip through `layers` layers (half the target's when unset). `None` for a draft
    /// model, which is loaded apart ([`Self::draft_model`]).
    pub fn for_mode(mode: DraftMode, target: &Model, layers: Option<usize>) -> Option<Self> {
        match mode {
            DraftMode::None => Some(Self::None),
            DraftMode::PromptLookup => Some(Self::PromptLookup),
            DraftMode::LayerSkip => {
                let layers = layers.unwrap_or(target.cfg.layers / 2);
                Some(Self::layer_skip(target, layers))
            }
            DraftMode::DraftModel | DraftMode::Medusa | DraftMode::Eagle => None,
        }
    }

    /// Whether drafting reads the target's last hidden state (the generation keeps it).
    pub fn wants_hidden(&self) -> bool {
        matches!(self, Self::Heads(_))
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
    /// target's, holding all of `text` but its last token, and is left as it was. `hidden` is
    /// the target's state where it chose that last token, kept when [`Self::wants_hidden`].
    pub fn draft(
        &mut self,
        target: &Model,
        cache: &mut KvCache,
        text: &[u32],
        hidden: Option<&Tensor>,
        k: usize,
        sampler: &mut Sampler,
    ) -> Result<Draft> {
        match self {
            Self::Heads(heads) => {
                let (Some(h), Some(&pending)) = (hidden, text.last()) else {
                    return Ok(Draft::default());
                };
                Ok(heads.draft(target, h, pending, k, sampler)?)
            }
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

    /// Time what speculation costs on this machine, once per drafter, before its first run: a
    /// plain decode step of the target, verification of 5 and 9 positions (its cost grows with
    /// the positions where products are bound by arithmetic, as on a CPU), and drafting one
    /// token. Scratch caches are used (the runs' caches are untouched), and the lazy work of a
    /// first prefill (weight tiles candle packs once) is done here too, not in a timed step.
    /// Adaptive K starts from these costs, so it can tell before drafting whether a K can pay.
    ///
    /// `None` where a context is too short to time these (under 48 tokens, for the target or a
    /// draft model): adaptive K then goes by measured speed alone.
    pub fn calibrate(&self, target: &Model) -> Result<Option<super::adaptive::Costs>> {
        use std::time::Instant;
        const NEEDED: usize = 48;
        let short = |m: &Model| m.cfg.context_length < NEEDED;
        if short(target) || matches!(self, Self::DraftModel { engine, .. } if short(&engine.model))
        {
            return Ok(None);
        }
        let vocab = target.cfg.vocab as u32;
        let ids: Vec<u32> = (0..NEEDED as u32)
            .map(|i| (i * 7919 + 13) % vocab)
            .collect();
        let median = median3;
        let mut cache = target.new_cache(DType::F32);
        target.forward(&ids[..32], &mut cache, Forward::LAST)?;
        let mut time = |n: usize, opts: Forward| -> Result<f64> {
            let t = Instant::now();
            target.forward(&ids[32..32 + n], &mut cache, opts)?;
            let s = t.elapsed().as_secs_f64();
            cache.truncate(32);
            Ok(s)
        };
        // One untimed step first: the first decode steps after a prefill run slow.
        time(1, Forward::LAST)?;
        let plain = median(&mut || time(1, Forward::LAST))?;
        let v5 = median(&mut || time(5, Forward::ALL))?;
        let v9 = median(&mut || time(9, Forward::ALL))?;
        // Least squares through (1, plain), (5, v5), (9, v9): the cost of each extra position.
        let verify_extra = ((v5 - plain) * 4.0 + (v9 - plain) * 8.0) / (16.0 + 64.0);
        let draft = match self {
            Self::LayerSkip { layers } => {
                let opts = Forward {
                    logits: Logits::Last,
                    layers: Some(*layers),
                };
                median(&mut || time(1, opts))?
            }
            _ => self.time_draft_token(target, &ids)?,
        };
        let catch_up = match self {
            Self::DraftModel { engine, .. } => {
                let model = &engine.model;
                let mut cache = model.new_cache(DType::F32);
                median(&mut || {
                    cache.clear();
                    let t = Instant::now();
                    model.forward(&ids[..32], &mut cache, Forward::LAST)?;
                    Ok(t.elapsed().as_secs_f64() / 32.0)
                })?
            }
            _ => 0.0,
        };
        Ok(Some(super::adaptive::Costs {
            plain,
            draft,
            verify_extra: verify_extra.max(0.0),
            catch_up,
        }))
    }

    /// Seconds to draft one token after the 32 tokens `ids` begin with, for drafters with a
    /// model or heads of their own (0 for lookup; layer skip is timed on the target's cache).
    fn time_draft_token(&self, target: &Model, ids: &[u32]) -> Result<f64> {
        use std::time::Instant;
        match self {
            Self::Heads(heads) => {
                let mut cache = target.new_cache(DType::F32);
                let opts = Forward {
                    logits: Logits::Hidden,
                    layers: None,
                };
                let h = target.forward(&ids[..32], &mut cache, opts)?;
                let h = h.narrow(0, 31, 1)?;
                let k = heads.heads.reach().unwrap_or(4);
                let mut sampler = Sampler::new(super::super::sampling::SamplingParams::greedy());
                median3(&mut || {
                    let t = Instant::now();
                    heads.draft(target, &h, ids[31], k, &mut sampler)?;
                    Ok(t.elapsed().as_secs_f64() / k as f64)
                })
            }
            Self::DraftModel { engine, .. } => {
                let model = &engine.model;
                let mut cache = model.new_cache(DType::F32);
                model.forward(&ids[..32], &mut cache, Forward::LAST)?;
                median3(&mut || {
                    let t = Instant::now();
                    model.forward(&ids[32..33], &mut cache, Forward::LAST)?;
                    let s = t.elapsed().as_secs_f64();
                    cache.truncate(32);
                    Ok(s)
                })
            }
            Self::None | Self::PromptLookup | Self::LayerSkip { .. } => Ok(0.0),
        }
    }

    /// Tokens of a text of `text_len` tokens that a draft model has not seen yet (it catches up
    /// on them before drafting); 0 for drafters without a cache of their own.
    pub fn unseen(&self, text_len: usize) -> usize {
        match self {
            Self::DraftModel { state, .. } => text_len.saturating_sub(state.seen),
            _ => 0,
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

/// The median of three timings of `f`.
fn median3(f: &mut dyn FnMut() -> Result<f64>) -> Result<f64> {
    let mut t = [f()?, f()?, f()?];
    t.sort_by(f64::total_cmp);
    Ok(t[1])
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
        let token = out.push_from(&Model::last_logits(&logits)?, sampler);
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
