//! A figure a pane draws, with its own recipe: what it is, how it was computed from what (with
//! this run's values), where it was measured and from how many samples. A pane draws
//! [`Figure::shown`] and the explain overlay (`e`) lists the same figures, so the two cannot
//! disagree.

use crate::stats::{fmt_ms, millis, tok_per_s};
use std::borrow::Cow;
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
    /// One count over another: `accepted ÷ drafted`.
    Ratio {
        num: (f64, &'static str),
        den: (f64, &'static str),
    },
    /// Amounts added: `running weights + loaded weights kept`.
    Sum(Vec<(f64, &'static str)>),
    /// One amount less others: `RSS − weights − KV`.
    Difference {
        from: (f64, &'static str),
        less: Vec<(f64, &'static str)>,
    },
    /// A speculative run's speedup: tokens from its speculative steps and its plain steps, at
    /// the plain step's time, over the time the run took:
    /// `(tokens + plain steps) × plain step ÷ (speculative s + plain s)`.
    RunSpeedup {
        tokens: f64,
        tokens_what: &'static str,
        spec_s: f64,
        plain_steps: usize,
        plain_s: f64,
        plain_step_s: f64,
    },
    /// The textbook speedup with one acceptance rate `alpha`, `k` drafts a step and a draft
    /// costing `c` target steps: `(1 − α^(K+1)) ÷ ((1 − α)(1 + K·c))`.
    OneAlpha { alpha: f64, k: usize, c: f64 },
    /// Read off a clock or a counter.
    Direct { how: &'static str },
    /// Read off a served model's metric: `how` says how, `metric` names it.
    Metric { how: &'static str, metric: String },
}

/// A duration as the panes write it: whole milliseconds from 100 ms, one digit below.
pub fn ms_text(d: Duration) -> String {
    let digits = if millis(d) >= 100.0 { 0 } else { 1 };
    format!("{} ms", fmt_ms(d, digits))
}

/// The spread of latencies from `lo` to `hi`: `gaps 18.2 ms – 55.0 ms`.
pub fn gap_spread(what: &str, (lo, hi): (Duration, Duration)) -> String {
    format!("{what} {} – {}", ms_text(lo), ms_text(hi))
}

/// A recipe's input: whole numbers as they are, others to three decimals.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

/// The run speedup's arithmetic (as [`crate::engine::spec::theory::run_speedup`]).
fn run_speedup(tokens: f64, spec_s: f64, plain_steps: usize, plain_s: f64, step: f64) -> f64 {
    crate::engine::spec::theory::run_speedup(tokens, spec_s, plain_steps, plain_s, step)
}

/// `(1 − α^(K+1)) ÷ ((1 − α)(1 + K·c))`, with its limit K + 1 over the cost at α = 1.
pub fn one_alpha_speedup(alpha: f64, k: usize, c: f64) -> f64 {
    let a = alpha.clamp(0.0, 1.0);
    let cost = 1.0 + k as f64 * c;
    if (1.0 - a).abs() < 1e-12 {
        return (k + 1) as f64 / cost;
    }
    (1.0 - a.powi(k as i32 + 1)) / ((1.0 - a) * cost)
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
    /// A share 0 to 1, shown as a whole percentage.
    Percent,
    /// A ratio, shown as `1.33×`.
    Times,
    /// A plain number with two decimals.
    Number,
    /// A probability with three decimals.
    Probability,
    /// A count of tokens: `57 tok`.
    Tokens,
    /// A count of things the label names.
    Count,
    /// Tokens a second, whole (a server's throughput).
    WholeTokPerS,
    /// A number with one decimal, its unit in a table's header.
    Bare,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// The label the pane draws beside it.
    pub name: Cow<'static, str>,
    /// In the unit's base: milliseconds or tokens a second.
    pub value: f64,
    pub unit: Unit,
    pub definition: &'static str,
    pub recipe: Recipe,
    pub measured: Measured,
    /// The demo that teaches it.
    pub lesson: &'static str,
    /// How far the samples behind it spread, in words: `gaps 18.2 ms – 55.0 ms`.
    pub spread: Option<String>,
}

impl Figure {
    /// The value as the pane draws it.
    pub fn shown(&self) -> String {
        match self.unit {
            // Nanoseconds are whole: rounding undoes the float's error.
            Unit::Ms => ms_text(Duration::from_nanos(
                (self.value.max(0.0) * 1e6).round() as u64
            )),
            Unit::TokPerS => format!("{:.1} tok/s", self.value),
            Unit::Bytes => crate::stats::human_bytes(self.value.max(0.0).round() as u64),
            Unit::WholeBytes => format!("{} B", self.value.round()),
            Unit::BytesPerToken => format!("{:.0} B/token", self.value),
            Unit::Percent => format!("{:.0}%", self.value * 100.0),
            Unit::Times => format!("{:.2}×", self.value),
            Unit::Number => format!("{:.2}", self.value),
            Unit::Probability => format!("{:.3}", self.value),
            Unit::Tokens => format!("{:.0} tok", self.value),
            Unit::Count => format!("{:.0}", self.value),
            Unit::WholeTokPerS => format!("{:.0} tok/s", self.value),
            Unit::Bare => format!("{:.1}", self.value),
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
            Recipe::Ratio { num, den } => format!(
                "{} {} ÷ {} {} = {}",
                number(num.0),
                num.1,
                number(den.0),
                den.1,
                self.shown()
            ),
            Recipe::Sum(_) | Recipe::Difference { .. } => self.bytes_formula(),
            Recipe::RunSpeedup {
                tokens,
                tokens_what,
                spec_s,
                plain_steps,
                plain_s,
                plain_step_s,
            } => format!(
                "({tokens:.1} {tokens_what} + {plain_steps} from plain steps) × {:.2} ms a plain \
                 step ÷ ({spec_s:.3} s speculating + {plain_s:.3} s in plain steps) = {}",
                plain_step_s * 1e3,
                self.shown()
            ),
            Recipe::OneAlpha { alpha, k, c } => format!(
                "(1 − {alpha:.2}^{}) ÷ ((1 − {alpha:.2}) × (1 + {k} × {c:.3})) = {}",
                k + 1,
                self.shown()
            ),
            Recipe::Direct { how } => format!("{how} = {}", self.shown()),
            Recipe::Metric { how, metric } => format!("{how} {metric} = {}", self.shown()),
        }
    }

    /// A sum or a difference of bytes: `3.0 MiB RSS − 1.0 MiB weights = 2.0 MiB`.
    fn bytes_formula(&self) -> String {
        let bytes = |v: f64| crate::stats::human_bytes(v as u64);
        match &self.recipe {
            Recipe::Sum(terms) => {
                let terms: Vec<String> = terms
                    .iter()
                    .map(|(v, what)| format!("{} {what}", bytes(*v)))
                    .collect();
                format!("{} = {}", terms.join(" + "), self.shown())
            }
            Recipe::Difference { from, less } => {
                let terms: String = less
                    .iter()
                    .map(|(v, what)| format!(" − {} {what}", bytes(*v)))
                    .collect();
                format!("{} {}{terms} = {}", bytes(from.0), from.1, self.shown())
            }
            _ => String::new(),
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
            Recipe::Ratio { num, den } => Some(num.0 / den.0),
            Recipe::Sum(terms) => Some(terms.iter().map(|t| t.0).sum()),
            Recipe::Difference { from, less } => {
                Some(from.0 - less.iter().map(|l| l.0).sum::<f64>())
            }
            Recipe::RunSpeedup {
                tokens,
                spec_s,
                plain_steps,
                plain_s,
                plain_step_s,
                ..
            } => Some(run_speedup(
                *tokens,
                *spec_s,
                *plain_steps,
                *plain_s,
                *plain_step_s,
            )),
            Recipe::OneAlpha { alpha, k, c } => Some(one_alpha_speedup(*alpha, *k, *c)),
            Recipe::Percentile { .. } | Recipe::Direct { .. } | Recipe::Metric { .. } => None,
        }
    }

    /// Samples behind the figure, when it has a count of them.
    pub fn samples(&self) -> Option<usize> {
        match &self.recipe {
            Recipe::Rate { count, .. } => Some(*count),
            Recipe::Percentile { n, .. } => Some(*n),
            Recipe::Slope { run, .. } => Some((run.1 - run.0) as usize),
            Recipe::Ratio { den, .. } => Some(den.0 as usize),
            Recipe::RunSpeedup { plain_steps, .. } => Some(*plain_steps),
            Recipe::Product(_)
            | Recipe::Difference { .. }
            | Recipe::Sum(_)
            | Recipe::OneAlpha { .. }
            | Recipe::Direct { .. }
            | Recipe::Metric { .. } => None,
        }
    }
}

/// A rate figure from a count over a span of time.
pub fn rate(
    name: impl Into<Cow<'static, str>>,
    (count, what): (usize, &'static str),
    (time, span): (Duration, &'static str),
    definition: &'static str,
) -> Figure {
    Figure {
        name: name.into(),
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
        spread: None,
    }
}

/// A latency figure in milliseconds.
pub fn latency(
    name: impl Into<Cow<'static, str>>,
    d: Duration,
    definition: &'static str,
    recipe: Recipe,
) -> Figure {
    Figure {
        name: name.into(),
        value: millis(d),
        unit: Unit::Ms,
        definition,
        recipe,
        measured: Measured::Engine,
        lesson: "demo serving-metrics",
        spread: None,
    }
}

/// A figure read off a counter or a clock, or computed by a recipe given here.
pub fn figure(
    name: impl Into<Cow<'static, str>>,
    (value, unit): (f64, Unit),
    definition: &'static str,
    recipe: Recipe,
    (measured, lesson): (Measured, &'static str),
) -> Figure {
    Figure {
        name: name.into(),
        value,
        unit,
        definition,
        recipe,
        measured,
        lesson,
        spread: None,
    }
}

/// A figure whose value is its recipe's: the pane draws what the overlay computes.
pub fn computed(
    name: impl Into<Cow<'static, str>>,
    unit: Unit,
    definition: &'static str,
    recipe: Recipe,
    at: (Measured, &'static str),
) -> Figure {
    let mut f = figure(name, (0.0, unit), definition, recipe, at);
    f.value = f.evaluate().unwrap_or(0.0);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_textbook_speedup_has_its_limits() {
        // No acceptance: one token a step, at a step that costs 1 + K·c.
        assert!((one_alpha_speedup(0.0, 4, 0.1) - 1.0 / 1.4).abs() < 1e-12);
        // Every draft accepted: K + 1 tokens a step.
        assert!((one_alpha_speedup(1.0, 4, 0.0) - 5.0).abs() < 1e-12);
        assert!((one_alpha_speedup(0.5, 1, 0.0) - 1.5).abs() < 1e-12);
    }

    #[test]
    fn computed_figures_show_what_their_recipe_gives() {
        let f = computed(
            "acceptance",
            Unit::Percent,
            "",
            Recipe::Ratio {
                num: (30.0, "accepted"),
                den: (40.0, "drafted"),
            },
            (Measured::Engine, ""),
        );
        assert_eq!(f.shown(), "75%");
        assert_eq!(f.formula(), "30 accepted ÷ 40 drafted = 75%");
        let d = computed(
            "other",
            Unit::Bytes,
            "",
            Recipe::Difference {
                from: (3.0 * 1048576.0, "RSS"),
                less: vec![(1048576.0, "weights")],
            },
            (Measured::System, ""),
        );
        assert_eq!(d.formula(), "3.0 MiB RSS − 1.0 MiB weights = 2.0 MiB");
        // More weights than resident memory (pages not yet touched): the rest shows as none.
        let mut less = d.clone();
        less.recipe = Recipe::Difference {
            from: (1.0, "RSS"),
            less: vec![(2.0, "weights")],
        };
        less.value = less.evaluate().unwrap();
        assert_eq!(less.shown(), "0 B");
    }
}
