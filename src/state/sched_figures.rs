//! The scheduler view's figures, each with its recipe: throughput over the recent steps, KV
//! blocks held, and the prefix cache's hit rate.

use super::figure::{computed, figure, rate, Figure, Measured, Recipe, Unit};
use super::SchedView;
use std::time::Duration;

const LESSON: (Measured, &str) = (Measured::Engine, "demo batching");

#[derive(Debug, Clone, PartialEq)]
pub struct SchedFigures {
    /// Once two recent steps span some time.
    pub tok_s: Option<Figure>,
    pub blocks: Figure,
    /// With prefix caching on, after the first admission.
    pub prefix_hits: Option<Figure>,
}

impl SchedFigures {
    pub fn all(&self) -> Vec<&Figure> {
        let mut v: Vec<&Figure> = self.tok_s.iter().collect();
        v.push(&self.blocks);
        v.extend(self.prefix_hits.iter());
        v
    }
}

impl SchedView {
    pub fn figures(&self) -> SchedFigures {
        let tok_s = self.recent_tokens().map(|(n, span)| {
            let mut f = rate(
                "throughput",
                (n, "tokens"),
                (Duration::from_secs_f64(span), "between the recent steps"),
                "tokens the batch gives a second, every request's together, over the last steps",
            );
            f.lesson = LESSON.1;
            f
        });
        let blocks = figure(
            "KV blocks",
            (self.blocks_held() as f64, Unit::Count),
            "KV-cache blocks held by requests (a shared prefix block counted once)",
            Recipe::Direct {
                how: "the scheduler's block table after the last step",
            },
            LESSON,
        );
        let prefix_hits = self.prefix_hit_rate().map(|_| {
            computed(
                "prefix hits",
                Unit::Percent,
                "the share of prompt tokens looked up at admissions that the prefix cache held",
                Recipe::Ratio {
                    num: (self.prefix.1 as f64, "prompt tokens found"),
                    den: (self.prefix.0 as f64, "prompt tokens looked up"),
                },
                (Measured::Engine, "demo paged-kv"),
            )
        });
        SchedFigures {
            tok_s,
            blocks,
            prefix_hits,
        }
    }
}
