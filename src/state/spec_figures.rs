//! The speculation pane's figures, each with its recipe: acceptance, accepted length, the
//! speedup measured and the two theories', acceptance by draft position, and a step's costs.

use super::figure::{computed, figure, Figure, Measured, Recipe, Unit};
use super::SpecView;
use crate::engine::spec::theory::expected_tokens;

const LESSON: (Measured, &str) = (Measured::Engine, "demo speculation");

/// Draft positions whose acceptance the pane writes out.
pub const POSITIONS_SHOWN: usize = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct SpecFigures {
    pub acceptance: Figure,
    pub length: Figure,
    /// Against the run's own plain steps; absent until it has taken one.
    pub measured: Option<Figure>,
    pub theory: Option<Figure>,
    /// The textbook formula with one α for every position.
    pub one_alpha: Option<Figure>,
    /// Conditional acceptance of the first positions that were reached.
    pub by_position: Vec<Figure>,
    pub draft: Figure,
    pub verify: Figure,
}

impl SpecFigures {
    pub fn all(&self) -> Vec<&Figure> {
        let mut v = vec![&self.acceptance, &self.length];
        v.extend(self.measured.iter());
        v.extend(self.theory.iter());
        v.extend(self.one_alpha.iter());
        v.extend(self.by_position.iter());
        v.extend([&self.draft, &self.verify]);
        v
    }
}

/// The figures of `v`, a run with at least one speculative step.
pub fn spec_figures(v: &SpecView) -> SpecFigures {
    let c = &v.counts;
    let steps = c.steps as f64;
    let acceptance = computed(
        "acceptance",
        Unit::Percent,
        "the share of drafted tokens the target kept",
        Recipe::Ratio {
            num: (c.accepted as f64, "accepted"),
            den: (c.drafted as f64, "drafted"),
        },
        LESSON,
    );
    let length = computed(
        "accepted length",
        Unit::Number,
        "tokens a speculative step gives: its accepted drafts and the target's own token",
        Recipe::Ratio {
            num: (
                (c.accepted + c.steps) as f64,
                "tokens from speculative steps",
            ),
            den: (steps, "steps"),
        },
        LESSON,
    );
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
    let per_step = |name, d, what, definition| {
        computed(
            name,
            Unit::Ms,
            definition,
            Recipe::Ratio {
                num: (ms(d), what),
                den: (steps, "speculative steps"),
            },
            LESSON,
        )
    };
    let (measured, theory, one_alpha) = speedups(v);
    let mut acceptance = acceptance;
    let reached: Vec<f64> = c
        .per_position()
        .into_iter()
        .zip(&c.reached)
        .filter(|(_, &r)| r > 0)
        .map(|(a, _)| a)
        .collect();
    if reached.len() > 1 {
        let lo = reached.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = reached.iter().copied().fold(0.0, f64::max);
        acceptance.spread = Some(format!(
            "by position {:.0}% – {:.0}%",
            lo * 100.0,
            hi * 100.0
        ));
    }
    SpecFigures {
        acceptance,
        length,
        measured,
        theory,
        one_alpha,
        by_position: by_position(v),
        draft: per_step(
            "draft",
            v.draft_time,
            "ms drafting",
            "the draft's time in a step: proposing its K tokens",
        ),
        verify: per_step(
            "verify",
            v.verify_time,
            "ms verifying",
            "the target's time in a step: one pass over the drafts and one more position",
        ),
    }
}

fn by_position(v: &SpecView) -> Vec<Figure> {
    let c = &v.counts;
    c.reached
        .iter()
        .zip(&c.accepted_at)
        .enumerate()
        .filter(|(_, (&r, _))| r > 0)
        .take(POSITIONS_SHOWN)
        .map(|(i, (&r, &a))| {
            computed(
                format!("position {}", i + 1),
                Unit::Percent,
                "acceptance at a draft position, among the steps that kept every draft before it",
                Recipe::Ratio {
                    num: (a as f64, "accepted there"),
                    den: (r as f64, "steps that reached it"),
                },
                LESSON,
            )
        })
        .collect()
}

/// A speedup as the engine reported it, from a recording made before the plain steps were sent.
fn read(name: &'static str, x: Option<f64>, definition: &'static str) -> Option<Figure> {
    x.map(|x| {
        figure(
            name,
            (x, Unit::Times),
            definition,
            Recipe::Direct {
                how: "as the engine reported it (this recording has no plain-step times)",
            },
            LESSON,
        )
    })
}

/// The speedup measured, theory's from the acceptance by position, and the textbook one-α
/// formula's; each needs the run's plain step time. A recording from before the plain steps
/// were sent keeps the engine's own values, read off its events.
fn speedups(v: &SpecView) -> (Option<Figure>, Option<Figure>, Option<Figure>) {
    const MEASURED: &str =
        "plain decoding's time a token (this run's plain steps) over this run's time a token";
    const THEORY: &str = "the same, with the tokens theory expects from the acceptance by \
                          position in place of the tokens the steps gave";
    if v.plain_steps == 0 {
        return (
            read("measured", v.live_speedup, MEASURED),
            read("theory", v.predicted_speedup, THEORY),
            None,
        );
    }
    let c = &v.counts;
    let spec_s = (v.draft_time + v.verify_time).as_secs_f64();
    let plain_s = v.plain_time.as_secs_f64();
    let plain_step_s = plain_s / v.plain_steps as f64;
    let speedup = |name, tokens, tokens_what, definition| {
        computed(
            name,
            Unit::Times,
            definition,
            Recipe::RunSpeedup {
                tokens,
                tokens_what,
                spec_s,
                plain_steps: v.plain_steps,
                plain_s,
                plain_step_s,
            },
            LESSON,
        )
    };
    let gave = (c.accepted + c.steps) as f64;
    let alpha = c.per_position();
    let expected: f64 = v
        .by_drafted
        .iter()
        .map(|(&k, &n)| n as f64 * expected_tokens(&alpha[..k.min(alpha.len())]))
        .sum();
    let drafted = c.drafted.max(1) as f64;
    let one = computed(
        "one α",
        Unit::Times,
        "the textbook speedup: one acceptance rate α for every position, K drafts a step, a \
         draft token costing c plain steps, verification costing one",
        Recipe::OneAlpha {
            alpha: c.rate(),
            k: v.last_k,
            c: v.draft_time.as_secs_f64() / drafted / plain_step_s,
        },
        LESSON,
    );
    (
        Some(speedup(
            "measured",
            gave,
            "tokens the speculative steps gave",
            MEASURED,
        )),
        Some(speedup(
            "theory",
            expected,
            "tokens theory expects of them",
            THEORY,
        )),
        Some(one),
    )
}
