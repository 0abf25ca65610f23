//! Q4_K and Q6_K products for long batches (prefill), bitwise equal to candle's own, without the
//! copy of the weights candle keeps for them.
//!
//! On a CPU with AVX-512 VNNI, candle multiplies K-quant matrices (whole 256-value rows, a
//! multiple of 16 of them) through tiles of 16 rows it unpacks once and keeps for the life of the
//! weights: about as many bytes again as the file (1 GB for the 1.5B). The engine's reference
//! (candle-transformers) multiplies that way, and prompt logits must match it bit for bit. Here
//! each work item unpacks the 16-row tiles of its own rows into a scratch buffer, runs them
//! against the activations with the same arithmetic (per row and sub-block an exact integer sum,
//! then the same fused multiply-adds in the same order, one lane per row), and drops them: the
//! same results, and no weight memory beyond the file's blocks.

use super::common::{f16_at, q8k};
use candle_core::quantized::k_quants::{BlockQ8K, GgmlType};

/// Rows per tile (one 512-bit lane each).
const ROWS: usize = 16;
/// Activation rows per pass over a tile.
const MT: usize = 4;

/// The K-quant layouts this path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KFormat {
    Q4K,
    Q6K,
}

impl KFormat {
    const fn block_bytes(self) -> usize {
        match self {
            KFormat::Q4K => 144,
            KFormat::Q6K => 210,
        }
    }
}

/// The instruction set candle's x86 backend picks for its repacked tiles (its own choice,
/// environment switches included), which decides which matrices candle multiplies by tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CandleLevel {
    /// AVX-512 VNNI: 512-bit tiles for Q4_K, Q6_K and Q8_0.
    Avx512Vnni,
    /// AVX-VNNI: 256-bit tiles for Q4_K, Q6_K and Q8_0.
    AvxVnni,
    /// AVX2: 256-bit tiles for Q4_K and Q6_K only.
    Avx2,
}

pub(crate) fn candle_level() -> Option<CandleLevel> {
    #[cfg(target_arch = "x86_64")]
    {
        static LEVEL: std::sync::OnceLock<Option<CandleLevel>> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| {
            let force = |v: &str| std::env::var(v).as_deref() == Ok("1");
            let (avx2_only, vnni) = (
                force("MISTRALRS_FORCE_AVX2"),
                force("MISTRALRS_FORCE_AVXVNNI"),
            );
            if !avx2_only
                && !vnni
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512vnni")
            {
                Some(CandleLevel::Avx512Vnni)
            } else if !avx2_only
                && (vnni || is_x86_feature_detected!("avxvnni"))
                && is_x86_feature_detected!("avx2")
            {
                Some(CandleLevel::AvxVnni)
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                Some(CandleLevel::Avx2)
            } else {
                None
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Whether candle tiles a matrix of `n` rows of `k` values at all (the shapes its tiles cover).
pub(crate) fn candle_tile_shape(n: usize, k: usize) -> bool {
    n.is_multiple_of(ROWS) && k.is_multiple_of(256)
}

/// Whether this path runs here: where candle itself uses its 512-bit tiles, for `n` rows of `k`
/// values (on other levels candle's own product serves).
pub fn applies(n: usize, k: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static BW: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        candle_level() == Some(CandleLevel::Avx512Vnni)
            && *BW.get_or_init(|| is_x86_feature_detected!("avx512bw"))
            && candle_tile_shape(n, k)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (n, k);
        false
    }
}

/// One 256-value block of 16 rows, unpacked: per sub-block and row the float scale (and for
/// Q4_K the float min), and the values as bytes, four per row and group, rows side by side.
struct Tile {
    scales: [[f32; ROWS]; 16],
    mins: [[f32; ROWS]; 8],
    qs: [u8; 256 * ROWS],
}

/// Scale and min of Q4_K sub-block `j` from the packed 6-bit fields.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

/// Unpack block `b` of the 16 rows starting at `rows` into `t`.
fn pack(format: KFormat, w: &[u8], row_bytes: usize, rows: usize, b: usize, t: &mut Tile) {
    let bytes = format.block_bytes();
    for r in 0..ROWS {
        let blk = &w[(rows + r) * row_bytes + b * bytes..][..bytes];
        let mut vals = [0u8; 256];
        match format {
            KFormat::Q4K => {
                let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
                for sub in 0..8 {
                    let (sc, mn) = scale_min_k4(sub, &blk[4..16]);
                    t.scales[sub][r] = d * sc as f32;
                    t.mins[sub][r] = dmin * mn as f32;
                }
                for c in 0..4 {
                    for j in 0..32 {
                        let q = blk[16 + c * 32 + j];
                        vals[c * 64 + j] = q & 0xF;
                        vals[c * 64 + 32 + j] = q >> 4;
                    }
                }
                // Byte j of group g: value 8g + j in the low nibble, 8g + j + 4 in the high.
                for g in 0..32 {
                    for j in 0..4 {
                        t.qs[(g * ROWS + r) * 4 + j] = vals[g * 8 + j] | (vals[g * 8 + j + 4] << 4);
                    }
                }
            }
            KFormat::Q6K => {
                let (ql, qh, sc) = (&blk[0..128], &blk[128..192], &blk[192..208]);
                let d = f16_at(blk, 208);
                for (sub, &s) in sc.iter().enumerate() {
                    t.scales[sub][r] = d * s as i8 as f32;
                }
                for h in 0..2 {
                    let (ql, qh) = (&ql[h * 64..], &qh[h * 32..]);
                    for j in 0..32 {
                        vals[h * 128 + j] = (ql[j] & 0xF) | ((qh[j] & 3) << 4);
                        vals[h * 128 + j + 32] = (ql[j + 32] & 0xF) | (((qh[j] >> 2) & 3) << 4);
                        vals[h * 128 + j + 64] = (ql[j] >> 4) | (((qh[j] >> 4) & 3) << 4);
                        vals[h * 128 + j + 96] = (ql[j + 32] >> 4) | (((qh[j] >> 6) & 3) << 4);
                    }
                }
                // Byte j of group g: value 4g + j (raw, 0..64; the value is this minus 32).
                for g in 0..64 {
                    for j in 0..4 {
                        t.qs[(g * ROWS + r) * 4 + j] = vals[g * 4 + j];
                    }
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Tile, MT, ROWS};
    use candle_core::quantized::k_quants::BlockQ8K;
    use std::arch::x86_64::*;

    /// candle's activation block layout (its fields are crate-private; `repr(C)`, 292 bytes).
    #[repr(C)]
    struct Q8K {
        d: f32,
        qs: [i8; 256],
        bsums: [i16; 16],
    }
    const _: () = assert!(std::mem::size_of::<Q8K>() == std::mem::size_of::<BlockQ8K>());

    #[inline(always)]
    unsafe fn bcast4(a: &Q8K, at: usize) -> __m512i {
        _mm512_set1_epi32(std::ptr::read_unaligned(a.qs.as_ptr().add(at) as *const i32))
    }

    /// One Q4_K tile against `acts`: per sub-block, the exact integer sums, then
    /// `acc += sums · (scale · d)` and `acc -= min · (d · Σy)`, fused, in sub-block order.
    #[target_feature(enable = "avx512f,avx512vnni,avx512bw")]
    pub unsafe fn q4k(t: &Tile, acts: &[&BlockQ8K], acc: &mut [__m512; MT]) {
        let mask = _mm512_set1_epi8(0x0F);
        for sub in 0..8 {
            let mut isum = [_mm512_setzero_si512(); MT];
            for g4 in 0..4 {
                let g = sub * 4 + g4;
                let w = _mm512_loadu_si512(t.qs.as_ptr().add(g * ROWS * 4) as *const _);
                let lo = _mm512_and_si512(w, mask);
                let hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), mask);
                for (i, a) in acts.iter().enumerate() {
                    let a = &*(*a as *const BlockQ8K as *const Q8K);
                    isum[i] = _mm512_dpbusd_epi32(isum[i], lo, bcast4(a, g * 8));
                    isum[i] = _mm512_dpbusd_epi32(isum[i], hi, bcast4(a, g * 8 + 4));
                }
            }
            let scale = _mm512_loadu_ps(t.scales[sub].as_ptr());
            let min = _mm512_loadu_ps(t.mins[sub].as_ptr());
            for (i, a) in acts.iter().enumerate() {
                let a = &*(*a as *const BlockQ8K as *const Q8K);
                let f = _mm512_cvtepi32_ps(isum[i]);
                acc[i] = _mm512_fmadd_ps(f, _mm512_mul_ps(scale, _mm512_set1_ps(a.d)), acc[i]);
                let bsum = (a.bsums[sub * 2] as i32 + a.bsums[sub * 2 + 1] as i32) as f32;
                acc[i] = _mm512_fnmadd_ps(min, _mm512_set1_ps(a.d * bsum), acc[i]);
            }
        }
    }

    /// One Q6_K tile against `acts`: per 16-value sub-block, the exact integer sums of the raw
    /// values, less 32 · Σy, then `acc += that · (scale · d)`, fused, in sub-block order.
    #[target_feature(enable = "avx512f,avx512vnni,avx512bw")]
    pub unsafe fn q6k(t: &Tile, acts: &[&BlockQ8K], acc: &mut [__m512; MT]) {
        for sub in 0..16 {
            let mut isum = [_mm512_setzero_si512(); MT];
            for g4 in 0..4 {
                let g = sub * 4 + g4;
                let w = _mm512_loadu_si512(t.qs.as_ptr().add(g * ROWS * 4) as *const _);
                for (i, a) in acts.iter().enumerate() {
                    let a = &*(*a as *const BlockQ8K as *const Q8K);
                    isum[i] = _mm512_dpbusd_epi32(isum[i], w, bcast4(a, g * 4));
                }
            }
            let scale = _mm512_loadu_ps(t.scales[sub].as_ptr());
            for (i, a) in acts.iter().enumerate() {
                let a = &*(*a as *const BlockQ8K as *const Q8K);
                let bsum = a.bsums[sub] as f32;
                let f = _mm512_sub_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_set1_ps(32.0 * bsum));
                acc[i] = _mm512_fmadd_ps(f, _mm512_mul_ps(scale, _mm512_set1_ps(a.d)), acc[i]);
            }
        }
    }

    /// The tiles of one group of 16 rows against every activation row, `MT` at a time.
    ///
    /// # Safety
    /// AVX-512 F, BW and VNNI; `out` has room for `m` rows of `n`, and only this call writes
    /// columns `col..col + 16`.
    #[target_feature(enable = "avx512f,avx512vnni,avx512bw")]
    pub unsafe fn run(
        q6k: bool,
        tiles: &[Tile],
        xq: &[BlockQ8K],
        m: usize,
        col: usize,
        n: usize,
        out: *mut f32,
    ) {
        let kb = tiles.len();
        let mut m0 = 0;
        while m0 < m {
            let mt = (m - m0).min(MT);
            let mut acc = [_mm512_setzero_ps(); MT];
            let mut acts: [&BlockQ8K; MT] = [&xq[m0 * kb]; MT];
            for (b, t) in tiles.iter().enumerate() {
                for (i, a) in acts.iter_mut().enumerate().take(mt) {
                    *a = &xq[(m0 + i) * kb + b];
                }
                if q6k {
                    self::q6k(t, &acts[..mt], &mut acc);
                } else {
                    self::q4k(t, &acts[..mt], &mut acc);
                }
            }
            for (i, acc) in acc.iter().enumerate().take(mt) {
                _mm512_storeu_ps(out.add((m0 + i) * n + col), *acc);
            }
            m0 += mt;
        }
    }
}

/// `x` (`m` rows of `k`) times the transpose of `w` (`n` rows of `k` in `format`): `m` rows of
/// `n`, bitwise candle's tiled product. Only where [`applies`] says so.
pub fn matmul(format: KFormat, w: &[u8], n: usize, k: usize, x: &[f32], m: usize) -> Vec<f32> {
    assert!(applies(n, k), "the tiled K-quant product does not run here");
    let kb = k / 256;
    let row_bytes = kb * format.block_bytes();
    assert!(
        x.len() == m * k && w.len() >= n * row_bytes,
        "tiled K-quant product shapes"
    );
    // As candle quantizes the activations for its tiles.
    let mut xq = vec![BlockQ8K::zeros(); m * kb];
    q8k::quantize(x, &mut xq);
    let mut out = vec![0f32; m * n];
    let dst = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(n / ROWS, |groups| {
        let mut tiles: Vec<Tile> = (0..kb)
            .map(|_| Tile {
                scales: [[0.0; ROWS]; 16],
                mins: [[0.0; ROWS]; 8],
                qs: [0; 256 * ROWS],
            })
            .collect();
        for g in groups {
            for (b, t) in tiles.iter_mut().enumerate() {
                pack(format, w, row_bytes, g * ROWS, b, t);
            }
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `applies` checked the CPU; groups own disjoint columns; `out` outlives
            // the pool call.
            unsafe {
                avx512::run(
                    format == KFormat::Q6K,
                    &tiles,
                    &xq,
                    m,
                    g * ROWS,
                    n,
                    dst as *mut f32,
                )
            };
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Module, Tensor};
    use rand::{Rng, SeedableRng};

    #[test]
    fn bitwise_candles_tiled_product() {
        let (n, k) = (48, 512);
        if !applies(n, k) {
            eprintln!("skipped: no AVX-512 VNNI here, so candle does not tile either");
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        for (format, dtype) in [
            (KFormat::Q4K, GgmlDType::Q4K),
            (KFormat::Q6K, GgmlDType::Q6K),
        ] {
            let wf: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
            let q = QTensor::quantize(&Tensor::from_vec(wf, (n, k), &Device::Cpu).unwrap(), dtype)
                .unwrap();
            let bytes = q.data().unwrap().into_owned();
            let candle = QMatMul::from_qtensor(q).unwrap();
            // candle tiles Q6_K only for more than one row.
            let lengths: &[usize] = if format == KFormat::Q6K {
                &[5, 23]
            } else {
                &[1, 5, 23]
            };
            for &m in lengths {
                let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
                let ours: Vec<u32> = matmul(format, &bytes, n, k, &x, m)
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let xt = Tensor::from_vec(x, (m, k), &Device::Cpu).unwrap();
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
                assert_eq!(ours, theirs, "{format:?} m={m}");
            }
        }
    }
}
