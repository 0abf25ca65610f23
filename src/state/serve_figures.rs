//! The serving benchmark's figures, each with its recipe: every measured level's output
//! throughput (tokens over the level's span) and latency percentiles (over its requests), and
//! the running level's so far.

use super::figure::{figure, gap_spread, latency, rate, Figure, Measured, Recipe, Unit};
use super::{LevelProgress, ServeView};
use crate::protocol::serve::{Dist, LevelSummary, Load};
use std::time::Duration;

const LESSON: &str = "demo serving-metrics";

/// A level's name in a figure's: `c4`, `1.25 req/s`.
fn level(load: &Load) -> String {
    match load {
        Load::Concurrency(c) => format!("c{c}"),
        Load::Rate { rate, .. } => format!("{rate} req/s"),
    }
}

/// A level's figures in the table's order: output tokens a second, then TTFT p50 and p99, TPOT
/// p50 and E2E p50 (each where a request gave one).
#[derive(Debug, Clone, PartialEq)]
pub struct LevelFigures {
    pub tok_s: Figure,
    pub latencies: [Option<Figure>; 4],
}

impl LevelFigures {
    pub fn all(&self) -> impl Iterator<Item = &Figure> {
        std::iter::once(&self.tok_s).chain(self.latencies.iter().flatten())
    }
}

fn latencies(name: &str, [ttft, tpot, e2e]: [&Dist; 3], of: &'static str) -> [Option<Figure>; 4] {
    let pct = |what: &str, d: &Dist, p: u8, value: Duration, definition: &'static str| {
        (d.n > 0).then(|| {
            let mut f = latency(
                format!("{name} {what} p{p}"),
                value,
                definition,
                Recipe::Percentile { p, n: d.n, of },
            );
            f.measured = Measured::Client;
            f.lesson = LESSON;
            // Recordings from before the extremes were kept carry zeros.
            f.spread = (d.max > Duration::ZERO).then(|| gap_spread("requests", (d.min, d.max)));
            f
        })
    };
    const TTFT: &str = "time to first token: from sending the request to its first content chunk";
    [
        pct("TTFT", ttft, 50, ttft.p50, TTFT),
        pct("TTFT", ttft, 99, ttft.p99, TTFT),
        pct(
            "TPOT",
            tpot,
            50,
            tpot.p50,
            "time per output token after the first: (E2E − TTFT) ÷ (tokens − 1), per request",
        ),
        pct(
            "E2E",
            e2e,
            50,
            e2e.p50,
            "end to end: from sending the request to its last chunk",
        ),
    ]
}

/// A measured level's figures.
pub fn measured(l: &LevelSummary) -> LevelFigures {
    let name = level(&l.load);
    let mut tok_s = rate(
        format!("{name} out tok/s"),
        (
            l.output_tokens as usize,
            "output tokens of the requests that succeeded",
        ),
        (l.duration, "from the level's first send to its last end"),
        "output tokens a second, every request's together",
    );
    tok_s.unit = Unit::Bare;
    tok_s.measured = Measured::Client;
    tok_s.lesson = LESSON;
    LevelFigures {
        tok_s,
        latencies: latencies(&name, [&l.ttft, &l.tpot, &l.e2e], "requests that succeeded"),
    }
}

/// The running level's figures at `now`.
pub fn running(c: &LevelProgress, now: Duration) -> LevelFigures {
    let name = format!("{} so far", level(&c.load));
    let mut tok_s = rate(
        format!("{name} out tok/s"),
        (c.output_tokens as usize, "output tokens so far"),
        (c.elapsed(now), "since the level started"),
        "output tokens a second, every request's together",
    );
    tok_s.unit = Unit::Bare;
    tok_s.measured = Measured::Client;
    tok_s.lesson = LESSON;
    let (t, p, e) = (c.ttft_dist(), c.tpot_dist(), c.e2e_dist());
    LevelFigures {
        tok_s,
        latencies: latencies(&name, [&t, &p, &e], "requests done so far"),
    }
}

impl ServeView {
    /// The measured levels' figures, then the running level's at `now`.
    pub fn figures(&self, now: Duration) -> Vec<Figure> {
        let mut v: Vec<Figure> = Vec::new();
        for l in &self.levels {
            v.extend(measured(l).all().cloned());
        }
        if let Some(c) = &self.current {
            v.extend(running(c, now).all().cloned());
        }
        if v.is_empty() {
            v.push(figure(
                "levels",
                (self.planned as f64, Unit::Count),
                "levels the benchmark will measure",
                Recipe::Direct {
                    how: "the plan the benchmark announced",
                },
                (Measured::Client, LESSON),
            ));
        }
        v
    }
}
