//! Quantized matrix products on the CPU: the [`QWeight`] dispatch between candle's products and
//! our own kernels ([`crate::engine::kernels::int8`] for Q4_0/Q5_0/Q8_0, [`crate::engine::kernels::q5_1`],
//! [`crate::engine::kernels::q4k`], [`crate::engine::kernels::q6k`], [`crate::engine::kernels::ktiles`] and candle's own
//! products). Every product keeps each row of a small batch bitwise what it would be alone (the batch
//! invariance speculative verification needs).

pub mod int8;
pub mod ktiles;
pub mod q4k;
pub mod q5_0;
pub mod q5_1;
pub mod q6k;
pub mod q8k;

/// Values per block of Q5_0 and Q8_0.
pub const QK: usize = 32;

/// What the kernels' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use candle_core::quantized::QMatMul;
    use candle_core::{Module, Tensor};
    use rand::{Rng, SeedableRng};

    /// `n` values in -1..1 from `seed`.
    pub fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
    }

    /// A K-quant SIMD body: `rows` weight rows by `m` activation rows of `kb` blocks.
    pub type KBody<B> = unsafe fn(
        &[B],
        usize,
        &[candle_core::quantized::k_quants::BlockQ8K],
        usize,
        usize,
        &mut [f32],
    );

    /// A K-quant product: weights, `n`, `k`, activations, `m`.
    pub type KMatmul<B> = fn(&[B], usize, usize, &[f32], usize) -> Vec<f32>;

    /// A K-quant product's dispatch (`matmul`) and each SIMD body this CPU has (`bodies`,
    /// named), against candle's one-row `vec_dot`, bit for bit, row by row, for batches of 1
    /// to 17 rows of a random `n × 768` matrix.
    pub fn kquant_rows_are_candles<
        B: candle_core::quantized::k_quants::GgmlType<
                VecDotType = candle_core::quantized::k_quants::BlockQ8K,
            > + Clone,
    >(
        n: usize,
        seed: u64,
        matmul: KMatmul<B>,
        bodies: &[(&str, KBody<B>)],
    ) {
        use candle_core::quantized::k_quants::{BlockQ8K, GgmlType};
        let (k, kb) = (768, 3);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let wf: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let mut w = vec![B::zeros(); n * kb];
        B::from_float(&wf, &mut w);
        let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for m in [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let mut xq = vec![BlockQ8K::zeros(); m * kb];
            BlockQ8K::from_float(&x, &mut xq);
            let theirs: Vec<u32> = (0..m * n)
                .map(|o| {
                    let (i, j) = (o / n, o % n);
                    B::vec_dot(k, &w[j * kb..(j + 1) * kb], &xq[i * kb..(i + 1) * kb]).to_bits()
                })
                .collect();
            assert_eq!(bits(matmul(&w, n, k, &x, m)), theirs, "dispatch, m {m}");
            for (name, body) in bodies {
                let mut out = vec![0f32; m * n];
                // SAFETY: the caller lists only bodies whose features this CPU has.
                unsafe { body(&w, n, &xq, m, kb, &mut out) };
                assert_eq!(bits(out), theirs, "{name}, m {m}");
            }
        }
    }

    /// candle's own product, as a flat vector.
    pub fn candle_forward(m: &QMatMul, x: &Tensor) -> Vec<f32> {
        m.forward(x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{candle_forward, random};
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Tensor};

    fn qweight(dtype: GgmlDType, n: usize, k: usize, seed: u64) -> QWeight {
        let w = Tensor::from_vec(random(n * k, seed), (n, k), &Device::Cpu).unwrap();
        QWeight::new(std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap())).unwrap()
    }

    fn rows_of(w: &QWeight, x: &[f32], m: usize, k: usize) -> Vec<f32> {
        let xt = Tensor::from_vec(x.to_vec(), (1, m, k), &Device::Cpu).unwrap();
        w.forward(&xt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    #[test]
    fn compact_products_match_candles_one_row_product() {
        let (n, k) = (64, 512);
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let ours = qweight(dtype, n, k, 3);
            assert!(matches!(ours, QWeight::Compact { .. }), "{dtype:?}");
            let QWeight::Compact { t, .. } = &ours else {
                unreachable!()
            };
            let theirs = QMatMul::from_arc(t.clone()).unwrap();
            let x = random(k, 4);
            let xt = Tensor::from_vec(x.clone(), (1, k), &Device::Cpu).unwrap();
            let a = rows_of(&ours, &x, 1, k);
            let b = candle_forward(&theirs, &xt);
            let worst = a
                .iter()
                .zip(&b)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-3, "{dtype:?}: max difference {worst}");
        }
    }

    /// The reference engine multiplies with candle's products: ours give the same bits at prefill
    /// (a long batch), and at decode (one row) for every type but Q5_0.
    #[test]
    fn products_are_bitwise_candles_at_decode_and_prefill() {
        // K-quant decode reads the compact blocks, which candle does only where it does not
        // repack (a number of rows that is not a multiple of 16): compared there.
        for (n, k) in [(40, 512), (48, 256), (24, 128)] {
            for dtype in [
                GgmlDType::Q4_0,
                GgmlDType::Q5_0,
                GgmlDType::Q5_1,
                GgmlDType::Q8_0,
                GgmlDType::Q4K,
                GgmlDType::Q6K,
            ] {
                let kquant = matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K);
                if kquant && (n % 16 == 0 || k % 256 != 0) {
                    continue;
                }
                // Q5_0 decode sums in lanes: compared at prefill only.
                let lengths: &[usize] = if dtype == GgmlDType::Q5_0 {
                    &[SMALL_BATCH + 3]
                } else {
                    &[1, SMALL_BATCH + 3]
                };
                let w = Tensor::from_vec(random(n * k, 21), (n, k), &Device::Cpu).unwrap();
                let t = std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap());
                let ours = QWeight::new(t.clone()).unwrap();
                let theirs = QMatMul::from_arc(t).unwrap();
                for &m in lengths {
                    let x = random(m * k, 22);
                    let xt = Tensor::from_vec(x.clone(), (1, m, k), &Device::Cpu).unwrap();
                    let a: Vec<u32> = rows_of(&ours, &x, m, k)
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    let b: Vec<u32> = candle_forward(&theirs, &xt)
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    assert_eq!(a, b, "{dtype:?} {n}x{k} m={m}");
                }
            }
        }
    }

    #[test]
    fn every_weight_type_is_batch_invariant_up_to_small_batch() {
        let (n, k) = (64, 512);
        for dtype in [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::Q4_0,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let w = qweight(dtype, n, k, 7);
            for m in [2, 5, 9, SMALL_BATCH] {
                let x = random(m * k, 10 + m as u64);
                let batch = rows_of(&w, &x, m, k);
                for i in 0..m {
                    let alone = rows_of(&w, &x[i * k..(i + 1) * k], 1, k);
                    assert_eq!(
                        &batch[i * n..(i + 1) * n],
                        alone.as_slice(),
                        "{dtype:?} m={m} row {i}"
                    );
                }
            }
        }
    }
}

/// How many of `left` activation rows the next group takes, groups holding at most `most`
/// and as even as can be (9 rows by 8: 5 then 4, not 8 then 1, which would unpack every weight
/// block twice for little work).
pub(crate) fn even_group(left: usize, most: usize) -> usize {
    left.div_ceil(left.div_ceil(most))
}

/// The row loop the K-quant SIMD kernels share: each of `rows` weight rows against the `m`
/// activation rows in groups of at most `most` ([`even_group`]). `group(j, i, take, res)` dots
/// weight row `j` with activation rows `i..i + take` into `res` and returns `take`; results land
/// in `out[i * rows + j]`. Inlined, with `group`, into each kernel's `#[target_feature]`
/// function, so the SIMD bodies compile with its features: the closure must be
/// `#[inline(always)]` too (without it, its bodies' intrinsics became calls and decode ran at
/// 1 tok/s).
#[inline(always)]
pub(crate) fn row_groups(
    rows: usize,
    m: usize,
    most: usize,
    out: &mut [f32],
    mut group: impl FnMut(usize, usize, usize, &mut [f32; 8]) -> usize,
) {
    assert!(out.len() >= m * rows, "row groups' output");
    let mut res = [0f32; 8];
    for j in 0..rows {
        let mut i = 0;
        while i < m {
            let r = group(j, i, even_group(m - i, most), &mut res);
            for (o, v) in res[..r].iter().enumerate() {
                out[(i + o) * rows + j] = *v;
            }
            i += r;
        }
    }
}

/// Weight bytes one thread takes from the shared cursor at a time in [`parallel`].
const GRAIN_BYTES: usize = 1024 * 1024;

/// Run `f` over `0..n_items` (items of about `item_bytes` of weights each) on candle's barrier
/// pool: every thread takes the next grain from a shared cursor until none is left. A grain
/// reads about [`GRAIN_BYTES`] of weights, so the threads finish within microseconds of each
/// other; candle's own `execute_chunked` hands out an eighth of a thread's share at a time, up
/// to 12 MB of a 1.5B model's head, and the other thread waited on that last grab.
pub(crate) fn parallel(
    n_items: usize,
    item_bytes: usize,
    f: impl Fn(std::ops::Range<usize>) + Sync,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if n_items == 0 {
        return;
    }
    let grain = (GRAIN_BYTES / item_bytes.max(1)).clamp(1, n_items);
    // From one of the pool's own threads a nested call would wait on itself: run inline.
    let in_pool = || {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("candle-bp-"))
    };
    if grain == n_items || in_pool() {
        return f(0..n_items);
    }
    let cursor = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| loop {
        let start = cursor.fetch_add(grain, Ordering::Relaxed);
        if start >= n_items {
            break;
        }
        f(start..n_items.min(start + grain));
    });
}

/// Most activation rows a product computes row by row, exactly as a one-row (decode) product:
/// a speculative verification pass of K + 1 ≤ 17 positions then gives every position the very
/// logits a decode step would (batch invariance). Longer batches (prefill) take candle's tiles.
pub const SMALL_BATCH: usize = 17;

/// The blocks of a CPU QTensor's storage as `T`.
fn blocks_of<T>(bytes: &[u8]) -> &[T] {
    assert_eq!(bytes.as_ptr() as usize % std::mem::align_of::<T>(), 0);
    // SAFETY: the bytes are a QTensor's storage, allocated as a Vec of these repr(C) blocks.
    unsafe {
        std::slice::from_raw_parts(
            bytes.as_ptr() as *const T,
            bytes.len() / std::mem::size_of::<T>(),
        )
    }
}

/// A weight matrix: candle's quantized matmul, or our kernels where candle's CPU backend is slow
/// or where its batched products would differ from its one-row product.
#[derive(Debug, Clone)]
pub enum QWeight {
    /// Types whose candle products are batch-invariant, float weights (one row at a time in small
    /// batches) and every non-CPU device.
    Candle(candle_core::quantized::QMatMul),
    /// Q4_0, Q5_0, Q5_1 and Q8_0 on the CPU. Long batches (prefill) are summed in candle's own
    /// order, so prompt logits match the reference engine (candle-transformers on the same file)
    /// bit for bit: Q5_0 by [`crate::engine::kernels::q5_0::matmul_q5_0`], Q4_0 and Q8_0 by candle's
    /// product. Up to [`SMALL_BATCH`] rows (decode, verification) go through
    /// [`crate::engine::kernels::int8::matmul`], batch-invariant: for Q4_0 and Q8_0 that is the order of
    /// candle's AVX one-row products; for Q5_0 it sums in SIMD lanes where candle's scalar product
    /// sums block by block (2.5× the decode speed; decode logits then differ from the reference's
    /// in the last bits, as its repacked K-quant decode differs from ours). Q5_1:
    /// [`crate::engine::kernels::q5_1::matmul_q5_1`], candle's order at every length.
    Blocks {
        mm: candle_core::quantized::QMatMul,
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
    },
    /// Q4_K and Q6_K on the CPU: up to [`SMALL_BATCH`] rows go through our products on the
    /// compact blocks (Q4_K: [`crate::engine::kernels::q4k::matmul_q4k`], Q6_K:
    /// [`crate::engine::kernels::q6k::matmul_q6k`]), as llama.cpp's decode reads them; longer batches
    /// through [`crate::engine::kernels::ktiles::matmul`] (candle's tiled arithmetic, bitwise, without
    /// the tiles it keeps), or candle's own product where candle does not tile.
    Compact {
        mm: candle_core::quantized::QMatMul,
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
    },
}

/// Whether candle's CPU backend multiplies this Q8_0 matrix through its own repacked tiles
/// rather than its one-row dot product. Those stay with candle's product, so that logits stay
/// bitwise those of the reference engine, which multiplies through candle.
fn candle_repacks_q8_0(n: usize, k: usize) -> bool {
    use crate::engine::kernels::ktiles::{candle_level, candle_tile_shape, CandleLevel};
    matches!(
        candle_level(),
        Some(CandleLevel::Avx512Vnni | CandleLevel::AvxVnni)
    ) && candle_tile_shape(n, k)
}

/// Activations as a flat f32 vector, the number of rows, and the output shape for `n` columns.
fn flat_rows(
    x: &candle_core::Tensor,
    k: usize,
    n: usize,
) -> candle_core::Result<(Vec<f32>, usize, Vec<usize>)> {
    let mut shape = x.dims().to_vec();
    *shape.last_mut().expect("a matrix input") = n;
    let xs = x
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let m = xs.len() / k;
    Ok((xs, m, shape))
}

impl QWeight {
    pub fn new(t: std::sync::Arc<candle_core::quantized::QTensor>) -> candle_core::Result<Self> {
        use candle_core::quantized::GgmlDType;
        let (n, k) = t.shape().dims2()?;
        if matches!(
            t.dtype(),
            GgmlDType::Q4_0 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_0
        ) && !(t.dtype() == GgmlDType::Q8_0 && candle_repacks_q8_0(n, k))
            && t.device().is_cpu()
            && k.is_multiple_of(QK)
        {
            let mm = candle_core::quantized::QMatMul::from_arc(t.clone())?;
            return Ok(Self::Blocks { mm, t, n, k });
        }
        if matches!(t.dtype(), GgmlDType::Q4K | GgmlDType::Q6K)
            && t.device().is_cpu()
            && k % 256 == 0
        {
            let mm = candle_core::quantized::QMatMul::from_arc(t.clone())?;
            return Ok(Self::Compact { mm, t, n, k });
        }
        Ok(Self::Candle(candle_core::quantized::QMatMul::from_arc(t)?))
    }

    /// `x` (`(…, k)`) times the transposed weights: `(…, n)`. Batches of up to [`SMALL_BATCH`] rows
    /// are batch-invariant: each row comes out bitwise as it would alone.
    pub fn forward(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K};
        use candle_core::quantized::{GgmlDType, QMatMul};
        use candle_core::{Module, Tensor};
        match self {
            Self::Candle(m @ (QMatMul::Tensor(w) | QMatMul::TensorF16(w))) => {
                let k = w.dim(1)?;
                let rows = x.elem_count() / k;
                if rows <= 1 || rows > SMALL_BATCH {
                    return m.forward(x);
                }
                // Float products (gemm) pick their blocking by shape: one row at a time instead.
                let flat = x.reshape((rows, k))?;
                let outs = (0..rows)
                    .map(|i| m.forward(&flat.narrow(0, i, 1)?))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let mut shape = x.dims().to_vec();
                *shape.last_mut().expect("a matrix input") = w.dim(0)?;
                Tensor::cat(&outs, 0)?.reshape(shape)
            }
            Self::Candle(m) => m.forward(x),
            Self::Compact { mm, t, n, k } => {
                use crate::engine::kernels::ktiles::{applies, matmul, KFormat};
                if x.elem_count() / k > SMALL_BATCH {
                    if !applies(*n, *k) {
                        return mm.forward(x);
                    }
                    // candle's tiled arithmetic, without the tiles kept.
                    let (xs, m, shape) = flat_rows(x, *k, *n)?;
                    let format = match t.dtype() {
                        GgmlDType::Q4K => KFormat::Q4K,
                        _ => KFormat::Q6K,
                    };
                    let out = matmul(format, &t.data()?, *n, *k, &xs, m);
                    return Tensor::from_vec(out, shape, x.device());
                }
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let data = t.data()?;
                let out = match t.dtype() {
                    GgmlDType::Q4K => crate::engine::kernels::q4k::matmul_q4k(
                        blocks_of::<BlockQ4K>(&data),
                        *n,
                        *k,
                        &xs,
                        m,
                    ),
                    GgmlDType::Q6K => crate::engine::kernels::q6k::matmul_q6k(
                        blocks_of::<BlockQ6K>(&data),
                        *n,
                        *k,
                        &xs,
                        m,
                    ),
                    other => candle_core::bail!("no compact product for {other:?}"),
                };
                Tensor::from_vec(out, shape, x.device())
            }
            Self::Blocks { mm, t, n, k } => {
                use crate::engine::kernels::int8::{matmul, Format};
                let long = x.elem_count() / k > SMALL_BATCH;
                if long && matches!(t.dtype(), GgmlDType::Q4_0 | GgmlDType::Q8_0) {
                    return mm.forward(x);
                }
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let data = t.data()?;
                let out = match t.dtype() {
                    GgmlDType::Q5_1 => {
                        crate::engine::kernels::q5_1::matmul_q5_1(&data, *n, *k, &xs, m)
                    }
                    GgmlDType::Q4_0 => matmul(Format::Q4_0, &data, *n, *k, &xs, m),
                    GgmlDType::Q5_0 if long => {
                        crate::engine::kernels::q5_0::matmul_q5_0(&data, *n, *k, &xs, m)
                    }
                    GgmlDType::Q5_0 => matmul(Format::Q5_0, &data, *n, *k, &xs, m),
                    GgmlDType::Q8_0 => matmul(Format::Q8_0, &data, *n, *k, &xs, m),
                    other => candle_core::bail!("no block product for {other:?}"),
                };
                Tensor::from_vec(out, shape, x.device())
            }
        }
    }

    /// Bytes held for the weights.
    pub fn bytes(&self) -> u64 {
        use candle_core::quantized::QMatMul;
        match self {
            Self::Blocks { t, .. }
            | Self::Compact { t, .. }
            | Self::Candle(QMatMul::QTensor(t)) => t.storage_size_in_bytes() as u64,
            Self::Candle(QMatMul::Tensor(t)) | Self::Candle(QMatMul::TensorF16(t)) => {
                (t.elem_count() * t.dtype().size_in_bytes()) as u64
            }
        }
    }

    /// Whether these are the very weights of `other` (a head tied to the embeddings).
    pub fn shares(&self, other: &std::sync::Arc<candle_core::quantized::QTensor>) -> bool {
        match self {
            Self::Blocks { t, .. }
            | Self::Compact { t, .. }
            | Self::Candle(candle_core::quantized::QMatMul::QTensor(t)) => {
                std::sync::Arc::ptr_eq(t, other)
            }
            _ => false,
        }
    }
}
