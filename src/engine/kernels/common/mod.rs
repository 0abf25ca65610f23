//! What more than one kernel uses, so that no kernel file imports another: the block size
//! [`QK`], the CPU feature check ([`best_path`], [`wide`]), the split of a product over threads
//! and rows (`parallel`, `row_groups`, `rows_by_four`), the activation quantizers ([`q8_0`] for
//! the 32-value block formats, [`q8k`] for the K-quants), the x86 SIMD helpers (`simd`) and the
//! kernels' test helpers (`testing`).

pub mod q8_0;
pub mod q8k;
#[cfg(target_arch = "x86_64")]
pub(crate) mod simd;
#[cfg(test)]
pub(crate) mod testing;

use candle_core::quantized::k_quants::BlockQ8K;

/// Values per block of Q4_0, Q5_0, Q5_1 and Q8_0.
pub const QK: usize = 32;

/// The instruction set the kernels use on this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    Vnni,
    Avx2,
    Portable,
}

/// The best path this CPU has.
pub fn best_path() -> Path {
    static P: std::sync::OnceLock<Path> = std::sync::OnceLock::new();
    *P.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c");
            if avx2
                && is_x86_feature_detected!("avx512vnni")
                && is_x86_feature_detected!("avx512vl")
            {
                return Path::Vnni;
            }
            if avx2 {
                return Path::Avx2;
            }
        }
        Path::Portable
    })
}

/// Whether this CPU has AVX-512 with BW and VNNI on top of [`Path::Vnni`]: the K-quant
/// products then take 512-bit registers.
pub fn wide() -> bool {
    static W: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *W.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            best_path() == Path::Vnni
                && is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512bw")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The little-endian f16 at byte `i` of `b`, as an f32.
#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_le_bytes([b[i], b[i + 1]]).to_f32()
}

/// Work one thread takes from the shared cursor at a time in [`parallel`]: weight bytes times
/// activation rows.
const GRAIN_BYTES: usize = 1024 * 1024;

/// Run `f` over `0..n_items` on candle's barrier pool, items of `item_bytes` of weights each
/// met by `rows` activation rows: every thread takes the next grain from a shared cursor until
/// none is left. A grain is about [`GRAIN_BYTES`] of weights for one row, and that divided by
/// the rows for several, so the threads finish within microseconds of each other at any batch.
/// (candle's own `execute_chunked` hands out an eighth of a thread's share at a time, up to 12 MB
/// of a 1.5B model's head, and the other thread waited on that last grab; a grain by bytes
/// alone ran a 0.5B's 0.5 MB attention products on one thread at 16 decode rows, and split its
/// 3 MB FFN products 2 grains against 1.)
pub(crate) fn parallel(
    n_items: usize,
    item_bytes: usize,
    rows: usize,
    f: impl Fn(std::ops::Range<usize>) + Sync,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    if n_items == 0 {
        return;
    }
    let grain = (GRAIN_BYTES / (item_bytes * rows).max(1)).clamp(1, n_items);
    // From one of the pool's own threads a nested call would wait on itself: run inline.
    let in_pool = || {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("candle-bp-"))
    };
    if grain == n_items || in_pool() {
        return f(0..n_items);
    }
    let cursor = AtomicUsize::new(0);
    candle_core::utils::barrier_pool().execute(|_| loop {
        let start = cursor.fetch_add(grain, Ordering::Relaxed);
        if start >= n_items {
            break;
        }
        f(start..n_items.min(start + grain));
    });
}

/// How many of `left` activation rows the next group takes, groups holding at most `most`
/// and as even as can be (9 rows by 8: 5 then 4, not 8 then 1, which would unpack every weight
/// block twice for little work).
pub(crate) fn even_group(left: usize, most: usize) -> usize {
    left.div_ceil(left.div_ceil(most))
}

/// The row loop the K-quant SIMD kernels share: each of `rows` weight rows against the `m`
/// activation rows in groups of at most `most` ([`even_group`]). `group(j, i, take, res)` dots
/// weight row `j` with activation rows `i..i + take` into `res` and returns `take`; results land
/// in `out[i * rows + j]`. Inlined, with `group`, into each kernel's `#[target_feature]`
/// function, so the SIMD bodies compile with its features: the closure must be
/// `#[inline(always)]` too (without it, its bodies' intrinsics became calls and decode ran at
/// 1 tok/s).
#[inline(always)]
pub(crate) fn row_groups(
    rows: usize,
    m: usize,
    most: usize,
    out: &mut [f32],
    mut group: impl FnMut(usize, usize, usize, &mut [f32; 8]) -> usize,
) {
    assert!(out.len() >= m * rows, "row groups' output");
    let mut res = [0f32; 8];
    for j in 0..rows {
        let mut i = 0;
        while i < m {
            let r = group(j, i, even_group(m - i, most), &mut res);
            for (o, v) in res[..r].iter().enumerate() {
                out[(i + o) * rows + j] = *v;
            }
            i += r;
        }
    }
}

/// Weight rows per parallel work item of [`rows_by_four`] (threads take grains of several).
const KQUANT_TILE: usize = 16;

/// `x` (`m` rows of `k`) times the transpose of K-quant rows `w` (`n` rows of `k / 256`
/// blocks), where `dot(w_rows, rows, ys, m, kb, out)` dots `rows` consecutive weight rows with
/// `m` activation rows, writing `out[i * rows + j]`: activations quantized to Q8_K once, weight
/// rows read one after the other (one stream), each weight-block unpack shared by up to eight
/// activation rows (four without AVX-512).
pub(crate) fn rows_by_four<T: Sync>(
    w: &[T],
    n: usize,
    k: usize,
    x: &[f32],
    m: usize,
    dot: impl Fn(&[T], usize, &[BlockQ8K], usize, usize, &mut [f32]) + Sync,
) -> Vec<f32> {
    use candle_core::quantized::k_quants::GgmlType;
    let kb = k / 256;
    assert!(
        k.is_multiple_of(256) && x.len() == m * k && w.len() >= n * kb,
        "K-quant product shapes"
    );
    let mut xq = vec![BlockQ8K::zeros(); m * kb];
    q8k::quantize(x, &mut xq);
    let mut out = vec![0f32; m * n];
    let dst = out.as_mut_ptr() as usize;
    let tile_bytes = KQUANT_TILE * kb * std::mem::size_of::<T>();
    parallel(n.div_ceil(KQUANT_TILE), tile_bytes, m, |tiles| {
        // One call per grain: the kernel's per-call work (dispatch, the bsum pairs) once.
        let j0 = tiles.start * KQUANT_TILE;
        let rows = (tiles.end * KQUANT_TILE).min(n) - j0;
        let mut res = vec![0f32; m * rows];
        dot(&w[j0 * kb..(j0 + rows) * kb], rows, &xq, m, kb, &mut res);
        for i in 0..m {
            for (j, v) in res[i * rows..(i + 1) * rows].iter().enumerate() {
                // SAFETY: each (row, column) is written by one work item; `out` outlives the
                // pool call.
                unsafe { *(dst as *mut f32).add(i * n + j0 + j) = *v };
            }
        }
    });
    out
}
