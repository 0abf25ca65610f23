//! The numbers people check: tokens per second, latency percentiles, KV cache bytes.

use crate::protocol::serve::Dist;
use std::time::Duration;

/// Tokens per second; 0 when no time passed.
pub fn tok_per_s(tokens: usize, time: Duration) -> f64 {
    let s = time.as_secs_f64();
    if s > 0.0 {
        tokens as f64 / s
    } else {
        0.0
    }
}

/// The `q`-th percentile (0–100) by nearest rank; zero for no samples.
pub fn percentile(samples: &[Duration], q: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut s = samples.to_vec();
    s.sort_unstable();
    nearest_rank(&s, q)
}

/// The p50, p90 and p99 of inter-token latencies (nearest rank), sorted once.
pub fn itl_percentiles(itl: &[Duration]) -> [Duration; 3] {
    let mut s = itl.to_vec();
    s.sort_unstable();
    [50.0, 90.0, 99.0].map(|q| nearest_rank(&s, q))
}

/// Mean, p50/p90/p99, min, max and standard deviation of `xs`.
pub fn dist(xs: &[Duration]) -> Dist {
    if xs.is_empty() {
        return Dist::default();
    }
    let mut s = xs.to_vec();
    s.sort_unstable();
    let mean = xs.iter().sum::<Duration>() / xs.len() as u32;
    let m = mean.as_secs_f64();
    let var = xs
        .iter()
        .map(|x| (x.as_secs_f64() - m).powi(2))
        .sum::<f64>()
        / xs.len() as f64;
    let [p50, p90, p99] = [50.0, 90.0, 99.0].map(|q| nearest_rank(&s, q));
    Dist {
        mean,
        p50,
        p90,
        p99,
        n: xs.len(),
        min: s[0],
        max: s[s.len() - 1],
        std: Duration::from_secs_f64(var.sqrt()),
    }
}

/// The percentiles `at` (0–100) of `xs`, nearest rank, sorted once.
pub fn percentiles(xs: &[Duration], at: &[f64]) -> Vec<Duration> {
    let mut s = xs.to_vec();
    s.sort_unstable();
    at.iter().map(|q| nearest_rank(&s, *q)).collect()
}

/// Mean, median, 10th percentile and minimum of rates (nearest rank); `None` for none.
pub fn rate_dist(xs: &[f64]) -> Option<crate::protocol::serve::RateDist> {
    if xs.is_empty() {
        return None;
    }
    let mut s = xs.to_vec();
    s.sort_unstable_by(f64::total_cmp);
    let rank = |q: f64| s[(((q / 100.0) * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    Some(crate::protocol::serve::RateDist {
        mean: xs.iter().sum::<f64>() / xs.len() as f64,
        p50: rank(50.0),
        p10: rank(10.0),
        min: s[0],
        n: xs.len(),
    })
}

fn nearest_rank(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// KV cache bytes: 2 (K and V) × layers × KV heads × head dim × bytes per value, for `tokens`
/// tokens of each of `batch` sequences.
pub fn kv_bytes(
    layers: usize,
    kv_heads: usize,
    head_dim: usize,
    value_bytes: f64,
    tokens: usize,
    batch: usize,
) -> f64 {
    2.0 * layers as f64
        * kv_heads as f64
        * head_dim as f64
        * value_bytes
        * tokens as f64
        * batch as f64
}

/// [`kv_bytes`] of a model's whole cache: every token in a full layer, at most the window in a
/// sliding-window one (the steady state, after a prompt's prefill).
pub fn model_kv_bytes(
    m: &crate::protocol::ModelInfo,
    value_bytes: f64,
    tokens: usize,
    batch: usize,
) -> f64 {
    let layers = |n: usize, t: usize| kv_bytes(n, m.kv_heads, m.head_dim, value_bytes, t, batch);
    match m.sliding {
        Some(w) => layers(m.layers - w.layers, tokens) + layers(w.layers, tokens.min(w.window)),
        None => layers(m.layers, tokens),
    }
}

/// The median of `xs` (mean of the middle two for even counts); `None` for no samples.
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// A duration in milliseconds.
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A duration as milliseconds with `digits` after the point, no unit: 1.234 ms at 2 is `1.23`.
/// Every place that writes a duration in ms calls this with its own precision.
pub fn fmt_ms(d: Duration, digits: usize) -> String {
    format!("{:.digits$}", millis(d))
}

/// Bytes as a short human string (KiB, MiB, GiB).
/// A number to three decimals, or in scientific notation past a million (a random model's
/// perplexity).
pub fn sig(x: f64) -> String {
    if x.abs() >= 1e6 {
        format!("{x:.3e}")
    } else {
        format!("{x:.3}")
    }
}

/// A duration in whole seconds, as people say it: `5m 12s`.
pub fn human_secs(d: Duration) -> String {
    humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
}

pub fn human_bytes(b: u64) -> String {
    const K: f64 = 1024.0;
    let b = b as f64;
    if b < K {
        format!("{b:.0} B")
    } else if b < K * K {
        format!("{:.1} KiB", b / K)
    } else if b < K * K * K {
        format!("{:.1} MiB", b / K / K)
    } else {
        format!("{:.2} GiB", b / K / K / K)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    #[test]
    fn rates_and_percentiles() {
        assert_eq!(tok_per_s(10, ms(500)), 20.0);
        assert_eq!(tok_per_s(10, Duration::ZERO), 0.0);
        let xs: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&xs, 50.0), ms(50));
        assert_eq!(percentile(&xs, 90.0), ms(90));
        assert_eq!(percentile(&xs, 99.0), ms(99));
        assert_eq!(percentile(&[ms(7)], 99.0), ms(7));
        assert_eq!(percentile(&[], 50.0), Duration::ZERO);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(human_bytes(24_576), "24.0 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn milliseconds_at_a_precision() {
        let d = Duration::from_micros(1_234);
        assert!((millis(d) - 1.234).abs() < 1e-12);
        assert_eq!(fmt_ms(d, 0), "1");
        assert_eq!(fmt_ms(d, 2), "1.23");
        assert_eq!(fmt_ms(d, 3), "1.234");
        assert_eq!(fmt_ms(Duration::ZERO, 1), "0.0");
    }

    #[test]
    fn itl_percentiles_are_the_percentiles() {
        let xs: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(itl_percentiles(&xs), [ms(50), ms(90), ms(99)]);
        assert_eq!(itl_percentiles(&[]), [Duration::ZERO; 3]);
    }

    #[test]
    fn kv_bytes_follow_the_formula() {
        // Qwen2.5-0.5B: 24 layers, 2 KV heads of 64 dims, f32.
        assert_eq!(kv_bytes(24, 2, 64, 4.0, 1, 1), 24_576.0);
        assert_eq!(
            kv_bytes(24, 2, 64, 2.0, 32_768, 2),
            2.0 * 24.0 * 2.0 * 64.0 * 2.0 * 32_768.0 * 2.0
        );
    }
}
