//! Attention of a span through candle's tensor products, from keys and values gathered out of the
//! pool: the reference for prefill (with a causal mask, and a window in sliding-window layers;
//! [`super::tiled`] is the default on the CPU), other devices, and decode rows over a
//! half-width cache. Decode and verification rows on the CPU take [`super::attention`] instead.

use super::kernels::SMALL_BATCH;
use super::kv_cache::{BlockTable, KvPool};
use super::model::Model;
use super::step::Span;
use candle_core::{Device, Result, Tensor};

/// Additive causal mask for `seq` new rows at position `pos`, repeated for `reps` query heads
/// that share a KV head: `(reps × seq, pos + seq)`, 0 where a row may attend, -inf elsewhere.
/// In a sliding-window layer a row sees only the last `window` positions, itself included (as
/// llama.cpp and Hugging Face count it).
fn causal_mask(
    seq: usize,
    pos: usize,
    reps: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let kv_len = pos + seq;
    let window = window.unwrap_or(usize::MAX);
    let mut m = Vec::with_capacity(reps * seq * kv_len);
    for _ in 0..reps {
        for i in 0..seq {
            let row = pos + i;
            m.extend((0..kv_len).map(|j| match j > row || row - j >= window {
                true => f32::NEG_INFINITY,
                false => 0.0,
            }));
        }
    }
    Tensor::from_vec(m, (reps * seq, kv_len), device)
}

impl Model {
    /// Attention of span `s`'s rows of `q` over its keys and values gathered from the pool:
    /// candle's products (prefill, other devices, a half-width cache). `(1, len, heads × head_dim)`.
    pub(super) fn dense_attention(
        &self,
        index: usize,
        q: &Tensor,
        pool: &KvPool,
        table: &BlockTable,
        s: &Span,
    ) -> Result<Tensor> {
        let c = &self.cfg;
        let seq = s.len;
        let q = match q.dim(2)? == seq {
            true => q.clone(),
            false => q.narrow(2, s.row, seq)?.contiguous()?,
        };
        let (k, v) = pool.gather(index, table, s.pos + seq)?;
        // A half-width cache halves the bytes held; attention itself runs in f32.
        let (k, v) = (k.to_dtype(q.dtype())?, v.to_dtype(q.dtype())?);
        let scale = c.attn_scale as f64;
        let window = c.window(index);
        if seq <= SMALL_BATCH {
            if let Some(y) = super::attention::attend(&q, &k, &v, scale as f32, window)? {
                return Ok(y);
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
            let mask = match seq > SMALL_BATCH {
                true => Some(causal_mask(seq, s.pos, reps, window, self.device())?),
                false => None,
            };
            let q = q.reshape((1, c.kv_heads, reps * seq, c.head_dim))?;
            // One row in a sliding-window layer sees the window's keys only.
            let n = s.pos + seq;
            let from = match (seq, window) {
                (1, Some(w)) => n.saturating_sub(w),
                _ => 0,
            };
            let (k, v) = (k.narrow(2, from, n - from)?, v.narrow(2, from, n - from)?);
            attend(&q, &k, &v, mask.as_ref())? // (1, kv_heads, reps × seq, head_dim)
        } else {
            // Each row sees exactly the keys a one-token decode step at its position would see,
            // through the same shapes, so its result is bitwise the decode step's.
            let rows = (0..seq)
                .map(|i| {
                    let q = q.narrow(2, i, 1)?.contiguous()?;
                    let q = q.reshape((1, c.kv_heads, reps, c.head_dim))?;
                    let n = s.pos + i + 1;
                    let from = window.map_or(0, |w| n.saturating_sub(w));
                    let (k, v) = (k.narrow(2, from, n - from)?, v.narrow(2, from, n - from)?);
                    let y = attend(&q, &k, &v, None)?;
                    y.reshape((1, c.heads, 1, c.head_dim))
                })
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&rows, 2)?
        };
        y.reshape((1, c.heads, seq, c.head_dim))?
            .transpose(1, 2)?
            .reshape((1, seq, c.heads * c.head_dim))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_lets_each_row_see_the_past_only() -> Result<()> {
        let m: Vec<Vec<f32>> = causal_mask(2, 3, 2, None, &Device::Cpu)?.to_vec2()?;
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
