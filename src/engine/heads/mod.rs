//! Draft heads trained on a target: Medusa-lite and EAGLE-lite.
//!
//! Both read the target's last hidden state (after the final norm, what the output head
//! multiplies) and share the target's output head, so they cost a few small matrices plus the
//! head's product, not a second model.
//!
//! - **Medusa-lite**: N residual blocks `z = h + SiLU(h Wᵀ + b)`, block `k` predicting the token
//!   `k + 1` places after the one `h` predicted. All N drafts come from one hidden state, their
//!   logits from one product of N rows.
//! - **EAGLE-lite**: one block that takes the hidden state and the next token's embedding and
//!   predicts the next hidden state, `ĥ = x + SiLU(x Wᵀ + b)` with `x = [h, norm(e)] Fᵀ + c`. It
//!   drafts autoregressively: each drafted token's embedding and the predicted state give the
//!   next.
//!
//! They are trained inside labtui ([`train`]) by self-distillation on the target's own
//! predictions, and saved beside the model ([`file`]).

pub mod corpus;
pub mod features;
pub mod file;
pub mod train;
pub mod vocab;

use super::model::Model;
use super::sampling::Sampler;
use super::spec::draft::Draft;
use super::spec::tree::Candidates;
use candle_core::{DType, Device, Result, Tensor, D};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Heads ready to draft for a target: their weights, and the draft vocabulary they score over
/// (`None`: the target's whole head).
#[derive(Debug, Clone)]
pub struct Drafting {
    pub heads: Heads,
    pub vocab: Option<vocab::DraftVocab>,
}

impl From<Heads> for Drafting {
    fn from(heads: Heads) -> Self {
        Self { heads, vocab: None }
    }
}

impl Drafting {
    pub fn kind(&self) -> HeadKind {
        self.heads.kind()
    }

    /// Logits of states `z` `(rows, hidden)`: over the draft vocabulary, or the whole head.
    pub fn score(&self, target: &Model, z: &Tensor) -> Result<Vec<Vec<f32>>> {
        match &self.vocab {
            Some(v) => v.logits(z),
            None => target.head_logits(z)?.to_vec2(),
        }
    }

    /// See [`Heads::draft`].
    pub fn draft(
        &self,
        target: &Model,
        hidden: &Tensor,
        pending: u32,
        k: usize,
        sampler: &mut Sampler,
    ) -> Result<Draft> {
        self.heads.draft(target, self, hidden, pending, k, sampler)
    }

    /// See [`Heads::candidates`].
    pub fn candidates(&self, target: &Model, hidden: &Tensor, depth: usize) -> Result<Candidates> {
        self.heads.candidates(target, self, hidden, depth)
    }
}

/// Which kind of draft head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HeadKind {
    Medusa,
    Eagle,
}

impl HeadKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Medusa => "medusa",
            Self::Eagle => "eagle",
        }
    }
}

/// `x + SiLU(x Wᵀ + b)`: a residual block on `(rows, hidden)`.
#[derive(Debug, Clone)]
pub struct ResBlock {
    pub w: Tensor,
    pub b: Tensor,
}

impl ResBlock {
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.w.t()?)?.broadcast_add(&self.b)?;
        x + candle_nn::ops::silu(&y)?
    }
}

/// The weights of a set of draft heads.
#[derive(Debug, Clone)]
pub enum Heads {
    Medusa(Vec<ResBlock>),
    Eagle {
        /// `(hidden, 2 × hidden)` and `(hidden)`: the state and the embedding, merged.
        fc: Tensor,
        fc_b: Tensor,
        block: ResBlock,
    },
}

/// `blocks`' output states for `h`, block by block: `(blocks × rows, hidden)`.
fn medusa_rows(blocks: &[ResBlock], h: &Tensor) -> Result<Tensor> {
    let zs = blocks
        .iter()
        .map(|b| b.forward(h))
        .collect::<Result<Vec<_>>>()?;
    Tensor::cat(&zs, 0)
}

/// The `n` largest entries' indices, largest first.
fn top(row: &[f32], n: usize) -> Vec<u32> {
    let mut best: Vec<u32> = Vec::with_capacity(n + 1);
    for (i, &x) in row.iter().enumerate() {
        if best.len() == n && x <= row[best[n - 1] as usize] {
            continue;
        }
        let at = best
            .iter()
            .position(|&b| x > row[b as usize])
            .unwrap_or(best.len());
        best.insert(at, i as u32);
        best.truncate(n);
    }
    best
}

/// RMS-normalised rows without a learned scale: embeddings brought to the hidden state's scale.
fn unit_rms(e: &Tensor) -> Result<Tensor> {
    let ms = e.sqr()?.mean_keepdim(D::Minus1)?;
    e.broadcast_div(&(ms + 1e-6)?.sqrt()?)
}

impl Heads {
    pub fn kind(&self) -> HeadKind {
        match self {
            Self::Medusa(_) => HeadKind::Medusa,
            Self::Eagle { .. } => HeadKind::Eagle,
        }
    }

    /// Tokens one call drafts at most: Medusa's head count; EAGLE drafts as far as asked.
    pub fn reach(&self) -> Option<usize> {
        match self {
            Self::Medusa(b) => Some(b.len()),
            Self::Eagle { .. } => None,
        }
    }

    /// Fresh heads for a `hidden`-wide model: each block starts as the identity (its W zero), so
    /// an untrained head repeats the target's own next-token guess; EAGLE's merge starts by
    /// passing the state through.
    pub fn init(kind: HeadKind, n: usize, hidden: usize, device: &Device) -> Result<Self> {
        let zeros = |dims: &[usize]| Tensor::zeros(dims, DType::F32, device);
        let block = || -> Result<ResBlock> {
            Ok(ResBlock {
                w: zeros(&[hidden, hidden])?,
                b: zeros(&[hidden])?,
            })
        };
        Ok(match kind {
            HeadKind::Medusa => {
                Self::Medusa((0..n.max(1)).map(|_| block()).collect::<Result<_>>()?)
            }
            HeadKind::Eagle => {
                let eye = Tensor::eye(hidden, DType::F32, device)?;
                Self::Eagle {
                    fc: Tensor::cat(&[&eye, &zeros(&[hidden, hidden])?], 1)?,
                    fc_b: zeros(&[hidden])?,
                    block: block()?,
                }
            }
        })
    }

    /// Medusa: every head's output state for hidden states `h` `(rows, hidden)`, head by head:
    /// `(heads × rows, hidden)`, head 0's rows first.
    pub fn medusa_states(&self, h: &Tensor) -> Result<Tensor> {
        let Self::Medusa(blocks) = self else {
            candle_core::bail!("not Medusa heads")
        };
        medusa_rows(blocks, h)
    }

    /// EAGLE: the next hidden states from states `h` and the next tokens' embeddings `e`, both
    /// `(rows, hidden)`.
    pub fn eagle_state(&self, h: &Tensor, e: &Tensor) -> Result<Tensor> {
        let Self::Eagle { fc, fc_b, block } = self else {
            candle_core::bail!("not EAGLE heads")
        };
        let u = Tensor::cat(&[h, &unit_rms(e)?], 1)?;
        let x = u.matmul(&fc.t()?)?.broadcast_add(fc_b)?;
        block.forward(&x)
    }

    /// The weights by name (the safetensors file's layout).
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut m = HashMap::new();
        match self {
            Self::Medusa(blocks) => {
                for (i, b) in blocks.iter().enumerate() {
                    m.insert(format!("medusa.{i}.w"), b.w.clone());
                    m.insert(format!("medusa.{i}.b"), b.b.clone());
                }
            }
            Self::Eagle { fc, fc_b, block } => {
                m.insert("eagle.fc.w".into(), fc.clone());
                m.insert("eagle.fc.b".into(), fc_b.clone());
                m.insert("eagle.block.w".into(), block.w.clone());
                m.insert("eagle.block.b".into(), block.b.clone());
            }
        }
        m
    }

    /// Heads of `kind` (`n` of them for Medusa) from named weights.
    pub fn from_tensors(kind: HeadKind, n: usize, mut m: HashMap<String, Tensor>) -> Result<Self> {
        let mut take = |name: String| {
            m.remove(&name)
                .ok_or_else(|| candle_core::Error::Msg(format!("the heads file has no {name}")))
        };
        Ok(match kind {
            HeadKind::Medusa => Self::Medusa(
                (0..n)
                    .map(|i| {
                        Ok(ResBlock {
                            w: take(format!("medusa.{i}.w"))?,
                            b: take(format!("medusa.{i}.b"))?,
                        })
                    })
                    .collect::<Result<_>>()?,
            ),
            HeadKind::Eagle => Self::Eagle {
                fc: take("eagle.fc.w".into())?,
                fc_b: take("eagle.fc.b".into())?,
                block: ResBlock {
                    w: take("eagle.block.w".into())?,
                    b: take("eagle.block.b".into())?,
                },
            },
        })
    }

    /// Up to `k` drafted tokens after `pending`, from `hidden` `(1, hidden)`: the target's state
    /// at the position whose logits chose `pending`. Greedy drafts when `sampler` is greedy,
    /// else drawn, with the head's distribution kept for speculative sampling.
    pub fn draft(
        &self,
        target: &Model,
        out: &Drafting,
        hidden: &Tensor,
        pending: u32,
        k: usize,
        sampler: &mut Sampler,
    ) -> Result<Draft> {
        let mut drafted = Draft::default();
        match self {
            Self::Medusa(blocks) => {
                let n = k.min(blocks.len());
                if n == 0 {
                    return Ok(drafted);
                }
                let zs = medusa_rows(&blocks[..n], hidden)?;
                for row in &out.score(target, &zs)? {
                    drafted.push_from(row, sampler);
                }
            }
            Self::Eagle { .. } => {
                let mut h = hidden.clone();
                let mut token = pending;
                for _ in 0..k {
                    let e = target.embed_tokens(&[token])?;
                    h = self.eagle_state(&h, &e)?;
                    let row = out.score(target, &h)?.swap_remove(0);
                    token = drafted.push_from(&row, sampler);
                }
            }
        }
        Ok(drafted)
    }

    /// Medusa's tree of candidates down to `depth`: each head's three likeliest tokens placed as
    /// [`Candidates::from_ranked`] says, from the target's state `hidden` `(1, hidden)`.
    pub fn candidates(
        &self,
        target: &Model,
        out: &Drafting,
        hidden: &Tensor,
        depth: usize,
    ) -> Result<Candidates> {
        let Self::Medusa(blocks) = self else {
            candle_core::bail!("only Medusa heads draft a tree")
        };
        let n = depth.min(blocks.len());
        let zs = medusa_rows(&blocks[..n], hidden)?;
        let ranked: Vec<Vec<u32>> = out.score(target, &zs)?.iter().map(|r| top(r, 3)).collect();
        Ok(Candidates::from_ranked(&ranked, n))
    }

    /// Bytes of the weights (f32).
    pub fn bytes(&self) -> u64 {
        self.tensors()
            .values()
            .map(|t| (t.elem_count() * 4) as u64)
            .sum()
    }
}
