//! The timing figures of a run, each with its recipe: what the prefill-vs-decode pane draws
//! and the explain overlay lists.

use super::figure::{figure, gap_spread, latency, rate, Figure, Measured, Recipe, Unit};
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
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut Figure> {
        self.ttft
            .iter_mut()
            .chain([&mut self.prefill, &mut self.live, &mut self.mean])
            .chain(self.itl.iter_mut())
    }

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
        // The decode figures' spread is the range of the gaps each rests on: the newest ones
        // for the live rate, every one for the rest.
        let spread = self.itl.range().map(|r| gap_spread("gaps", r));
        let (mut live, mut mean, mut itl) = (live, mean, itl);
        for f in [&mut mean].into_iter().chain(itl.iter_mut()) {
            f.spread = spread.clone();
        }
        let newest: Vec<Duration> = self.itl.recent().rev().take(k).copied().collect();
        live.spread = newest
            .iter()
            .min()
            .zip(newest.iter().max())
            .map(|(lo, hi)| gap_spread("gaps", (*lo, *hi)));
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

/// The tape's figures for one token: its gap, its probability and the cache's tokens after it.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenFigures {
    pub step: Figure,
    /// Local runs only: a server's ids, probabilities and cache are its own.
    pub prob: Option<Figure>,
    pub kv: Option<Figure>,
}

impl TokenFigures {
    pub fn all(&self) -> Vec<&Figure> {
        let mut v = vec![&self.step];
        v.extend(self.prob.iter().chain(&self.kv));
        v
    }
}

impl RunView {
    /// The figures of token `i` (the newest when `i` is past the end); `None` before any.
    pub fn token_figures(&self, i: Option<usize>, remote: bool) -> Option<TokenFigures> {
        let t = i.and_then(|i| self.tokens.get(i)).or(self.tokens.last())?;
        let mut step = latency(
            "step",
            t.step,
            "the token's share of the step that made it: the prefill for the first token, a \
             decode step's time (shared by its tokens when it gave several) after",
            Recipe::Direct {
                how: "the engine's clock around the step",
            },
        );
        step.lesson = "demo prefill-vs-decode";
        if remote {
            step.name = "gap".into();
            step.measured = Measured::Client;
            step.recipe = Recipe::Direct {
                how: "the time between the stream's chunks, shared by a chunk's tokens",
            };
            return Some(TokenFigures {
                step,
                prob: None,
                kv: None,
            });
        }
        let prob = figure(
            "p",
            (f64::from(t.prob), Unit::Probability),
            "the probability the model gave the token it chose",
            Recipe::Direct {
                how: "the softmax of the step's logits at the token",
            },
            (Measured::Engine, "demo speculation"),
        );
        let kv = figure(
            "kv",
            (t.kv_tokens as f64, Unit::Tokens),
            "tokens in the KV cache after this one: the prompt and every token so far",
            Recipe::Direct {
                how: "the cache's length after the step",
            },
            (Measured::Engine, "demo kv-cache"),
        );
        Some(TokenFigures {
            step,
            prob: Some(prob),
            kv: Some(kv),
        })
    }
}
