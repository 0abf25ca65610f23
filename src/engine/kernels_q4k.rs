//! A Q4_K × Q8_K product over several activation rows that unpacks each weight block once.
//!
//! Every row's result is bitwise what candle's own AVX2 `vec_dot_q4k_q8k` gives for that row
//! alone: the integer dot products are exact, and each row's float accumulation (the same FMAs
//! on the same lanes, block by block, and the same final reduction) is kept separate. So a
//! speculative verification pass of several rows costs little more than one decode step's weight
//! traffic, and still gives each row exactly its decode-step value.

use candle_core::quantized::k_quants::{BlockQ4K, BlockQ8K};

/// Weight rows per parallel work item.
const TILE: usize = 16;

/// `x` (`m` rows of `k`) times the transpose of Q4_K `w` (`n` rows of `k / 256` blocks).
pub fn matmul_q4k(w: &[BlockQ4K], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    rows_by_four(w, n, k, x, m, dot_rows)
}

/// `x` (`m` rows of `k`) times the transpose of K-quant rows `w` (`n` rows of `k / 256`
/// blocks), where `dot(w_row, ys, kb, r, out)` dots one weight row with `r` (1–4) consecutive
/// activation rows: activations quantized to Q8_K once, weight rows read one after the other
/// (one stream), up to four activation rows per weight-block unpack.
pub(crate) fn rows_by_four<T: Sync>(
    w: &[T],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    dot: impl Fn(&[T], &[BlockQ8K], usize, usize, &mut [f32; 4]) + Sync,
) -> Vec<f32> {
    use candle_core::quantized::k_quants::GgmlType;
    let kb = k / 256;
    assert!(
        k.is_multiple_of(256) && x.len() == m * k && w.len() >= n * kb,
        "K-quant product shapes"
    );
    let mut xq = vec![BlockQ8K::zeros(); m * kb];
    for (row, out) in x.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
        BlockQ8K::from_float(row, out);
    }
    let mut out = vec![0f32; m * n];
    let dst = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(TILE), |range| {
        let mut res = [0f32; 4];
        for t in range {
            for j in t * TILE..((t + 1) * TILE).min(n) {
                let wrow = &w[j * kb..(j + 1) * kb];
                let mut i = 0;
                while i < m {
                    let r = (m - i).min(4);
                    dot(wrow, &xq[i * kb..(i + r) * kb], kb, r, &mut res);
                    for (o, v) in res[..r].iter().enumerate() {
                        // SAFETY: each (row, column) is written by one work item; `out` outlives
                        // the pool call.
                        unsafe { *(dst as *mut f32).add((i + o) * n + j) = *v };
                    }
                    i += r;
                }
            }
        }
    });
    out
}

/// `r` (1–4) consecutive activation rows of `kb` blocks each, dotted with one weight row.
fn dot_rows(w: &[BlockQ4K], ys: &[BlockQ8K], kb: usize, r: usize, out: &mut [f32; 4]) {
    #[cfg(target_arch = "x86_64")]
    if avx2_fma() {
        // SAFETY: AVX2 and FMA (and VNNI where used) are present; `ys` holds r × kb blocks, `w`
        // kb blocks.
        unsafe {
            if vnni() {
                match r {
                    1 => avx2::dot_vnni::<1>(w, ys, kb, out),
                    2 => avx2::dot_vnni::<2>(w, ys, kb, out),
                    3 => avx2::dot_vnni::<3>(w, ys, kb, out),
                    _ => avx2::dot_vnni::<4>(w, ys, kb, out),
                }
            } else {
                match r {
                    1 => avx2::dot::<1>(w, ys, kb, out),
                    2 => avx2::dot::<2>(w, ys, kb, out),
                    3 => avx2::dot::<3>(w, ys, kb, out),
                    _ => avx2::dot::<4>(w, ys, kb, out),
                }
            }
        }
        return;
    }
    use candle_core::quantized::k_quants::GgmlType;
    for (i, o) in out.iter_mut().enumerate().take(r) {
        *o = BlockQ4K::vec_dot(kb * 256, w, &ys[i * kb..(i + 1) * kb]);
    }
}

/// AVX-512 VNNI on 256-bit registers: `vpdpwssd` fuses the scale products and their sum.
fn vnni() -> bool {
    super::kernels_int8::best_path() == super::kernels_int8::Path::Vnni
}

fn avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static F: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *F.get_or_init(|| {
            is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::kernels_int8::simd::hsum as hsum_float_8;
    use super::{BlockQ4K, BlockQ8K};
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
    /// AVX2 and FMA; `ys` holds `R × kb` blocks, `w` holds `kb`.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot<const R: usize>(
        w: &[BlockQ4K],
        ys: &[BlockQ8K],
        kb: usize,
        out: &mut [f32; 4],
    ) {
        body::<R, false>(w, ys, kb, out)
    }

    /// As [`dot`], with VNNI: the same integers, so the same bits.
    ///
    /// # Safety
    /// As [`dot`], and AVX-512 VNNI with VL.
    #[target_feature(enable = "avx2,fma,f16c,avx512vnni,avx512vl")]
    pub unsafe fn dot_vnni<const R: usize>(
        w: &[BlockQ4K],
        ys: &[BlockQ8K],
        kb: usize,
        out: &mut [f32; 4],
    ) {
        body::<R, true>(w, ys, kb, out)
    }

    #[inline(always)]
    unsafe fn body<const R: usize, const VNNI: bool>(
        w: &[BlockQ4K],
        ys: &[BlockQ8K],
        kb: usize,
        out: &mut [f32; 4],
    ) {
        const KMASK1: u32 = 0x3f3f3f3f;
        const KMASK2: u32 = 0x0f0f0f0f;
        const KMASK3: u32 = 0x03030303;
        let xs = w.as_ptr() as *const Q4K;
        let ys = ys.as_ptr() as *const Q8K;
        let m4 = _mm256_set1_epi8(0xF);
        let mut acc = [_mm256_setzero_ps(); R];
        let mut acc_m = [_mm_setzero_ps(); R];
        for b in 0..kb {
            let x = &*xs.add(b);
            // Both scales at once with F16C (exact, as `half` converts them).
            let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(
                (x.d as u32 | (x.dmin as u32) << 16) as i32,
            ));
            let xd = _mm_cvtss_f32(dd);
            let xdmin = _mm_cvtss_f32(_mm_movehdup_ps(dd));
            let mut utmp = [0u32; 4];
            for (i, u) in utmp.iter_mut().take(3).enumerate() {
                *u = u32::from_le_bytes(x.scales[4 * i..4 * i + 4].try_into().unwrap());
            }
            utmp[3] = ((utmp[2] >> 4) & KMASK2) | (((utmp[1] >> 6) & KMASK3) << 4);
            let uaux = utmp[1] & KMASK1;
            utmp[1] = (utmp[2] & KMASK2) | (((utmp[0] >> 6) & KMASK3) << 4);
            utmp[2] = uaux;
            utmp[0] &= KMASK1;
            let mins_and_scales = _mm256_cvtepu8_epi16(_mm_set_epi32(
                utmp[3] as i32,
                utmp[2] as i32,
                utmp[1] as i32,
                utmp[0] as i32,
            ));
            let mins = _mm256_extracti128_si256(mins_and_scales, 1);
            let sc128 = _mm256_extracti128_si256(mins_and_scales, 0);
            let scales = _mm256_insertf128_si256(_mm256_castsi128_si256(sc128), sc128, 1);
            let mut sumi = [_mm256_setzero_si256(); R];
            for r in 0..R {
                let y = &*ys.add(r * kb + b);
                let q8sums = _mm256_loadu_si256(y.bsums.as_ptr() as *const __m256i);
                let q8s = _mm_hadd_epi16(
                    _mm256_extracti128_si256(q8sums, 0),
                    _mm256_extracti128_si256(q8sums, 1),
                );
                let prod = _mm_madd_epi16(mins, q8s);
                let dmin = -y.d * xdmin;
                acc_m[r] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), acc_m[r]);
            }
            for j in 0..4 {
                let scale_l = _mm256_shuffle_epi8(scales, scale_shuffle(2 * j));
                let scale_h = _mm256_shuffle_epi8(scales, scale_shuffle(2 * j + 1));
                let q4bits = _mm256_loadu_si256(x.qs.as_ptr().add(32 * j) as *const __m256i);
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::k_quants::GgmlType;
    use rand::{Rng, SeedableRng};

    #[test]
    fn every_row_is_bitwise_candles_one_row_dot() {
        let (n, k) = (24, 768);
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let wf: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        let mut w = vec![BlockQ4K::zeros(); n * k / 256];
        BlockQ4K::from_float(&wf, &mut w);
        for m in [1, 2, 3, 4, 5, 9, 17] {
            let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
            let ours = matmul_q4k(&w, n, k, &x, m);
            for i in 0..m {
                let mut xq = vec![BlockQ8K::zeros(); k / 256];
                BlockQ8K::from_float(&x[i * k..(i + 1) * k], &mut xq);
                for j in 0..n {
                    let theirs = BlockQ4K::vec_dot(k, &w[j * 3..(j + 1) * 3], &xq);
                    assert_eq!(
                        ours[i * n + j].to_bits(),
                        theirs.to_bits(),
                        "m {m} row {i} col {j}"
                    );
                    #[cfg(target_arch = "x86_64")]
                    if avx2_fma() {
                        // The plain AVX2 body too, where the dispatch took VNNI.
                        let mut out = [0f32; 4];
                        // SAFETY: AVX2 and FMA are present; one row of 3 blocks each.
                        unsafe { avx2::dot::<1>(&w[j * 3..(j + 1) * 3], &xq, 3, &mut out) };
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
