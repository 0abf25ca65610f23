//! Activations quantized to Q8_K (256 values per block: an f32 scale, signed bytes and the sums
//! of each 16 bytes) for the K-quant products, bitwise what candle's scalar
//! `BlockQ8K::from_float` makes, in SIMD. A decode step quantizes every projection's input, half
//! a million values per token on a 1.5B model: candle's loop (a `roundf` call per value) took
//! about 5% of a decode step.

use candle_core::quantized::k_quants::BlockQ8K;

/// Values per Q8_K block.
const QK_K: usize = 256;

/// Quantize `xs` (whole blocks of 256) into `ys`, as candle's `BlockQ8K::from_float` does.
pub fn quantize(xs: &[f32], ys: &mut [BlockQ8K]) {
    assert!(
        xs.len() == ys.len() * QK_K,
        "Q8_K quantization of {} values into {} blocks",
        xs.len(),
        ys.len()
    );
    #[cfg(target_arch = "x86_64")]
    if super::best_path() != super::Path::Portable {
        for (x, y) in xs.chunks_exact(QK_K).zip(ys.iter_mut()) {
            // SAFETY: AVX2 is present; `x` holds one block of values.
            unsafe { avx2::block(x, y) };
        }
        return;
    }
    use candle_core::quantized::k_quants::GgmlType;
    BlockQ8K::from_float(xs, ys);
}

/// candle's layout, read field by field (its fields are crate-private; the layout is `repr(C)`,
/// 292 bytes).
#[repr(C)]
struct Q8K {
    d: f32,
    qs: [i8; QK_K],
    bsums: [i16; QK_K / 16],
}
const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<BlockQ8K>());

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ8K, Q8K, QK_K};
    use std::arch::x86_64::*;

    /// # Safety
    /// AVX2; `x` holds 256 values.
    #[target_feature(enable = "avx2")]
    pub unsafe fn block(x: &[f32], y: &mut BlockQ8K) {
        assert_eq!(x.len(), QK_K);
        let y = &mut *(y as *mut BlockQ8K as *mut Q8K);
        let p = x.as_ptr();
        let sign = _mm256_set1_ps(-0.0);
        // The largest magnitude, then the first value that has it (candle keeps the first).
        let mut amax = _mm256_setzero_ps();
        for i in 0..QK_K / 8 {
            // A value that is not a number is passed over (`max_ps` returns its second operand
            // when either is NaN), as candle's comparison passes it over.
            amax = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(p.add(8 * i))), amax);
        }
        let amax = {
            let m = _mm_max_ps(_mm256_castps256_ps128(amax), _mm256_extractf128_ps(amax, 1));
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
        };
        // Infinities (and blocks of zeros) go through candle's own scan.
        let max = if amax > 0.0 && amax.is_finite() {
            x.iter().copied().find(|v| v.abs() == amax)
        } else {
            None
        };
        let Some(max) = max.or_else(|| scalar_max(x)) else {
            y.d = 0.0;
            y.qs.fill(0);
            y.bsums.fill(0);
            return;
        };
        let iscale = -127f32 / max;
        let scale = _mm256_set1_ps(iscale);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let (lo, hi) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
        // Rounding half away from zero, as `f32::round`: the truncation, plus the sign where
        // what it cut off is at least a half (both exact).
        let quant = |i: usize| {
            let v = _mm256_mul_ps(scale, _mm256_loadu_ps(p.add(8 * i)));
            let t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
            let cut = _mm256_andnot_ps(sign, _mm256_sub_ps(v, t));
            let up = _mm256_and_ps(_mm256_cmp_ps(cut, half, _CMP_GE_OQ), one);
            let r = _mm256_add_ps(t, _mm256_or_ps(up, _mm256_and_ps(v, sign)));
            // Not a number (a NaN input, or 0 × an infinite scale) becomes 0, as candle's
            // `as i8` makes it.
            let r = _mm256_and_ps(r, _mm256_cmp_ps(v, v, _CMP_ORD_Q));
            _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi))
        };
        // Order of the 32-bit lanes after packing 32 → 16 → 8 bits within 128-bit halves.
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for c in 0..QK_K / 32 {
            let a = _mm256_packs_epi32(quant(4 * c), quant(4 * c + 1));
            let b = _mm256_packs_epi32(quant(4 * c + 2), quant(4 * c + 3));
            let q = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(a, b), order);
            _mm256_storeu_si256(y.qs.as_mut_ptr().add(32 * c) as *mut __m256i, q);
            // The sums of each 16 bytes: widen to 16 bits and add pairs, then fold.
            let w = _mm256_maddubs_epi16(_mm256_set1_epi8(1), q);
            let s = _mm256_madd_epi16(w, _mm256_set1_epi16(1));
            // s: four 32-bit sums of 4 bytes in each half; bytes 0–15 in the low half.
            let s = _mm256_hadd_epi32(s, s);
            let s = _mm256_hadd_epi32(s, s);
            y.bsums[2 * c] = _mm256_extract_epi32(s, 0) as i16;
            y.bsums[2 * c + 1] = _mm256_extract_epi32(s, 4) as i16;
        }
        y.d = 1.0 / iscale;
    }

    /// candle's scan for the first value of largest magnitude, for blocks the vector scan
    /// cannot settle (non-finite values); `None` when every value is zero (or not a number).
    fn scalar_max(x: &[f32]) -> Option<f32> {
        let (mut max, mut amax) = (0f32, 0f32);
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        (amax != 0.0).then_some(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;

    fn bytes(b: &[BlockQ8K]) -> &[u8] {
        // SAFETY: plain repr(C) data of the given length.
        unsafe { std::slice::from_raw_parts(b.as_ptr() as *const u8, std::mem::size_of_val(b)) }
    }

    fn same_as_candle(xs: &[f32]) {
        let n = xs.len() / QK_K;
        let (mut ours, mut theirs) = (vec![BlockQ8K::zeros(); n], vec![BlockQ8K::zeros(); n]);
        quantize(xs, &mut ours);
        BlockQ8K::from_float(xs, &mut theirs);
        assert_eq!(bytes(&ours), bytes(&theirs));
    }

    #[test]
    fn blocks_are_bitwise_candles() {
        let random = crate::engine::kernels::common::testing::random(64 * QK_K, 5);
        same_as_candle(&random);
        // Ties: values that land exactly on a half after scaling, both signs, and the block's
        // largest magnitude both positive and negative (the first one sets the sign).
        let mut ties: Vec<f32> = (0..QK_K).map(|i| (i as f32 - 128.0) * 0.5).collect();
        ties[7] = 127.0;
        ties[9] = -127.0;
        same_as_candle(&ties);
        let mut neg = ties.clone();
        neg.swap(7, 9);
        same_as_candle(&neg);
        // Zeros, a single value, huge and tiny magnitudes.
        same_as_candle(&[0.0; QK_K]);
        let mut one = vec![0f32; QK_K];
        one[200] = -3.0e-20;
        same_as_candle(&one);
        let big: Vec<f32> = random[..QK_K].iter().map(|v| v * 3.0e37).collect();
        same_as_candle(&big);
        // Not a number amid larger and smaller values; infinities; subnormals, whose scale
        // overflows to infinity.
        let mut nan = random[..QK_K].to_vec();
        // The block's largest value, then a NaN in the same SIMD lane further on.
        nan[8 * 5 + 2] = 10.0;
        nan[8 * 6 + 2] = f32::NAN;
        same_as_candle(&nan);
        let mut inf = random[..QK_K].to_vec();
        inf[100] = f32::NEG_INFINITY;
        same_as_candle(&inf);
        let mut tiny = vec![0f32; QK_K];
        tiny[17] = 1.0e-39;
        tiny[18] = -4.0e-40;
        same_as_candle(&tiny);
    }
}
