//! The memory pane's figures, each with its recipe: the GPU's memory (NVML), the process's
//! resident memory and live heap, the system's, and the resident memory split into the model's
//! weights, its KV cache and the rest.

use super::figure::{computed, figure, Figure, Measured, Recipe, Unit};
use super::Store;
use crate::protocol::SystemSample;

const LESSON: &str = "demo kv-cache";

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryFigures {
    /// The GPU's used memory, and this process's share when the driver reports it.
    pub gpu: Option<Figure>,
    pub gpu_process: Option<Figure>,
    pub rss: Figure,
    /// Counted by labtui's allocator (absent from older recordings).
    pub heap: Option<Figure>,
    pub system: Figure,
    pub weights: Figure,
    /// The local model's cache and the rest of the resident memory (a remote model's are on
    /// its server).
    pub kv: Option<Figure>,
    pub other: Option<Figure>,
    pub cpu: Figure,
}

impl MemoryFigures {
    pub fn all(&self) -> Vec<&Figure> {
        let mut v: Vec<&Figure> = self.gpu.iter().chain(&self.gpu_process).collect();
        v.push(&self.rss);
        v.extend(self.heap.iter());
        v.extend([&self.system, &self.weights]);
        v.extend(self.kv.iter().chain(&self.other));
        v.push(&self.cpu);
        v
    }
}

fn system(name: &'static str, bytes: u64, definition: &'static str, how: &'static str) -> Figure {
    figure(
        name,
        (bytes as f64, Unit::Bytes),
        definition,
        Recipe::Direct { how },
        (Measured::System, LESSON),
    )
}

/// The figures of the newest memory sample, when there is one.
pub fn memory_figures(store: &Store) -> Option<MemoryFigures> {
    let s = store.last_system.as_ref()?;
    let remote = store.model.as_ref().is_some_and(|m| m.is_remote());
    let (gpu, gpu_process) = gpu(s);
    let rss = system(
        "process RSS",
        s.process_rss,
        "resident memory: the pages of this process in RAM",
        "the process's resident set, read from the operating system",
    );
    let heap = (s.heap_live > 0).then(|| {
        figure(
            "heap",
            (s.heap_live as f64, Unit::Bytes),
            "bytes allocated and not yet freed (RSS also holds what the allocator keeps for reuse)",
            Recipe::Direct {
                how: "labtui's allocator's count of live bytes",
            },
            (Measured::Engine, LESSON),
        )
    });
    let sys = system(
        "system",
        s.system_used,
        "memory in use on the whole machine",
        "the operating system's used memory",
    );
    let cpu = figure(
        "CPU",
        (f64::from(s.cpu_percent) / 100.0, Unit::Percent),
        "this process's CPU use since the last sample (100% is one core busy)",
        Recipe::Direct {
            how: "the operating system's CPU time for the process over the sampling interval",
        },
        (Measured::System, "demo roofline"),
    );
    let (weights, kv, other) = split(store, s, remote);
    Some(MemoryFigures {
        gpu,
        gpu_process,
        rss,
        heap,
        system: sys,
        weights,
        kv,
        other,
        cpu,
    })
}

fn gpu(s: &SystemSample) -> (Option<Figure>, Option<Figure>) {
    let Some(g) = &s.gpu else {
        return (None, None);
    };
    let used = system(
        "GPU used",
        g.used,
        "the GPU's memory in use, by every process",
        "NVML's used memory for the device",
    );
    let process = g.process_used.map(|p| {
        system(
            "this process",
            p,
            "the GPU memory this process holds",
            "NVML's per-process used memory",
        )
    });
    (Some(used), process)
}

/// Weights, KV and the rest of the resident memory.
fn split(
    store: &Store,
    s: &SystemSample,
    remote: bool,
) -> (Figure, Option<Figure>, Option<Figure>) {
    let loaded = store.model.as_ref().map_or(0, |m| m.weight_bytes);
    if remote {
        let w = figure(
            "weights",
            (loaded as f64, Unit::Bytes),
            "the served model's weights, on the server",
            Recipe::Direct {
                how: "the size the server gave for its model (0: it said none)",
            },
            (Measured::Server, LESSON),
        );
        return (w, None, None);
    }
    let kept = store.variant.as_ref().map_or(0, |v| v.kept_bytes);
    let weights = if kept > 0 {
        computed(
            "weights",
            Unit::Bytes,
            "the model's weights in memory: the variant that runs and the loaded ones kept",
            Recipe::Sum(vec![
                (loaded as f64, "running weights"),
                (kept as f64, "loaded weights kept"),
            ]),
            (Measured::Engine, "demo quantization"),
        )
    } else {
        figure(
            "weights",
            (loaded as f64, Unit::Bytes),
            "the model's weights in memory",
            Recipe::Direct {
                how: "the bytes of the model's tensors, as the engine holds them",
            },
            (Measured::Engine, "demo quantization"),
        )
    };
    let kv_bytes = store
        .current
        .as_ref()
        .and_then(|r| r.tokens.last())
        .map_or(0, |t| t.kv_bytes);
    let kv = figure(
        "KV",
        (kv_bytes as f64, Unit::Bytes),
        "the KV cache's bytes after the newest token (the KV pane explains it)",
        Recipe::Direct {
            how: "the engine's count of the cache's bytes",
        },
        (Measured::Engine, LESSON),
    );
    let other = computed(
        "other",
        Unit::Bytes,
        "the rest of the resident memory: code, buffers, the allocator's free pages",
        Recipe::Difference {
            from: (s.process_rss as f64, "RSS"),
            less: vec![(weights.value, "weights"), (kv_bytes as f64, "KV")],
        },
        (Measured::System, LESSON),
    );
    (weights, Some(kv), Some(other))
}
