//! GELU (tanh approximation, Gemma's `gelu_pytorch_tanh`) on every core, vectorized. candle's
//! `gelu` maps the elements on one thread with the C library's `tanhf`: on a Gemma prefill that was
//! an eighth of the time. Here `0.5·x·(1 + tanh(z))` is computed as `x / (1 + e^(-2z))` (the
//! same function), with an `exp` the compiler vectorizes (range reduction by ln 2 and a degree-6
//! polynomial: within a few units in the last place of `tanhf`'s result), in chunks spread over
//! candle's thread pool. Gemma's checks against llama.cpp's greedy tokens hold with it.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Elements a thread takes at a time.
const CHUNK: usize = 8192;

/// `e^x` for `x` in about ±87, vectorizable: `x = n·ln 2 + r`, `e^r` by its Taylor polynomial.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round to the nearest integer by the float format itself (|x·log2 e| < 2^22).
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 87.0);
    let n = (x * LOG2E + MAGIC) - MAGIC;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    p * f32::from_bits(((n as i32 + 127) << 23) as u32)
}

/// GELU's tanh approximation of one value.
#[inline(always)]
fn gelu(v: f32) -> f32 {
    const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
    let z = SQRT_TWO_OVER_PI * v * (1.0 + 0.044715 * v * v);
    v / (1.0 + exp(-2.0 * z))
}

#[inline(always)]
fn gelu_all(x: &[f32], out: &mut [f32]) {
    for (o, v) in out.iter_mut().zip(x) {
        *o = gelu(*v);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gelu_avx512(x: &[f32], out: &mut [f32]) {
    gelu_all(x, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_avx2(x: &[f32], out: &mut [f32]) {
    gelu_all(x, out)
}

fn gelu_best(x: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("fma") {
            // SAFETY: the features were detected.
            return unsafe { gelu_avx512(x, out) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { gelu_avx2(x, out) };
        }
    }
    gelu_all(x, out)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "labtui-gelu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(all), Some((start, end))) = (storage, layout.contiguous_offsets())
        else {
            candle_core::bail!("labtui-gelu takes contiguous f32")
        };
        let x = &all[start..end];
        let mut out = vec![0f32; x.len()];
        let dst = out.as_mut_ptr() as usize;
        candle_core::utils::barrier_pool().execute_chunked(x.len().div_ceil(CHUNK), |chunks| {
            let from = chunks.start * CHUNK;
            let to = (chunks.end * CHUNK).min(x.len());
            // SAFETY: chunks are disjoint; `out` outlives the pool call.
            let out =
                unsafe { std::slice::from_raw_parts_mut((dst as *mut f32).add(from), to - from) };
            gelu_best(&x[from..to], out);
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// GELU (tanh approximation) of `x`: vectorized on every core for f32 on the CPU, candle's
/// `gelu` elsewhere.
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&Gelu)
    } else {
        x.gelu()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn within_a_few_ulps_of_candles_gelu() {
        let n = 5 * CHUNK + 17;
        let xs: Vec<f32> = (0..n)
            .map(|i| (i as f32 / n as f32 - 0.5) * 60.0 + if i % 97 == 0 { 1e4 } else { 0.0 })
            .collect();
        let t = Tensor::from_vec(xs.clone(), (1, n), &Device::Cpu).unwrap();
        let ours = gelu_tanh(&t)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let theirs = t
            .gelu()
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for ((x, a), b) in xs.iter().zip(&ours).zip(&theirs) {
            let tol = 4.0 * f32::EPSILON * b.abs().max(x.abs() * 1e-3).max(1e-30);
            assert!(
                (a - b).abs() <= tol.max(1e-7),
                "gelu({x}) = {a}, candle {b}"
            );
        }
        // A view that is not contiguous gives the same as its copy.
        let t2 = Tensor::from_vec(
            (0..64).map(|i| i as f32 / 7.0 - 4.0).collect(),
            (8, 8),
            &Device::Cpu,
        )
        .unwrap()
        .t()
        .unwrap();
        assert_eq!(
            gelu_tanh(&t2).unwrap().to_vec2::<f32>().unwrap(),
            gelu_tanh(&t2.contiguous().unwrap())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        );
    }
}
