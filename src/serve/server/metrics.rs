//! What `labtui serve` exports at `/metrics`: vLLM's metric names with the `labtui:` prefix
//! (queues, KV-block usage, token counters, preemptions, prefix-cache lookups and hits in
//! tokens, TTFT and E2E histograms), Prometheus text.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the latency histograms' buckets, in seconds (vLLM's, shortened).
pub const BUCKETS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0,
];

/// A latency histogram of atomics: counts per bucket (not cumulative), the sum and the count.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&b| s <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn write(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut acc = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            acc += n.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{b}\"}} {acc}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {count}");
    }
}

/// The server's numbers, written by the model thread and read by `/metrics`.
#[derive(Debug, Default)]
pub struct Metrics {
    pub running: AtomicU64,
    pub waiting: AtomicU64,
    pub blocks_held: AtomicU64,
    pub blocks_total: AtomicU64,
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
    pub preemptions: AtomicU64,
    /// Prompt tokens looked up in the prefix cache, and found there.
    pub prefix_queries: AtomicU64,
    pub prefix_hits: AtomicU64,
    pub requests_done: AtomicU64,
    pub ttft: Histogram,
    pub e2e: Histogram,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, n: usize) {
        gauge.store(n as u64, Ordering::Relaxed);
    }

    /// Share of the KV blocks held, 0 to 1 (vLLM's `kv_cache_usage_perc` is a fraction too).
    pub fn kv_usage(&self) -> f64 {
        let total = self.blocks_total.load(Ordering::Relaxed);
        match total {
            0 => 0.0,
            t => self.blocks_held.load(Ordering::Relaxed) as f64 / t as f64,
        }
    }

    /// The Prometheus text of every metric, labelled with the model's name.
    pub fn render(&self, model: &str) -> String {
        let model = model.replace(['\\', '"', '\n'], "_");
        let label = format!("{{model_name=\"{model}\"}}");
        let mut out = String::new();
        for (name, kind, help, value) in self.scalars() {
            let _ = writeln!(
                out,
                "# HELP labtui:{name} {help}\n# TYPE labtui:{name} {kind}\nlabtui:{name}{label} {value}"
            );
        }
        self.ttft.write(
            &mut out,
            "labtui:time_to_first_token_seconds",
            "Time from arrival to the first token.",
        );
        self.e2e.write(
            &mut out,
            "labtui:e2e_request_latency_seconds",
            "Time from arrival to the last token.",
        );
        out
    }

    /// Every gauge and counter: its name (after `labtui:`), kind, help and value.
    fn scalars(&self) -> [(&'static str, &'static str, &'static str, String); 10] {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        [
            (
                "num_requests_running",
                "gauge",
                "Requests in the running batch.",
                get(&self.running).to_string(),
            ),
            (
                "num_requests_waiting",
                "gauge",
                "Requests waiting to be admitted.",
                get(&self.waiting).to_string(),
            ),
            (
                "kv_cache_usage_perc",
                "gauge",
                "Share of the KV blocks held (1 = all).",
                self.kv_usage().to_string(),
            ),
            (
                "num_kv_blocks",
                "gauge",
                "KV blocks of 16 tokens in the budget.",
                get(&self.blocks_total).to_string(),
            ),
            (
                "prompt_tokens_total",
                "counter",
                "Prompt tokens of admitted requests.",
                get(&self.prompt_tokens).to_string(),
            ),
            (
                "generation_tokens_total",
                "counter",
                "Tokens generated.",
                get(&self.generation_tokens).to_string(),
            ),
            (
                "num_preemptions_total",
                "counter",
                "Requests preempted (to be recomputed).",
                get(&self.preemptions).to_string(),
            ),
            (
                "prefix_cache_queries_total",
                "counter",
                "Prompt tokens looked up in the prefix cache.",
                get(&self.prefix_queries).to_string(),
            ),
            (
                "prefix_cache_hits_total",
                "counter",
                "Prompt tokens found in the prefix cache (not computed).",
                get(&self.prefix_hits).to_string(),
            ),
            (
                "request_success_total",
                "counter",
                "Requests finished.",
                get(&self.requests_done).to_string(),
            ),
        ]
    }
}
