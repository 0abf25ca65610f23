//! A run's inter-token latencies, gathered as they arrive in bounded space: count, sum and
//! extremes exactly, an HDR histogram for live percentiles and the latency histogram, and the
//! newest few for the chart.

use super::Ring;
use crate::stats::tok_per_s;
use hdrhistogram::Histogram;
use std::time::Duration;

/// The newest latencies kept for the chart (wider than any pane).
pub const RECENT: usize = 512;
/// Significant digits the histogram keeps: a percentile is within 0.1% of the exact one.
pub const SIGFIG: u8 = 3;
/// Latencies above this (an hour, in µs) count as this: a recording can say anything, and the
/// histogram's size grows with the largest value.
const MAX_MICROS: u64 = 3_600_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Itl {
    count: usize,
    sum: Duration,
    min: Duration,
    max: Duration,
    /// Microseconds.
    hist: Histogram<u64>,
    recent: Ring<Duration>,
}

impl Default for Itl {
    fn default() -> Self {
        Self {
            count: 0,
            sum: Duration::ZERO,
            min: Duration::MAX,
            max: Duration::ZERO,
            hist: Histogram::new(SIGFIG).expect("1 to 5 significant digits are valid"),
            recent: Ring::new(RECENT),
        }
    }
}

impl Itl {
    pub fn record(&mut self, d: Duration) {
        self.count += 1;
        self.sum = self.sum.saturating_add(d);
        self.min = self.min.min(d);
        self.max = self.max.max(d);
        let us = u64::try_from(d.as_micros()).map_or(MAX_MICROS, |us| us.min(MAX_MICROS));
        // Auto-resizing to an hour cannot fail; were it to, the value is clamped instead.
        if self.hist.record(us).is_err() {
            self.hist.saturating_record(us);
        }
        self.recent.push(d);
    }

    /// Latencies recorded.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Their sum: the decode time.
    pub fn sum(&self) -> Duration {
        self.sum
    }

    /// The smallest and largest, exactly; `None` before the first.
    pub fn range(&self) -> Option<(Duration, Duration)> {
        (self.count > 0).then_some((self.min, self.max))
    }

    /// The newest latencies, oldest first (at most [`RECENT`]).
    pub fn recent(&self) -> impl DoubleEndedIterator<Item = &Duration> + ExactSizeIterator {
        self.recent.iter()
    }

    /// Decode tok/s over the newest `n` latencies (at most [`RECENT`]).
    pub fn live_rate(&self, n: usize) -> f64 {
        let (k, time) = self.live_window(n);
        tok_per_s(k, time)
    }

    /// The newest `n` latencies' count (fewer early in a run) and their sum.
    pub fn live_window(&self, n: usize) -> (usize, Duration) {
        self.recent
            .iter()
            .rev()
            .take(n)
            .fold((0, Duration::ZERO), |(k, t), d| {
                (k + 1, t.saturating_add(*d))
            })
    }

    /// Decode tok/s over the whole run.
    pub fn mean_rate(&self) -> f64 {
        tok_per_s(self.count, self.sum)
    }

    /// p50, p90 and p99 by nearest rank, as [`crate::stats::itl_percentiles`] gives them, within
    /// the histogram's precision (0.1%, and 1 µs); zero before the first latency.
    pub fn percentiles(&self) -> [Duration; 3] {
        [50.0, 90.0, 99.0].map(|q: f64| {
            if self.count == 0 {
                return Duration::ZERO;
            }
            let us = self.hist.value_at_quantile(q / 100.0);
            Duration::from_micros(self.hist.median_equivalent(us)).clamp(self.min, self.max)
        })
    }

    /// Counts in `bins` equal-width bins between the smallest and the largest latency; returns
    /// (counts, smallest, bin width). Each histogram bucket falls in the bin of its middle value,
    /// so a latency within 0.1% of a bin edge may be counted beside it.
    pub fn histogram(&self, bins: usize) -> (Vec<u64>, Duration, Duration) {
        let bins = bins.max(1);
        let mut counts = vec![0u64; bins];
        let Some((min, max)) = self.range() else {
            return (counts, Duration::ZERO, Duration::ZERO);
        };
        let width = (max - min) / bins as u32 + Duration::from_nanos(1);
        for v in self.hist.iter_recorded() {
            let at = Duration::from_micros(self.hist.median_equivalent(v.value_iterated_to()))
                .clamp(min, max);
            let i = ((at - min).as_nanos() / width.as_nanos()) as usize;
            counts[i.min(bins - 1)] += v.count_at_value();
        }
        (counts, min, width)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::itl_percentiles;

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn of(xs: &[Duration]) -> Itl {
        let mut itl = Itl::default();
        xs.iter().for_each(|&d| itl.record(d));
        itl
    }

    #[test]
    fn histogram_puts_extremes_in_the_end_bins() {
        let itl = of(&[ms(10), ms(11), ms(12), ms(20)]);
        let (c, min, _) = itl.histogram(4);
        assert_eq!(min, ms(10));
        assert_eq!(c.iter().sum::<u64>(), 4);
        assert_eq!(c[3], 1);
        assert_eq!(c[0], 3); // 10, 11 and 12 ms fall in [10, 12.5)
        assert_eq!(Itl::default().histogram(8), (vec![0; 8], ms(0), ms(0)));
    }

    #[test]
    fn live_rate_uses_the_tail() {
        let mut xs = vec![ms(100); 10];
        xs.extend(vec![ms(10); 4]);
        let itl = of(&xs);
        assert!((itl.live_rate(4) - 100.0).abs() < 1e-6);
        assert_eq!(itl.sum(), ms(1040));
        assert!((itl.mean_rate() - 14.0 / 1.04).abs() < 1e-9);
    }

    #[test]
    fn percentiles_are_the_exact_ones_within_a_thousandth() {
        let xs: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let live = of(&xs).percentiles();
        for (live, exact) in live.iter().zip(itl_percentiles(&xs)) {
            assert!(
                live.abs_diff(exact) <= exact / 1000,
                "{live:?} against {exact:?}"
            );
        }
        // One latency, or all alike: exactly that (the percentiles stay within the extremes).
        assert_eq!(of(&[ms(7)]).percentiles(), [ms(7); 3]);
        assert_eq!(of(&[ms(90); 10]).percentiles(), [ms(90); 3]);
        assert_eq!(Itl::default().percentiles(), [Duration::ZERO; 3]);
    }

    #[test]
    fn absurd_latencies_are_clamped_not_a_panic() {
        let itl = of(&[Duration::MAX, Duration::ZERO, ms(5)]);
        assert_eq!(itl.len(), 3);
        assert_eq!(itl.range(), Some((Duration::ZERO, Duration::MAX)));
        assert_eq!(itl.histogram(4).0.iter().sum::<u64>(), 3);
    }
}
