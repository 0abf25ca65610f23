//! Activations quantized to Q8_0 for the products with weights in 32-value blocks, and those
//! blocks' layouts ([`Format`]: Q4_0, Q5_0, Q8_0).

use half::f16;

use super::QK;

/// A weight layout of 32-value blocks: an f16 scale, then the values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// 16 bytes of 4-bit values, offset 8.
    Q4_0,
    /// 32 high bits and 16 bytes of low nibbles: 5-bit values, offset 16.
    Q5_0,
    /// 32 signed bytes.
    Q8_0,
}

impl Format {
    /// Bytes of one block.
    pub const fn block_bytes(self) -> usize {
        match self {
            Format::Q4_0 => 18,
            Format::Q5_0 => 22,
            Format::Q8_0 => 34,
        }
    }

    /// The value of an unsigned weight byte `u` is `u - offset`.
    const fn offset(self) -> i32 {
        match self {
            Format::Q4_0 => 8,
            Format::Q5_0 => 16,
            Format::Q8_0 => 128,
        }
    }

    /// The 32 signed values of one block, in order.
    pub(crate) fn values(self, b: &[u8]) -> [i32; QK] {
        let mut v = [0i32; QK];
        match self {
            Format::Q4_0 => {
                for j in 0..QK / 2 {
                    v[j] = (b[2 + j] & 0x0F) as i32 - 8;
                    v[j + QK / 2] = (b[2 + j] >> 4) as i32 - 8;
                }
            }
            Format::Q5_0 => {
                let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                for j in 0..QK / 2 {
                    let h0 = (((qh >> j) & 1) << 4) as i32;
                    let h1 = (((qh >> (j + 16)) & 1) << 4) as i32;
                    v[j] = ((b[6 + j] & 0x0F) as i32 | h0) - 16;
                    v[j + QK / 2] = ((b[6 + j] >> 4) as i32 | h1) - 16;
                }
            }
            Format::Q8_0 => {
                for (j, v) in v.iter_mut().enumerate() {
                    *v = b[2 + j] as i8 as i32;
                }
            }
        }
        v
    }
}

/// One block of activations: Q8_0 values and scale (as candle's `BlockQ8_0::from_float` makes
/// them), and each lane's `-offset × Σy` for the weight format it will meet.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct Act {
    pub(crate) qs: [i8; QK],
    pub(crate) seed: [i32; 8],
    pub(crate) d: f32,
}

/// Quantize `xs` (whole blocks) for products with `format` weights.
pub fn quantize(format: Format, xs: &[f32]) -> Vec<Act> {
    xs.chunks_exact(QK)
        .map(|xs| {
            let amax = xs.iter().fold(0f32, |m, x| m.max(x.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; QK];
            for (q, &x) in qs.iter_mut().zip(xs) {
                *q = f32::round(x * id) as i8;
            }
            let mut seed = [0i32; 8];
            for (l, s) in seed.iter_mut().enumerate() {
                let sum: i32 = qs[4 * l..4 * l + 4].iter().map(|&q| q as i32).sum();
                *s = -format.offset() * sum;
            }
            Act {
                qs,
                seed,
                d: f16::from_f32(d).to_f32(),
            }
        })
        .collect()
}

/// Activation rows per 512-bit vector in the kernels whose lanes are rows.
pub const LANES: usize = 16;

/// Activations laid out with the rows as the lanes, for the 512-bit VNNI kernels: per group of
/// [`LANES`] rows and per block, eight 64-byte vectors (bytes `4g..4g + 4` of each row), each of
/// the eight lane seeds for every row, the seeds' total for every row, and every row's scale.
/// Rows past `m` repeat the last (their lanes are computed and dropped).
pub struct Lanes16 {
    pub yt: Vec<i8>,
    /// `((group · kb + block) · 8 + lane) · LANES + row`; empty unless asked for.
    pub seeds: Vec<i32>,
    /// `(group · kb + block) · LANES + row`.
    pub sums: Vec<i32>,
    /// As `sums`.
    pub d: Vec<f32>,
}

impl Lanes16 {
    /// The layout of `m` rows of `kb` blocks; the eight lane seeds only with `lane_seeds` (the
    /// lane-order kernel needs them, the candle-order one only their totals).
    pub fn new(xq: &[Act], m: usize, kb: usize, lane_seeds: bool) -> Self {
        let groups = m.div_ceil(LANES);
        let mut l = Self {
            yt: vec![0; groups * kb * 8 * 64],
            seeds: vec![
                0;
                if lane_seeds {
                    groups * kb * 8 * LANES
                } else {
                    0
                }
            ],
            sums: vec![0; groups * kb * LANES],
            d: vec![0.0; groups * kb * LANES],
        };
        for grp in 0..groups {
            for c in 0..LANES {
                let row = (grp * LANES + c).min(m - 1);
                for b in 0..kb {
                    let a = &xq[row * kb + b];
                    let at = grp * kb + b;
                    for g in 0..8 {
                        let dst = (at * 8 + g) * 64 + c * 4;
                        l.yt[dst..dst + 4].copy_from_slice(&a.qs[4 * g..4 * g + 4]);
                        if lane_seeds {
                            l.seeds[(at * 8 + g) * LANES + c] = a.seed[g];
                        }
                    }
                    l.sums[at * LANES + c] = a.seed.iter().sum();
                    l.d[at * LANES + c] = a.d;
                }
            }
        }
        l
    }
}

/// Whether this CPU runs the 512-bit VNNI kernels whose lanes are rows.
pub fn wide_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static HAVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAVE.get_or_init(|| {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}
