//! What the kernels' tests share: random inputs, candle's product as a flat vector, and one
//! check of a K-quant product and its SIMD bodies against candle's one-row dot.

use candle_core::quantized::QMatMul;
use candle_core::{Module, Tensor};
use rand::{Rng, SeedableRng};

/// `n` values in -1..1 from `seed`.
pub fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect()
}

/// A K-quant SIMD body: `rows` weight rows by `m` activation rows of `kb` blocks.
pub type KBody<B> =
    unsafe fn(&[B], usize, &[candle_core::quantized::k_quants::BlockQ8K], usize, usize, &mut [f32]);

/// A K-quant product: weights, `n`, `k`, activations, `m`.
pub type KMatmul<B> = fn(&[B], usize, usize, &[f32], usize) -> Vec<f32>;

/// A K-quant product's dispatch (`matmul`) and each SIMD body this CPU has (`bodies`,
/// named), against candle's one-row `vec_dot`, bit for bit, row by row, for batches of 1
/// to 17 rows of a random `n × 768` matrix.
pub fn kquant_rows_are_candles<
    B: candle_core::quantized::k_quants::GgmlType<
            VecDotType = candle_core::quantized::k_quants::BlockQ8K,
        > + Clone,
>(
    n: usize,
    seed: u64,
    matmul: KMatmul<B>,
    bodies: &[(&str, KBody<B>)],
) {
    use candle_core::quantized::k_quants::{BlockQ8K, GgmlType};
    let (k, kb) = (768, 3);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let wf: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let mut w = vec![B::zeros(); n * kb];
    B::from_float(&wf, &mut w);
    let bits = |v: Vec<f32>| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    for m in [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 17] {
        let x: Vec<f32> = (0..m * k).map(|_| rng.random_range(-2.0f32..2.0)).collect();
        let mut xq = vec![BlockQ8K::zeros(); m * kb];
        BlockQ8K::from_float(&x, &mut xq);
        let theirs: Vec<u32> = (0..m * n)
            .map(|o| {
                let (i, j) = (o / n, o % n);
                B::vec_dot(k, &w[j * kb..(j + 1) * kb], &xq[i * kb..(i + 1) * kb]).to_bits()
            })
            .collect();
        assert_eq!(bits(matmul(&w, n, k, &x, m)), theirs, "dispatch, m {m}");
        for (name, body) in bodies {
            let mut out = vec![0f32; m * n];
            // SAFETY: the caller lists only bodies whose features this CPU has.
            unsafe { body(&w, n, &xq, m, kb, &mut out) };
            assert_eq!(bits(out), theirs, "{name}, m {m}");
        }
    }
}

/// candle's own product, as a flat vector.
pub fn candle_forward(m: &QMatMul, x: &Tensor) -> Vec<f32> {
    m.forward(x)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}
