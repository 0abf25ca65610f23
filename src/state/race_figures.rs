//! The race view's figures, each with its recipe: each side's TTFT, decode speed, ITL
//! percentiles and memory (the timing pane's own figures, named by side), and the summary row's
//! speed ratio with its spread and the token agreement.

use super::figure::{computed, figure, Figure, Measured, Recipe, Unit};
use super::{RaceView, RunView};

const LESSON: (Measured, &str) = (Measured::Engine, "A (race) in the dashboard");

/// One side's column.
#[derive(Debug, Clone, PartialEq)]
pub struct SideFigures {
    pub ttft: Option<Figure>,
    /// Once a token was decoded.
    pub decode: Option<Figure>,
    pub p50: Figure,
    pub p99: Figure,
    pub weights: Figure,
    /// A server's cache is its own: not known here.
    pub kv: Option<Figure>,
}

impl SideFigures {
    /// Each figure in the column's order, `None` where it has none yet.
    fn slots(&self) -> [Option<&Figure>; 6] {
        [
            self.ttft.as_ref(),
            self.decode.as_ref(),
            Some(&self.p50),
            Some(&self.p99),
            Some(&self.weights),
            self.kv.as_ref(),
        ]
    }

    pub fn all(&self) -> Vec<&Figure> {
        self.slots().into_iter().flatten().collect()
    }
}

/// The summary row's figures, once the race is over.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFigures {
    pub ratio: Figure,
    /// The ratio's lowest and highest over windows (absent when there were none).
    pub spread: Option<[Figure; 2]>,
    pub agreement: Figure,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct RaceFigures {
    pub sides: [Option<SideFigures>; 2],
    pub row: Option<RowFigures>,
}

impl RaceFigures {
    /// A's and B's figures of a kind side by side (they share a definition), then the row's.
    pub fn all(&self) -> Vec<&Figure> {
        let slots = self
            .sides
            .each_ref()
            .map(|s| s.as_ref().map(SideFigures::slots));
        let mut v: Vec<&Figure> = (0..6)
            .flat_map(|j| slots.iter().flatten().filter_map(move |s| s[j]))
            .collect();
        if let Some(r) = &self.row {
            v.push(&r.ratio);
            v.extend(r.spread.iter().flatten());
            v.push(&r.agreement);
        }
        v
    }
}

const LANES: [&str; 2] = ["A", "B"];

fn named(mut f: Figure, lane: &str, name: &str) -> Figure {
    f.name = format!("{lane} {name}").into();
    f
}

fn side(run: &RunView, lane: &str, (weight_bytes, server): (u64, bool)) -> SideFigures {
    let mut t = run.timing_figures();
    // A server's side is timed by the client, from its stream.
    if server {
        for f in t.all_mut() {
            f.measured = Measured::Client;
        }
    }
    let [p50, _, p99] = t.itl;
    let bytes = |name: &str, b: u64, definition, how| {
        figure(
            format!("{lane} {name}"),
            (b as f64, Unit::Bytes),
            definition,
            Recipe::Direct { how },
            LESSON,
        )
    };
    SideFigures {
        ttft: t.ttft.map(|f| named(f, lane, "TTFT")),
        decode: (!run.itl.is_empty()).then(|| named(t.mean, lane, "decode")),
        p50: named(p50, lane, "ITL p50"),
        p99: named(p99, lane, "p99"),
        weights: bytes(
            "weights",
            weight_bytes,
            "the bytes of the weights this side runs with",
            "the engine's count of the side's tensors",
        ),
        kv: (!server).then(|| {
            bytes(
                "KV",
                run.tokens.last().map_or(0, |t| t.kv_bytes),
                "the side's own KV cache after its newest token",
                "the engine's count of the cache's bytes",
            )
        }),
    }
}

impl RaceView {
    pub fn figures(&self) -> RaceFigures {
        let sides = [0, 1].map(|i| {
            let s = &self.sides[i];
            self.runs[i]
                .as_ref()
                .map(|r| side(r, LANES[i], (s.weight_bytes, s.config.endpoint.is_some())))
        });
        let row = self.summary.as_ref().and_then(|s| {
            let [Some(a), Some(b)] = &self.runs else {
                return None;
            };
            let rate = |r: &RunView| r.timing_figures().mean.value;
            let ratio = computed(
                "B/A decode",
                Unit::Times,
                "B's decode speed over A's, each over its whole run",
                Recipe::Ratio {
                    num: (rate(b), "tok/s B"),
                    den: (rate(a), "tok/s A"),
                },
                LESSON,
            );
            let window = |name, x: f64, how| {
                figure(
                    name,
                    (x, Unit::Times),
                    "the ratio over windows of the same decode tokens on both sides (the last \
                     window takes the rest): the overall ratio lies between the lowest and highest",
                    Recipe::Direct { how },
                    LESSON,
                )
            };
            let spread = (s.windows > 0).then(|| {
                [
                    window("lowest", s.ratio_low, "the lowest window's B ÷ A"),
                    window("highest", s.ratio_high, "the highest window's B ÷ A"),
                ]
            });
            let longer = a.tokens.len().max(b.tokens.len());
            let same = self.same_positions();
            let agreement = computed(
                "agree",
                Unit::Percent,
                "token positions whose texts are the same on both sides",
                Recipe::Ratio {
                    num: (same as f64, "positions with the same text"),
                    den: (longer as f64, "tokens of the longer side"),
                },
                LESSON,
            );
            Some(RowFigures {
                ratio,
                spread,
                agreement,
            })
        });
        RaceFigures { sides, row }
    }
}
