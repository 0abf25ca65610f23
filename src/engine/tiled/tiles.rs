//! One thread's tiles of [`super::attend_tiled`]: a block of query rows against the keys a block
//! at a time, and the online softmax that folds each block of scores into the rows' running
//! state.

use super::{Data, Shape, TiledSpan, KEY_BLOCK, QUERY_BLOCK};
use crate::engine::kv_cache::BlockTable;

/// One thread's tiles: queries, keys, values, scores, outputs, and each row's running maximum
/// and sum.
pub(super) struct Tiles {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
    o: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
}

impl Tiles {
    pub(super) fn new(sh: &Shape) -> Self {
        let rows = sh.reps * QUERY_BLOCK;
        Self {
            q: vec![0.0; rows * sh.hd],
            k: vec![0.0; KEY_BLOCK * sh.hd],
            v: vec![0.0; KEY_BLOCK * sh.hd],
            s: vec![0.0; rows * KEY_BLOCK],
            o: vec![0.0; rows * sh.hd],
            max: vec![0.0; rows],
            sum: vec![0.0; rows],
        }
    }

    /// Bytes of one thread's tiles for a model of this shape.
    pub(super) fn bytes(heads: usize, kv_heads: usize, hd: usize) -> u64 {
        let rows = (heads / kv_heads.max(1)) * QUERY_BLOCK;
        (4 * (2 * rows * hd + 2 * KEY_BLOCK * hd + rows * KEY_BLOCK + 2 * rows)) as u64
    }

    /// Query block `b` of KV head `g` over every key it sees; returns its rows (`reps × rows`),
    /// normalised, in `self.o`, and the number of positions in the block.
    pub(super) fn block(
        &mut self,
        sh: &Shape,
        d: &Data,
        span: &TiledSpan,
        b: usize,
        g: usize,
    ) -> usize {
        let (hd, reps) = (sh.hd, sh.reps);
        let i0 = b * QUERY_BLOCK;
        let bq = QUERY_BLOCK.min(span.len - i0);
        let rows = reps * bq;
        // Row r·bq + i is query head g·reps + r at the span's row i0 + i.
        for r in 0..reps {
            for i in 0..bq {
                let src = ((g * reps + r) * sh.total + span.row + i0 + i) * hd;
                self.q[(r * bq + i) * hd..][..hd].copy_from_slice(&d.q[src..src + hd]);
            }
        }
        self.max[..rows].fill(f32::NEG_INFINITY);
        self.sum[..rows].fill(0.0);
        self.o[..rows * hd].fill(0.0);
        let (first, last) = (span.pos + i0, span.pos + i0 + bq - 1);
        let mut j0 = sh.first_seen(first);
        while j0 <= last {
            let n = KEY_BLOCK.min(last + 1 - j0);
            self.gather(sh, d, span.table, g, j0, n);
            self.scores(rows, n, hd, sh.scale);
            let seen = |ri: usize| {
                let p = first + ri % bq;
                let from = sh.first_seen(p).max(j0) - j0;
                let to = (p + 1).min(j0 + n).saturating_sub(j0);
                (from, to.max(from))
            };
            online_softmax(
                &mut self.s[..rows * n],
                n,
                &mut self.max[..rows],
                &mut self.sum[..rows],
                &mut self.o[..rows * hd],
                seen,
            );
            self.accumulate(rows, n, hd);
            j0 += n;
        }
        bq
    }

    /// The tile's scores: `scale` × queries (`rows × hd`) × keysᵀ (`hd × n`), into `rows × n`.
    fn scores(&mut self, rows: usize, n: usize, hd: usize, scale: f32) {
        // SAFETY: the tiles hold rows × hd, n × hd and rows × n values, as the strides say.
        unsafe {
            gemm::gemm(
                rows,
                n,
                hd,
                self.s.as_mut_ptr(),
                1,
                n as isize,
                false,
                self.q.as_ptr(),
                1,
                hd as isize,
                self.k.as_ptr(),
                hd as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }

    /// The outputs so far plus the tile's weights (`rows × n`) × values (`n × hd`).
    fn accumulate(&mut self, rows: usize, n: usize, hd: usize) {
        // SAFETY: as in `scores`; the outputs so far are read and added to.
        unsafe {
            gemm::gemm(
                rows,
                hd,
                n,
                self.o.as_mut_ptr(),
                1,
                hd as isize,
                true,
                self.s.as_ptr(),
                1,
                n as isize,
                self.v.as_ptr(),
                1,
                hd as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        }
    }

    /// Keys and values of positions `j0..j0 + n` of KV head `g`, side by side in the tiles.
    fn gather(&mut self, sh: &Shape, d: &Data, table: &BlockTable, g: usize, j0: usize, n: usize) {
        let hd = sh.hd;
        for jj in 0..n {
            let o = (table.slot(j0 + jj) * sh.kv_heads + g) * hd;
            d.k.read(o, &mut self.k[jj * hd..][..hd]);
            d.v.read(o, &mut self.v[jj * hd..][..hd]);
        }
    }

    /// Rows of block `b` of KV head `g` (`bq` positions) divided by their sums, to the output.
    pub(super) fn write_out(
        &self,
        sh: &Shape,
        span: &TiledSpan,
        b: usize,
        g: usize,
        bq: usize,
        dst: usize,
    ) {
        let hd = sh.hd;
        let i0 = b * QUERY_BLOCK;
        debug_assert!(i0 + bq <= span.len);
        for r in 0..sh.reps {
            for i in 0..bq {
                let ri = r * bq + i;
                let h = g * sh.reps + r;
                let inv = 1.0 / self.sum[ri];
                // SAFETY: each (position, head) row is written by the one item of its block and
                // KV head; the output outlives the parallel call.
                let y = unsafe {
                    std::slice::from_raw_parts_mut(
                        (dst as *mut f32).add(((i0 + i) * sh.heads + h) * hd),
                        hd,
                    )
                };
                for (y, o) in y.iter_mut().zip(&self.o[ri * hd..(ri + 1) * hd]) {
                    *y = o * inv;
                }
            }
        }
    }
}

/// One tile of scores `s` (`rows × n`) into the running state: for each row, the keys it sees
/// (`seen(row)`, a range of the tile's columns) raise its maximum, rescale its sum and output
/// so far, and become `e^(s − max)` (0 where it may not look), ready to multiply the values.
fn online_softmax(
    s: &mut [f32],
    n: usize,
    max: &mut [f32],
    sum: &mut [f32],
    o: &mut [f32],
    seen: impl Fn(usize) -> (usize, usize),
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected.
            return unsafe { online_softmax_avx512(s, n, max, sum, o, &seen) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { online_softmax_avx2(s, n, max, sum, o, &seen) };
        }
    }
    online_softmax_rows(s, n, max, sum, o, &seen)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn online_softmax_avx512(
    s: &mut [f32],
    n: usize,
    max: &mut [f32],
    sum: &mut [f32],
    o: &mut [f32],
    seen: &dyn Fn(usize) -> (usize, usize),
) {
    online_softmax_rows(s, n, max, sum, o, seen)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn online_softmax_avx2(
    s: &mut [f32],
    n: usize,
    max: &mut [f32],
    sum: &mut [f32],
    o: &mut [f32],
    seen: &dyn Fn(usize) -> (usize, usize),
) {
    online_softmax_rows(s, n, max, sum, o, seen)
}

#[inline(always)]
fn online_softmax_rows(
    s: &mut [f32],
    n: usize,
    max: &mut [f32],
    sum: &mut [f32],
    o: &mut [f32],
    seen: &dyn Fn(usize) -> (usize, usize),
) {
    let hd = o.len() / max.len();
    for (ri, row) in s.chunks_exact_mut(n).enumerate() {
        let (from, to) = seen(ri);
        row[..from].fill(0.0);
        row[to..].fill(0.0);
        if from == to {
            continue;
        }
        let live = &mut row[from..to];
        let top = live.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
        let new_max = max[ri].max(top);
        let mut added = 0f32;
        for x in live.iter_mut() {
            *x = crate::engine::act::exp(*x - new_max);
            added += *x;
        }
        if new_max > max[ri] && max[ri] != f32::NEG_INFINITY {
            let rescale = (max[ri] - new_max).exp();
            sum[ri] *= rescale;
            for y in &mut o[ri * hd..(ri + 1) * hd] {
                *y *= rescale;
            }
        }
        sum[ri] += added;
        max[ri] = new_max;
    }
}
