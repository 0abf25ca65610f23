//! The stamp every report starts with, in Markdown: where, on what and when its numbers were
//! measured, so two reports are only set side by side when their stamps say they may be.

use crate::protocol::Stamp;
use crate::stats::human_bytes;

/// Three quoted lines: the machine, its measured roofs, the build and the date.
pub fn markdown(s: &Stamp) -> String {
    let m = &s.machine;
    let gpu = m.gpu.as_deref().unwrap_or("no GPU");
    let q = match s.q_gflop_s {
        Some(q) => format!(" · the model's own quantized product {q:.1} GFLOP/s"),
        None => String::new(),
    };
    let (rows, k, n) = s.matmul_shape;
    let llama = match &s.llama_cpp {
        Some(b) => format!(" · compared with llama.cpp {b}"),
        None => String::new(),
    };
    format!(
        "> **Machine** {cpu}: {cores} cores, {logical} logical CPUs, the engine on {threads} \
         threads · {isa} · {ram} memory · {gpu}  \n\
         > **Roofs** (measured at the start of the run) read bandwidth {bw:.1} GB/s over \
         {buf} MiB · f32 matmul {f32:.1} GFLOP/s{q} ({rows}×{k}×{n}) · balance point \
         {bal:.1} FLOP/byte  \n\
         > **Build** labtui {ver} at commit {commit}{llama} · **measured** {date}\n",
        cpu = m.cpu,
        cores = m.cores,
        logical = s.logical_cpus,
        threads = s.threads,
        isa = s.isa,
        ram = human_bytes(m.ram_bytes),
        bw = s.bandwidth_gb_s,
        buf = s.buffer_mib,
        f32 = s.f32_gflop_s,
        bal = s.balance(),
        ver = s.labtui,
        commit = s.commit,
        date = s.date,
    )
}

/// One line for a pane or a progress message.
pub fn short(s: &Stamp) -> String {
    format!(
        "{} · {} threads · {:.1} GB/s · {:.0} GFLOP/s · {} · {}",
        s.machine.cpu,
        s.threads,
        s.bandwidth_gb_s,
        s.peak_gflop_s(),
        s.commit,
        s.day()
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::protocol::{Machine, Stamp};

    pub(crate) fn stamp() -> Stamp {
        Stamp {
            machine: Machine {
                cpu: "Test CPU".into(),
                cores: 2,
                ram_bytes: 24 << 30,
                gpu: None,
            },
            logical_cpus: 2,
            threads: 2,
            isa: "AVX2 + FMA".into(),
            bandwidth_gb_s: 40.0,
            buffer_mib: 256,
            f32_gflop_s: 200.0,
            q_gflop_s: Some(600.0),
            matmul_shape: (256, 896, 4864),
            labtui: "0.1.0".into(),
            commit: "abcdef123456".into(),
            date: "2026-12-07T01:02:03Z".into(),
            llama_cpp: None,
        }
    }

    #[test]
    fn the_stamp_names_machine_roofs_build_and_date() {
        let md = markdown(&stamp());
        for want in [
            "Test CPU: 2 cores",
            "2 threads",
            "AVX2 + FMA",
            "24.00 GiB",
            "no GPU",
            "40.0 GB/s",
            "f32 matmul 200.0 GFLOP/s",
            "quantized product 600.0",
            "balance point 15.0 FLOP/byte",
            "commit abcdef123456",
            "2026-12-07T01:02:03Z",
        ] {
            assert!(md.contains(want), "{want:?} missing from {md}");
        }
        assert_eq!(stamp().day(), "2026-12-07");
    }
}
