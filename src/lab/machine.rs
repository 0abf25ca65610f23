//! The probe behind every report's stamp: this machine's read bandwidth and compute roofs,
//! measured the way the roofline demo measures them, and the instruction set the kernels use.

use super::roofline::{f32_matmul_gflop_s, gate_gflop_s, read_bandwidth_gb_s};
use crate::engine::kernels::common::{best_path, wide, Path};
use crate::engine::Model;
use anyhow::Result;

/// The roofs measured at the start of a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roofs {
    pub bandwidth_gb_s: f64,
    pub buffer_mib: usize,
    pub f32_gflop_s: f64,
    pub q_gflop_s: Option<f64>,
    pub matmul_shape: (usize, usize, usize),
}

/// Prompt rows of the products timed: a prefill's shape, well above the balance point.
const ROWS: usize = 256;

/// Measure the roofs on `threads` threads: `buffer_mib` streamed, an f32 matmul of the FFN's
/// shape and, with a model, its own quantized FFN gate at that shape (without one, Qwen2.5-0.5B's
/// 896 × 4864).
pub fn probe(model: Option<&Model>, buffer_mib: usize, threads: usize) -> Result<Roofs> {
    let bandwidth_gb_s = read_bandwidth_gb_s(buffer_mib << 20, 6, threads);
    let (k, n) = model.map_or((896, 4864), |m| (m.cfg.hidden, m.cfg.ffn));
    let f32_gflop_s = f32_matmul_gflop_s(ROWS, k, n, 3)?;
    let q_gflop_s = model.map(|m| gate_gflop_s(m, ROWS, 3)).transpose()?;
    Ok(Roofs {
        bandwidth_gb_s,
        buffer_mib,
        f32_gflop_s,
        q_gflop_s,
        matmul_shape: (ROWS, k, n),
    })
}

/// The instruction set the kernels take on this CPU, in words.
pub fn isa() -> String {
    match (best_path(), wide()) {
        (Path::Vnni, true) => "AVX-512 VNNI (512-bit K-quant kernels)".into(),
        (Path::Vnni, false) => "AVX-512 VNNI (256-bit)".into(),
        (Path::Avx2, _) => "AVX2 + FMA".into(),
        (Path::Portable, _) => format!("{} (portable kernels)", std::env::consts::ARCH),
    }
}

/// The commit this binary was built from.
pub fn commit() -> &'static str {
    env!("LABTUI_COMMIT")
}
