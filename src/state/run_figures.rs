//! The timing figures of a run, each with its recipe: what the prefill-vs-decode pane draws
//! and the explain overlay lists.

use super::figure::{latency, rate, Figure, Recipe};
use super::RunView;
use std::time::Duration;

/// The decode steps the live rate is taken over.
pub const LIVE_STEPS: usize = 16;

/// The timing pane's figures, in the order it draws them.
#[derive(Debug, Clone, PartialEq)]
pub struct TimingFigures {
    pub ttft: Option<Figure>,
    pub prefill: Figure,
    pub live: Figure,
    pub mean: Figure,
    pub itl: [Figure; 3],
}

impl TimingFigures {
    pub fn all(&self) -> Vec<&Figure> {
        let mut v: Vec<&Figure> = self.ttft.iter().collect();
        v.extend([&self.prefill, &self.live, &self.mean]);
        v.extend(self.itl.iter());
        v
    }
}

impl RunView {
    /// TTFT, prefill and decode rates, ITL percentiles: the summary's exact ones once the run
    /// is done, the live histogram's before.
    pub fn timing_figures(&self) -> TimingFigures {
        let ttft = self
            .summary
            .as_ref()
            .map(|s| s.ttft)
            .or_else(|| self.tokens.first().map(|t| t.elapsed))
            .map(|d| {
                latency(
                    "TTFT",
                    d,
                    "time to first token: from the run's start (the prompt not yet tokenized) \
                     to its first token",
                    Recipe::Direct {
                        how: "the run's clock when the prefill's token was sampled",
                    },
                )
            });
        let prefill = rate(
            "prefill",
            (self.prompt_tokens, "prompt tokens"),
            (self.prefill.unwrap_or_default(), "in the prefill pass"),
            "prompt tokens a second while the prompt fills the KV cache in one pass",
        );
        let (k, time) = self.itl.live_window(LIVE_STEPS);
        let live = rate(
            "decode",
            (k, "decoded tokens"),
            (time, "in their steps, the newest ones"),
            "decode speed now: the newest decode tokens over the time of the steps that made them",
        );
        let mean = rate(
            "mean",
            (self.itl.len(), "decoded tokens"),
            (self.itl.sum(), "from the first decoded token to the last"),
            "decode speed over the whole run (the first token, from the prefill, not counted)",
        );
        let exact = self
            .summary
            .as_ref()
            .map(|s| [s.itl_p50, s.itl_p90, s.itl_p99]);
        let ds = exact.unwrap_or_else(|| self.itl.percentiles());
        let n = self.itl.len();
        let names = ["ITL p50", "p90", "p99"];
        let itl = [0, 1, 2].map(|i| itl_figure(names[i], [50, 90, 99][i], ds[i], n));
        TimingFigures {
            ttft,
            prefill,
            live,
            mean,
            itl,
        }
    }
}

fn itl_figure(name: &'static str, p: u8, d: Duration, n: usize) -> Figure {
    latency(
        name,
        d,
        "inter-token latency: a decode token's share of the step that made it (a speculative \
         step's tokens share it)",
        Recipe::Percentile {
            p,
            n,
            of: "inter-token gaps",
        },
    )
}
