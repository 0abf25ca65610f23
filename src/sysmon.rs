//! The system sampler: process RSS and machine memory through sysinfo, GPU memory through NVML
//! when an NVIDIA GPU answers. It runs on its own thread, never on the per-token path.

use crate::alloc::heap_live;
use crate::protocol::{Event, GpuSample, Stamped, Stamper, SystemSample};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc::UnboundedSender;

/// NVML, initialised once; a machine without an NVIDIA driver keeps the error and shows "n/a".
fn nvml() -> Option<&'static nvml_wrapper::Nvml> {
    static NVML: OnceLock<Result<nvml_wrapper::Nvml, String>> = OnceLock::new();
    NVML.get_or_init(|| nvml_wrapper::Nvml::init().map_err(|e| e.to_string()))
        .as_ref()
        .ok()
}

fn gpu_sample(pid: u32) -> Option<GpuSample> {
    let dev = nvml()?.device_by_index(0).ok()?;
    let mem = dev.memory_info().ok()?;
    let process_used = dev.running_compute_processes().ok().and_then(|ps| {
        ps.into_iter()
            .find(|p| p.pid == pid)
            .and_then(|p| match p.used_gpu_memory {
                nvml_wrapper::enums::device::UsedGpuMemory::Used(b) => Some(b),
                nvml_wrapper::enums::device::UsedGpuMemory::Unavailable => None,
            })
    });
    Some(GpuSample {
        name: dev.name().unwrap_or_else(|_| "GPU".into()),
        used: mem.used,
        total: mem.total,
        process_used,
    })
}

/// Memory the machine can still give (sysinfo's available memory), when it can be read.
pub fn available_memory() -> Option<u64> {
    let mut sys = System::new().ok()?;
    sys.refresh_memory();
    Some(sys.available_memory()).filter(|&b| b > 0)
}

/// Memory the machine can still give this process, when it can be read. `LABTUI_MEMORY_LIMIT`
/// (bytes) stands in for it: a cap for a shared machine, and how the tests make a small one.
pub fn available_for_runs() -> Option<u64> {
    if let Some(limit) = std::env::var("LABTUI_MEMORY_LIMIT")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
    {
        return Some(limit);
    }
    available_memory()
}

/// The first core's L2 cache in bytes, where Linux says (`/sys/devices/system/cpu`).
pub fn l2_cache_bytes() -> Option<u64> {
    let dir = std::path::Path::new("/sys/devices/system/cpu/cpu0/cache");
    std::fs::read_dir(dir).ok()?.flatten().find_map(|e| {
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
        (read("level")?.trim() == "2" && read("type")?.trim() != "Instruction")
            .then(|| parse_cache_size(read("size")?.trim()))
            .flatten()
    })
}

/// `1024K`, `2M` or a plain number of bytes.
fn parse_cache_size(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    match unit {
        "" => Some(n),
        "K" => Some(n << 10),
        "M" => Some(n << 20),
        _ => None,
    }
}

/// Reads memory figures of this process and machine.
pub struct Sampler {
    /// `None` where sysinfo cannot read this system; samples are then zero.
    sys: Option<System>,
    pid: Pid,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Self {
        Self {
            sys: System::new().ok(),
            pid: sysinfo::get_current_pid().unwrap_or(Pid::from_u32(std::process::id())),
        }
    }

    pub fn sample(&mut self) -> SystemSample {
        let gpu = gpu_sample(self.pid.as_u32());
        let Some(sys) = self.sys.as_mut() else {
            return SystemSample {
                process_rss: 0,
                heap_live: heap_live(),
                system_used: 0,
                system_total: 0,
                cpu_percent: 0.0,
                gpu,
            };
        };
        sys.refresh_memory();
        sys.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[self.pid]),
            true,
            ProcessRefreshKind::nothing().with_memory().with_cpu(),
        );
        let (rss, cpu) = sys
            .process(self.pid)
            .map(|p| (p.memory(), p.cpu_usage()))
            .unwrap_or((0, 0.0));
        SystemSample {
            process_rss: rss,
            heap_live: heap_live(),
            system_used: sys.used_memory(),
            system_total: sys.total_memory(),
            cpu_percent: cpu,
            gpu,
        }
    }
}

/// Sample every `every` on a thread of its own until the receiver goes away. A panic there (or
/// the one `panic_after` samples inject, for tests) becomes an error event; the dashboard goes on
/// without memory samples.
pub fn spawn(
    tx: UnboundedSender<Stamped>,
    clock: Instant,
    every: Duration,
    panic_after: Option<usize>,
) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("labtui-sampler".into())
        .spawn(move || {
            let out = Stamper { tx, clock };
            let send = |event| out.send(event);
            let sampled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut s = Sampler::new();
                for n in 0.. {
                    if panic_after == Some(n) {
                        panic!("injected fault: a panic on the sampler thread");
                    }
                    if !send(Event::System(s.sample())) {
                        break;
                    }
                    std::thread::sleep(every);
                }
            }));
            if let Err(p) = sampled {
                send(Event::Error {
                    message: format!(
                        "the memory sampler stopped ({}); the memory pane no longer updates",
                        crate::protocol::panic_message(&*p)
                    ),
                });
            }
        })
        .expect("spawn the sampler thread")
}

/// This machine: its CPU, physical cores, memory and GPU (through NVML), for recordings' headers
/// and reports' stamps.
pub fn this_machine() -> crate::protocol::Machine {
    let sys = sysinfo::System::new().ok().map(|mut s| {
        s.refresh_memory();
        s.refresh_cpu_all();
        s
    });
    let cpu = sys
        .as_ref()
        .and_then(|s| s.cpus().first().map(|c| c.brand().trim().to_string()))
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    crate::protocol::Machine {
        cpu,
        cores: crate::engine::physical_cores(),
        ram_bytes: sys.as_ref().map_or(0, |s| s.total_memory()),
        gpu: Sampler::new().sample().gpu.map(|g| g.name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_memory() {
        let s = Sampler::new().sample();
        assert!(s.process_rss > 0);
        assert!(s.system_total >= s.system_used && s.system_total > 0);
    }
}
