//! A per-operation profile of the forward pass (`labtui bench engine --profile`): while it is on,
//! each kind of work a step does — the layers' products by matrix, attention, the norms, RoPE,
//! the KV cache's writes, the activation, the head — adds its wall time, its calls, the weight
//! bytes it read and its FLOPs to one line. Off (the default), each operation costs one relaxed
//! load. The forward pass runs on the calling thread (candle's pool works inside an operation),
//! so the lines add up to the step, less what falls between them (tensor glue, the embedding
//! gather, the residual adds), which the benchmark reports as the rest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

static ON: AtomicBool = AtomicBool::new(false);
static OPS: Mutex<Vec<Op>> = Mutex::new(Vec::new());

/// One kind of work, summed over the steps profiled.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Op {
    pub name: &'static str,
    pub calls: u64,
    pub time: Duration,
    /// Weight bytes read (products and the head; 0 for the rest).
    pub bytes: u64,
    pub flops: u64,
}

impl Op {
    pub fn gb_s(&self) -> Option<f64> {
        let s = self.time.as_secs_f64();
        (self.bytes > 0 && s > 0.0).then(|| self.bytes as f64 / s / 1e9)
    }

    pub fn gflop_s(&self) -> Option<f64> {
        let s = self.time.as_secs_f64();
        (self.flops > 0 && s > 0.0).then(|| self.flops as f64 / s / 1e9)
    }
}

/// Start profiling from nothing.
pub fn start() {
    OPS.lock().unwrap_or_else(|e| e.into_inner()).clear();
    ON.store(true, Ordering::SeqCst);
}

/// Stop, and take the lines in the order they were first seen.
pub fn stop() -> Vec<Op> {
    ON.store(false, Ordering::SeqCst);
    std::mem::take(&mut *OPS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Whether a profile is being taken: a caller whose bytes and FLOPs cost something to count
/// asks first.
#[inline]
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Run `f` as operation `name`, reading `bytes` of weights and doing `flops`.
pub fn timed<T>(name: &'static str, bytes: u64, flops: u64, f: impl FnOnce() -> T) -> T {
    if !enabled() {
        return f();
    }
    let t = Instant::now();
    let out = f();
    let time = t.elapsed();
    let mut ops = OPS.lock().unwrap_or_else(|e| e.into_inner());
    match ops.iter_mut().find(|o| o.name == name) {
        Some(o) => {
            o.calls += 1;
            o.time += time;
            o.bytes += bytes;
            o.flops += flops;
        }
        None => ops.push(Op {
            name,
            calls: 1,
            time,
            bytes,
            flops,
        }),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_sum_their_calls_and_nothing_is_kept_when_off() {
        timed("off", 1, 1, || ());
        start();
        for _ in 0..3 {
            timed("a", 10, 20, || std::thread::sleep(Duration::from_millis(1)));
        }
        timed("b", 0, 0, || ());
        let ops = stop();
        timed("after", 1, 1, || ());
        // Other tests' forward passes may add their own lines meanwhile: look up ours.
        let line = |n: &str| ops.iter().find(|o| o.name == n);
        let a = line("a").expect("a line for a");
        assert_eq!((a.calls, a.bytes, a.flops), (3, 30, 60));
        assert!(a.time >= Duration::from_millis(3));
        assert!(a.gb_s().is_some() && line("b").unwrap().gb_s().is_none());
        assert!(line("off").is_none() && line("after").is_none());
    }
}
