//! Tiled attention against an f64 dense reference.

use super::*;
use crate::engine::kv_cache::KvPool;
use candle_core::Device;

fn random(n: usize, seed: u64) -> Vec<f32> {
    crate::engine::kernels::testing::random(n, seed)
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
                    qr.iter().zip(k).map(|(a, b)| (*a * *b) as f64).sum::<f64>() * sh.scale as f64
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
    let t = |rows: &[Vec<f32>]| Tensor::from_vec(rows.concat(), (n, kv_heads, hd), &dev).unwrap();
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
