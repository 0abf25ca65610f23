//! Attention of a few new positions (a decode step, a speculative verification, the decode rows
//! of a batch) over the KV cache, on the CPU in f32, read in place: from the paged pool through
//! each row's block table ([`attend_paged`]), or from dense views ([`attend`]).
//!
//! Each query row and head goes through the very same operations whatever the number of rows
//! (dot products in eight lanes, a max-subtracted softmax, a weighted sum of values), and sees
//! exactly the keys a one-token decode step at its position would: a verification row is bitwise
//! its decode step (batch invariance). Through candle, that took a dozen tensor operations per
//! row and layer (a matrix product, a scale, a softmax, another product, copies), most of them
//! overhead at these sizes. Longer spans (a prompt) go through [`super::tiled`] (or, as the
//! reference, candle's dense products in [`super::dense`]).

use super::kv_cache::BlockTable;
use candle_core::{CpuStorage, DType, Result, Storage, Tensor};

/// One query row of [`attend_paged`]: its sequence's blocks and the positions it sees,
/// `from..seen` (`from` is 0 but in a sliding-window layer).
#[derive(Debug, Clone, Copy)]
pub struct PagedRow<'a> {
    pub table: &'a BlockTable,
    pub from: usize,
    pub seen: usize,
    /// A tree verification row: positions from `.0` on are read from the table positions
    /// listed (its ancestors and itself), not from the positions that follow.
    pub tail: Option<(usize, &'a [usize])>,
}

/// `q` (`(1, heads, rows, head_dim)`) attending, row by row, to the K and V slots of the pool
/// (`(slots, kv_heads, head_dim)`), row `i` to positions `rows[i].from..rows[i].seen` of its table;
/// the result as `(1, rows, heads × head_dim)`. `None` where this does not apply (not the CPU,
/// or not f32). A row's result does not depend on the other rows: batch-invariant.
pub fn attend_paged(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    rows: &[PagedRow],
    scale: f32,
) -> Result<Option<Tensor>> {
    if !q.device().is_cpu() || [q, k, v].iter().any(|t| t.dtype() != DType::F32) {
        return Ok(None);
    }
    let (_, heads, seq, hd) = q.dims4()?;
    let (_, kv_heads, _) = k.dims3()?;
    let qs = q.flatten_all()?.to_vec1::<f32>()?;
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(kd)), Storage::Cpu(CpuStorage::F32(vd))) = (&*ks, &*vs)
    else {
        return Ok(None);
    };
    if !kl.is_contiguous() || !vl.is_contiguous() {
        return Ok(None);
    }
    let reps = heads / kv_heads;
    let longest = rows.iter().map(|r| r.seen).max().unwrap_or(0);
    let mut out = vec![0f32; seq * heads * hd];
    let dst = out.as_mut_ptr() as usize;
    let item_bytes = (longest * hd * 8).max(1);
    let kd = &kd[kl.start_offset()..];
    let vd = &vd[vl.start_offset()..];
    super::kernels::parallel(seq * heads, item_bytes, 1, |items| {
        let mut scores = vec![0f32; longest];
        for item in items {
            let (i, h) = (item / heads, item % heads);
            let row = rows[i];
            let keys = Paged {
                data: kd,
                table: row.table,
                kv_heads,
                tail: row.tail,
            };
            let vals = Paged {
                data: vd,
                table: row.table,
                kv_heads,
                tail: row.tail,
            };
            let qrow = &qs[(h * seq + i) * hd..(h * seq + i + 1) * hd];
            // SAFETY: each (row, head) is one item, written once; `out` outlives the call.
            let y = unsafe {
                std::slice::from_raw_parts_mut((dst as *mut f32).add((i * heads + h) * hd), hd)
            };
            one_row(
                qrow,
                &keys,
                &vals,
                h / reps,
                row.from..row.seen,
                scale,
                &mut scores,
                y,
            );
        }
    });
    Ok(Some(Tensor::from_vec(
        out,
        (1, seq, heads * hd),
        q.device(),
    )?))
}

/// Where a KV head's row of one position lies.
trait KvRows {
    fn row(&self, head: usize, pos: usize, hd: usize) -> &[f32];
}

/// The pool's slots through a block table: slot-major, KV heads side by side.
struct Paged<'a> {
    data: &'a [f32],
    table: &'a BlockTable,
    kv_heads: usize,
    tail: Option<(usize, &'a [usize])>,
}

impl KvRows for Paged<'_> {
    #[inline]
    fn row(&self, head: usize, pos: usize, hd: usize) -> &[f32] {
        let pos = match self.tail {
            Some((base, map)) if pos >= base => map[pos - base],
            _ => pos,
        };
        let o = (self.table.slot(pos) * self.kv_heads + head) * hd;
        &self.data[o..o + hd]
    }
}

/// `q` (`(1, heads, seq, head_dim)`) attending to keys and values `k`, `v`
/// (`(1, kv_heads, past + seq, head_dim)`, views of the cache), row `i` seeing the first
/// `past + i + 1` positions (the last `window` of them in a sliding-window layer); the result as
/// `(1, seq, heads × head_dim)`. `None` where this does not apply (not the CPU, or not f32), and
/// candle's products take over.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f32,
    window: Option<usize>,
) -> Result<Option<Tensor>> {
    if !q.device().is_cpu() || [q, k, v].iter().any(|t| t.dtype() != DType::F32) {
        return Ok(None);
    }
    let (_, heads, seq, hd) = q.dims4()?;
    let (_, kv_heads, len, _) = k.dims4()?;
    let qs = q.flatten_all()?.to_vec1::<f32>()?;
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Storage::Cpu(CpuStorage::F32(kd)), Storage::Cpu(CpuStorage::F32(vd))) = (&*ks, &*vs)
    else {
        return Ok(None);
    };
    // Each key and value row is contiguous; heads and positions go by the views' strides.
    let ok = |s: &[usize]| s[3] == 1;
    if !ok(kl.stride()) || !ok(vl.stride()) {
        return Ok(None);
    }
    let keys = Rows::new(kd, kl.start_offset(), kl.stride());
    let vals = Rows::new(vd, vl.start_offset(), vl.stride());
    let reps = heads / kv_heads;
    let past = len - seq;
    let mut out = vec![0f32; seq * heads * hd];
    let dst = out.as_mut_ptr() as usize;
    let item_bytes = (len * hd * 8).max(1);
    super::kernels::parallel(seq * heads, item_bytes, 1, |items| {
        let mut scores = vec![0f32; len];
        for item in items {
            let (i, h) = (item / heads, item % heads);
            let g = h / reps;
            let qrow = &qs[(h * seq + i) * hd..(h * seq + i + 1) * hd];
            // SAFETY: each (row, head) is one item, written once; `out` outlives the call.
            let y = unsafe {
                std::slice::from_raw_parts_mut((dst as *mut f32).add((i * heads + h) * hd), hd)
            };
            let seen = past + i + 1;
            let from = window.map_or(0, |w| seen.saturating_sub(w));
            one_row(qrow, &keys, &vals, g, from..seen, scale, &mut scores, y);
        }
    });
    Ok(Some(Tensor::from_vec(
        out,
        (1, seq, heads * hd),
        q.device(),
    )?))
}

/// Rows of a cache view: `(head, position)` → a `head_dim` slice.
struct Rows<'a> {
    data: &'a [f32],
    start: usize,
    head_stride: usize,
    pos_stride: usize,
}

impl<'a> Rows<'a> {
    fn new(data: &'a [f32], start: usize, stride: &[usize]) -> Self {
        Rows {
            data,
            start,
            head_stride: stride[1],
            pos_stride: stride[2],
        }
    }
}

impl KvRows for Rows<'_> {
    #[inline]
    fn row(&self, head: usize, pos: usize, hd: usize) -> &[f32] {
        let o = self.start + head * self.head_stride + pos * self.pos_stride;
        &self.data[o..o + hd]
    }
}

/// One query row of one head over positions `seen` of KV head `g`.
#[allow(clippy::too_many_arguments)]
fn one_row(
    q: &[f32],
    keys: &impl KvRows,
    vals: &impl KvRows,
    g: usize,
    seen: std::ops::Range<usize>,
    scale: f32,
    scores: &mut [f32],
    y: &mut [f32],
) {
    let hd = q.len();
    let from = seen.start;
    let scores = &mut scores[..seen.len()];
    for (t, s) in scores.iter_mut().enumerate() {
        *s = dot(q, keys.row(g, from + t, hd)) * scale;
    }
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    y.fill(0.0);
    for (t, &p) in scores.iter().enumerate() {
        let p = p * inv;
        for (y, v) in y.iter_mut().zip(vals.row(g, from + t, hd)) {
            *y += p * v;
        }
    }
}

/// A dot product in eight lanes, added pairwise at the end: the same order for every row.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    let l = lanes;
    ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7])) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn random(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let v = super::super::kernels::testing::random(n, seed);
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    /// candle's attention of one row: the reference for the values.
    fn candle_row(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Tensor {
        let att = (q.matmul(&k.t().unwrap()).unwrap() * scale).unwrap();
        candle_nn::ops::softmax_last_dim(&att)
            .unwrap()
            .matmul(v)
            .unwrap()
    }

    #[test]
    fn rows_match_candle_and_are_bitwise_their_own_decode_step() {
        let (heads, kv_heads, hd, past, seq, cap) = (6, 2, 64, 37, 5, 64);
        let scale = 1.0 / (hd as f64).sqrt();
        // Cache views as the KV cache gives them: narrowed buffers of a larger capacity.
        let kbuf = random((1, kv_heads, cap, hd), 1);
        let vbuf = random((1, kv_heads, cap, hd), 2);
        let q = random((1, heads, seq, hd), 3);
        let (k, v) = (
            kbuf.narrow(2, 0, past + seq).unwrap(),
            vbuf.narrow(2, 0, past + seq).unwrap(),
        );
        let batch = attend(&q, &k, &v, scale as f32, None).unwrap().unwrap();
        let batch: Vec<f32> = batch.flatten_all().unwrap().to_vec1().unwrap();
        let reps = heads / kv_heads;
        for i in 0..seq {
            let n = past + i + 1;
            let qi = q.narrow(2, i, 1).unwrap().contiguous().unwrap();
            let (ki, vi) = (kbuf.narrow(2, 0, n).unwrap(), vbuf.narrow(2, 0, n).unwrap());
            let alone = attend(&qi, &ki, &vi, scale as f32, None).unwrap().unwrap();
            let alone: Vec<f32> = alone.flatten_all().unwrap().to_vec1().unwrap();
            let row = &batch[i * heads * hd..(i + 1) * heads * hd];
            assert_eq!(
                row,
                alone.as_slice(),
                "row {i} differs from its decode step"
            );
            for h in 0..heads {
                let g = h / reps;
                let theirs = candle_row(
                    &qi.narrow(1, h, 1).unwrap(),
                    &ki.narrow(1, g, 1).unwrap(),
                    &vi.narrow(1, g, 1).unwrap(),
                    scale,
                );
                let theirs: Vec<f32> = theirs.flatten_all().unwrap().to_vec1().unwrap();
                for (a, b) in row[h * hd..(h + 1) * hd].iter().zip(&theirs) {
                    assert!((a - b).abs() < 1e-5, "row {i} head {h}: {a} vs {b}");
                }
            }
        }
    }
}
