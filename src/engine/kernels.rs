//! Quantized matrix products on the CPU: the [`QWeight`] dispatch between candle's products and
//! our own kernels ([`super::kernels_int8`] for Q4_0/Q5_0/Q8_0, [`super::kernels_q5_1`],
//! [`super::kernels_q4k`] and candle's own one-row K-quant dot products), and the helpers they
//! share. Every product keeps each row of a small batch bitwise what it would be alone (the batch
//! invariance speculative verification needs).

/// Values per block of Q5_0 and Q8_0.
pub const QK: usize = 32;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use std::arch::x86_64::*;

    /// 32 bytes, 0xFF where the matching bit of `x` is set.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn bytes_from_bits_32(x: u32) -> __m256i {
        let shuf = _mm256_set_epi64x(
            0x0303030303030303,
            0x0202020202020202,
            0x0101010101010101,
            0,
        );
        let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(x as i32), shuf);
        let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
        _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(crate) unsafe fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// f16 bits to f32 with the F16C instruction (exact, as `half` converts).
    #[inline]
    #[target_feature(enable = "f16c")]
    pub(crate) unsafe fn f16_to_f32(bits: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }
}

pub(crate) fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static AVX2: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *AVX2.get_or_init(|| is_x86_feature_detected!("avx2") && is_x86_feature_detected!("f16c"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Weight rows per parallel work item.
const TILE: usize = 16;

/// Fill the outputs of one weight row: four activation rows at a time while `four` can, the
/// rest one at a time through `one` (both compute each row to the same bits).
pub(crate) fn rows_by_four(
    outs: &mut [f32],
    four: impl Fn(usize) -> Option<[f32; 4]>,
    one: impl Fn(usize) -> f32,
) {
    let mut i = 0;
    while i + 4 <= outs.len() {
        let Some(r) = four(i) else { break };
        outs[i..i + 4].copy_from_slice(&r);
        i += 4;
    }
    for (i, o) in outs.iter_mut().enumerate().skip(i) {
        *o = one(i);
    }
}

/// `m` rows of `n` outputs, where `row(j, outs)` fills the `m` outputs of weight row `j`. Work
/// items own contiguous tiles of weight rows and run on candle's own thread pool, so our kernels
/// and candle's never compete for the cores.
pub(crate) fn by_weight_rows(
    n: usize,
    m: usize,
    row: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    // Computed as (n, m), then transposed.
    let mut out_t = vec![0f32; n * m];
    let dst = out_t.as_mut_ptr() as usize;
    let tiles = n.div_ceil(TILE);
    candle_core::utils::barrier_pool().execute_chunked(tiles, |range| {
        for t in range {
            let rows = t * TILE..((t + 1) * TILE).min(n);
            // SAFETY: tile `t` owns out_t[rows.start * m .. rows.end * m] and no other tile
            // writes there; out_t outlives the pool call.
            let outs = unsafe {
                std::slice::from_raw_parts_mut(
                    (dst as *mut f32).add(rows.start * m),
                    rows.len() * m,
                )
            };
            for (j, outs) in rows.zip(outs.chunks_exact_mut(m)) {
                row(j, outs);
            }
        }
    });
    if m == 1 {
        return out_t;
    }
    let mut out = vec![0f32; m * n];
    for j in 0..n {
        for i in 0..m {
            out[i * n + j] = out_t[j * m + i];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};
    use rand::{Rng, SeedableRng};

    fn random(n: usize, seed: u64) -> Vec<f32> {
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
    }

    /// candle's own product, as a flat vector.
    fn candle_forward(m: &QMatMul, x: &Tensor) -> Vec<f32> {
        m.forward(x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

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
    /// bit for bit: Q5_0 by [`super::kernels_q5_0::matmul_q5_0`], Q4_0 and Q8_0 by candle's
    /// product. Up to [`SMALL_BATCH`] rows (decode, verification) go through
    /// [`super::kernels_int8::matmul`], batch-invariant: for Q4_0 and Q8_0 that is the order of
    /// candle's AVX one-row products; for Q5_0 it sums in SIMD lanes where candle's scalar product
    /// sums block by block (2.5× the decode speed; decode logits then differ from the reference's
    /// in the last bits, as its repacked K-quant decode differs from ours). Q5_1:
    /// [`super::kernels_q5_1::matmul_q5_1`], candle's order at every length.
    Blocks {
        mm: candle_core::quantized::QMatMul,
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
    },
    /// Q4_K and Q6_K on the CPU: up to [`SMALL_BATCH`] rows go through our products on the
    /// compact blocks (Q4_K: [`super::kernels_q4k::matmul_q4k`], Q6_K:
    /// [`super::kernels_q6k::matmul_q6k`]), as llama.cpp's decode reads them; longer batches
    /// through [`super::kernels_ktiles::matmul`] (candle's tiled arithmetic, bitwise, without
    /// the tiles it keeps), or candle's own product where candle does not tile.
    Compact {
        mm: candle_core::quantized::QMatMul,
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
    },
}

/// Whether candle's CPU backend multiplies this Q8_0 matrix through its own repacked tiles
/// (with a VNNI CPU, whole 256-value rows and a multiple of 16 of them) rather than its one-row
/// dot product. Those stay with candle's product, so that logits stay bitwise those of the
/// reference engine, which multiplies through candle.
fn candle_repacks_q8_0(n: usize, k: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let forced_avx2 = std::env::var("MISTRALRS_FORCE_AVX2").as_deref() == Ok("1");
        let vnni = (is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vnni"))
            || (is_x86_feature_detected!("avxvnni") && is_x86_feature_detected!("avx2"));
        !forced_avx2 && vnni && n.is_multiple_of(16) && k.is_multiple_of(256)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (n, k);
        false
    }
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
                use super::kernels_ktiles::{applies, matmul, KFormat};
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
                    GgmlDType::Q4K => {
                        super::kernels_q4k::matmul_q4k(blocks_of::<BlockQ4K>(&data), *n, *k, &xs, m)
                    }
                    GgmlDType::Q6K => {
                        super::kernels_q6k::matmul_q6k(blocks_of::<BlockQ6K>(&data), *n, *k, &xs, m)
                    }
                    other => candle_core::bail!("no compact product for {other:?}"),
                };
                Tensor::from_vec(out, shape, x.device())
            }
            Self::Blocks { mm, t, n, k } => {
                use super::kernels_int8::{matmul, Format};
                let long = x.elem_count() / k > SMALL_BATCH;
                if long && matches!(t.dtype(), GgmlDType::Q4_0 | GgmlDType::Q8_0) {
                    return mm.forward(x);
                }
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let data = t.data()?;
                let out = match t.dtype() {
                    GgmlDType::Q5_1 => super::kernels_q5_1::matmul_q5_1(&data, *n, *k, &xs, m),
                    GgmlDType::Q4_0 => matmul(Format::Q4_0, &data, *n, *k, &xs, m),
                    GgmlDType::Q5_0 if long => {
                        super::kernels_q5_0::matmul_q5_0(&data, *n, *k, &xs, m)
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
