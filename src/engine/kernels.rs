//! Our own quantized matrix-vector kernels, for the weight types candle's CPU backend has no SIMD
//! dot product for (Q5_0). Activations are quantized to Q8_0 exactly as candle does it, and each
//! output is summed in the same order as candle's reference dot product, so results are bitwise
//! equal to candle's — and every row of a batch is computed exactly as it would be alone (the
//! batch invariance speculative verification needs).

use half::f16;

/// Values per block of Q5_0 and Q8_0.
pub const QK: usize = 32;
/// Bytes of one Q5_0 block: f16 scale, 32 high bits, 16 bytes of low nibbles.
pub const Q5_0_BYTES: usize = 22;

/// One Q8_0 block of activations.
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct Q8Block {
    pub d: f16,
    pub qs: [i8; QK],
}

impl Q8Block {
    const ZERO: Q8Block = Q8Block {
        d: f16::ZERO,
        qs: [0; QK],
    };
}

/// Quantize `xs` (a multiple of 32 long) to Q8_0 blocks, as candle's `BlockQ8_0::from_float`.
pub fn quantize_q8_0(xs: &[f32], out: &mut [Q8Block]) {
    for (block, xs) in out.iter_mut().zip(xs.chunks_exact(QK)) {
        let amax = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        block.d = f16::from_f32(d);
        for (q, &x) in block.qs.iter_mut().zip(xs) {
            *q = f32::round(x * id) as i8;
        }
    }
}

/// Dot product of one Q5_0 row (`blocks` × 22 bytes) with Q8_0 activations, portable version.
pub fn dot_q5_0_scalar(w: &[u8], y: &[Q8Block]) -> f32 {
    let mut sumf = 0f32;
    for (b, yb) in w.chunks_exact(Q5_0_BYTES).zip(y) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..22];
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let h0 = (((qh >> j) & 1) << 4) as i32;
            let h1 = (((qh >> (j + 16)) & 1) << 4) as i32;
            let x0 = ((qs[j] & 0x0F) as i32 | h0) - 16;
            let x1 = ((qs[j] >> 4) as i32 | h1) - 16;
            sumi += x0 * yb.qs[j] as i32 + x1 * yb.qs[j + QK / 2] as i32;
        }
        sumf += sumi as f32 * d * yb.d.to_f32();
    }
    sumf
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2 {
    use super::{Q8Block, Q5_0_BYTES};
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

    /// The same sum as [`super::dot_q5_0_scalar`]: each block's integer dot product is exact, and the
    /// float accumulation runs block by block in the same order.
    ///
    /// f16 bits to f32 with the F16C instruction (exact, as `half` converts).
    #[inline]
    #[target_feature(enable = "f16c")]
    pub(crate) unsafe fn f16_to_f32(bits: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32)))
    }

    /// One Q5_0 block at `p`: its scale and its 32 values as signed bytes in -16..=15.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn unpack(p: *const u8) -> (f32, __m256i) {
        let d = f16_to_f32(std::ptr::read_unaligned(p as *const u16));
        let qh = std::ptr::read_unaligned(p.add(2) as *const u32);
        let qs = _mm_loadu_si128(p.add(6) as *const __m128i);
        let low = _mm_set1_epi8(0x0F);
        let lo = _mm_and_si128(qs, low);
        let hi = _mm_and_si128(_mm_srli_epi16(qs, 4), low);
        let qx = _mm256_set_m128i(hi, lo);
        // Values are nibble | (high bit << 4), minus 16: where the high bit is clear, the result
        // is negative, which OR-ing 0xF0 into the byte gives in two's complement.
        let high_off = _mm256_set1_epi8(0xF0u8 as i8);
        (
            d,
            _mm256_or_si256(qx, _mm256_andnot_si256(bytes_from_bits_32(qh), high_off)),
        )
    }

    /// # Safety
    /// The CPU must support AVX2 and F16C; `w` holds `y.len()` blocks.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn dot_q5_0(w: &[u8], y: &[Q8Block]) -> f32 {
        debug_assert!(w.len() >= y.len() * Q5_0_BYTES);
        let ones = _mm256_set1_epi16(1);
        let mut sumf = 0f32;
        for (i, yb) in y.iter().enumerate() {
            let (d, qx) = unpack(w.as_ptr().add(i * Q5_0_BYTES));
            let qy = _mm256_loadu_si256(yb.qs.as_ptr() as *const __m256i);
            let prod = _mm256_maddubs_epi16(_mm256_sign_epi8(qx, qx), _mm256_sign_epi8(qy, qx));
            let sumi = hsum_i32(_mm256_madd_epi16(prod, ones));
            sumf += sumi as f32 * d * f16_to_f32(yb.d.to_bits());
        }
        sumf
    }

    /// One Q5_0 row against four activation rows: each weight block is unpacked once. Every
    /// result is computed exactly as [`dot_q5_0`] computes it alone.
    ///
    /// # Safety
    /// As [`dot_q5_0`], for each of the four rows.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn dot_q5_0_x4(w: &[u8], ys: [&[Q8Block]; 4]) -> [f32; 4] {
        let ones = _mm256_set1_epi16(1);
        let mut sumf = [0f32; 4];
        for i in 0..ys[0].len() {
            let (d, qx) = unpack(w.as_ptr().add(i * Q5_0_BYTES));
            let ax = _mm256_sign_epi8(qx, qx);
            for r in 0..4 {
                let yb = ys[r].get_unchecked(i);
                let qy = _mm256_loadu_si256(yb.qs.as_ptr() as *const __m256i);
                let prod = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(qy, qx));
                let sumi = hsum_i32(_mm256_madd_epi16(prod, ones));
                sumf[r] += sumi as f32 * d * f16_to_f32(yb.d.to_bits());
            }
        }
        sumf
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

/// Dot product of one Q5_0 row with Q8_0 activations, with SIMD where the CPU has it.
#[inline]
pub fn dot_q5_0(w: &[u8], y: &[Q8Block]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and F16C are present; `w` and `y` describe the same number of blocks.
        return unsafe { avx2::dot_q5_0(w, y) };
    }
    dot_q5_0_scalar(w, y)
}

/// Weight rows per parallel work item.
const TILE: usize = 16;

/// `x` (`m` rows of `k`) times the transpose of Q5_0 `w` (`n` rows of `k`): `m` rows of `n`.
pub fn matmul_q5_0(w: &[u8], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    assert!(
        k % QK == 0 && x.len() == m * k && w.len() >= n * k / QK * Q5_0_BYTES,
        "matmul_q5_0 shapes"
    );
    let kb = k / QK;
    let row_bytes = kb * Q5_0_BYTES;
    let mut xq = vec![Q8Block::ZERO; m * kb];
    for (row, out) in x.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
        quantize_q8_0(row, out);
    }
    let x_row = |i: usize| &xq[i * kb..(i + 1) * kb];
    by_weight_rows(n, m, |j, outs| {
        let wrow = &w[j * row_bytes..(j + 1) * row_bytes];
        rows_by_four(
            outs,
            |i| dot_q5_0_x4(wrow, [x_row(i), x_row(i + 1), x_row(i + 2), x_row(i + 3)]),
            |i| dot_q5_0(wrow, x_row(i)),
        )
    })
}

/// One Q5_0 row against four activation rows, each weight block unpacked once; `None` where the
/// CPU has no AVX2 (then [`dot_q5_0`] runs row by row, to the same bits).
#[inline]
pub fn dot_q5_0_x4(w: &[u8], ys: [&[Q8Block]; 4]) -> Option<[f32; 4]> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and F16C are present; the caller's rows describe w's blocks.
        return Some(unsafe { avx2::dot_q5_0_x4(w, ys) });
    }
    let _ = (w, ys);
    None
}

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

    fn q5_weights(n: usize, k: usize) -> QTensor {
        let w = Tensor::from_vec(random(n * k, 1), (n, k), &Device::Cpu).unwrap();
        QTensor::quantize(&w, GgmlDType::Q5_0).unwrap()
    }

    #[test]
    fn bitwise_equal_to_candle_for_one_and_many_rows() {
        let (n, k) = (72, 256);
        let q = q5_weights(n, k);
        let bytes = q.data().unwrap().into_owned();
        let candle = QMatMul::from_qtensor(q).unwrap();
        for m in [1, 3, 17] {
            let x = random(m * k, 2 + m as u64);
            let ours = matmul_q5_0(&bytes, n, k, &x, m);
            let xt = Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap();
            let theirs = candle_forward(&candle, &xt);
            assert_eq!(ours, theirs, "m = {m}");
        }
    }

    #[test]
    fn simd_equals_scalar_and_rows_are_batch_invariant() {
        let (n, k) = (40, 128);
        let bytes = q5_weights(n, k).data().unwrap().into_owned();
        let x = random(9 * k, 5);
        let mut xq = vec![Q8Block::ZERO; 9 * k / QK];
        for (row, out) in x.chunks_exact(k).zip(xq.chunks_exact_mut(k / QK)) {
            quantize_q8_0(row, out);
        }
        let row_bytes = k / QK * Q5_0_BYTES;
        for j in 0..n {
            let w = &bytes[j * row_bytes..(j + 1) * row_bytes];
            assert_eq!(
                dot_q5_0(w, &xq[..k / QK]).to_bits(),
                dot_q5_0_scalar(w, &xq[..k / QK]).to_bits()
            );
        }
        let batch = matmul_q5_0(&bytes, n, k, &x, 9);
        for i in 0..9 {
            let alone = matmul_q5_0(&bytes, n, k, &x[i * k..(i + 1) * k], 1);
            assert_eq!(&batch[i * n..(i + 1) * n], alone.as_slice(), "row {i}");
        }
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

/// `x` (`m` rows of `k`) times the transpose of compact quantized rows `w` (`n` rows of `k`):
/// `m` rows of `n`. Each output is candle's own `vec_dot_4` of a weight quad with one activation
/// row (the dot products of candle's one-row product), so row `i` of a batch is bitwise what it
/// would be alone. Each weight quad is read once for all `m` rows.
pub fn matmul_compact<T: candle_core::quantized::k_quants::GgmlType>(
    w: &[T],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
) -> Vec<f32> {
    use candle_core::quantized::k_quants::GgmlType;
    let kb = k / T::BLCK_SIZE;
    assert!(
        k % T::BLCK_SIZE == 0 && x.len() == m * k && w.len() >= n * kb,
        "matmul_compact shapes"
    );
    let mut xq = vec![T::VecDotType::zeros(); m * kb];
    for (row, out) in x.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
        T::VecDotType::from_float(row, out);
    }
    let mut out = vec![0f32; m * n];
    let dst = out.as_mut_ptr() as usize;
    let wrow = |j: usize| &w[j * kb..(j + 1) * kb];
    let xrow = |i: usize| &xq[i * kb..(i + 1) * kb];
    // SAFETY (raw writes below): each (row, column) is written by exactly one work item, and
    // `out` outlives the pool call.
    let put = |i: usize, j: usize, v: f32| unsafe { *(dst as *mut f32).add(i * n + j) = v };
    let quads = n / 4;
    candle_core::utils::barrier_pool().execute_chunked(quads, |range| {
        for q in range {
            let c = q * 4;
            for i in 0..m {
                let (d0, d1, d2, d3) =
                    T::vec_dot_4(k, wrow(c), wrow(c + 1), wrow(c + 2), wrow(c + 3), xrow(i));
                put(i, c, d0);
                put(i, c + 1, d1);
                put(i, c + 2, d2);
                put(i, c + 3, d3);
            }
        }
    });
    for i in 0..m {
        let mut c = quads * 4;
        if n - c >= 2 {
            let (d0, d1) = T::vec_dot_2(k, wrow(c), wrow(c + 1), xrow(i));
            put(i, c, d0);
            put(i, c + 1, d1);
            c += 2;
        }
        if c < n {
            put(i, c, T::vec_dot(k, wrow(c), xrow(i)));
        }
    }
    out
}

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
    /// Types whose candle products are batch-invariant (Q4_0, Q8_0, …) and every non-CPU device.
    Candle(candle_core::quantized::QMatMul),
    /// Q5_0 and Q5_1 on the CPU, multiplied by [`matmul_q5_0`] and
    /// [`super::kernels_q5_1::matmul_q5_1`].
    Q5 {
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
    },
    /// Q4_K and Q6_K on the CPU: up to [`SMALL_BATCH`] rows go through our products on the
    /// compact blocks (Q4_K: [`super::kernels_q4k::matmul_q4k`], Q6_K: [`matmul_compact`]), as
    /// llama.cpp's decode reads them; longer batches to candle's repacked tiles.
    Compact {
        mm: candle_core::quantized::QMatMul,
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
    },
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
        if matches!(t.dtype(), GgmlDType::Q5_0 | GgmlDType::Q5_1)
            && t.device().is_cpu()
            && k.is_multiple_of(QK)
        {
            return Ok(Self::Q5 { t, n, k });
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
                if x.elem_count() / k > SMALL_BATCH {
                    return mm.forward(x);
                }
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let data = t.data()?;
                let out = match t.dtype() {
                    GgmlDType::Q4K => {
                        super::kernels_q4k::matmul_q4k(blocks_of::<BlockQ4K>(&data), *n, *k, &xs, m)
                    }
                    GgmlDType::Q6K => matmul_compact(blocks_of::<BlockQ6K>(&data), *n, *k, &xs, m),
                    other => candle_core::bail!("no compact product for {other:?}"),
                };
                Tensor::from_vec(out, shape, x.device())
            }
            Self::Q5 { t, n, k } => {
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let out = if t.dtype() == GgmlDType::Q5_1 {
                    super::kernels_q5_1::matmul_q5_1(&t.data()?, *n, *k, &xs, m)
                } else {
                    matmul_q5_0(&t.data()?, *n, *k, &xs, m)
                };
                Tensor::from_vec(out, shape, x.device())
            }
        }
    }

    /// Bytes held for the weights.
    pub fn bytes(&self) -> u64 {
        use candle_core::quantized::QMatMul;
        match self {
            Self::Q5 { t, .. } | Self::Compact { t, .. } | Self::Candle(QMatMul::QTensor(t)) => {
                t.storage_size_in_bytes() as u64
            }
            Self::Candle(QMatMul::Tensor(t)) | Self::Candle(QMatMul::TensorF16(t)) => {
                (t.elem_count() * t.dtype().size_in_bytes()) as u64
            }
        }
    }

    /// Whether these are the very weights of `other` (a head tied to the embeddings).
    pub fn shares(&self, other: &std::sync::Arc<candle_core::quantized::QTensor>) -> bool {
        match self {
            Self::Q5 { t, .. }
            | Self::Compact { t, .. }
            | Self::Candle(candle_core::quantized::QMatMul::QTensor(t)) => {
                std::sync::Arc::ptr_eq(t, other)
            }
            _ => false,
        }
    }
}
