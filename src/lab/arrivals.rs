//! When an open loop sends: gaps between arrivals drawn from a gamma distribution whose mean is
//! one over the rate. Shape 1 is an exponential, so arrivals form a Poisson process; a smaller
//! shape makes them burstier, a larger one more regular.

use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_distr::{Distribution, Gamma};
use std::time::Duration;

/// `n` gaps between arrivals at `rate` per second with gamma shape `burstiness`, from `seed`.
/// An infinite rate sends everything at once.
pub fn gaps(rate: f64, burstiness: f64, n: usize, seed: u64) -> Result<Vec<Duration>> {
    if rate.is_nan() || rate <= 0.0 {
        bail!("rate must be above 0 requests/s (got {rate})");
    }
    if !burstiness.is_finite() || burstiness <= 0.0 {
        bail!("burstiness must be a finite number above 0 (got {burstiness})");
    }
    if rate.is_infinite() {
        return Ok(vec![Duration::ZERO; n]);
    }
    let gamma = Gamma::new(burstiness, 1.0 / (rate * burstiness))?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Ok((0..n)
        .map(|_| Duration::from_secs_f64(gamma.sample(&mut rng).min(1e6)))
        .collect())
}

/// Arrival times from gaps: the first request goes at once, each next one a gap later.
pub fn times(gaps: &[Duration]) -> Vec<Duration> {
    let mut at = Duration::ZERO;
    gaps.iter()
        .enumerate()
        .map(|(i, g)| {
            if i > 0 {
                at += *g;
            }
            at
        })
        .collect()
}

/// Arrival times from gaps, scaled so the last arrival falls at (n − 1) ÷ `rate`: the offered
/// rate over the level is exactly `rate`, whatever the draws (as vLLM's benchmark normalises
/// its gaps). The shape of the gaps, bursts and lulls, is kept.
pub fn normalised_times(gaps: &[Duration], rate: f64) -> Vec<Duration> {
    let t = times(gaps);
    let (Some(last), true) = (t.last().copied(), rate.is_finite()) else {
        return t;
    };
    if last.is_zero() {
        return t;
    }
    let want = (t.len() - 1) as f64 / rate;
    let k = want / last.as_secs_f64();
    t.into_iter().map(|a| a.mul_f64(k)).collect()
}

/// Arrival times under a linear ramp of `ramp`: the rate grows from zero to the full rate over
/// the ramp, then holds. Times drawn at the full rate are stretched so that as many arrivals
/// are due by each moment as the ramped rate offers (the first `ramp`/2 of full-rate time takes
/// the whole ramp: t = √(2·ramp·s); later ones move back by `ramp`/2).
pub fn ramped(times: &[Duration], ramp: Duration) -> Vec<Duration> {
    let r = ramp.as_secs_f64();
    if r <= 0.0 {
        return times.to_vec();
    }
    times
        .iter()
        .map(|s| {
            let s = s.as_secs_f64();
            Duration::from_secs_f64(if s < r / 2.0 {
                (2.0 * r * s).sqrt()
            } else {
                s + r / 2.0
            })
        })
        .collect()
}

/// Requests a closed loop of `c` keeps in flight `elapsed` into a linear ramp of `ramp`: one
/// at the start, one more each (c − 1)-th of the ramp, `c` from the ramp's end.
pub fn ramped_cap(c: usize, ramp: Option<Duration>, elapsed: Duration) -> usize {
    match ramp.filter(|r| !r.is_zero()) {
        Some(r) if elapsed < r => {
            let grown = (c.saturating_sub(1)) as f64 * elapsed.as_secs_f64() / r.as_secs_f64();
            (1 + grown.floor() as usize).min(c)
        }
        _ => c,
    }
}

/// Mean and squared coefficient of variation of gaps (1 for a Poisson process).
pub fn mean_cv2(gaps: &[f64]) -> (f64, f64) {
    let n = gaps.len().max(1) as f64;
    let mean = gaps.iter().sum::<f64>() / n;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var / (mean * mean).max(f64::MIN_POSITIVE))
}

/// Index of dispersion (variance over mean) of arrival counts in windows of `window` seconds
/// (1 for a Poisson process, 0 for a perfectly regular one).
pub fn dispersion(times: &[f64], window: f64) -> f64 {
    let Some(end) = times.iter().copied().reduce(f64::max) else {
        return 0.0;
    };
    let bins = ((end / window).floor() as usize).max(1);
    let mut counts = vec![0f64; bins];
    for t in times {
        let i = (t / window) as usize;
        if i < bins {
            counts[i] += 1.0;
        }
    }
    let (mean, cv2) = mean_cv2(&counts);
    cv2 * mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_arrivals_offer_exactly_the_rate() {
        for seed in 0..5 {
            let g = gaps(10.0, 1.0, 32, seed).unwrap();
            let t = normalised_times(&g, 10.0);
            assert_eq!(t[0], Duration::ZERO);
            assert!((t[31].as_secs_f64() - 3.1).abs() < 1e-6, "{:?}", t[31]);
            assert!(t.windows(2).all(|w| w[0] <= w[1]));
        }
        let inf = normalised_times(&[Duration::ZERO; 4], f64::INFINITY);
        assert_eq!(inf, vec![Duration::ZERO; 4]);
    }

    fn secs(g: &[Duration]) -> Vec<f64> {
        g.iter().map(Duration::as_secs_f64).collect()
    }

    #[test]
    fn poisson_gaps_have_the_rate_and_unit_dispersion() {
        for seed in 0..5 {
            let g = secs(&gaps(4.0, 1.0, 1000, seed).unwrap());
            let (mean, cv2) = mean_cv2(&g);
            // The mean of 1000 exponential gaps has a standard error of mean/√1000 ≈ 3.2%.
            assert!(
                (mean - 0.25).abs() < 0.25 * 0.13,
                "seed {seed}: mean {mean}"
            );
            assert!((cv2 - 1.0).abs() < 0.25, "seed {seed}: cv² {cv2}");
        }
    }

    #[test]
    fn burstiness_changes_dispersion_not_rate() {
        let bursty = secs(&gaps(4.0, 0.25, 4000, 7).unwrap());
        let regular = secs(&gaps(4.0, 8.0, 4000, 7).unwrap());
        let (m1, c1) = mean_cv2(&bursty);
        let (m2, c2) = mean_cv2(&regular);
        assert!(
            (m1 - 0.25).abs() < 0.03 && (m2 - 0.25).abs() < 0.03,
            "{m1} {m2}"
        );
        assert!((c1 - 4.0).abs() < 1.0, "shape 1/4 gives cv² 4, got {c1}");
        assert!((c2 - 0.125).abs() < 0.05, "shape 8 gives cv² 1/8, got {c2}");
    }

    #[test]
    fn bad_rates_are_refused_and_infinite_is_at_once() {
        assert!(gaps(0.0, 1.0, 3, 0).is_err());
        assert!(gaps(f64::NAN, 1.0, 3, 0).is_err());
        assert!(gaps(1.0, 0.0, 3, 0).is_err());
        assert!(gaps(1.0, f64::INFINITY, 3, 0).is_err());
        assert_eq!(
            gaps(f64::INFINITY, 1.0, 3, 0).unwrap(),
            vec![Duration::ZERO; 3]
        );
    }

    #[test]
    fn dispersion_tells_regular_from_poisson() {
        let regular: Vec<f64> = (0..1000).map(|i| i as f64 * 0.01).collect();
        assert!(dispersion(&regular, 0.1) < 0.1);
        let t = times(&gaps(100.0, 1.0, 1000, 3).unwrap());
        let d = dispersion(&secs(&t), 0.1);
        assert!((d - 1.0).abs() < 0.35, "Poisson counts: dispersion {d}");
    }

    #[test]
    fn a_ramp_offers_a_linearly_growing_rate_then_the_full_one() {
        // 10 req/s, evenly: 0, 0.1 s, … Under a 2 s ramp, arrivals due by t number 10·t²/4.
        let even: Vec<Duration> = (0..40).map(|i| Duration::from_millis(100 * i)).collect();
        let r = ramped(&even, Duration::from_secs(2));
        for (i, t) in r.iter().enumerate() {
            let t = t.as_secs_f64();
            let due = if t < 2.0 {
                10.0 * t * t / 4.0
            } else {
                10.0 * (t - 1.0)
            };
            assert!(
                (due - i as f64).abs() < 1e-6,
                "arrival {i} at {t}: {due} due"
            );
        }
        // After the ramp the gaps are the full rate's again.
        assert_eq!(r[31] - r[30], Duration::from_millis(100));
        assert_eq!(ramped(&even, Duration::ZERO), even);
        let s = Duration::from_secs;
        assert_eq!(ramped_cap(8, Some(s(4)), Duration::ZERO), 1);
        assert_eq!(ramped_cap(8, Some(s(4)), s(1)), 2);
        assert_eq!(ramped_cap(8, Some(s(4)), Duration::from_millis(3999)), 7);
        assert_eq!(ramped_cap(8, Some(s(4)), s(4)), 8);
        assert_eq!(ramped_cap(8, Some(s(4)), s(5)), 8);
        assert_eq!(ramped_cap(8, None, Duration::ZERO), 8);
    }
}
