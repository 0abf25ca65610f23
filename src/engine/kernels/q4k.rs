//! A Q4_K × Q8_K product over several activation rows that unpacks each weight block once.
//!
//! Every row's result is bitwise what candle's own AVX2 `vec_dot_q4k_q8k` gives for that row
//! alone: the integer dot products are exact, and each row's float accumulation (the same FMAs
//! on the same lanes, block by block, and the same final reduction) is kept separate. So a
//! speculative verification pass of several rows costs little more than one decode step's weight
//! traffic, and still gives each row exactly its decode-step value.

use super::common::{best_path, rows_by_four, wide, Path};
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8K};

/// `x` (`m` rows of `k`) times the transpose of Q4_K `w` (`n` rows of `k / 256` blocks).
pub fn matmul_q4k(w: &[BlockQ4K], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    rows_by_four(w, n, k, x, m, dot_rows)
}

/// `rows` weight rows dotted with `m` activation rows of `kb` blocks: `out[i * rows + j]`.
fn dot_rows(w: &[BlockQ4K], rows: usize, ys: &[BlockQ8K], m: usize, kb: usize, out: &mut [f32]) {
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
            out[i * rows + j] = BlockQ4K::vec_dot(
                kb * 256,
                &w[j * kb..(j + 1) * kb],
                &ys[i * kb..(i + 1) * kb],
            );
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{BlockQ4K, BlockQ8K};
    use crate::engine::kernels::common::row_groups;
    use crate::engine::kernels::common::simd::{hsum as hsum_float_8, prefetch_ahead};
    use std::arch::x86_64::*;

    /// candle's layouts, read field by field (its fields are crate-private; the layouts are
    /// `repr(C)` and asserted there: 144 and 292 bytes).
    #[repr(C)]
    struct Q4K {
        d: u16,
        dmin: u16,
        scales: [u8; 12],
        qs: [u8; 128],
    }
    #[repr(C)]
    struct Q8K {
        d: f32,
        qs: [i8; 256],
        bsums: [i16; 16],
    }
    const _: () = assert!(std::mem::size_of::<Q4K>() == std::mem::size_of::<BlockQ4K>());
    const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<BlockQ8K>());

    /// For sub-block i: bytes 2i, 2i + 1 repeated, which spread its 16-bit scale to every lane.
    const SCALE_SHUFFLE: [[u8; 32]; 8] = {
        let mut t = [[0u8; 32]; 8];
        let mut i = 0;
        while i < 8 {
            let mut j = 0;
            while j < 32 {
                t[i][j] = (2 * i + j % 2) as u8;
                j += 1;
            }
            i += 1;
        }
        t
    };

    #[inline(always)]
    unsafe fn scale_shuffle(i: usize) -> __m256i {
        _mm256_loadu_si256(SCALE_SHUFFLE[i].as_ptr() as *const __m256i)
    }

    /// # Safety
    /// AVX2, FMA and F16C; `ys` holds `m × kb` blocks, `w` holds `rows × kb`, `out` `m × rows`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn rows(
        w: &[BlockQ4K],
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
        w: &[BlockQ4K],
        rows: usize,
        ys: &[BlockQ8K],
        m: usize,
        kb: usize,
        out: &mut [f32],
    ) {
        all_rows::<true, false>(w, rows, ys, m, kb, out)
    }

    /// As [`rows`], with AVX-512 (BW and VNNI): two 32-value sub-blocks per instruction and
    /// up to eight activation rows per weight-block unpack; the same integers, so the same bits.
    ///
    /// # Safety
    /// As [`rows`], and AVX-512 F, BW, VL and VNNI.
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    pub unsafe fn rows_wide(
        w: &[BlockQ4K],
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
        w: &[BlockQ4K],
        rows: usize,
        ys: &[BlockQ8K],
        m: usize,
        kb: usize,
        out: &mut [f32],
    ) {
        assert!(w.len() >= rows * kb && ys.len() >= m * kb);
        // Each activation block's bsums added in pairs: one per 32-value sub-block, as the
        // mins need them; the same for every weight row.
        let mut pairs = Vec::with_capacity(m * kb);
        for y in &ys[..m * kb] {
            let y = &*(y as *const BlockQ8K as *const Q8K);
            let s = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
            pairs.push(_mm_hadd_epi16(
                _mm256_castsi256_si128(s),
                _mm256_extracti128_si256(s, 1),
            ));
        }
        let (xs, ys) = (w.as_ptr() as *const Q4K, ys.as_ptr() as *const Q8K);
        let most = if WIDE { 8 } else { 4 };
        row_groups(
            rows,
            m,
            most,
            out,
            #[inline(always)]
            |j, i, take, res| {
                let (x, y, p) = (xs.add(j * kb), ys.add(i * kb), pairs.as_ptr().add(i * kb));
                match (WIDE, take) {
                    (true, 1) => wide::<1>(x, y, p, kb, res),
                    (true, 2) => wide::<2>(x, y, p, kb, res),
                    (true, 3) => wide::<3>(x, y, p, kb, res),
                    (true, 4) => wide::<4>(x, y, p, kb, res),
                    (true, 5) => wide::<5>(x, y, p, kb, res),
                    (true, 6) => wide::<6>(x, y, p, kb, res),
                    (true, 7) => wide::<7>(x, y, p, kb, res),
                    (true, _) => wide::<8>(x, y, p, kb, res),
                    (false, 1) => body::<1, VNNI>(x, y, p, kb, res),
                    (false, 2) => body::<2, VNNI>(x, y, p, kb, res),
                    (false, 3) => body::<3, VNNI>(x, y, p, kb, res),
                    (false, _) => body::<4, VNNI>(x, y, p, kb, res),
                }
            },
        );
    }

    /// For 32-byte chunk `j`: in the low 256 bits, the bytes of scale `2j` (its low nibbles'
    /// sub-block), in the high 256 bits those of scale `2j + 1`, each pair repeated; they
    /// spread the 16-bit scales of a register of 128-bit copies to every lane.
    const WIDE_SCALE_SHUFFLE: [[u8; 64]; 4] = {
        let mut t = [[0u8; 64]; 4];
        let mut j = 0;
        while j < 4 {
            let mut b = 0;
            while b < 64 {
                t[j][b] = (2 * (2 * j + b / 32) + b % 2) as u8;
                b += 1;
            }
            j += 1;
        }
        t
    };

    /// As [`body`] on 512-bit registers, for up to eight rows: each chunk's low nibbles
    /// (sub-block `2j`) in the low half, its high nibbles (`2j + 1`) in the high half, against
    /// the 64 activation bytes they meet; the two halves' integer lanes are added before they
    /// become floats, which gives candle's lanes exactly.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // one index into several per-row arrays
    unsafe fn wide<const R: usize>(
        xs: *const Q4K,
        ys: *const Q8K,
        pairs: *const __m128i,
        kb: usize,
        out: &mut [f32; 8],
    ) -> usize {
        let m4 = _mm512_set1_epi8(0xF);
        // Shift the high half by 4 bits: its nibbles are the high ones.
        let shifts = _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4);
        let shifts = _mm512_or_si512(shifts, _mm512_slli_epi64(shifts, 16));
        let shifts = _mm512_or_si512(shifts, _mm512_slli_epi64(shifts, 32));
        let mut acc = [_mm256_setzero_ps(); R];
        let mut acc_m = [_mm_setzero_ps(); R];
        for b in 0..kb {
            let x = xs.add(b);
            prefetch_ahead::<144>(x as *const u8);
            let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(
                ((*x).d as u32 | ((*x).dmin as u32) << 16) as i32,
            ));
            let xd = _mm_cvtss_f32(dd);
            let xdmin = _mm_cvtss_f32(_mm_movehdup_ps(dd));
            let mins_and_scales = mins_and_scales(x);
            let mins = _mm256_extracti128_si256(mins_and_scales, 1);
            let scales = _mm512_broadcast_i32x4(_mm256_castsi256_si128(mins_and_scales));
            for r in 0..R {
                let prod = _mm_madd_epi16(mins, *pairs.add(r * kb + b));
                let dmin = -(*ys.add(r * kb + b)).d * xdmin;
                acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[r]);
            }
            let mut sumi = [_mm512_setzero_si512(); R];
            for j in 0..4 {
                let sc = _mm512_shuffle_epi8(
                    scales,
                    _mm512_loadu_si512(WIDE_SCALE_SHUFFLE[j].as_ptr() as *const _),
                );
                let bits = _mm512_broadcast_i64x4(_mm256_loadu_si256(
                    (*x).qs.as_ptr().add(32 * j) as *const __m256i
                ));
                let q4 = _mm512_and_si512(_mm512_srlv_epi16(bits, shifts), m4);
                for r in 0..R {
                    let q8 = _mm512_loadu_si512(
                        (*ys.add(r * kb + b)).qs.as_ptr().add(64 * j) as *const _
                    );
                    sumi[r] = _mm512_dpwssd_epi32(sumi[r], sc, _mm512_maddubs_epi16(q4, q8));
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
            let m = _mm_add_ps(acc_m[r], _mm_movehl_ps(acc_m[r], acc_m[r]));
            let m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[r] = hsum_float_8(acc[r]) + _mm_cvtss_f32(m);
        }
        R
    }

    /// The 8 scales (16-bit lanes 0–7) and 8 mins (lanes 8–15) of a block's 12 packed bytes,
    /// as candle unpacks them one 32-bit word at a time.
    #[inline(always)]
    unsafe fn mins_and_scales(x: *const Q4K) -> __m256i {
        // The 12 scale bytes and 4 bytes of the values that follow them in the block.
        let v = _mm_loadu_si128(std::ptr::addr_of!((*x).scales) as *const __m128i);
        // Lanes 0–3: scales 0–3, low six bits of bytes 0–3. Lanes 4–7: scales 4–7, low nibbles
        // of bytes 8–11 under the top bits of bytes 0–3. Lanes 8–11: mins 0–3, low six bits of
        // bytes 4–7. Lanes 12–15: mins 4–7, high nibbles of bytes 8–11 under the top bits of
        // bytes 4–7.
        let a = _mm_shuffle_epi8(
            v,
            _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11),
        );
        let b = _mm_shuffle_epi8(
            v,
            _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7),
        );
        let low = _mm_and_si128(
            a,
            _mm_setr_epi8(63, 63, 63, 63, 15, 15, 15, 15, 63, 63, 63, 63, 0, 0, 0, 0),
        );
        let high = _mm_and_si128(
            _mm_srli_epi16(a, 4),
            _mm_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15, 15, 15, 15),
        );
        let top = _mm_and_si128(_mm_srli_epi16(b, 2), _mm_set1_epi8(0x30));
        _mm256_cvtepu8_epi16(_mm_or_si128(_mm_or_si128(low, high), top))
    }

    /// `R` activation rows (`ys`, `R × kb` blocks, and their bsum `pairs`) dotted with one
    /// weight row of `kb` blocks at `xs`; returns `R`.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // one index into several per-row arrays
    unsafe fn body<const R: usize, const VNNI: bool>(
        xs: *const Q4K,
        ys: *const Q8K,
        pairs: *const __m128i,
        kb: usize,
        out: &mut [f32; 8],
    ) -> usize {
        let m4 = _mm256_set1_epi8(0xF);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut acc_m = [_mm_setzero_ps(); R];
        for b in 0..kb {
            let x = xs.add(b);
            prefetch_ahead::<144>(x as *const _ as *const u8);
            // Both scales at once with F16C (exact, as `half` converts them).
            let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(
                ((*x).d as u32 | ((*x).dmin as u32) << 16) as i32,
            ));
            let xd = _mm_cvtss_f32(dd);
            let xdmin = _mm_cvtss_f32(_mm_movehdup_ps(dd));
            let mins_and_scales = mins_and_scales(x);
            let mins = _mm256_extracti128_si256(mins_and_scales, 1);
            let scales = _mm256_permute4x64_epi64(mins_and_scales, 0x44);
            let mut sumi = [_mm256_setzero_si256(); R];
            for r in 0..R {
                let prod = _mm_madd_epi16(mins, *pairs.add(r * kb + b));
                let dmin = -(*ys.add(r * kb + b)).d * xdmin;
                acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[r]);
            }
            for j in 0..4 {
                let scale_l = _mm256_shuffle_epi8(scales, scale_shuffle(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, scale_shuffle(2 * j + 1));
                let q4bits = _mm256_loadu_si256((*x).qs.as_ptr().add(32 * j) as *const __m256i);
                let q4l = _mm256_and_si256(q4bits, m4);
                let q4h = _mm256_and_si256(_mm256_srli_epi16(q4bits, 4), m4);
                for r in 0..R {
                    let q8 = (*ys.add(r * kb + b)).qs.as_ptr().add(64 * j);
                    let q8l = _mm256_loadu_si256(q8 as *const __m256i);
                    let q8h = _mm256_loadu_si256(q8.add(32) as *const __m256i);
                    let pl = _mm256_maddubs_epi16(q4l, q8l);
                    let ph = _mm256_maddubs_epi16(q4h, q8h);
                    if VNNI {
                        // Exact integer sums in any order: the same lanes as below.
                        sumi[r] = _mm256_dpwssd_epi32(sumi[r], scale_l, pl);
                        sumi[r] = _mm256_dpwssd_epi32(sumi[r], scale_h, ph);
                    } else {
                        let p16l = _mm256_madd_epi16(scale_l, pl);
                        let p16h = _mm256_madd_epi16(scale_h, ph);
                        sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(p16l, p16h));
                    }
                }
            }
            for r in 0..R {
                let d = (*ys.add(r * kb + b)).d * xd;
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
            }
        }
        for r in 0..R {
            let m = _mm_add_ps(acc_m[r], _mm_movehl_ps(acc_m[r], acc_m[r]));
            let m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[r] = hsum_float_8(acc[r]) + _mm_cvtss_f32(m);
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
        let mut bodies: Vec<(&str, KBody<BlockQ4K>)> = Vec::new();
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
        kquant_rows_are_candles(24, 3, matmul_q4k, &bodies);
    }
}
