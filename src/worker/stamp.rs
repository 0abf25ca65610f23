//! The stamp a report starts with: this machine, its roofs measured now, the build and the date.

use crate::engine::Model;
use crate::protocol::Stamp;
use anyhow::Result;

/// The buffer the stamp's bandwidth streams: larger than any last-level cache here.
const BUFFER_MIB: usize = 256;

/// Measure the stamp on `threads` threads; with `model`, its own quantized product is one roof.
/// Takes about a second.
pub fn measure(model: Option<&Model>, threads: usize) -> Result<Stamp> {
    let roofs = crate::lab::machine::probe(model, BUFFER_MIB, threads)?;
    Ok(Stamp {
        machine: crate::sysmon::this_machine(),
        logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
        threads,
        isa: crate::lab::machine::isa(),
        bandwidth_gb_s: roofs.bandwidth_gb_s,
        buffer_mib: roofs.buffer_mib,
        f32_gflop_s: roofs.f32_gflop_s,
        q_gflop_s: roofs.q_gflop_s,
        matmul_shape: roofs.matmul_shape,
        labtui: env!("CARGO_PKG_VERSION").into(),
        commit: crate::lab::machine::commit().into(),
        date: now(),
        llama_cpp: None,
    })
}

/// Now, RFC 3339 in UTC to the second.
pub fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}
