//! A figure a pane draws, with its own recipe: what it is, how it was computed from what (with
//! this run's values), where it was measured and from how many samples. A pane draws
//! [`Figure::shown`] and the explain overlay (`e`) lists the same figures, so the two cannot
//! disagree.

use crate::stats::{fmt_ms, millis, tok_per_s};
use std::time::Duration;

/// Where a figure was measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// In the engine, around its own steps.
    Engine,
    /// By the client, from the response stream.
    Client,
    /// By the server, in its metrics.
    Server,
    /// By the operating system or the driver.
    System,
}

impl Measured {
    /// Where, in a word.
    pub fn short(self) -> &'static str {
        match self {
            Measured::Engine => "engine",
            Measured::Client => "client",
            Measured::Server => "server",
            Measured::System => "system",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Measured::Engine => "the engine, around its steps",
            Measured::Client => "the client, from the stream's chunks",
            Measured::Server => "the server's metrics",
            Measured::System => "the operating system",
        }
    }
}

/// How a figure was computed.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipe {
    /// `count` things over `seconds`.
    Rate {
        count: usize,
        what: &'static str,
        seconds: f64,
        span: &'static str,
    },
    /// The `p`-th percentile of `n` samples (nearest rank).
    Percentile { p: u8, n: usize, of: &'static str },
    /// A product of named factors: `2 × 24 layers × 2 KV heads × …`.
    Product(Vec<(f64, &'static str)>),
    /// A difference over a difference: `(b1 − b0) ÷ (t1 − t0)`.
    Slope {
        rise: (f64, f64),
        rise_what: &'static str,
        run: (f64, f64),
        run_what: &'static str,
    },
    /// Read off a clock or a counter.
    Direct { how: &'static str },
}

/// The unit a figure is shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    TokPerS,
    /// Bytes, written as the KV pane writes them (B under a KiB, then KiB, MiB, GiB).
    Bytes,
    /// Bytes, always in B.
    WholeBytes,
    BytesPerToken,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The label the pane draws beside it.
    pub name: &'static str,
    /// In the unit's base: milliseconds or tokens a second.
    pub value: f64,
    pub unit: Unit,
    pub definition: &'static str,
    pub recipe: Recipe,
    pub measured: Measured,
    /// The demo that teaches it.
    pub lesson: &'static str,
}

impl Figure {
    /// The value as the pane draws it.
    pub fn shown(&self) -> String {
        match self.unit {
            Unit::Ms => {
                // Nanoseconds are whole: rounding undoes the float's error.
                let d = Duration::from_nanos((self.value.max(0.0) * 1e6).round() as u64);
                let digits = if self.value >= 100.0 { 0 } else { 1 };
                format!("{} ms", fmt_ms(d, digits))
            }
            Unit::TokPerS => format!("{:.1} tok/s", self.value),
            Unit::Bytes => crate::stats::human_bytes(self.value.max(0.0).round() as u64),
            Unit::WholeBytes => format!("{} B", self.value.round()),
            Unit::BytesPerToken => format!("{:.0} B/token", self.value),
        }
    }

    /// The formula with this run's values put in: `43 tokens ÷ 1.27 s = 33.9 tok/s`.
    pub fn formula(&self) -> String {
        match &self.recipe {
            Recipe::Rate {
                count,
                what,
                seconds,
                span,
            } => format!("{count} {what} ÷ {seconds:.3} s {span} = {}", self.shown()),
            Recipe::Percentile { p, n, of } => {
                format!("{p}th percentile of {n} {of} = {}", self.shown())
            }
            Recipe::Product(factors) => {
                let terms: Vec<String> = factors
                    .iter()
                    .map(|(v, what)| {
                        if what.is_empty() {
                            format!("{v}")
                        } else {
                            format!("{v} {what}")
                        }
                    })
                    .collect();
                format!("{} = {}", terms.join(" × "), self.shown())
            }
            Recipe::Slope {
                rise,
                rise_what,
                run,
                run_what,
            } => format!(
                "({} − {}) {rise_what} ÷ ({} − {}) {run_what} = {}",
                rise.1,
                rise.0,
                run.1,
                run.0,
                self.shown()
            ),
            Recipe::Direct { how } => format!("{how} = {}", self.shown()),
        }
    }

    /// The figure computed again from its recipe's inputs, where they determine it.
    pub fn evaluate(&self) -> Option<f64> {
        match &self.recipe {
            Recipe::Rate { count, seconds, .. } => {
                Some(tok_per_s(*count, Duration::from_secs_f64(seconds.max(0.0))))
            }
            Recipe::Product(factors) => Some(factors.iter().map(|f| f.0).product()),
            Recipe::Slope { rise, run, .. } => Some((rise.1 - rise.0) / (run.1 - run.0)),
            _ => None,
        }
    }

    /// Samples behind the figure, when it has a count of them.
    pub fn samples(&self) -> Option<usize> {
        match &self.recipe {
            Recipe::Rate { count, .. } => Some(*count),
            Recipe::Percentile { n, .. } => Some(*n),
            Recipe::Slope { run, .. } => Some((run.1 - run.0) as usize),
            Recipe::Product(_) | Recipe::Direct { .. } => None,
        }
    }
}

/// A rate figure from a count over a span of time.
pub fn rate(
    name: &'static str,
    (count, what): (usize, &'static str),
    (time, span): (Duration, &'static str),
    definition: &'static str,
) -> Figure {
    Figure {
        name,
        value: tok_per_s(count, time),
        unit: Unit::TokPerS,
        definition,
        recipe: Recipe::Rate {
            count,
            what,
            seconds: time.as_secs_f64(),
            span,
        },
        measured: Measured::Engine,
        lesson: "demo prefill-vs-decode",
    }
}

/// A latency figure in milliseconds.
pub fn latency(
    name: &'static str,
    d: Duration,
    definition: &'static str,
    recipe: Recipe,
) -> Figure {
    Figure {
        name,
        value: millis(d),
        unit: Unit::Ms,
        definition,
        recipe,
        measured: Measured::Engine,
        lesson: "demo serving-metrics",
    }
}
