//! Q5_0 products in candle's exact order. candle's CPU backend has only a scalar Q5_0 dot
//! product: each block's integer sum, times the weight scale, times the activation scale, added
//! block by block. The engine's reference (candle-transformers on the same file) multiplies that
//! way, and re-quantizing activations at every layer amplifies any last-bit difference, so our
//! logits must come out bitwise the same: summing in SIMD lanes (as the `int8` kernels do for
//! Q4_0 and Q8_0, whose candle products sum in lanes too) would move them by about 1% of the
//! largest logit.
//!
//! The kernel keeps that order per output and vectorizes across outputs instead: one weight row
//! by eight activation rows at a time, each block unpacked once for the eight, their eight
//! integer sums (VNNI's `vpdpbusd` or AVX2, exact) reduced into one vector with one lane per
//! activation row, then the same float multiply, multiply and add candle does, lane by lane.
//! From sixteen activation rows on, with 512-bit VNNI, the rows themselves are the lanes
//! ([`wide`]): a block's integer sums need no reduction at all, and a prefill's Q5_0 products run
//! about twice as fast. Every output goes through the same operations in every tile and on every
//! path, so each row of a batch is bitwise what it would be alone (batch invariance).

use super::common::q8_0::{quantize, wide_vnni, Act, Format, Lanes16, LANES};
use super::common::{best_path, Path, QK};
use half::f16;

/// Bytes of one Q5_0 block: f16 scale, 32 high bits, 16 bytes of low nibbles.
pub const Q5_0_BYTES: usize = 22;

/// One row with one activation row, in candle's order (portable code).
#[allow(clippy::needless_range_loop)] // j indexes the nibbles and two bit positions
pub fn dot_scalar(w: &[u8], y: &[Act]) -> f32 {
    let mut sumf = 0f32;
    for (b, a) in w.chunks_exact(Q5_0_BYTES).zip(y) {
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        let qs = &b[6..22];
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let h0 = (((qh >> j) & 1) << 4) as i32;
            let h1 = (((qh >> (j + 16)) & 1) << 4) as i32;
            let x0 = ((qs[j] & 0x0F) as i32 | h0) - 16;
            let x1 = ((qs[j] >> 4) as i32 | h1) - 16;
            sumi += x0 * a.qs[j] as i32 + x1 * a.qs[j + QK / 2] as i32;
        }
        sumf += sumi as f32 * d * a.d;
    }
    sumf
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Act, Q5_0_BYTES};
    use crate::engine::kernels::common::simd::{bytes_from_bits_32, f16_to_f32, nibbles};
    use std::arch::x86_64::*;

    /// A block's scale and its values as unsigned bytes (value + 16).
    #[inline(always)]
    pub(super) unsafe fn unpack(p: *const u8) -> (f32, __m256i) {
        let d = f16_to_f32(std::ptr::read_unaligned(p as *const u16));
        let qh = std::ptr::read_unaligned(p.add(2) as *const u32);
        let high = _mm256_and_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0x10));
        (d, _mm256_or_si256(nibbles(p.add(6)), high))
    }

    /// Lane sums of one block: `seed + Σ u·y` by four bytes.
    #[inline(always)]
    unsafe fn lanes<const VNNI: bool>(seed: __m256i, u: __m256i, y: __m256i) -> __m256i {
        if VNNI {
            _mm256_dpbusd_epi32(seed, u, y)
        } else {
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), _mm256_set1_epi16(1));
            _mm256_add_epi32(seed, p)
        }
    }

    /// Eight vectors of lane sums to one vector of their totals (exact integer adds).
    #[inline(always)]
    unsafe fn totals(v: [__m256i; 8]) -> __m256i {
        let a = _mm256_hadd_epi32(v[0], v[1]);
        let b = _mm256_hadd_epi32(v[2], v[3]);
        let c = _mm256_hadd_epi32(v[4], v[5]);
        let d = _mm256_hadd_epi32(v[6], v[7]);
        let ab = _mm256_hadd_epi32(a, b);
        let cd = _mm256_hadd_epi32(c, d);
        _mm256_add_epi32(
            _mm256_permute2x128_si256(ab, cd, 0x20),
            _mm256_permute2x128_si256(ab, cd, 0x31),
        )
    }

    /// One weight row by eight activation rows (`ys`), lane `c` the output for `ys[c]`;
    /// `ds` holds each block's activation scales, `stride` apart.
    #[inline(always)]
    unsafe fn row_by_8<const VNNI: bool>(
        w: *const u8,
        ys: [*const Act; 8],
        ds: *const f32,
        stride: usize,
        kb: usize,
    ) -> __m256 {
        let mut sumf = _mm256_setzero_ps();
        for b in 0..kb {
            let (d, u) = unpack(w.add(b * Q5_0_BYTES));
            let mut v = [_mm256_setzero_si256(); 8];
            for c in 0..8 {
                let a = &*ys[c].add(b);
                let y = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                let seed = _mm256_loadu_si256(a.seed.as_ptr() as *const __m256i);
                v[c] = lanes::<VNNI>(seed, u, y);
            }
            // candle: sumf += sumi as f32 * d * dy — a multiply, a multiply, an add; no FMA.
            let t = _mm256_cvtepi32_ps(totals(v));
            let t = _mm256_mul_ps(t, _mm256_set1_ps(d));
            let t = _mm256_mul_ps(t, _mm256_loadu_ps(ds.add(b * stride)));
            sumf = _mm256_add_ps(sumf, t);
        }
        sumf
    }

    macro_rules! entry {
        ($name:ident, $vnni:literal, $features:literal) => {
            /// Weight rows `rows` against every activation row, eight at a time (the last group
            /// padded with the last row, its extra lanes dropped).
            ///
            /// # Safety
            /// The CPU has the named features; `ds` holds `kb` blocks of `stride ≥ m` rounded
            /// up to 8 scales; only this call writes these rows' outputs.
            #[target_feature(enable = $features)]
            #[allow(clippy::too_many_arguments)]
            pub unsafe fn $name(
                w: &[u8],
                xq: &[Act],
                ds: &[f32],
                stride: usize,
                m: usize,
                kb: usize,
                rows: std::ops::Range<usize>,
                n: usize,
                out: *mut f32,
            ) {
                let row_bytes = kb * Q5_0_BYTES;
                let y = |i: usize| xq.as_ptr().add(i.min(m - 1) * kb);
                let mut i0 = 0;
                while i0 < m {
                    let ys: [*const Act; 8] = std::array::from_fn(|c| y(i0 + c));
                    let live = (m - i0).min(8);
                    for j in rows.clone() {
                        let wr = w.as_ptr().add(j * row_bytes);
                        let t = row_by_8::<$vnni>(wr, ys, ds.as_ptr().add(i0), stride, kb);
                        let mut lanes = [0f32; 8];
                        _mm256_storeu_ps(lanes.as_mut_ptr(), t);
                        for (c, v) in lanes.iter().enumerate().take(live) {
                            *out.add((i0 + c) * n + j) = *v;
                        }
                    }
                    i0 += 8;
                }
            }
        };
    }
    entry!(run_vnni, true, "avx2,fma,f16c,avx512vnni,avx512vl");
    entry!(run_avx2, false, "avx2,fma,f16c");
}

/// The same products for sixteen or more activation rows with 512-bit VNNI: the rows are the
/// lanes. Activations are laid out four bytes of sixteen rows at a time, so one `vpdpbusd` with a
/// weight's four bytes broadcast adds four products into each row's exact integer sum: a block's
/// sums come out one per lane, with no horizontal reduction, and go through candle's multiply,
/// multiply and add as in [`simd`]. Four weight rows share each activation load; weight rows are
/// unpacked once per chunk of 64 activation rows, which stays in the core's cache.
/// The same products for sixteen or more activation rows with 512-bit VNNI: the rows are the
/// lanes ([`Lanes16`]), so one `vpdpbusd` with a weight's four bytes broadcast adds four products
/// into each row's exact integer sum: a block's sums come out one per lane, with no horizontal
/// reduction, and go through candle's multiply, multiply and add as in [`simd`]. Four weight rows
/// share each activation load; weight rows are unpacked once per chunk of 64 activation rows,
/// which stays in the core's cache.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::{simd::unpack, Lanes16, LANES, Q5_0_BYTES};
    use crate::engine::kernels::common::simd::unpack_rows;
    use std::arch::x86_64::*;

    /// Weight rows sharing each activation load.
    const R: usize = 4;
    /// Lane groups per pass over a weight row's unpacked blocks.
    const CHUNK: usize = 4;

    /// Weight rows `rows` against the `m` activation rows laid out in `l`.
    ///
    /// # Safety
    /// [`super::wide_vnni`] is true; `l` holds `m` rows of `kb` blocks; only this call writes
    /// these rows' outputs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn run(
        w: &[u8],
        l: &Lanes16,
        m: usize,
        kb: usize,
        rows: std::ops::Range<usize>,
        n: usize,
        out: *mut f32,
    ) {
        let row_bytes = kb * Q5_0_BYTES;
        let groups = m.div_ceil(LANES);
        let mut ub = vec![0u8; R * kb * 32];
        let mut dw = vec![0f32; R * kb];
        for g0 in (0..groups).step_by(CHUNK) {
            let mut j = rows.start;
            while j < rows.end {
                let r = (rows.end - j).min(R);
                let rb = (row_bytes, Q5_0_BYTES);
                unpack_rows(
                    #[inline(always)]
                    |p| unpack(p),
                    w.as_ptr(),
                    rb,
                    j,
                    r,
                    kb,
                    &mut ub,
                    &mut dw,
                );
                for grp in g0..(g0 + CHUNK).min(groups) {
                    let mut sumf = [_mm512_setzero_ps(); R];
                    for b in 0..kb {
                        let at = grp * kb + b;
                        let yb = l.yt.as_ptr().add(at * 8 * 64);
                        let y: [__m512i; 8] =
                            std::array::from_fn(|g| _mm512_loadu_si512(yb.add(g * 64) as *const _));
                        let s = _mm512_loadu_si512(l.sums.as_ptr().add(at * LANES) as *const _);
                        let dy = _mm512_loadu_ps(l.d.as_ptr().add(at * LANES));
                        for (q, sumf) in sumf.iter_mut().enumerate().take(r) {
                            let up = ub.as_ptr().add((q * kb + b) * 32) as *const i32;
                            let mut acc = s;
                            for (g, y) in y.iter().enumerate() {
                                let u = _mm512_set1_epi32(std::ptr::read_unaligned(up.add(g)));
                                acc = _mm512_dpbusd_epi32(acc, u, *y);
                            }
                            // candle: sumf += sumi as f32 * d * dy.
                            let t = _mm512_mul_ps(
                                _mm512_cvtepi32_ps(acc),
                                _mm512_set1_ps(dw[q * kb + b]),
                            );
                            *sumf = _mm512_add_ps(*sumf, _mm512_mul_ps(t, dy));
                        }
                    }
                    let live = (m - grp * LANES).min(LANES);
                    for (q, sumf) in sumf.iter().enumerate().take(r) {
                        let mut lanes = [0f32; LANES];
                        _mm512_storeu_ps(lanes.as_mut_ptr(), *sumf);
                        for (c, v) in lanes.iter().enumerate().take(live) {
                            *out.add((grp * LANES + c) * n + j + q) = *v;
                        }
                    }
                }
                j += r;
            }
        }
    }
}

/// Weight rows per parallel work item.
const TILE: usize = 16;

/// `x` (`m` rows of `k`) times the transpose of Q5_0 `w` (`n` rows of `k`): `m` rows of `n`,
/// bitwise candle's product.
pub fn matmul_q5_0(w: &[u8], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    matmul_on(best_path(), w, n, k, x, m)
}

fn matmul_on(path: Path, w: &[u8], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    let kb = k / QK;
    let row_bytes = kb * Q5_0_BYTES;
    assert!(
        k.is_multiple_of(QK) && x.len() == m * k && w.len() >= n * row_bytes,
        "matmul_q5_0 shapes"
    );
    let xq = quantize(Format::Q5_0, x);
    let mut out = vec![0f32; m * n];
    let dst = out.as_mut_ptr() as usize;
    #[cfg(target_arch = "x86_64")]
    if path == Path::Vnni && m >= LANES && wide_vnni() {
        let l = Lanes16::new(&xq, m, kb, false);
        candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(TILE), |items| {
            let rows = items.start * TILE..(items.end * TILE).min(n);
            // SAFETY: `wide_vnni` checked the CPU; `l` holds the activations; work items own
            // disjoint weight rows; `out` outlives the pool call.
            unsafe { wide::run(w, &l, m, kb, rows, n, dst as *mut f32) };
        });
        return out;
    }
    // Each block's activation scales side by side, for eight rows at a time
    // (the narrow kernels' layout; the wide one has its own).
    let stride = m.next_multiple_of(8);
    let mut ds = vec![0f32; kb * stride];
    for (i, row) in xq.chunks_exact(kb).enumerate() {
        for (b, a) in row.iter().enumerate() {
            ds[b * stride + i] = a.d;
        }
    }
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(TILE), |items| {
        let out = dst as *mut f32;
        let rows = items.start * TILE..(items.end * TILE).min(n);
        let done = match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path was detected on this CPU; `ds` is laid out as the kernel reads
            // it; work items own disjoint weight rows, so each output is written once; `out`
            // outlives the pool call.
            Path::Vnni => unsafe {
                simd::run_vnni(w, &xq, &ds, stride, m, kb, rows.clone(), n, out);
                rows.end
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Path::Avx2 => unsafe {
                simd::run_avx2(w, &xq, &ds, stride, m, kb, rows.clone(), n, out);
                rows.end
            },
            _ => rows.start,
        };
        for j in done..rows.end {
            let wrow = &w[j * row_bytes..(j + 1) * row_bytes];
            for i in 0..m {
                let v = dot_scalar(wrow, &xq[i * kb..(i + 1) * kb]);
                // SAFETY: as above.
                unsafe { *out.add(i * n + j) = v };
            }
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::common::testing::random;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    #[test]
    fn bitwise_candles_product_on_every_path_and_batch() {
        let (n, k) = (45, 256);
        let w = Tensor::from_vec(random(n * k, 1), (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q5_0).unwrap();
        let bytes = q.data().unwrap().into_owned();
        let candle = QMatMul::from_qtensor(q).unwrap();
        let mut paths = vec![Path::Portable];
        if matches!(best_path(), Path::Avx2 | Path::Vnni) {
            paths.push(Path::Avx2);
        }
        if best_path() == Path::Vnni {
            paths.push(Path::Vnni);
        }
        let x = random(67 * k, 2);
        for m in [1, 2, 3, 5, 16, 17, 21, 40, 67] {
            let xt = Tensor::from_vec(x[..m * k].to_vec(), (m, k), &Device::Cpu).unwrap();
            let theirs: Vec<u32> = candle
                .forward(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            for &path in &paths {
                let ours: Vec<u32> = matmul_on(path, &bytes, n, k, &x[..m * k], m)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert_eq!(ours, theirs, "{path:?} m={m}");
            }
        }
    }
}
