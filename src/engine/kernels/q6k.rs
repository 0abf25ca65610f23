//! A Q6_K × Q8_K product over several activation rows that unpacks each weight block once.
//!
//! Every row's result is bitwise what candle's own AVX2 `vec_dot_q6k_q8k` gives for that row
//! alone: the integer products are exact (VNNI's `vpdpwssd` only fuses the scale products and
//! their sum), and each row's float accumulation (the same FMAs on the same lanes, block by
//! block, and the same final reduction) is kept separate. A speculative verification pass of a
//! few rows then costs little more than one decode step's weight unpacking, and each row is
//! still exactly its decode-step value. Weight rows are read one after the other, one stream.

use super::common::{best_path, rows_by_four, wide, Path};
use candle_core::quantized::k_quants::{BlockQ6K, BlockQ8K};

/// `x` (`m` rows of `k`) times the transpose of Q6_K `w` (`n` rows of `k / 256` blocks).
pub fn matmul_q6k(w: &[BlockQ6K], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    rows_by_four(w, n, k, x, m, dot_rows)
}

/// `rows` weight rows dotted with `m` activation rows of `kb` blocks: `out[i * rows + j]`.
fn dot_rows(w: &[BlockQ6K], rows: usize, ys: &[BlockQ8K], m: usize, kb: usize, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        let path = best_path();
        if path != Path::Portable {
            // SAFETY: the path's features are present; `ys` holds m × kb blocks, `w` rows × kb.
            unsafe {
                if wide() {
                    avx2::rows_wide(w, rows, ys, m, kb, out)
                } else if path == Path::Vnni {
                    avx2::rows_vnni(w, rows, ys, m, kb, out)
                } else {
                    avx2::rows(w, rows, ys, m, kb, out)
                }
            }
            return;
        }
    }
    let _ = (best_path, wide);
    use candle_core::quantized::k_quants::GgmlType;
    for j in 0..rows {
        for i in 0..m {
            out[i * rows + j] = BlockQ6K::vec_dot(
                kb * 256,
                &w[j * kb..(j + 1) * kb],
                &ys[i * kb..(i + 1) * kb],
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ6K, BlockQ8K};
    use crate::engine::kernels::common::row_groups;
    use crate::engine::kernels::common::simd::{hsum as hsum_float_8, prefetch_ahead};
    use std::arch::x86_64::*;

    /// candle's layouts, read field by field (its fields are crate-private; the layouts are
    /// `repr(C)` and asserted there: 210 and 292 bytes).
    #[repr(C)]
    struct Q6K {
        ql: [u8; 128],
        qh: [u8; 64],
        scales: [i8; 16],
        d: u16,
    }
    #[repr(C)]
    struct Q8K {
        d: f32,
        qs: [i8; 256],
        bsums: [i16; 16],
    }
    const _: () = assert!(std::mem::size_of::<Q6K>() == std::mem::size_of::<BlockQ6K>());
    const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<BlockQ8K>());

    /// For scale pair i: bytes 2i and 2i + 1, each eight times.
    const SCALE_SHUFFLE: [[u8; 16]; 8] = {
        let mut t = [[0u8; 16]; 8];
        let mut i = 0;
        while i < 8 {
            let mut j = 0;
            while j < 16 {
                t[i][j] = (2 * i + j / 8) as u8;
                j += 1;
            }
            i += 1;
        }
        t
    };

    /// # Safety
    /// AVX2, FMA and F16C; `ys` holds `m × kb` blocks, `w` holds `rows × kb`, `out` `m × rows`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows(
        w: &[BlockQ6K],
        rows: usize,
        ys: &[BlockQ8K],
        m: usize,
        kb: usize,
        out: &mut [f32],
    ) {
        all_rows::<false, false>(w, rows, ys, m, kb, out)
    }

    /// As [`rows`], with VNNI: the same integers, so the same bits.
    ///
    /// # Safety
    /// As [`rows`], and AVX-512 VNNI with VL.
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    pub unsafe fn rows_vnni(
        w: &[BlockQ6K],
        rows: usize,
        ys: &[BlockQ8K],
        m: usize,
        kb: usize,
        out: &mut [f32],
    ) {
        all_rows::<true, false>(w, rows, ys, m, kb, out)
    }

    /// As [`rows`], with AVX-512 (BW and VNNI): two 32-value chunks per instruction and up to
    /// eight activation rows per weight-block unpack; the same integers, so the same bits.
    ///
    /// # Safety
    /// As [`rows`], and AVX-512 F, BW, VL and VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn rows_wide(
        w: &[BlockQ6K],
        rows: usize,
        ys: &[BlockQ8K],
        m: usize,
        kb: usize,
        out: &mut [f32],
    ) {
        all_rows::<true, true>(w, rows, ys, m, kb, out)
    }

    #[inline(always)]
    unsafe fn all_rows<const VNNI: bool, const WIDE: bool>(
        w: &[BlockQ6K],
        rows: usize,
        ys: &[BlockQ8K],
        m: usize,
        kb: usize,
        out: &mut [f32],
    ) {
        assert!(w.len() >= rows * kb && ys.len() >= m * kb);
        let (xs, ys) = (w.as_ptr() as *const Q6K, ys.as_ptr() as *const Q8K);
        let most = if WIDE { 8 } else { 4 };
        row_groups(
            rows,
            m,
            most,
            out,
            #[inline(always)]
            |j, i, take, res| {
                let (x, y) = (xs.add(j * kb), ys.add(i * kb));
                match (WIDE, take) {
                    (true, 1) => wide::<1>(x, y, kb, res),
                    (true, 2) => wide::<2>(x, y, kb, res),
                    (true, 3) => wide::<3>(x, y, kb, res),
                    (true, 4) => wide::<4>(x, y, kb, res),
                    (true, 5) => wide::<5>(x, y, kb, res),
                    (true, 6) => wide::<6>(x, y, kb, res),
                    (true, 7) => wide::<7>(x, y, kb, res),
                    (true, _) => wide::<8>(x, y, kb, res),
                    (false, 1) => body::<1, VNNI>(x, y, kb, res),
                    (false, 2) => body::<2, VNNI>(x, y, kb, res),
                    (false, 3) => body::<3, VNNI>(x, y, kb, res),
                    (false, _) => body::<4, VNNI>(x, y, kb, res),
                }
            },
        );
    }

    /// For 64-value pair `p` of a block (of 4): the bytes of its four 16-value scales,
    /// `4p` to `4p + 3`, eight times each, from a register holding the 16 scales in both
    /// 128-bit halves.
    const WIDE_SCALE_SHUFFLE: [[u8; 32]; 4] = {
        let mut t = [[0u8; 32]; 4];
        let mut p = 0;
        while p < 4 {
            let mut b = 0;
            while b < 32 {
                t[p][b] = (4 * p + b / 8) as u8;
                b += 1;
            }
            p += 1;
        }
        t
    };

    /// As [`body`] on 512-bit registers, for up to eight rows: a register holds two of
    /// candle's 32-value chunks (its `q4[0]` and `q4[1]`, or `q4[2]` and `q4[3]`), against
    /// the 64 activation bytes they meet; the two halves' integer lanes are added before they
    /// become floats, which gives candle's lanes exactly.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // one index into several per-row arrays
    unsafe fn wide<const R: usize>(
        xs: *const Q6K,
        ys: *const Q8K,
        kb: usize,
        out: &mut [f32; 8],
    ) -> usize {
        let m4 = _mm512_set1_epi8(0xF);
        let m2 = _mm512_set1_epi8(3);
        let m32s = _mm512_set1_epi8(32);
        // 16-bit shift counts: 0 in the low half and 2 in the high half (chunks 0 and 1 of a
        // half-block), 4 and 6 (chunks 2 and 3).
        let counts = |lo: i64, hi: i64| {
            let c = _mm512_setr_epi64(lo, lo, lo, lo, hi, hi, hi, hi);
            let c = _mm512_or_si512(c, _mm512_slli_epi64(c, 16));
            _mm512_or_si512(c, _mm512_slli_epi64(c, 32))
        };
        let (shift_a, shift_b) = (counts(0, 2), counts(4, 6));
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..kb {
            let x = &*xs.add(b);
            prefetch_ahead::<210>(x as *const Q6K as *const u8);
            let xd = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x.d as i32)));
            let scales =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(x.scales.as_ptr() as *const __m128i));
            let mut sumi = [_mm512_setzero_si512(); R];
            for j in 0..2 {
                let ql = _mm512_loadu_si512(x.ql.as_ptr().add(64 * j) as *const _);
                let qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    x.qh.as_ptr().add(32 * j) as *const __m256i
                ));
                let high = |shift: __m512i| {
                    _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, shift), m2), 4)
                };
                let q6 = [
                    _mm512_or_si512(_mm512_and_si512(ql, m4), high(shift_a)),
                    _mm512_or_si512(
                        _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                        high(shift_b),
                    ),
                ];
                for h in 0..2 {
                    let p = 2 * j + h;
                    let sc = _mm512_cvtepi8_epi16(_mm256_shuffle_epi8(
                        scales,
                        _mm256_loadu_si256(WIDE_SCALE_SHUFFLE[p].as_ptr() as *const __m256i),
                    ));
                    for r in 0..R {
                        let q8 = _mm512_loadu_si512(
                            (*ys.add(r * kb + b)).qs.as_ptr().add(64 * p) as *const _
                        );
                        let d = _mm512_sub_epi16(
                            _mm512_maddubs_epi16(q6[h], q8),
                            _mm512_maddubs_epi16(m32s, q8),
                        );
                        sumi[r] = _mm512_dpwssd_epi32(sumi[r], sc, d);
                    }
                }
            }
            for r in 0..R {
                let s = _mm256_add_epi32(
                    _mm512_castsi512_si256(sumi[r]),
                    _mm512_extracti64x4_epi64(sumi[r], 1),
                );
                let d = (*ys.add(r * kb + b)).d * xd;
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(s), acc[r]);
            }
        }
        for r in 0..R {
            out[r] = hsum_float_8(acc[r]);
        }
        R
    }

    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // one index into several per-row arrays
    unsafe fn body<const R: usize, const VNNI: bool>(
        xs: *const Q6K,
        ys: *const Q8K,
        kb: usize,
        out: &mut [f32; 8],
    ) -> usize {
        let m4 = _mm256_set1_epi8(0xF);
        let m2 = _mm256_set1_epi8(3);
        let m32s = _mm256_set1_epi8(32);
        let mut acc = [_mm256_setzero_ps(); R];
        for b in 0..kb {
            let x = &*xs.add(b);
            prefetch_ahead::<210>(x as *const _ as *const u8);
            let xd = _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(x.d as i32)));
            let scales = _mm_loadu_si128(x.scales.as_ptr() as *const __m128i);
            let mut sumi = [_mm256_setzero_si256(); R];
            for j in 0..2 {
                let mut sc = [_mm256_setzero_si256(); 4];
                for (i, sc) in sc.iter_mut().enumerate() {
                    let shuffle =
                        _mm_loadu_si128(SCALE_SHUFFLE[4 * j + i].as_ptr() as *const __m128i);
                    *sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, shuffle));
                }
                let q4bits1 = _mm256_loadu_si256(x.ql.as_ptr().add(64 * j) as *const __m256i);
                let q4bits2 = _mm256_loadu_si256(x.ql.as_ptr().add(64 * j + 32) as *const __m256i);
                let q4bits_h = _mm256_loadu_si256(x.qh.as_ptr().add(32 * j) as *const __m256i);
                let h0 = _mm256_slli_epi16(_mm256_and_si256(q4bits_h, m2), 4);
                let h1 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 2), m2), 4);
                let h2 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 4), m2), 4);
                let h3 = _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(q4bits_h, 6), m2), 4);
                let q4 = [
                    _mm256_or_si256(_mm256_and_si256(q4bits1, m4), h0),
                    _mm256_or_si256(_mm256_and_si256(q4bits2, m4), h1),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits1, 4), m4), h2),
                    _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q4bits2, 4), m4), h3),
                ];
                for r in 0..R {
                    let q8 = (*ys.add(r * kb + b)).qs.as_ptr().add(128 * j);
                    let mut p = [_mm256_setzero_si256(); 4];
                    for i in 0..4 {
                        let q8i = _mm256_loadu_si256(q8.add(32 * i) as *const __m256i);
                        let q8s = _mm256_maddubs_epi16(m32s, q8i);
                        p[i] = _mm256_sub_epi16(_mm256_maddubs_epi16(q4[i], q8i), q8s);
                    }
                    if VNNI {
                        // Exact integer sums in any order: the same lanes as below.
                        for i in 0..4 {
                            sumi[r] = _mm256_dpwssd_epi32(sumi[r], sc[i], p[i]);
                        }
                    } else {
                        let p0 = _mm256_madd_epi16(sc[0], p[0]);
                        let p1 = _mm256_madd_epi16(sc[1], p[1]);
                        let p2 = _mm256_madd_epi16(sc[2], p[2]);
                        let p3 = _mm256_madd_epi16(sc[3], p[3]);
                        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p0, p1));
                        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p2, p3));
                    }
                }
            }
            for r in 0..R {
                let d = (*ys.add(r * kb + b)).d * xd;
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            }
        }
        for r in 0..R {
            out[r] = hsum_float_8(acc[r]);
        }
        R
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::common::testing::{kquant_rows_are_candles, KBody};

    /// Every path this CPU has (the dispatch, and each SIMD body beside it) against candle's
    /// one-row dot product, row by row, for batches of 1 to 17 rows.
    #[test]
    fn every_row_is_bitwise_candles_one_row_dot() {
        #[allow(unused_mut)]
        let mut bodies: Vec<(&str, KBody<BlockQ6K>)> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if best_path() != Path::Portable {
                bodies.push(("AVX2", avx2::rows));
            }
            if best_path() == Path::Vnni {
                bodies.push(("VNNI", avx2::rows_vnni));
            }
            if wide() {
                bodies.push(("AVX-512", avx2::rows_wide));
            }
        }
        kquant_rows_are_candles(21, 4, matmul_q6k, &bodies);
    }
}
