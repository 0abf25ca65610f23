//! A draft vocabulary: the output head's rows for the tokens the target says most. Drafts are
//! only proposals (the target verifies each against its full head), so scoring them over a few
//! thousand likely tokens instead of the whole vocabulary loses a little acceptance where the
//! target would say a rare token, and saves most of the head's cost, which for a small model is
//! a large share of a decode step (the idea of FR-Spec, Zhao et al. 2025).

use crate::engine::kernels::QWeight;
use crate::engine::model::Model;
use candle_core::quantized::{ggml_file, QMatMul, QTensor};
use candle_core::{Result, Tensor};
use std::sync::Arc;

/// The draft head: rows of the target's head, and the token each stands for.
#[derive(Debug, Clone)]
pub struct DraftVocab {
    weight: QWeight,
    ids: Vec<u32>,
    vocab: usize,
}

impl DraftVocab {
    /// The rows of `model`'s head for `ids`, in the head's own weight type.
    pub fn new(model: &Model, ids: Vec<u32>) -> Result<Self> {
        let device = model.device();
        let weight = match &model.head {
            QWeight::Blocks { t, .. }
            | QWeight::Compact { t, .. }
            | QWeight::Candle(QMatMul::QTensor(t)) => QWeight::new(Arc::new(rows_of(t, &ids)?))?,
            QWeight::Candle(QMatMul::Tensor(w) | QMatMul::TensorF16(w)) => {
                let idx = Tensor::new(ids.as_slice(), device)?;
                QWeight::Candle(QMatMul::Tensor(w.index_select(&idx, 0)?))
            }
        };
        Ok(Self {
            weight,
            ids,
            vocab: model.cfg.vocab,
        })
    }

    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// Logits of states `z` `(rows, hidden)` over the whole vocabulary: the draft vocabulary's
    /// scored, every other token at −∞ (never drafted).
    pub fn logits(&self, z: &Tensor) -> Result<Vec<Vec<f32>>> {
        let sub: Vec<Vec<f32>> = self.weight.forward(z)?.to_vec2()?;
        Ok(sub
            .into_iter()
            .map(|row| {
                let mut full = vec![f32::NEG_INFINITY; self.vocab];
                for (&id, x) in self.ids.iter().zip(row) {
                    full[id as usize] = x;
                }
                full
            })
            .collect())
    }

    /// Bytes of the rows kept.
    pub fn bytes(&self) -> u64 {
        self.weight.bytes()
    }
}

/// The rows `ids` of a quantized matrix, as a matrix of their own (rows are whole blocks).
fn rows_of(t: &QTensor, ids: &[u32]) -> Result<QTensor> {
    let (_, k) = t.shape().dims2()?;
    let dtype = t.dtype();
    let row_bytes = k / dtype.block_size() * dtype.type_size();
    let data = t.data()?;
    let mut out = Vec::with_capacity(ids.len() * row_bytes);
    for &id in ids {
        let at = id as usize * row_bytes;
        out.extend_from_slice(&data[at..at + row_bytes]);
    }
    ggml_file::qtensor_from_ggml(dtype, &out, vec![ids.len(), k], &t.device())
}

/// The `n` tokens the target chose most often in `labels` (ties by id), sorted by id.
pub fn most_said(labels: &[u32], vocab: usize, n: usize) -> Vec<u32> {
    let mut counts = vec![0u32; vocab];
    for &l in labels {
        counts[l as usize] += 1;
    }
    let mut ids: Vec<u32> = (0..vocab as u32).collect();
    ids.sort_by_key(|&i| (std::cmp::Reverse(counts[i as usize]), i));
    ids.truncate(n.min(vocab));
    ids.sort_unstable();
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_said_tokens_are_kept_in_id_order() {
        // 5 thrice, 2 twice, then 1 and 9 once each: the tie goes to the lower id.
        assert_eq!(most_said(&[5, 5, 5, 2, 2, 9, 1], 10, 3), [1, 2, 5]);
        // Unseen tokens fill up by id.
        assert_eq!(most_said(&[7], 10, 3), [0, 1, 7]);
        assert_eq!(most_said(&[], 4, 9), [0, 1, 2, 3]);
    }
}
