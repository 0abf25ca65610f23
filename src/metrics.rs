//! The system sampler: process RSS and machine memory through sysinfo, GPU memory through NVML
//! when an NVIDIA GPU answers. It runs on its own thread, never on the per-token path.

use crate::protocol::{Event, GpuSample, Stamped, SystemSample};
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};
use tokio::sync::mpsc::UnboundedSender;

/// labtui's allocator, declared `#[global_allocator]` by the binary (and by the fuzz tests):
/// mimalloc, which reuses freed memory instead of returning large blocks to the kernel (which
/// otherwise zeroes fresh pages for the logits of every decode step), with the live bytes counted
/// so that the heap can be told from RSS (RSS also holds mapped weights, stacks and memory the
/// allocator keeps for reuse), and an optional bound on any one allocation (the fuzz tests set it,
/// so that a size read from a file that escaped its check aborts instead of exhausting the
/// machine). Where another allocator is in place (the other test binaries), [`heap_live`] is 0.
pub struct Heap;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static MAX_ONE: AtomicUsize = AtomicUsize::new(usize::MAX);

// SAFETY: every call forwards to mimalloc with the caller's layout; the counters are only
// arithmetic beside it, and an oversized request returns null as an allocator may.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > MAX_ONE.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        let p = mimalloc::MiMalloc.alloc(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() > MAX_ONE.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        let p = mimalloc::MiMalloc.alloc_zeroed(l);
        if !p.is_null() {
            LIVE.fetch_add(l.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        mimalloc::MiMalloc.dealloc(p, l);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if new_size > MAX_ONE.load(Ordering::Relaxed) {
            return std::ptr::null_mut();
        }
        let q = mimalloc::MiMalloc.realloc(p, l, new_size);
        if !q.is_null() {
            LIVE.fetch_add(new_size, Ordering::Relaxed);
            LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        }
        q
    }
}

/// Bytes allocated through [`Heap`] and not yet freed, now.
pub fn heap_live() -> u64 {
    LIVE.load(Ordering::Relaxed) as u64
}

/// mimalloc's `mi_option_purge_delay` (the same index in its v2 and v3 headers).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep the pages of freed memory for reuse instead of handing them back to the kernel 10 ms
/// after the free (mimalloc's default). A prefill allocates and frees buffers of megabytes in
/// every layer (scores, masks, activations); handed back, each came back as fresh pages the
/// kernel zeroes: 16% of a Gemma 3 prefill's time went to that. Kept, prefill ran 20–25% faster
/// here (0.5B and Gemma 3, pp128 and pp512). The memory kept is what the largest step used; it
/// is reused, not grown (the soak's RSS net of the KV cache says so).
pub fn keep_freed_pages() {
    // SAFETY: sets one of mimalloc's options, which it reads on its next purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
}

/// Refuse any single allocation over `bytes` from now on (the standard library then aborts
/// naming the size). For tests that feed hostile input.
pub fn limit_each_allocation(bytes: usize) {
    MAX_ONE.store(bytes, Ordering::Relaxed);
}

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
            let send = |event| {
                tx.send(Stamped {
                    at: clock.elapsed(),
                    event,
                })
                .is_ok()
            };
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
