//! Q5_1 × Q8_1 matrix products. candle's CPU backend has only a scalar Q5_1 dot product (a Q5_K
//! variant of a model whose rows are not whole 256-value super-blocks falls back to Q5_1, as in
//! llama.cpp, and decoded at 8 tok/s). Activations are quantized by candle's own `BlockQ8_1`
//! code and every block is summed in candle's order, so results are bitwise candle's, and each
//! row of a batch is computed exactly as it would be alone.

use super::common::{best_path, f16_at, Path, QK};
use candle_core::quantized::k_quants::{BlockQ8_1, GgmlType};

/// Bytes of one Q5_1 block: f16 scale, f16 minimum, 32 high bits, 16 bytes of low nibbles.
pub const Q5_1_BYTES: usize = 24;
/// Bytes of one Q8_1 block: f16 scale, f16 scale × sum, 32 signed bytes.
const Q8_1_BYTES: usize = 36;

/// Dot product of one Q5_1 row (`w`, whole blocks) with Q8_1 activation bytes, portable version.
pub fn dot_q5_1_scalar(w: &[u8], y: &[u8]) -> f32 {
    let mut sumf = 0f32;
    for (b, yb) in w.chunks_exact(Q5_1_BYTES).zip(y.chunks_exact(Q8_1_BYTES)) {
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let (qs, ys) = (&b[8..24], &yb[4..36]);
        let mut sumi = 0i32;
        for j in 0..QK / 2 {
            let x0 = (qs[j] & 0x0F) as i32 | ((((qh >> j) & 1) << 4) as i32);
            let x1 = (qs[j] >> 4) as i32 | ((((qh >> (j + 16)) & 1) << 4) as i32);
            sumi += x0 * ys[j] as i8 as i32 + x1 * ys[j + QK / 2] as i8 as i32;
        }
        sumf += sumi as f32 * f16_at(b, 0) * f16_at(yb, 0) + f16_at(b, 2) * f16_at(yb, 2);
    }
    sumf
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Q5_1_BYTES, Q8_1_BYTES};
    use crate::engine::kernels::common::simd::{bytes_from_bits_32, f16_to_f32, nibbles};
    use std::arch::x86_64::*;

    #[inline(always)]
    unsafe fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// One Q5_1 block at `p`: scale, minimum and its 32 values as bytes in 0..=31.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn unpack(p: *const u8) -> (f32, f32, __m256i) {
        let d = f16_to_f32(std::ptr::read_unaligned(p as *const u16));
        let m = f16_to_f32(std::ptr::read_unaligned(p.add(2) as *const u16));
        let qh = std::ptr::read_unaligned(p.add(4) as *const u32);
        let high = _mm256_and_si256(bytes_from_bits_32(qh), _mm256_set1_epi8(0x10));
        (d, m, _mm256_or_si256(nibbles(p.add(8)), high))
    }

    /// The integer dot product of unsigned `qx` with the signed bytes at `y`.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn sumi(qx: __m256i, y: *const u8) -> i32 {
        let qy = _mm256_loadu_si256(y as *const __m256i);
        // Unsigned 0..=31 times signed: every i16 pair sum fits (31 × 255 < 32767).
        let prod = _mm256_maddubs_epi16(qx, qy);
        hsum_i32(_mm256_madd_epi16(prod, _mm256_set1_epi16(1)))
    }

    /// One Q5_1 row against four activation rows; each weight block is unpacked once and every
    /// result is summed exactly as [`super::dot_q5_1_scalar`] sums it.
    ///
    /// # Safety
    /// The CPU must support AVX2 and F16C; each of `ys` holds as many blocks as `w`.
    #[target_feature(enable = "avx2,f16c")]
    pub unsafe fn dot_q5_1_xn<const N: usize>(w: &[u8], ys: [&[u8]; N]) -> [f32; N] {
        let mut sumf = [0f32; N];
        for i in 0..w.len() / Q5_1_BYTES {
            let (d, m, qx) = unpack(w.as_ptr().add(i * Q5_1_BYTES));
            for r in 0..N {
                let yb = ys[r].as_ptr().add(i * Q8_1_BYTES);
                let dy = f16_to_f32(std::ptr::read_unaligned(yb as *const u16));
                let sy = f16_to_f32(std::ptr::read_unaligned(yb.add(2) as *const u16));
                sumf[r] += sumi(qx, yb.add(4)) as f32 * d * dy + m * sy;
            }
        }
        sumf
    }
}

/// The bytes of Q8_1 blocks (candle's `#[repr(C)]` 36-byte layout).
fn q8_1_bytes(blocks: &[BlockQ8_1]) -> &[u8] {
    const _: () = assert!(std::mem::size_of::<BlockQ8_1>() == Q8_1_BYTES);
    // SAFETY: BlockQ8_1 is repr(C), 36 bytes with no padding (checked above).
    unsafe { std::slice::from_raw_parts(blocks.as_ptr() as *const u8, blocks.len() * Q8_1_BYTES) }
}

/// `x` (`m` rows of `k`) times the transpose of Q5_1 `w` (`n` rows of `k`): `m` rows of `n`.
pub fn matmul_q5_1(w: &[u8], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    assert!(
        k.is_multiple_of(QK) && x.len() == m * k && w.len() >= n * k / QK * Q5_1_BYTES,
        "matmul_q5_1 shapes"
    );
    let kb = k / QK;
    let row_bytes = kb * Q5_1_BYTES;
    let mut xq = vec![BlockQ8_1::zeros(); m * kb];
    for (row, out) in x.chunks_exact(k).zip(xq.chunks_exact_mut(kb)) {
        BlockQ8_1::from_float(row, out);
    }
    let xq = q8_1_bytes(&xq);
    let x_row = |i: usize| &xq[i * kb * Q8_1_BYTES..(i + 1) * kb * Q8_1_BYTES];
    by_weight_rows(n, m, |j, outs| {
        let wrow = &w[j * row_bytes..(j + 1) * row_bytes];
        rows_by_four(
            outs,
            |i| dot_q5_1_x4(wrow, [x_row(i), x_row(i + 1), x_row(i + 2), x_row(i + 3)]),
            |i| dot_q5_1(wrow, x_row(i)),
        )
    })
}

/// Weight rows per parallel work item.
const TILE: usize = 16;

/// Fill the outputs of one weight row: four activation rows at a time while `four` can, the
/// rest one at a time through `one` (both compute each row to the same bits).
fn rows_by_four(
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
fn by_weight_rows(n: usize, m: usize, row: impl Fn(usize, &mut [f32]) + Sync) -> Vec<f32> {
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

fn has_avx2() -> bool {
    best_path() != Path::Portable
}

/// One Q5_1 row against four activation rows; `None` where the CPU has no AVX2.
fn dot_q5_1_x4(w: &[u8], ys: [&[u8]; 4]) -> Option<[f32; 4]> {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: AVX2 and F16C are present; every row has w's number of blocks.
        return Some(unsafe { avx2::dot_q5_1_xn(w, ys) });
    }
    let _ = (w, ys);
    None
}

/// Dot product of one Q5_1 row with Q8_1 activation bytes, with SIMD where the CPU has it.
fn dot_q5_1(w: &[u8], y: &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: as above.
        return unsafe { avx2::dot_q5_1_xn(w, [y]) }[0];
    }
    dot_q5_1_scalar(w, y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kernels::common::testing::random;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};

    #[test]
    fn bitwise_equal_to_candle_and_batch_invariant() {
        let (n, k) = (40, 256);
        let w = Tensor::from_vec(random(n * k, 1), (n, k), &Device::Cpu).unwrap();
        let q = QTensor::quantize(&w, GgmlDType::Q5_1).unwrap();
        let bytes = q.data().unwrap().into_owned();
        let candle = QMatMul::from_qtensor(q).unwrap();
        for m in [1, 3, 4, 9] {
            let x = random(m * k, 2 + m as u64);
            let ours = matmul_q5_1(&bytes, n, k, &x, m);
            let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
            let theirs: Vec<f32> = candle
                .forward(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(ours, theirs, "m = {m}");
            for i in 0..m {
                let alone = matmul_q5_1(&bytes, n, k, &x[i * k..(i + 1) * k], 1);
                assert_eq!(
                    &ours[i * n..(i + 1) * n],
                    alone.as_slice(),
                    "m = {m}, row {i}"
                );
                // The portable dot product (CPUs without AVX2) gives the same bits.
                let mut xq = vec![BlockQ8_1::zeros(); k / QK];
                BlockQ8_1::from_float(&x[i * k..(i + 1) * k], &mut xq);
                let row = k / QK * Q5_1_BYTES;
                for j in 0..n {
                    let d = dot_q5_1_scalar(&bytes[j * row..(j + 1) * row], q8_1_bytes(&xq));
                    assert_eq!(
                        d.to_bits(),
                        ours[i * n + j].to_bits(),
                        "scalar, row {i} col {j}"
                    );
                }
            }
        }
    }
}
