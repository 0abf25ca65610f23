//! What draft heads learn from: the target's prefill over a corpus gives, at every position, its
//! last hidden state (the heads' input) and its own next-token choice (the label). No
//! generation is needed: one forward pass per chunk.

use super::corpus::Doc;
use crate::engine::error::Result;
use crate::engine::model::{Forward, Logits, Model};
use crate::engine::tokenizer::Tokenizer;
use candle_core::{DType, Device, Tensor};
use std::ops::Range;

/// Chunks shorter than this are dropped (too little context to learn from).
const MIN_CHUNK: usize = 16;

/// The target's states and choices over a tokenized corpus, chunk by chunk.
pub struct Features {
    pub hidden: usize,
    /// `positions × hidden`, row-major: the state after the final norm at each position.
    pub states: Vec<f32>,
    /// The target's argmax at each position: its guess of the next token.
    pub labels: Vec<u32>,
    /// The corpus token at each position.
    pub tokens: Vec<u32>,
    /// Each chunk's positions; a prediction never crosses a chunk's end.
    pub chunks: Vec<Range<usize>>,
}

impl Features {
    /// Tokenize `docs`, cut them into chunks of `seq_len` tokens (at most `max_tokens` in all),
    /// and run the target over each; `progress(done, total)` hears tokens processed.
    pub fn extract(
        model: &Model,
        tokenizer: &Tokenizer,
        docs: &[Doc],
        seq_len: usize,
        max_tokens: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Self> {
        let seq_len = seq_len.min(model.cfg.context_length).max(MIN_CHUNK);
        let mut pieces: Vec<Vec<u32>> = Vec::new();
        let mut total = 0;
        'docs: for d in docs {
            let ids = tokenizer.encode(&d.text)?;
            for c in ids.chunks(seq_len) {
                if c.len() < MIN_CHUNK {
                    continue;
                }
                let c = &c[..c.len().min(max_tokens - total)];
                total += c.len();
                pieces.push(c.to_vec());
                if total >= max_tokens {
                    break 'docs;
                }
            }
        }
        let hidden = model.cfg.hidden;
        let mut f = Self {
            hidden,
            states: Vec::with_capacity(total * hidden),
            labels: Vec::with_capacity(total),
            tokens: Vec::with_capacity(total),
            chunks: Vec::with_capacity(pieces.len()),
        };
        let mut cache = model.new_cache(DType::F32);
        for ids in pieces {
            cache.clear();
            let h = model.forward(
                &ids,
                &mut cache,
                Forward {
                    logits: Logits::Hidden,
                    layers: None,
                },
            )?;
            let labels = Model::argmax_rows(&model.head_logits(&h)?)?;
            let start = f.tokens.len();
            f.states.extend(h.flatten_all()?.to_vec1::<f32>()?);
            f.labels.extend(labels);
            f.tokens.extend_from_slice(&ids);
            f.chunks.push(start..f.tokens.len());
            progress(f.tokens.len(), total);
        }
        Ok(f)
    }

    /// Positions in chunks `which` from which `reach` more positions stay inside the chunk.
    pub fn positions(&self, which: Range<usize>, reach: usize) -> Vec<usize> {
        self.chunks[which]
            .iter()
            .flat_map(|c| c.start..c.end.saturating_sub(reach))
            .collect()
    }

    /// The states at `at` as `(at.len(), hidden)`.
    pub fn rows(&self, at: &[usize], device: &Device) -> Result<Tensor> {
        let h = self.hidden;
        let mut v = Vec::with_capacity(at.len() * h);
        for &i in at {
            v.extend_from_slice(&self.states[i * h..(i + 1) * h]);
        }
        Ok(Tensor::from_vec(v, (at.len(), h), device)?)
    }

    /// Mean square of the states: the scale EAGLE's state error is measured against.
    pub fn mean_square(&self) -> f32 {
        let n = self.states.len().max(1) as f64;
        (self
            .states
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            / n) as f32
    }
}
