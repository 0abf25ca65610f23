//! Our forward pass over GGUF weights: embeddings, RMSNorm, RoPE, grouped-query attention with a
//! causal mask, SwiGLU MLP and the output head.
//!
//! The model is immutable; all state lives in the [`KvCache`] passed in, so one set of weights can
//! serve several caches (a target and its own shallow draft). A forward pass can stop after the
//! first L layers and can return logits for every position.

use super::config::{ModelConfig, RopeStyle};
use super::kernels::{QWeight, SMALL_BATCH};
use super::kv_cache::KvCache;
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Result, Tensor, D};
use std::sync::Arc;

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position's: `(1, vocab)`.
    Last,
    /// Every position's: `(seq, vocab)` (speculative verification).
    All,
}

/// Options of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub logits: Logits,
    /// Run only this many layers before the head (self-speculative drafting); `None` runs all.
    pub layers: Option<usize>,
}

impl Forward {
    pub const LAST: Forward = Forward {
        logits: Logits::Last,
        layers: None,
    };
    pub const ALL: Forward = Forward {
        logits: Logits::All,
        layers: None,
    };
}

/// A linear layer over quantized weights, with an optional bias.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: QWeight,
    pub bias: Option<Tensor>,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub attn_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
}

#[derive(Debug, Clone)]
pub struct Model {
    pub cfg: ModelConfig,
    /// Token embeddings, kept quantized: only the rows looked up are dequantized.
    pub embed: Arc<QTensor>,
    pub layers: Vec<Layer>,
    pub norm: Tensor,
    pub head: QWeight,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

/// RoPE tables `(positions, head_dim / 2)`.
fn rope_tables(
    head_dim: usize,
    base: f32,
    positions: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv_freq: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1f32 / base.powf(i as f32 / head_dim as f32))
        .collect();
    let inv_freq = Tensor::new(inv_freq.as_slice(), device)?;
    let pos = Tensor::arange(0, positions as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((positions, 1))?;
    let angles = pos.matmul(&inv_freq.reshape((1, head_dim / 2))?)?;
    Ok((angles.cos()?, angles.sin()?))
}

/// Additive causal mask for `seq` new rows at position `pos`, repeated for `reps` query heads
/// that share a KV head: `(reps × seq, pos + seq)`, 0 where a row may attend, -inf elsewhere.
fn causal_mask(seq: usize, pos: usize, reps: usize, device: &Device) -> Result<Tensor> {
    let kv_len = pos + seq;
    let mut m = Vec::with_capacity(reps * seq * kv_len);
    for _ in 0..reps {
        for i in 0..seq {
            m.extend((0..kv_len).map(|j| if j > pos + i { f32::NEG_INFINITY } else { 0.0 }));
        }
    }
    Tensor::from_vec(m, (reps * seq, kv_len), device)
}

impl Model {
    pub fn new(
        cfg: ModelConfig,
        embed: Arc<QTensor>,
        layers: Vec<Layer>,
        norm: Tensor,
        head: QWeight,
        device: &Device,
    ) -> Result<Self> {
        let (cos, sin) = rope_tables(cfg.head_dim, cfg.rope_base, cfg.context_length, device)?;
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            head,
            cos,
            sin,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same model with other matrices (a requantised variant); norms, biases and the RoPE
    /// tables are shared.
    pub fn with_weights(&self, embed: Arc<QTensor>, layers: Vec<Layer>, head: QWeight) -> Self {
        Self {
            embed,
            layers,
            head,
            ..self.clone()
        }
    }

    /// A fresh, empty KV cache sized for this model's context.
    pub fn new_cache(&self, dtype: DType) -> KvCache {
        let c = &self.cfg;
        KvCache::new(
            c.layers,
            c.kv_heads,
            c.head_dim,
            c.context_length,
            dtype,
            &self.device,
        )
    }

    /// Run `tokens` after what `cache` holds; the cache grows by `tokens.len()`.
    /// Returns f32 logits, `(1, vocab)` or `(seq, vocab)` as `opts.logits` asks.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, opts: Forward) -> Result<Tensor> {
        let seq = tokens.len();
        if seq == 0 {
            candle_core::bail!("forward pass over no tokens")
        }
        let pos = cache.len();
        if pos + seq > self.cfg.context_length {
            candle_core::bail!(
                "{} tokens exceed the context of {}",
                pos + seq,
                self.cfg.context_length
            )
        }
        let ids = Tensor::new(tokens, &self.device)?;
        let mut h = self.embed.embedding(&ids)?.unsqueeze(0)?; // (1, seq, hidden)
        let reps = self.cfg.heads / self.cfg.kv_heads;
        // Short batches (speculative verification) attend row by row, exactly as decode does.
        let mask = if seq > SMALL_BATCH {
            Some(causal_mask(seq, pos, reps, &self.device)?)
        } else {
            None
        };
        let cos = self.cos.narrow(0, pos, seq)?;
        let sin = self.sin.narrow(0, pos, seq)?;
        let n_layers = opts
            .layers
            .unwrap_or(self.layers.len())
            .min(self.layers.len());
        for (i, layer) in self.layers[..n_layers].iter().enumerate() {
            super::interrupt::check()?;
            let x = candle_nn::ops::rms_norm(&h, &layer.attn_norm, self.cfg.rms_eps as f32)?;
            let attn = self.attention(i, layer, &x, cache, mask.as_ref(), &cos, &sin)?;
            h = (attn + h)?;
            let x = candle_nn::ops::rms_norm(&h, &layer.ffn_norm, self.cfg.rms_eps as f32)?;
            let mlp = layer.down.forward(
                &(candle_nn::ops::silu(&layer.gate.forward(&x)?)? * layer.up.forward(&x)?)?,
            )?;
            h = (mlp + h)?;
        }
        // A shallow (draft) pass leaves the deeper layers' caches behind; the cache length is
        // the same for every layer it touched.
        cache.commit(seq);
        let h = h.squeeze(0)?;
        let h = match opts.logits {
            Logits::Last => h.narrow(0, seq - 1, 1)?,
            Logits::All => h,
        };
        let h = candle_nn::ops::rms_norm(&h, &self.norm, self.cfg.rms_eps as f32)?;
        self.head.forward(&h)
    }

    #[allow(clippy::too_many_arguments)]
    fn attention(
        &self,
        index: usize,
        layer: &Layer,
        x: &Tensor,
        cache: &mut KvCache,
        mask: Option<&Tensor>,
        cos: &Tensor,
        sin: &Tensor,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let (_, seq, _) = x.dims3()?;
        let heads = |t: Tensor, n: usize| {
            t.reshape((1, seq, n, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = heads(layer.q.forward(x)?, c.heads)?;
        let k = heads(layer.k.forward(x)?, c.kv_heads)?;
        let v = heads(layer.v.forward(x)?, c.kv_heads)?;
        let rope = match c.rope_style {
            RopeStyle::Halves => candle_nn::rotary_emb::rope,
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i,
        };
        let q = rope(&q, cos, sin)?;
        let k = rope(&k, cos, sin)?;
        let (k, v) = cache.append(index, &k, &v)?;
        // A half-width cache halves the bytes held; attention itself runs in f32.
        let (k, v) = if k.dtype() == q.dtype() {
            (k, v)
        } else {
            (k.to_dtype(q.dtype())?, v.to_dtype(q.dtype())?)
        };
        let scale = 1.0 / (c.head_dim as f64).sqrt();
        // Decode and verification: our own attention, read in place from the cache.
        if seq <= SMALL_BATCH {
            if let Some(y) = super::attention::attend(&q, &k, &v, scale as f32)? {
                return layer.o.forward(&y);
            }
        }
        // Grouped-query attention without copying K and V: the `reps` query heads that share a KV
        // head are stacked as rows, (1, kv_heads, reps × seq, head_dim).
        let reps = c.heads / c.kv_heads;
        let attend =
            |q: &Tensor, k: &Tensor, v: &Tensor, mask: Option<&Tensor>| -> Result<Tensor> {
                let att = (q.matmul(&k.t()?)? * scale)?;
                let att = match mask {
                    Some(m) => att.broadcast_add(m)?,
                    None => att,
                };
                candle_nn::ops::softmax_last_dim(&att)?.matmul(v)
            };
        let y = if seq == 1 || seq > SMALL_BATCH {
            let q = q.reshape((1, c.kv_heads, reps * seq, c.head_dim))?;
            attend(&q, &k, &v, mask)? // (1, kv_heads, reps × seq, head_dim)
        } else {
            // Each row sees exactly the keys a one-token decode step at its position would see,
            // through the same shapes, so its result is bitwise the decode step's.
            let pos = k.dim(2)? - seq;
            let rows = (0..seq)
                .map(|i| {
                    let q = q.narrow(2, i, 1)?.contiguous()?;
                    let q = q.reshape((1, c.kv_heads, reps, c.head_dim))?;
                    let y = attend(
                        &q,
                        &k.narrow(2, 0, pos + i + 1)?,
                        &v.narrow(2, 0, pos + i + 1)?,
                        None,
                    )?;
                    y.reshape((1, c.heads, 1, c.head_dim))
                })
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&rows, 2)?
        };
        let y = y
            .reshape((1, c.heads, seq, c.head_dim))?
            .transpose(1, 2)?
            .reshape((1, seq, c.heads * c.head_dim))?;
        layer.o.forward(&y)
    }

    /// Bytes of every weight held in memory.
    pub fn weight_bytes(&self) -> u64 {
        fn qm(m: &QWeight) -> u64 {
            m.bytes()
        }
        fn tb(t: &Tensor) -> u64 {
            (t.elem_count() * t.dtype().size_in_bytes()) as u64
        }
        fn lin(l: &Linear) -> u64 {
            qm(&l.weight) + l.bias.as_ref().map(tb).unwrap_or(0)
        }
        let tied = self.head.shares(&self.embed);
        let mut total = self.embed.storage_size_in_bytes() as u64 + tb(&self.norm);
        if !tied {
            total += qm(&self.head);
        }
        for l in &self.layers {
            total += tb(&l.attn_norm) + tb(&l.ffn_norm);
            total += [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                .into_iter()
                .map(lin)
                .sum::<u64>();
        }
        total
    }

    /// Bytes of weights one decode step reads: every matrix once, but of the token embeddings only
    /// the row looked up, unless the head is tied to them (then the head reads them all).
    pub fn bytes_read_per_token(&self) -> u64 {
        let all = self.weight_bytes();
        if self.head.shares(&self.embed) {
            return all;
        }
        let embed = self.embed.storage_size_in_bytes() as u64;
        let rows = self
            .embed
            .shape()
            .dims()
            .first()
            .copied()
            .unwrap_or(1)
            .max(1) as u64;
        all - embed + embed / rows
    }

    /// Last-position logits as a vector (the common decode case).
    pub fn last_logits(logits: &Tensor) -> Result<Vec<f32>> {
        let l = logits.to_dtype(DType::F32)?;
        let n = l.dim(0)?;
        l.get(n - 1)?.to_vec1()
    }

    /// Index of the largest logit in each row.
    pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
        logits.argmax(D::Minus1)?.to_vec1()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_lets_each_row_see_the_past_only() -> Result<()> {
        let m: Vec<Vec<f32>> = causal_mask(2, 3, 2, &Device::Cpu)?.to_vec2()?;
        assert_eq!(m.len(), 4);
        for (r, row) in m.iter().enumerate() {
            let i = r % 2;
            for (j, v) in row.iter().enumerate() {
                assert_eq!(*v == 0.0, j <= 3 + i, "row {r} col {j}");
            }
        }
        Ok(())
    }
}
