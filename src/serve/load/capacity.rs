//! Capacity search: the highest load a server sustains within an SLO. Each probe is a level;
//! a level passes when at least `attain` of its requests met every target and it ran to its
//! end (not stopped as saturated or for errors). The load doubles from `start` until a level
//! fails, then bisects between the last pass and the first failure; over concurrency the
//! bisection ends when the two are one apart.

use crate::protocol::serve::{LevelSummary, Load, StopReason};

/// What the search runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Open-loop arrival rates (req/s).
    Rate,
    /// Closed-loop requests in flight.
    Concurrency,
}

/// The search's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Search {
    pub over: Over,
    /// Share of a level's requests that must meet the SLO.
    pub attain: f64,
    /// First load probed.
    pub start: f64,
    /// Bisection steps after the doubling (over rates; concurrency stops at one apart).
    pub steps: usize,
    /// Open loop: gamma shape of the gaps.
    pub burstiness: f64,
    /// The most load a level can offer: over concurrency, its request count (a level of n
    /// requests never has more than n in flight).
    pub most: Option<f64>,
}

/// At most this many doublings (or halvings) before the search gives up growing.
const MOST_DOUBLINGS: usize = 10;

impl Search {
    pub fn start(&self) -> Bisect {
        Bisect {
            s: *self,
            pass: None,
            fail: None,
            probes: 0,
            bisections: 0,
        }
    }

    /// The most levels the search can take (for the progress count).
    pub fn most_levels(&self) -> usize {
        MOST_DOUBLINGS + self.steps.max(8) + 1
    }

    fn load(&self, x: f64) -> Load {
        match self.over {
            Over::Rate => Load::Rate {
                rate: x,
                burstiness: self.burstiness,
                max_concurrency: None,
            },
            Over::Concurrency => Load::Concurrency(x.round().max(1.0) as usize),
        }
    }
}

/// TTFT may grow this much from a level's first quarter to its last before the level counts as
/// a queue building up: a load the server does not sustain, though a short level's requests
/// may all still meet the SLO.
pub const MOST_TTFT_GROWTH: f64 = 2.0;

/// Whether a level met the SLO for `attain` of its requests, ran to its end, and kept up (its
/// TTFT did not grow past [`MOST_TTFT_GROWTH`]).
pub fn passes(l: &LevelSummary, attain: f64) -> bool {
    let ran_out = matches!(l.stopped_early, None | Some(StopReason::Duration { .. }));
    let met = l.slo_met.unwrap_or(0) as f64;
    let kept_up = l.ttft_growth.is_none_or(|g| g <= MOST_TTFT_GROWTH);
    ran_out && kept_up && l.requests > 0 && met >= attain * l.requests as f64
}

/// The value of a load on the search's axis.
fn value(load: Load) -> f64 {
    match load {
        Load::Concurrency(c) => c as f64,
        Load::Rate { rate, .. } => rate,
    }
}

/// The search in progress: the highest load that passed and the lowest that failed.
#[derive(Debug, Clone)]
pub struct Bisect {
    s: Search,
    pass: Option<f64>,
    fail: Option<f64>,
    /// Probes asked for so far, and bisection steps among them.
    probes: usize,
    bisections: usize,
}

impl Bisect {
    /// The next load to probe, given how the last one went (`None` before the first); `None`
    /// when the search is done.
    pub fn next(&mut self, last: Option<&LevelSummary>) -> Option<Load> {
        if let Some(l) = last {
            let x = value(l.load);
            if passes(l, self.s.attain) {
                self.pass = Some(self.pass.map_or(x, |p| p.max(x)));
            } else {
                self.fail = Some(self.fail.map_or(x, |f| f.min(x)));
            }
        }
        let integer = self.s.over == Over::Concurrency;
        let x = match (self.pass, self.fail) {
            (None, None) => self.s.start,
            // Growing: double while it passes, up to the most a level can offer.
            (Some(p), None) if self.probes <= MOST_DOUBLINGS => {
                let most = self.s.most.unwrap_or(f64::INFINITY);
                if p >= most {
                    return None;
                }
                (p * 2.0).min(most)
            }
            // Shrinking from a first failure: halve (not below one request in flight).
            (None, Some(f)) if self.probes <= MOST_DOUBLINGS && !(integer && f <= 1.0) => f / 2.0,
            (Some(p), Some(f)) => {
                if (integer && f - p <= 1.0) || (!integer && self.bisections >= self.s.steps) {
                    return None;
                }
                self.bisections += 1;
                let mid = (p + f) / 2.0;
                if integer {
                    mid.floor()
                } else {
                    (mid * 1000.0).round() / 1000.0
                }
            }
            _ => return None,
        };
        self.probes += 1;
        Some(self.s.load(x))
    }
}

/// The highest load of an endpoint's levels that passed, with its goodput.
pub fn found<'a>(
    levels: &'a [LevelSummary],
    endpoint: &str,
    attain: f64,
) -> Option<&'a LevelSummary> {
    levels
        .iter()
        .filter(|l| l.endpoint == endpoint && passes(l, attain))
        .max_by(|a, b| value(a.load).total_cmp(&value(b.load)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A level at `load` that passes when its value is at most `limit`.
    fn level(load: Load, limit: f64) -> LevelSummary {
        let ok = value(load) <= limit;
        LevelSummary {
            slo_met: Some(if ok { 10 } else { 3 }),
            ..crate::serve::load::summary::summarize(crate::serve::load::summary::Inputs::plain(
                "e",
                load,
                &vec![Default::default(); 10],
            ))
        }
    }

    fn search(over: Over, limit: f64) -> Vec<f64> {
        let s = Search {
            over,
            attain: 0.9,
            start: 1.0,
            steps: 4,
            burstiness: 1.0,
            most: None,
        };
        let mut b = s.start();
        let mut probed = Vec::new();
        let mut last = None;
        while let Some(load) = b.next(last.as_ref()) {
            probed.push(value(load));
            last = Some(level(load, limit));
        }
        probed
    }

    #[test]
    fn rates_double_then_bisect_to_the_limit() {
        // Limit 5.3 req/s: 1, 2, 4, 8 (fails), then 6, 5, 5.5, 5.25.
        assert_eq!(
            search(Over::Rate, 5.3),
            [1.0, 2.0, 4.0, 8.0, 6.0, 5.0, 5.5, 5.25]
        );
        // Below the start: halve until a pass.
        assert_eq!(search(Over::Rate, 0.3)[..3], [1.0, 0.5, 0.25]);
    }

    #[test]
    fn concurrency_stops_one_apart_and_never_below_one() {
        assert_eq!(
            search(Over::Concurrency, 6.0),
            [1.0, 2.0, 4.0, 8.0, 6.0, 7.0]
        );
        assert_eq!(search(Over::Concurrency, 0.0), [1.0]);
    }

    #[test]
    fn a_saturated_level_fails_whatever_its_share() {
        let mut l = level(Load::Concurrency(1), 5.0);
        assert!(passes(&l, 0.9));
        l.stopped_early = Some(StopReason::Saturated {
            outstanding: 40,
            limit: 16,
        });
        assert!(!passes(&l, 0.9));
        let mut queued = level(Load::Concurrency(1), 5.0);
        queued.ttft_growth = Some(3.0);
        assert!(
            !passes(&queued, 0.9),
            "a queue building up is not sustained"
        );
        let mut queued = level(Load::Concurrency(1), 5.0);
        queued.ttft_growth = Some(3.0);
        assert!(
            !passes(&queued, 0.9),
            "a queue building up is not sustained"
        );
        let levels = [
            level(Load::Concurrency(2), 3.0),
            level(Load::Concurrency(4), 3.0),
        ];
        assert_eq!(
            found(&levels, "e", 0.9).map(|l| l.load),
            Some(Load::Concurrency(2))
        );
    }
}
