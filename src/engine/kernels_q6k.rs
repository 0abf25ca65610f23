//! A Q6_K × Q8_K product over several activation rows that unpacks each weight block once.
//!
//! Every row's result is bitwise what candle's own AVX2 `vec_dot_q6k_q8k` gives for that row
//! alone: the integer products are exact (VNNI's `vpdpwssd` only fuses the scale products and
//! their sum), and each row's float accumulation (the same FMAs on the same lanes, block by
//! block, and the same final reduction) is kept separate. A speculative verification pass of a
//! few rows then costs little more than one decode step's weight unpacking, and each row is
//! still exactly its decode-step value. Weight rows are read one after the other, one stream.

use candle_core::quantized::k_quants::{BlockQ6K, BlockQ8K};

/// `x` (`m` rows of `k`) times the transpose of Q6_K `w` (`n` rows of `k / 256` blocks).
pub fn matmul_q6k(w: &[BlockQ6K], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    super::kernels_q4k::rows_by_four(w, n, k, x, m, dot_rows)
}

/// `rows` weight rows dotted with `m` activation rows of `kb` blocks: `out[i * rows + j]`.
fn dot_rows(w: &[BlockQ6K], rows: usize, ys: &[BlockQ8K], m: usize, kb: usize, out: &mut [f32]) {
    use super::kernels_int8::{best_path, Path};
    #[cfg(target_arch = "x86_64")]
    {
        let path = best_path();
        if path != Path::Portable {
            // SAFETY: the path's features are present; `ys` holds m × kb blocks, `w` rows × kb.
            unsafe {
                if path == Path::Vnni {
                    avx2::rows_vnni(w, rows, ys, m, kb, out)
                } else {
                    avx2::rows(w, rows, ys, m, kb, out)
                }
            }
            return;
        }
    }
    let _ = best_path;
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
    use super::super::kernels_int8::simd::{hsum as hsum_float_8, prefetch_ahead};
    use super::{BlockQ6K, BlockQ8K};
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
        all_rows::<false>(w, rows, ys, m, kb, out)
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
        all_rows::<true>(w, rows, ys, m, kb, out)
    }

    #[inline(always)]
    unsafe fn all_rows<const VNNI: bool>(
        w: &[BlockQ6K],
        rows: usize,
        ys: &[BlockQ8K],
        m: usize,
        kb: usize,
        out: &mut [f32],
    ) {
        assert!(w.len() >= rows * kb && ys.len() >= m * kb && out.len() >= m * rows);
        let ys = ys.as_ptr() as *const Q8K;
        let mut res = [0f32; 4];
        for j in 0..rows {
            let x = (w.as_ptr() as *const Q6K).add(j * kb);
            let mut i = 0;
            while i < m {
                let y = ys.add(i * kb);
                let r = match m - i {
                    1 => body::<1, VNNI>(x, y, kb, &mut res),
                    2 => body::<2, VNNI>(x, y, kb, &mut res),
                    3 => body::<3, VNNI>(x, y, kb, &mut res),
                    _ => body::<4, VNNI>(x, y, kb, &mut res),
                };
                for (o, v) in res[..r].iter().enumerate() {
                    *out.get_unchecked_mut((i + o) * rows + j) = *v;
                }
                i += r;
            }
        }
    }

    #[inline(always)]
    #[allow(clippy::needless_range_loop)] // one index into several per-row arrays
    unsafe fn body<const R: usize, const VNNI: bool>(
        xs: *const Q6K,
        ys: *const Q8K,
        kb: usize,
        out: &mut [f32; 4],
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
    use candle_core::quantized::k_quants::GgmlType;
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_row_is_bitwise_candles_one_row_dot() {
        let (n, k) = (21, 768);
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let wf: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let mut w = vec![BlockQ6K::zeros(); n * k / 256];
        BlockQ6K::from_float(&wf, &mut w);
        for m in [1, 2, 3, 4, 5, 9, 17] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let ours = matmul_q6k(&w, n, k, &x, m);
            for i in 0..m {
                let mut xq = vec![BlockQ8K::zeros(); k / 256];
                BlockQ8K::from_float(&x[i * k..(i + 1) * k], &mut xq);
                for j in 0..n {
                    let wrow = &w[j * 3..(j + 1) * 3];
                    let theirs = BlockQ6K::vec_dot(k, wrow, &xq);
                    assert_eq!(
                        ours[i * n + j].to_bits(),
                        theirs.to_bits(),
                        "m {m} row {i} col {j}"
                    );
                    #[cfg(target_arch = "x86_64")]
                    if super::super::kernels_int8::best_path()
                        == super::super::kernels_int8::Path::Vnni
                    {
                        // The plain AVX2 body too, where the dispatch took VNNI.
                        let mut out = [0f32; 1];
                        // SAFETY: AVX2, FMA and F16C are present; one row of 3 blocks.
                        unsafe { avx2::rows(wrow, 1, &xq, 1, 3, &mut out) };
                        assert_eq!(
                            out[0].to_bits(),
                            theirs.to_bits(),
                            "AVX2 m {m} row {i} col {j}"
                        );
                    }
                }
            }
        }
    }
}
