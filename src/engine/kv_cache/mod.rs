//! Our KV cache: per-layer K and V buffers we can measure, truncate and clear.
//!
//! Each layer holds one preallocated buffer for K and one for V, shaped
//! `(1, kv_heads, capacity, head_dim)`. Appends write into the buffer; capacity grows in
//! [`GROW_TOKENS`] steps, so a decode step never copies the whole cache (as `Tensor::cat` would).

use candle_core::{DType, Device, Result, Tensor};

/// Capacity grows in multiples of this many tokens.
pub const GROW_TOKENS: usize = 256;

#[derive(Debug, Clone)]
struct LayerKv {
    k: Tensor,
    v: Tensor,
}

#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<LayerKv>>,
    kv_heads: usize,
    head_dim: usize,
    max_tokens: usize,
    dtype: DType,
    device: Device,
    /// Tokens held (the same for every layer once a forward pass completes).
    len: usize,
    capacity: usize,
}

impl KvCache {
    pub fn new(
        layers: usize,
        kv_heads: usize,
        head_dim: usize,
        max_tokens: usize,
        dtype: DType,
        device: &Device,
    ) -> Self {
        Self {
            layers: vec![None; layers],
            kv_heads,
            head_dim,
            max_tokens,
            dtype,
            device: device.clone(),
            len: 0,
            capacity: 0,
        }
    }

    /// Tokens held.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Bytes per token held, over all layers: 2 × layers × KV heads × head dim × dtype bytes.
    pub fn bytes_per_token(&self) -> u64 {
        let value = self.dtype.size_in_bytes() as f64;
        crate::stats::kv_bytes(self.layers.len(), self.kv_heads, self.head_dim, value, 1, 1) as u64
    }

    /// Bytes of the K and V entries of the tokens held.
    pub fn bytes(&self) -> u64 {
        self.len as u64 * self.bytes_per_token()
    }

    /// Bytes allocated for the buffers (held tokens plus room to grow), measured on the tensors.
    pub fn reserved_bytes(&self) -> u64 {
        self.layers
            .iter()
            .flatten()
            .map(|l| ((l.k.elem_count() + l.v.elem_count()) * l.k.dtype().size_in_bytes()) as u64)
            .sum()
    }

    /// Keep only the first `n` tokens (speculative rollback). Does not free memory.
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }

    /// Forget every token and free the buffers.
    pub fn clear(&mut self) {
        self.len = 0;
        self.capacity = 0;
        self.layers.iter_mut().for_each(|l| *l = None);
    }

    /// Append `k`, `v` (shaped `(1, kv_heads, seq, head_dim)`) for `layer` at position [`Self::len`]
    /// and return views of all the keys and values held for it, new ones included.
    /// Call [`Self::commit`] once every layer has appended.
    pub fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let seq = k.dim(2)?;
        let end = self.len + seq;
        if end > self.max_tokens {
            candle_core::bail!(
                "KV cache full: {end} tokens exceed the context of {}",
                self.max_tokens
            )
        }
        if end > self.capacity {
            self.grow(end)?;
        }
        let entry = match &mut self.layers[layer] {
            Some(e) => e,
            slot @ None => {
                let shape = (1, self.kv_heads, self.capacity, self.head_dim);
                slot.insert(LayerKv {
                    k: Tensor::zeros(shape, self.dtype, &self.device)?,
                    v: Tensor::zeros(shape, self.dtype, &self.device)?,
                })
            }
        };
        entry
            .k
            .slice_set(&k.to_dtype(self.dtype)?.contiguous()?, 2, self.len)?;
        entry
            .v
            .slice_set(&v.to_dtype(self.dtype)?.contiguous()?, 2, self.len)?;
        Ok((entry.k.narrow(2, 0, end)?, entry.v.narrow(2, 0, end)?))
    }

    /// Record that every layer now holds `seq` more tokens.
    pub fn commit(&mut self, seq: usize) {
        self.len += seq;
    }

    /// Reallocate every layer's buffers to hold at least `needed` tokens, keeping what is held.
    fn grow(&mut self, needed: usize) -> Result<()> {
        let new_cap = needed
            .div_ceil(GROW_TOKENS)
            .saturating_mul(GROW_TOKENS)
            .min(self.max_tokens)
            .max(needed);
        let shape = (1, self.kv_heads, new_cap, self.head_dim);
        for slot in self.layers.iter_mut() {
            if let Some(old) = slot.take() {
                let k = Tensor::zeros(shape, self.dtype, &self.device)?;
                let v = Tensor::zeros(shape, self.dtype, &self.device)?;
                if self.len > 0 {
                    k.slice_set(&old.k.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                    v.slice_set(&old.v.narrow(2, 0, self.len)?.contiguous()?, 2, 0)?;
                }
                *slot = Some(LayerKv { k, v });
            }
        }
        self.capacity = new_cap;
        Ok(())
    }

    /// The K and V held for `layer` (for tests and inspection).
    pub fn layer(&self, layer: usize) -> Option<(Tensor, Tensor)> {
        let l = self.layers.get(layer)?.as_ref()?;
        Some((
            l.k.narrow(2, 0, self.len).ok()?,
            l.v.narrow(2, 0, self.len).ok()?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(cache: &mut KvCache, tokens: usize, base: f32) -> Result<()> {
        let n = 2 * tokens * 4;
        let data: Vec<f32> = (0..n).map(|i| base + i as f32).collect();
        let k = Tensor::from_vec(data.clone(), (1, 2, tokens, 4), &Device::Cpu)?;
        for layer in 0..3 {
            cache.append(layer, &k, &k)?;
        }
        cache.commit(tokens);
        Ok(())
    }

    #[test]
    fn bytes_follow_the_formula_and_reserved_matches_storage() -> Result<()> {
        let mut c = KvCache::new(3, 2, 4, 1000, DType::F32, &Device::Cpu);
        assert_eq!(c.bytes_per_token(), 2 * 3 * 2 * 4 * 4);
        filled(&mut c, 5, 0.0)?;
        assert_eq!(c.len(), 5);
        assert_eq!(c.bytes(), 5 * c.bytes_per_token());
        // 3 layers × (K + V) × 2 heads × 256 slots × 4 dims × 4 bytes.
        assert_eq!(c.reserved_bytes(), 3 * 2 * 2 * 256 * 4 * 4);
        filled(&mut c, 300, 1.0)?;
        assert_eq!(c.len(), 305);
        assert_eq!(c.reserved_bytes(), 3 * 2 * 2 * 512 * 4 * 4);
        c.clear();
        assert_eq!((c.len(), c.bytes(), c.reserved_bytes()), (0, 0, 0));
        Ok(())
    }

    #[test]
    fn growth_keeps_contents_and_truncate_rolls_back() -> Result<()> {
        let mut c = KvCache::new(3, 2, 4, 1000, DType::F32, &Device::Cpu);
        filled(&mut c, 250, 0.0)?;
        let (before, _) = c.layer(1).unwrap();
        let before: Vec<f32> = before.flatten_all()?.to_vec1()?;
        filled(&mut c, 10, 5000.0)?; // crosses the 256-token boundary
        let (after, _) = c.layer(1).unwrap();
        let after_prefix: Vec<f32> = after.narrow(2, 0, 250)?.flatten_all()?.to_vec1()?;
        assert_eq!(before, after_prefix);
        c.truncate(100);
        assert_eq!(c.len(), 100);
        assert_eq!(c.layer(0).unwrap().0.dim(2)?, 100);
        Ok(())
    }

    #[test]
    fn refuses_to_pass_the_context() -> Result<()> {
        let mut c = KvCache::new(3, 2, 4, 8, DType::F32, &Device::Cpu);
        filled(&mut c, 8, 0.0)?;
        let k = Tensor::zeros((1, 2, 1, 4), DType::F32, &Device::Cpu)?;
        assert!(c.append(0, &k, &k).is_err());
        Ok(())
    }
}
