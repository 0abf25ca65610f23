//! Integer products of weights stored in 32-value blocks (Q4_0, Q5_0, Q8_0) with activations
//! quantized to Q8_0, as llama.cpp computes them on x86: each block's products are summed exactly
//! in eight 32-bit lanes (four values each), converted to floats and accumulated lane by lane with
//! one fused multiply-add per block; the eight lanes are added once, at the end of the row.
//!
//! The kernels work on tiles of up to four weight rows by up to three activation rows, so each
//! weight block is unpacked once for all the activation rows it meets and each activation block is
//! loaded once for four weight rows. Every output still goes through the very same operations
//! whatever tile it falls in, whatever the instruction set (AVX-512 VNNI, AVX2 or the portable
//! code) and whatever the number of rows: a row of a batch is bitwise what it would be alone (the
//! batch invariance speculative verification needs), on every machine.
//!
//! Weights are read as unsigned bytes `u` with `value = u - offset` (offset 8, 16 or 128), so
//! VNNI's unsigned × signed `vpdpbusd` applies; the `-offset × Σy` correction of each lane is
//! computed once per activation block and seeds the lane sums.

use half::f16;

pub use super::common::q8_0::Format;
use super::common::q8_0::{quantize, wide_vnni, Act, Lanes16, LANES};
pub use super::common::QK;
use super::common::{best_path, parallel, Path};

/// The eight lane sums of floats, added as the SIMD code adds them.
fn hsum8(a: [f32; 8]) -> f32 {
    let x = [a[4] + a[0], a[5] + a[1], a[6] + a[2], a[7] + a[3]];
    (x[0] + x[2]) + (x[1] + x[3])
}

/// One weight row (`blocks` × block bytes) dotted with activations, portable code: the same
/// operations, lane by lane, as the SIMD kernels.
pub fn dot_scalar(format: Format, w: &[u8], y: &[Act]) -> f32 {
    let mut acc = [0f32; 8];
    for (b, a) in w.chunks_exact(format.block_bytes()).zip(y) {
        let v = format.values(b);
        let d = f16::from_le_bytes([b[0], b[1]]).to_f32() * a.d;
        for (l, acc) in acc.iter_mut().enumerate() {
            let lane: i32 = (4 * l..4 * l + 4).map(|i| v[i] * a.qs[i] as i32).sum();
            *acc = (lane as f32).mul_add(d, *acc);
        }
    }
    hsum8(acc)
}

#[cfg(target_arch = "x86_64")]
mod simd {
    use super::{Act, Format};
    use crate::engine::kernels::common::simd::{
        bytes_from_bits_32, f16_to_f32, hsum, nibbles, prefetch_ahead,
    };
    use std::arch::x86_64::*;

    /// A weight format's block unpacking.
    pub trait Fmt {
        const FORMAT: Format;
        /// The block's scale and its 32 values as unsigned bytes (`value + offset`).
        unsafe fn unpack(p: *const u8) -> (f32, __m256i);
    }

    /// How one block's lane sums are formed.
    pub trait Isa {
        const MAX_C: usize;
        /// `seed + Σ (u - offset)·y` by lanes of four bytes.
        unsafe fn lanes<F: Fmt>(seed: __m256i, u: __m256i, y: __m256i) -> __m256i;
    }

    pub struct Q4_0;
    impl Fmt for Q4_0 {
        const FORMAT: Format = Format::Q4_0;
        #[inline(always)]
        unsafe fn unpack(p: *const u8) -> (f32, __m256i) {
            (
                f16_to_f32(std::ptr::read_unaligned(p as *const u16)),
                nibbles(p.add(2)),
            )
        }
    }

    pub struct Q5_0;
    impl Fmt for Q5_0 {
        const FORMAT: Format = Format::Q5_0;
        #[inline(always)]
        unsafe fn unpack(p: *const u8) -> (f32, __m256i) {
            let d = f16_to_f32(std::ptr::read_unaligned(p as *const u16));
            let qh = std::ptr::read_unaligned(p.add(2) as *const u32);
            let high = _mm256_and_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0x10));
            (d, _mm256_or_si256(nibbles(p.add(6)), high))
        }
    }

    pub struct Q8_0;
    impl Fmt for Q8_0 {
        const FORMAT: Format = Format::Q8_0;
        #[inline(always)]
        unsafe fn unpack(p: *const u8) -> (f32, __m256i) {
            let d = f16_to_f32(std::ptr::read_unaligned(p as *const u16));
            let q = _mm256_loadu_si256(p.add(2) as *const __m256i);
            (d, _mm256_xor_si256(q, _mm256_set1_epi8(0x80u8 as i8)))
        }
    }

    /// AVX-512 VNNI on 256-bit registers: one `vpdpbusd` per block, seeded with the correction.
    pub struct Vnni;
    impl Isa for Vnni {
        const MAX_C: usize = 3;
        #[inline(always)]
        unsafe fn lanes<F: Fmt>(seed: __m256i, u: __m256i, y: __m256i) -> __m256i {
            _mm256_dpbusd_epi32(seed, u, y)
        }
    }

    /// AVX2: `vpmaddubsw` then `vpmaddwd`. Q8_0's unsigned bytes would overflow 16 bits, so its
    /// signed values are multiplied by sign instead; the lane sums are the same exact integers.
    pub struct Avx2;
    impl Isa for Avx2 {
        const MAX_C: usize = 2;
        #[inline(always)]
        unsafe fn lanes<F: Fmt>(seed: __m256i, u: __m256i, y: __m256i) -> __m256i {
            let ones = _mm256_set1_epi16(1);
            if matches!(F::FORMAT, Format::Q8_0) {
                let s = _mm256_xor_si256(u, _mm256_set1_epi8(0x80u8 as i8));
                let p = _mm256_maddubs_epi16(_mm256_sign_epi8(s, s), _mm256_sign_epi8(y, s));
                _mm256_madd_epi16(p, ones)
            } else {
                _mm256_add_epi32(seed, _mm256_madd_epi16(_mm256_maddubs_epi16(u, y), ones))
            }
        }
    }

    /// `R` weight rows (from `w`, `row_bytes` apart) by `C` activation rows (`ys`), `kb` blocks.
    #[inline(always)]
    unsafe fn tile<F: Fmt, I: Isa, const R: usize, const C: usize>(
        w: *const u8,
        row_bytes: usize,
        ys: [*const Act; C],
        kb: usize,
    ) -> [[f32; C]; R] {
        let bytes = F::FORMAT.block_bytes();
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        for b in 0..kb {
            let mut d = [0f32; R];
            let mut u = [_mm256_setzero_si256(); R];
            for r in 0..R {
                let p = w.add(r * row_bytes + b * bytes);
                if R == 1 {
                    prefetch_ahead::<1>(p);
                }
                (d[r], u[r]) = F::unpack(p);
            }
            for c in 0..C {
                let a = &*ys[c].add(b);
                let y = _mm256_loadu_si256(a.qs.as_ptr() as *const __m256i);
                let seed = _mm256_loadu_si256(a.seed.as_ptr() as *const __m256i);
                for r in 0..R {
                    let s = I::lanes::<F>(seed, u[r], y);
                    let scale = _mm256_set1_ps(d[r] * a.d);
                    acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale, acc[r][c]);
                }
            }
        }
        let mut out = [[0f32; C]; R];
        for r in 0..R {
            for c in 0..C {
                out[r][c] = hsum(acc[r][c]);
            }
        }
        out
    }

    /// Weight rows `rows` against all `m` activation rows; results to `out[i * n + j]`.
    #[inline(always)]
    unsafe fn rows_tile<F: Fmt, I: Isa, const R: usize>(job: &super::Job, j: usize, out: *mut f32) {
        let w = job.w.as_ptr().add(j * job.row_bytes);
        let y = |i: usize| job.xq.as_ptr().add(i * job.kb);
        let mut i = 0;
        while i < job.m {
            let left = job.m - i;
            if I::MAX_C >= 3 && left >= 3 {
                let t = tile::<F, I, R, 3>(w, job.row_bytes, [y(i), y(i + 1), y(i + 2)], job.kb);
                put(&t, i, j, job.n, out);
                i += 3;
            } else if left >= 2 {
                let t = tile::<F, I, R, 2>(w, job.row_bytes, [y(i), y(i + 1)], job.kb);
                put(&t, i, j, job.n, out);
                i += 2;
            } else {
                let t = tile::<F, I, R, 1>(w, job.row_bytes, [y(i)], job.kb);
                put(&t, i, j, job.n, out);
                i += 1;
            }
        }
    }

    #[inline(always)]
    unsafe fn put<const R: usize, const C: usize>(
        t: &[[f32; C]; R],
        i: usize,
        j: usize,
        n: usize,
        out: *mut f32,
    ) {
        for (r, t) in t.iter().enumerate() {
            for (c, v) in t.iter().enumerate() {
                *out.add((i + c) * n + j + r) = *v;
            }
        }
    }

    /// Weight rows `range` of the job. Up to 16 activation rows (decode, verification) take the
    /// weight rows one by one: a single sequential stream, which the hardware prefetcher follows
    /// at full memory bandwidth (four interleaved rows ran at a third of it), each row re-read
    /// from L1 for each group of activation rows. Longer batches (prefill) are bound by
    /// arithmetic, not memory: four weight rows at a time, loading each activation block once for
    /// the four.
    #[inline(always)]
    unsafe fn run<F: Fmt, I: Isa>(job: &super::Job, range: std::ops::Range<usize>, out: *mut f32) {
        let mut j = range.start;
        while job.m > 16 && j + 4 <= range.end {
            rows_tile::<F, I, 4>(job, j, out);
            j += 4;
        }
        while j < range.end {
            rows_tile::<F, I, 1>(job, j, out);
            j += 1;
        }
    }

    macro_rules! entry {
        ($name:ident, $isa:ty, $features:literal) => {
            /// # Safety
            /// The CPU has the named features; `range` is within the job's rows and only this
            /// call writes their outputs.
            #[target_feature(enable = $features)]
            pub unsafe fn $name(job: &super::Job, range: std::ops::Range<usize>, out: *mut f32) {
                match job.format {
                    Format::Q4_0 => run::<Q4_0, $isa>(job, range, out),
                    Format::Q5_0 => run::<Q5_0, $isa>(job, range, out),
                    Format::Q8_0 => run::<Q8_0, $isa>(job, range, out),
                }
            }
        };
    }
    entry!(run_vnni, Vnni, "avx2,fma,f16c,avx512vnni,avx512vl");
    entry!(run_avx2, Avx2, "avx2,fma,f16c");
}

/// The products for sixteen or more activation rows with 512-bit VNNI: the rows are the lanes
/// ([`Lanes16`]). A weight's four bytes `4g..4g + 4`, broadcast, meet every row's same four bytes
/// in one `vpdpbusd`: that is lane `g`'s exact integer sum of [`simd`]'s kernels, for sixteen rows
/// at once. Each lane accumulates with the same fused multiply-add, and the eight lanes are added
/// at the end in `hsum`'s order, so every output is bitwise the narrow kernels'. Two weight rows
/// share each activation load; weight rows are unpacked once per chunk of 64 activation rows.
#[cfg(target_arch = "x86_64")]
mod wide {
    use super::simd::{Fmt, Q4_0, Q5_0, Q8_0};
    use super::{Format, Lanes16, LANES};
    use crate::engine::kernels::common::simd::unpack_rows;
    use std::arch::x86_64::*;

    /// Weight rows sharing each activation load.
    const R: usize = 2;
    /// Lane groups per pass over a weight row's unpacked blocks.
    const CHUNK: usize = 4;

    #[inline(always)]
    unsafe fn run<F: Fmt>(
        job: &super::Job,
        l: &Lanes16,
        rows: std::ops::Range<usize>,
        out: *mut f32,
    ) {
        let (m, kb, n) = (job.m, job.kb, job.n);
        let bytes = F::FORMAT.block_bytes();
        let groups = m.div_ceil(LANES);
        let mut ub = vec![0u8; R * kb * 32];
        let mut dw = vec![0f32; R * kb];
        for g0 in (0..groups).step_by(CHUNK) {
            let mut j = rows.start;
            while j < rows.end {
                let r = (rows.end - j).min(R);
                let rb = (job.row_bytes, bytes);
                unpack_rows(
                    #[inline(always)]
                    |p| F::unpack(p),
                    job.w.as_ptr(),
                    rb,
                    j,
                    r,
                    kb,
                    &mut ub,
                    &mut dw,
                );
                for grp in g0..(g0 + CHUNK).min(groups) {
                    let mut acc = [[_mm512_setzero_ps(); 8]; R];
                    for b in 0..kb {
                        let at = grp * kb + b;
                        let yb = l.yt.as_ptr().add(at * 8 * 64);
                        let sb = l.seeds.as_ptr().add(at * 8 * LANES);
                        let dy = _mm512_loadu_ps(l.d.as_ptr().add(at * LANES));
                        // The narrow kernels' `d_w · d_y`, one per row.
                        let scale: [__m512; R] = std::array::from_fn(|q| {
                            _mm512_mul_ps(_mm512_set1_ps(dw[q * kb + b]), dy)
                        });
                        for g in 0..8 {
                            let y = _mm512_loadu_si512(yb.add(g * 64) as *const _);
                            let s = _mm512_loadu_si512(sb.add(g * LANES) as *const _);
                            for (q, acc) in acc.iter_mut().enumerate().take(r) {
                                let up = ub.as_ptr().add((q * kb + b) * 32 + 4 * g) as *const i32;
                                let u = _mm512_set1_epi32(std::ptr::read_unaligned(up));
                                let sums = _mm512_dpbusd_epi32(s, u, y);
                                acc[g] =
                                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), scale[q], acc[g]);
                            }
                        }
                    }
                    let live = (m - grp * LANES).min(LANES);
                    for (q, a) in acc.iter().enumerate().take(r) {
                        // hsum's order: (a4 + a0 + a6 + a2) + (a5 + a1 + a7 + a3), pairwise.
                        let x0 = _mm512_add_ps(a[4], a[0]);
                        let x1 = _mm512_add_ps(a[5], a[1]);
                        let x2 = _mm512_add_ps(a[6], a[2]);
                        let x3 = _mm512_add_ps(a[7], a[3]);
                        let t = _mm512_add_ps(_mm512_add_ps(x0, x2), _mm512_add_ps(x1, x3));
                        let mut lanes = [0f32; LANES];
                        _mm512_storeu_ps(lanes.as_mut_ptr(), t);
                        for (c, v) in lanes.iter().enumerate().take(live) {
                            *out.add((grp * LANES + c) * n + j + q) = *v;
                        }
                    }
                }
                j += r;
            }
        }
    }

    /// # Safety
    /// [`super::wide_vnni`] is true; `l` holds the job's activations; `rows` are within the
    /// job's and only this call writes their outputs.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma,f16c")]
    pub unsafe fn run_vnni512(
        job: &super::Job,
        l: &Lanes16,
        rows: std::ops::Range<usize>,
        out: *mut f32,
    ) {
        match job.format {
            Format::Q4_0 => run::<Q4_0>(job, l, rows, out),
            Format::Q5_0 => run::<Q5_0>(job, l, rows, out),
            Format::Q8_0 => run::<Q8_0>(job, l, rows, out),
        }
    }
}

/// One product: quantized activations and the weights they meet.
pub struct Job<'a> {
    format: Format,
    w: &'a [u8],
    xq: Vec<Act>,
    n: usize,
    m: usize,
    kb: usize,
    row_bytes: usize,
}

/// Weight rows per parallel work item.
const TILE: usize = 16;

/// `x` (`m` rows of `k`) times the transpose of `w` (`n` rows of `k` in `format`): `m` rows of
/// `n`, on the best path.
pub fn matmul(format: Format, w: &[u8], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    matmul_on(best_path(), format, w, n, k, x, m)
}

/// As [`matmul`], on a given path (which this CPU must have).
pub fn matmul_on(
    path: Path,
    format: Format,
    w: &[u8],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
) -> Vec<f32> {
    let kb = k / QK;
    let row_bytes = kb * format.block_bytes();
    assert!(
        k.is_multiple_of(QK) && x.len() == m * k && w.len() >= n * row_bytes,
        "int8 matmul shapes"
    );
    let job = Job {
        format,
        w,
        xq: quantize(format, x),
        n,
        m,
        kb,
        row_bytes,
    };
    let mut out = vec![0f32; m * n];
    let dst = out.as_mut_ptr() as usize;
    let run = |range: std::ops::Range<usize>| {
        let out = dst as *mut f32;
        match path {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the path was detected on this CPU; work items own disjoint weight rows, so
            // each output is written once; `out` outlives the pool call.
            Path::Vnni => unsafe { simd::run_vnni(&job, range, out) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            Path::Avx2 => unsafe { simd::run_avx2(&job, range, out) },
            _ => {
                for j in range {
                    let wrow = &job.w[j * row_bytes..(j + 1) * row_bytes];
                    for i in 0..m {
                        let v = dot_scalar(format, wrow, &job.xq[i * kb..(i + 1) * kb]);
                        // SAFETY: as above.
                        unsafe { *out.add(i * n + j) = v };
                    }
                }
            }
        }
    };
    let tiles = n.div_ceil(TILE);
    #[cfg(target_arch = "x86_64")]
    if path == Path::Vnni && m >= LANES && wide_vnni() {
        let l = Lanes16::new(&job.xq, m, kb, true);
        parallel(tiles, TILE * row_bytes, m, |items| {
            let rows = items.start * TILE..(items.end * TILE).min(n);
            // SAFETY: `wide_vnni` checked the CPU; `l` holds the job's activations; work items
            // own disjoint weight rows; `out` outlives the pool call.
            unsafe { wide::run_vnni512(&job, &l, rows, dst as *mut f32) };
        });
        return out;
    }
    parallel(tiles, TILE * row_bytes, m, |items| {
        run(items.start * TILE..(items.end * TILE).min(n))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::common::testing::random;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    fn weights(dtype: GgmlDType, n: usize, k: usize) -> (QTensor, Vec<u8>) {
        let w = Tensor::from_vec(random(n * k, 1), (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, dtype).unwrap();
        let bytes = q.data().unwrap().into_owned();
        (q, bytes)
    }

    const FORMATS: [(Format, GgmlDType); 3] = [
        (Format::Q4_0, GgmlDType::Q4_0),
        (Format::Q5_0, GgmlDType::Q5_0),
        (Format::Q8_0, GgmlDType::Q8_0),
    ];

    fn paths() -> Vec<Path> {
        let mut p = vec![Path::Portable];
        if matches!(best_path(), Path::Avx2 | Path::Vnni) {
            p.push(Path::Avx2);
        }
        if best_path() == Path::Vnni {
            p.push(Path::Vnni);
        }
        p
    }

    #[test]
    fn close_to_candles_product() {
        let (n, k) = (37, 256);
        for (format, dtype) in FORMATS {
            let (q, bytes) = weights(dtype, n, k);
            let candle = QMatMul::from_qtensor(q).unwrap();
            for m in [1, 5, 20, 45] {
                let x = random(m * k, 2 + m as u64);
                let ours = matmul(format, &bytes, n, k, &x, m);
                let xt = Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap();
                let theirs: Vec<f32> = candle
                    .forward(&xt)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                for (a, b) in ours.iter().zip(&theirs) {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{format:?} m={m}: {a} vs candle {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_path_and_every_batch_gives_the_same_bits() {
        let (n, k) = (43, 192);
        for (format, dtype) in FORMATS {
            let (_, bytes) = weights(dtype, n, k);
            let x = random(40 * k, 9);
            let alone: Vec<Vec<f32>> = (0..40)
                .map(|i| matmul_on(Path::Portable, format, &bytes, n, k, &x[i * k..][..k], 1))
                .collect();
            for path in paths() {
                for m in [1, 2, 3, 4, 5, 8, 16, 17, 20, 33, 40] {
                    let batch = matmul_on(path, format, &bytes, n, k, &x[..m * k], m);
                    for (i, alone) in alone.iter().enumerate().take(m) {
                        let row: Vec<u32> =
                            batch[i * n..][..n].iter().map(|v| v.to_bits()).collect();
                        let want: Vec<u32> = alone.iter().map(|v| v.to_bits()).collect();
                        assert_eq!(row, want, "{format:?} {path:?} m={m} row {i}");
                    }
                }
            }
        }
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        // Weights and activations at full scale: Q8_0's ±127 × ±127 products must stay exact.
        let (n, k) = (4, 64);
        for (format, dtype) in FORMATS {
            let w: Vec<f32> = (0..n * k)
                .map(|i| if i % 3 == 0 { -1.0 } else { 1.0 })
                .collect();
            let q = QTensor::quantize(
                &Tensor::from_vec(w.clone(), (n, k), &Device::Cpu).unwrap(),
                dtype,
            )
            .unwrap();
            let bytes = q.data().unwrap().into_owned();
            let x: Vec<f32> = (0..k)
                .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
                .collect();
            // 16 rows: the kernels whose lanes are rows too.
            let x16: Vec<f32> = x.iter().copied().cycle().take(16 * k).collect();
            for path in paths() {
                let ours = matmul_on(path, format, &bytes, n, k, &x16, 16);
                for (j, o) in ours.iter().enumerate().map(|(i, o)| (i % n, o)) {
                    let exact: f32 = w[j * k..(j + 1) * k]
                        .iter()
                        .zip(&x)
                        .map(|(a, b)| a * b)
                        .sum();
                    assert!(
                        (o - exact).abs() < 0.05 * k as f32,
                        "{format:?} {path:?}: {o} vs {exact}"
                    );
                }
            }
        }
    }
}
