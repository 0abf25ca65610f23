//! What a measurement ran on: the machine ([`Machine`], in every recording's header) and the full
//! stamp every report starts with ([`Stamp`]: the machine, its measured roofs, the build and the
//! date), so that no number is read without knowing where it came from.

use serde::{Deserialize, Serialize};

/// Enough to tell two machines apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub cores: usize,
    pub ram_bytes: u64,
    pub gpu: Option<String>,
}

/// The stamp at the head of a report: where, with what and when it was measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub machine: Machine,
    /// Logical CPUs, and the threads the engine ran on.
    pub logical_cpus: usize,
    pub threads: usize,
    /// The instruction set the engine's kernels use here ("AVX-512 VNNI, 512-bit", "AVX2", …).
    pub isa: String,
    /// The roofs, measured at the start of the run: read bandwidth (GB/s, 10⁹ bytes) over a
    /// buffer of `buffer_mib`, an f32 matmul and, with a model loaded, the model's own quantized
    /// product (GFLOP/s), both at `matmul_shape` (m, k, n).
    pub bandwidth_gb_s: f64,
    pub buffer_mib: usize,
    pub f32_gflop_s: f64,
    pub q_gflop_s: Option<f64>,
    pub matmul_shape: (usize, usize, usize),
    /// labtui's version and the commit it was built from ("+dirty" when the tree had changes).
    pub labtui: String,
    pub commit: String,
    /// RFC 3339, UTC, to the second.
    pub date: String,
    /// The llama.cpp build a benchmark compared against, when it did.
    #[serde(default)]
    pub llama_cpp: Option<String>,
}

impl Stamp {
    /// The compute roof: the faster of the two products measured.
    pub fn peak_gflop_s(&self) -> f64 {
        self.q_gflop_s.unwrap_or(0.0).max(self.f32_gflop_s)
    }

    /// FLOPs per byte at which the machine turns from memory-bound to compute-bound.
    pub fn balance(&self) -> f64 {
        if self.bandwidth_gb_s > 0.0 {
            self.peak_gflop_s() / self.bandwidth_gb_s
        } else {
            0.0
        }
    }

    /// The date part of [`Self::date`].
    pub fn day(&self) -> &str {
        self.date.get(..10).unwrap_or(&self.date)
    }
}
