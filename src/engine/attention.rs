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
    super::kernels::parallel(seq * kv_heads, item_bytes, 1, |items| {
        let mut scores = vec![0f32; reps * longest];
        for item in items {
            let (i, g) = (item / kv_heads, item % kv_heads);
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
            // SAFETY: each (row, KV head) is one item; `out` outlives the call.
            let y = unsafe { group_out(dst, i, heads, g, reps, hd) };
            let group = Group {
                keys: &keys,
                vals: &vals,
                g,
                reps,
                hd,
                scale,
            };
            let q = &qs[(g * reps * seq + i) * hd..];
            group.attend(q, seq * hd, row.from..row.seen, &mut scores, y);
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
    #[inline(always)]
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
    super::kernels::parallel(seq * kv_heads, item_bytes, 1, |items| {
        let mut scores = vec![0f32; reps * len];
        for item in items {
            let (i, g) = (item / kv_heads, item % kv_heads);
            // SAFETY: each (row, KV head) is one item; `out` outlives the call.
            let y = unsafe { group_out(dst, i, heads, g, reps, hd) };
            let seen = past + i + 1;
            let from = window.map_or(0, |w| seen.saturating_sub(w));
            let group = Group {
                keys: &keys,
                vals: &vals,
                g,
                reps,
                hd,
                scale,
            };
            let q = &qs[(g * reps * seq + i) * hd..];
            group.attend(q, seq * hd, from..seen, &mut scores, y);
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
    #[inline(always)]
    fn row(&self, head: usize, pos: usize, hd: usize) -> &[f32] {
        let o = self.start + head * self.head_stride + pos * self.pos_stride;
        &self.data[o..o + hd]
    }
}

/// The query heads that share KV head `g`, for one row: each key and value row is read once for
/// all of them (grouped-query attention's saving, in the memory traffic of decode at long
/// contexts). Each head still goes through the very same operations in the same order whatever
/// the group, the number of rows or the item it falls in: dot products in eight lanes, a
/// max-subtracted softmax summed position by position, a weighted sum of values.
struct Group<'a, K: KvRows> {
    keys: &'a K,
    vals: &'a K,
    g: usize,
    reps: usize,
    hd: usize,
    scale: f32,
}

impl<K: KvRows> Group<'_, K> {
    /// The group's query heads (head `r` at `q[r * stride..]`, `head_dim` long) over positions
    /// `seen`; `y` holds their outputs side by side, `scores` at least heads × positions. Compiled for the widest vectors the CPU has:
    /// the operations and their order are the same in each (no contraction into fused
    /// multiply-adds), so every path gives the same bits.
    fn attend(
        &self,
        q: &[f32],
        stride: usize,
        seen: std::ops::Range<usize>,
        scores: &mut [f32],
        y: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
                // SAFETY: the features were detected.
                return unsafe { self.attend_avx512(q, stride, seen, scores, y) };
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                // SAFETY: as above.
                return unsafe { self.attend_avx2(q, stride, seen, scores, y) };
            }
        }
        self.attend_all(q, stride, seen, scores, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn attend_avx512(
        &self,
        q: &[f32],
        stride: usize,
        seen: std::ops::Range<usize>,
        scores: &mut [f32],
        y: &mut [f32],
    ) {
        self.attend_all(q, stride, seen, scores, y)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn attend_avx2(
        &self,
        q: &[f32],
        stride: usize,
        seen: std::ops::Range<usize>,
        scores: &mut [f32],
        y: &mut [f32],
    ) {
        self.attend_all(q, stride, seen, scores, y)
    }

    #[inline(always)]
    fn attend_all(
        &self,
        q: &[f32],
        stride: usize,
        seen: std::ops::Range<usize>,
        scores: &mut [f32],
        y: &mut [f32],
    ) {
        let (n, from) = (seen.len(), seen.start);
        let hd = self.hd;
        let scores = &mut scores[..self.reps * n];
        for t in 0..n {
            let k = self.keys.row(self.g, from + t, hd);
            for r in 0..self.reps {
                scores[r * n + t] = dot(&q[r * stride..][..hd], k) * self.scale;
            }
        }
        // Each head's weights, normalised in place.
        for s in scores.chunks_exact_mut(n.max(1)) {
            let max = s.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            exp_shifted_all(s, max);
            let inv = 1.0 / s.iter().fold(0f32, |a, &x| a + x);
            for p in s.iter_mut() {
                *p *= inv;
            }
        }
        y.fill(0.0);
        for t in 0..n {
            let v = self.vals.row(self.g, from + t, hd);
            for (r, yr) in y.chunks_exact_mut(hd).enumerate() {
                let p = scores[r * n + t];
                for (y, v) in yr.iter_mut().zip(v) {
                    *y += p * v;
                }
            }
        }
    }
}

/// The outputs of row `i`'s query heads that share KV head `g`, side by side in the output
/// (`(rows, heads, head_dim)` at `dst`).
///
/// # Safety
/// `dst` is the output, alive for the returned slice's life, and nothing else writes these
/// values meanwhile.
unsafe fn group_out<'o>(
    dst: usize,
    i: usize,
    heads: usize,
    g: usize,
    reps: usize,
    hd: usize,
) -> &'o mut [f32] {
    std::slice::from_raw_parts_mut(
        (dst as *mut f32).add((i * heads + g * reps) * hd),
        reps * hd,
    )
}

/// `s[i] = e^(s[i] − shift)`, through the polynomial the compiler vectorizes
/// ([`super::act::exp`]): the C library's `expf`, one value at a time, took a large part of a
/// decode step's attention at long contexts.
#[inline(always)]
fn exp_shifted_all(s: &mut [f32], shift: f32) {
    for x in s {
        *x = super::act::exp(*x - shift);
    }
}

/// A dot product in eight lanes, added pairwise at the end: the same order for every row.
#[inline(always)]
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
