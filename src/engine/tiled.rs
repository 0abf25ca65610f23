//! Prefill attention in tiles: flash attention's schedule on the CPU. A block of query rows
//! meets the keys a block at a time; each row keeps a running maximum, a running sum and its
//! output so far, rescaled whenever the maximum grows (the online softmax). No `rows × keys`
//! score matrix and no mask is ever built: a prompt's attention needs memory linear in its
//! length (a few hundred kilobytes of tiles per thread), and key blocks past a query block's
//! last row are never touched (half the products of a dense causal pass).
//!
//! On a CPU the fast memory flash attention stages its tiles in is the core's caches (here an
//! L2 of about 1 MiB): a query tile, a key and a value tile and the tile's scores fit in it, so
//! the scores never travel to main memory and back. What it saves is that traffic and the
//! footprint, not arithmetic: the products are the dense pass's, in another order.
//!
//! The tile products go through the `gemm` crate (candle's own matrix product), one thread per
//! tile; the exponentials through a polynomial the compiler vectorizes ([`super::act::exp`]).
//! Results differ from the dense path (candle's products, softmax over the whole row) in the
//! last bits: within 1e-5 of the largest value (tests below, and on the real models).

use super::kv_cache::BlockTable;
use candle_core::{CpuStorage, DType, Result, Storage, Tensor};
use serde::{Deserialize, Serialize};

/// Query rows (positions) of one tile; times the query heads sharing a KV head, the tile's rows.
pub const QUERY_BLOCK: usize = 32;
/// Keys of one tile.
pub const KEY_BLOCK: usize = 128;

/// Which attention a prompt's long spans (more than [`super::kernels::SMALL_BATCH`] rows) take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PrefillAttention {
    /// Tiles with an online softmax (this module): memory linear in the prompt.
    #[default]
    Tiled,
    /// candle's products over the whole score matrix and a mask: the reference.
    Dense,
}

impl PrefillAttention {
    pub fn name(self) -> &'static str {
        match self {
            Self::Tiled => "tiled",
            Self::Dense => "dense",
        }
    }
}

/// One span of a step for [`attend_tiled`]: its sequence's blocks, the position of its first
/// row, its first row in the step's queries and its number of rows.
#[derive(Debug, Clone, Copy)]
pub struct TiledSpan<'a> {
    pub table: &'a BlockTable,
    pub pos: usize,
    pub row: usize,
    pub len: usize,
}

/// The shape every tile of a call shares.
#[derive(Debug, Clone, Copy)]
struct Shape {
    heads: usize,
    kv_heads: usize,
    reps: usize,
    hd: usize,
    /// Rows of the step's queries (all spans).
    total: usize,
    scale: f32,
    window: Option<usize>,
}

impl Shape {
    /// The first position a row at `p` sees.
    fn first_seen(&self, p: usize) -> usize {
        self.window.map_or(0, |w| (p + 1).saturating_sub(w))
    }
}

/// `q` (`(1, heads, rows, head_dim)`, after RoPE) rows `span.row..span.row + span.len`, at
/// positions `span.pos..`, attending to the K and V slots of the pool (`(slots, kv_heads,
/// head_dim)`) through the span's table, causally (within the last `window` positions in a
/// sliding-window layer); the result as `(1, span.len, heads × head_dim)`. The slots may be f32,
/// f16 or bf16 (widened as the tiles gather them). `None` where this does not apply (not the CPU,
/// not contiguous), and the dense path takes over.
pub fn attend_tiled(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    span: TiledSpan,
    scale: f32,
    window: Option<usize>,
) -> Result<Option<Tensor>> {
    if !q.device().is_cpu() || q.dtype() != DType::F32 {
        return Ok(None);
    }
    let (_, heads, total, hd) = q.dims4()?;
    let (_, kv_heads, _) = k.dims3()?;
    let (qs, ql) = q.storage_and_layout();
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(qd)) = &*qs else {
        return Ok(None);
    };
    let (Some(kd), Some(vd)) = (
        Slots::of(&ks, kl.start_offset()),
        Slots::of(&vs, vl.start_offset()),
    ) else {
        return Ok(None);
    };
    if [&ql, &kl, &vl].iter().any(|l| !l.is_contiguous()) {
        return Ok(None);
    }
    let shape = Shape {
        heads,
        kv_heads,
        reps: heads / kv_heads,
        hd,
        total,
        scale,
        window,
    };
    let data = Data {
        q: &qd[ql.start_offset()..],
        k: kd,
        v: vd,
    };
    let blocks = span.len.div_ceil(QUERY_BLOCK);
    let mut out = vec![0f32; span.len * heads * hd];
    let dst = out.as_mut_ptr() as usize;
    // One tile row block per grab: later blocks see more keys, so they are handed out first.
    super::kernels::parallel(blocks * kv_heads, 1 << 20, 1, |items| {
        let mut tiles = Tiles::new(&shape);
        for item in items {
            let b = blocks - 1 - item / kv_heads;
            let g = item % kv_heads;
            let y = tiles.block(&shape, &data, &span, b, g);
            tiles.write_out(&shape, &span, b, g, y, dst);
        }
    });
    Ok(Some(Tensor::from_vec(
        out,
        (1, span.len, heads * hd),
        q.device(),
    )?))
}

/// The step's queries and the pool's slots, flat.
struct Data<'a> {
    q: &'a [f32],
    k: Slots<'a>,
    v: Slots<'a>,
}

/// The pool's keys or values as stored: f32, or a half-width cache the tiles widen as they
/// gather it (attention itself runs in f32).
#[derive(Clone, Copy)]
enum Slots<'a> {
    F32(&'a [f32]),
    F16(&'a [half::f16]),
    Bf16(&'a [half::bf16]),
}

impl<'a> Slots<'a> {
    fn of(s: &'a Storage, start: usize) -> Option<Self> {
        match s {
            Storage::Cpu(CpuStorage::F32(d)) => Some(Self::F32(&d[start..])),
            Storage::Cpu(CpuStorage::F16(d)) => Some(Self::F16(&d[start..])),
            Storage::Cpu(CpuStorage::BF16(d)) => Some(Self::Bf16(&d[start..])),
            _ => None,
        }
    }

    /// Values `o..o + out.len()`, as f32, into `out`.
    #[inline]
    fn read(self, o: usize, out: &mut [f32]) {
        match self {
            Self::F32(d) => out.copy_from_slice(&d[o..o + out.len()]),
            Self::F16(d) => {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(&d[o..o + out.len()], out)
            }
            Self::Bf16(d) => {
                half::slice::HalfFloatSliceExt::convert_to_f32_slice(&d[o..o + out.len()], out)
            }
        }
    }
}

/// One thread's tiles: queries, keys, values, scores, outputs, and each row's running maximum
/// and sum.
struct Tiles {
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
    o: Vec<f32>,
    max: Vec<f32>,
    sum: Vec<f32>,
}

impl Tiles {
    fn new(sh: &Shape) -> Self {
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
    fn bytes(heads: usize, kv_heads: usize, hd: usize) -> u64 {
        let rows = (heads / kv_heads.max(1)) * QUERY_BLOCK;
        (4 * (2 * rows * hd + 2 * KEY_BLOCK * hd + rows * KEY_BLOCK + 2 * rows)) as u64
    }

    /// Query block `b` of KV head `g` over every key it sees; returns its rows (`reps × rows`),
    /// normalised, in `self.o`, and the number of positions in the block.
    fn block(&mut self, sh: &Shape, d: &Data, span: &TiledSpan, b: usize, g: usize) -> usize {
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
                    sh.scale,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            };
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
            // SAFETY: as above; the outputs so far are read and added to.
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
            };
            j0 += n;
        }
        bq
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
    fn write_out(&self, sh: &Shape, span: &TiledSpan, b: usize, g: usize, bq: usize, dst: usize) {
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
            *x = super::act::exp(*x - new_max);
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

/// Bytes the attention of a `seq`-row span at position `pos` holds beyond the KV cache while it
/// runs, for a model of this shape on `threads` threads: the tiles for [`PrefillAttention::Tiled`];
/// for [`PrefillAttention::Dense`], three score matrices live at once (scaled, masked, softmaxed),
/// the mask and the keys and values gathered from the pool (measured: a 0.5B prefill of 8k
/// tokens peaked at 12.6 GiB beyond its KV cache, against 12.4 GiB estimated).
pub fn scratch_bytes(
    how: PrefillAttention,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    seq: usize,
    pos: usize,
    threads: usize,
) -> u64 {
    let keys = (pos + seq) as u64;
    match how {
        PrefillAttention::Tiled => Tiles::bytes(heads, kv_heads, head_dim) * threads.max(1) as u64,
        PrefillAttention::Dense => {
            let reps = (heads / kv_heads.max(1)) as u64;
            let scores = heads as u64 * seq as u64 * keys * 4;
            let mask = reps * seq as u64 * keys * 4;
            let gathered = 2 * 2 * kv_heads as u64 * keys * head_dim as u64 * 4;
            3 * scores + mask + gathered
        }
    }
}

/// Attention alone, tiled against dense, on random values of one KV head's group of this shape
/// (`reps` query heads of `head_dim`) over a causal prompt of `len` positions: the largest
/// difference of the outputs relative to the largest dense output. The dense side is candle's
/// products over the whole score matrix, as the dense prefill runs them.
pub fn gap_from_dense(reps: usize, head_dim: usize, len: usize) -> Result<f64> {
    use super::kv_cache::KvPool;
    let dev = candle_core::Device::Cpu;
    let q = Tensor::randn(0f32, 1f32, (1, reps, len, head_dim), &dev)?;
    let k = Tensor::randn(0f32, 1f32, (len, 1, head_dim), &dev)?;
    let v = Tensor::randn(0f32, 1f32, (len, 1, head_dim), &dev)?;
    let blocks = len.div_ceil(super::kv_cache::BLOCK_TOKENS);
    let mut pool = KvPool::new(1, 1, head_dim, len, blocks, DType::F32, &dev);
    let mut table = BlockTable::default();
    pool.reserve(&mut table, len)?;
    pool.write(0, &table, 0, &k, &v)?;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let (ks, vs) = pool.slots(0).expect("written");
    let span = TiledSpan {
        table: &table,
        pos: 0,
        row: 0,
        len,
    };
    let Some(tiled) = attend_tiled(&q, ks, vs, span, scale, None)? else {
        candle_core::bail!("tiled attention needs the CPU")
    };
    // Dense: (reps, len, len) scores, a causal mask, softmax, values.
    let kt = k.squeeze(1)?.t()?.contiguous()?;
    let scores = (q.squeeze(0)?.broadcast_matmul(&kt)? * scale as f64)?;
    let mask: Vec<f32> = (0..len)
        .flat_map(|i| (0..len).map(move |j| if j > i { f32::NEG_INFINITY } else { 0.0 }))
        .collect();
    let mask = Tensor::from_vec(mask, (len, len), &dev)?;
    let p = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
    let dense = p.broadcast_matmul(&v.squeeze(1)?)?; // (reps, len, head_dim)
    let dense = dense.transpose(0, 1)?.flatten_all()?.to_vec1::<f32>()?;
    let tiled = tiled.flatten_all()?.to_vec1::<f32>()?;
    let top = dense.iter().fold(0f32, |m, x| m.max(x.abs()));
    let gap = tiled
        .iter()
        .zip(&dense)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    Ok((gap / top.max(f32::MIN_POSITIVE)) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::kv_cache::KvPool;
    use candle_core::Device;

    fn random(n: usize, seed: u64) -> Vec<f32> {
        super::super::kernels::testing::random(n, seed)
    }

    /// Dense causal attention, one head at a time, in f64: the reference.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        q: &[f32],
        keys: &[Vec<f32>],
        vals: &[Vec<f32>],
        sh: &Shape,
        row: usize,
        len: usize,
        pos: usize,
    ) -> Vec<f32> {
        let hd = sh.hd;
        let mut out = vec![0f32; len * sh.heads * hd];
        for i in 0..len {
            let p = pos + i;
            for h in 0..sh.heads {
                let g = h / sh.reps;
                let qr = &q[(h * sh.total + row + i) * hd..][..hd];
                let range = sh.first_seen(p)..p + 1;
                let s: Vec<f64> = range
                    .clone()
                    .map(|j| {
                        let k = &keys[j][g * hd..(g + 1) * hd];
                        qr.iter().zip(k).map(|(a, b)| (*a * *b) as f64).sum::<f64>()
                            * sh.scale as f64
                    })
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for (t, j) in range.enumerate() {
                    let v = &vals[j][g * hd..(g + 1) * hd];
                    for d in 0..hd {
                        out[(i * sh.heads + h) * hd + d] += (e[t] / z * v[d] as f64) as f32;
                    }
                }
            }
        }
        out
    }

    /// A pool holding `n` positions of random keys and values in one sequence (its blocks in a
    /// shuffled order), and the rows each position holds.
    fn pool_with(
        n: usize,
        kv_heads: usize,
        hd: usize,
        dtype: DType,
    ) -> (KvPool, BlockTable, Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let dev = Device::Cpu;
        let blocks = n.div_ceil(crate::engine::kv_cache::BLOCK_TOKENS) + 3;
        let mut pool = KvPool::new(1, kv_heads, hd, n + 64, blocks, dtype, &dev);
        // The values as the cache holds them, so the f64 reference sees the same ones.
        let held = |x: f32| match dtype {
            DType::F16 => half::f16::from_f32(x).to_f32(),
            DType::BF16 => half::bf16::from_f32(x).to_f32(),
            _ => x,
        };
        // Another sequence first, so that this one's slots do not start at 0.
        let mut other = BlockTable::default();
        pool.reserve(&mut other, 40).unwrap();
        let mut table = BlockTable::default();
        pool.reserve(&mut table, n).unwrap();
        let kv = |seed| -> Vec<Vec<f32>> {
            random(n * kv_heads * hd, seed)
                .into_iter()
                .map(held)
                .collect::<Vec<_>>()
                .chunks(kv_heads * hd)
                .map(|c| c.to_vec())
                .collect()
        };
        let (keys, vals) = (kv(11), kv(12));
        let t =
            |rows: &[Vec<f32>]| Tensor::from_vec(rows.concat(), (n, kv_heads, hd), &dev).unwrap();
        pool.write(0, &table, 0, &t(&keys), &t(&vals)).unwrap();
        (pool, table, keys, vals)
    }

    fn check(len: usize, pos: usize, window: Option<usize>, heads: usize, kv_heads: usize) {
        check_in(DType::F32, len, pos, window, heads, kv_heads)
    }

    fn check_in(
        dtype: DType,
        len: usize,
        pos: usize,
        window: Option<usize>,
        heads: usize,
        kv_heads: usize,
    ) {
        let hd = 64;
        let row = 3; // the span's rows follow another span's in the step
        let total = row + len + 2;
        let (pool, table, keys, vals) = pool_with(pos + len, kv_heads, hd, dtype);
        let qv: Vec<f32> = random(heads * total * hd, 7)
            .iter()
            .map(|x| x * 4.0)
            .collect();
        let q = Tensor::from_vec(qv.clone(), (1, heads, total, hd), &Device::Cpu).unwrap();
        let sh = Shape {
            heads,
            kv_heads,
            reps: heads / kv_heads,
            hd,
            total,
            scale: 1.0 / (hd as f32).sqrt(),
            window,
        };
        let (k, v) = pool.slots(0).unwrap();
        let span = TiledSpan {
            table: &table,
            pos,
            row,
            len,
        };
        let ours = attend_tiled(&q, k, v, span, sh.scale, window)
            .unwrap()
            .unwrap();
        let ours: Vec<f32> = ours.flatten_all().unwrap().to_vec1().unwrap();
        let theirs = reference(&qv, &keys, &vals, &sh, row, len, pos);
        let top = theirs.iter().fold(0f32, |m, x| m.max(x.abs()));
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * top,
                "len {len} pos {pos} window {window:?}: value {i}: {a} vs {b} (largest {top})"
            );
        }
    }

    #[test]
    fn tiles_match_dense_attention_at_block_edges_and_offsets() {
        for (len, pos) in [(18, 0), (32, 0), (129, 0), (200, 77), (300, 5)] {
            check(len, pos, None, 6, 2);
        }
        check(70, 0, None, 4, 4);
    }

    #[test]
    fn a_half_width_cache_is_widened_as_it_is_gathered() {
        for dtype in [DType::F16, DType::BF16] {
            check_in(dtype, 150, 20, None, 6, 2);
        }
    }

    #[test]
    fn sliding_windows_see_their_window_only() {
        for (len, pos, w) in [(200, 0, 50), (150, 90, 128), (40, 300, 7)] {
            check(len, pos, Some(w), 6, 2);
        }
    }

    #[test]
    fn the_gap_from_dense_is_rounding() {
        let gap = gap_from_dense(7, 64, 300).unwrap();
        assert!(gap > 0.0 && gap < 1e-5, "{gap}");
    }

    #[test]
    fn tiled_scratch_is_flat_where_dense_grows_with_the_square() {
        let t = |n| scratch_bytes(PrefillAttention::Tiled, 14, 2, 64, n, 0, 2);
        let d = |n| scratch_bytes(PrefillAttention::Dense, 14, 2, 64, n, 0, 2);
        assert_eq!(t(1024), t(16384));
        assert!(t(16384) < 2 << 20, "{}", t(16384));
        // 14 heads × 8k × 8k f32 scores: 3.5 GiB, three at once, and the mask.
        assert!(d(8192) > 7 << 30, "{}", d(8192));
        let ratio = d(16384) as f64 / d(8192) as f64;
        assert!((3.99..=4.0).contains(&ratio), "{ratio}");
    }
}
