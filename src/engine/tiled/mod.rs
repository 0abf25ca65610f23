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
use tiles::Tiles;

#[cfg(test)]
mod tests;
mod tiles;

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
