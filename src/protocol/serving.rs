//! The serving-metrics demo: `labtui serve` in process under a closed loop of 1 to 16 requests in
//! flight, for each prompt × output shape and each scheduling policy — continuous batching, static
//! batching, one request at a time — with what a serving benchmark reports per level, and the two
//! identities its numbers must keep (E2E = TTFT + (n − 1) · ITL per request; Little's law).

use super::serve::{LevelSummary, Slo};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// How the server admits requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServingPolicy {
    /// Requests join and leave the running batch between any two steps.
    Continuous,
    /// A batch starts only when the last one has finished.
    Static,
    /// One request at a time, the rest wait: a server without batching.
    OneAtATime,
}

impl ServingPolicy {
    pub const ALL: [ServingPolicy; 3] = [Self::Continuous, Self::Static, Self::OneAtATime];
}

impl fmt::Display for ServingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Continuous => "continuous",
            Self::Static => "static",
            Self::OneAtATime => "one at a time",
        })
    }
}

/// What the demo runs (the preset's `serving`; every field has a default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServingPlan {
    /// Requests in flight at each level.
    pub concurrency: Vec<usize>,
    /// (prompt tokens, output tokens) of every request of a shape.
    pub shapes: Vec<(usize, usize)>,
    /// Requests per level; `None`: twice the concurrency, at least 8.
    pub requests: Option<usize>,
    /// Requests sent one at a time to each server before its first level, not measured.
    pub warmup: usize,
    /// Most requests running at once under continuous and static batching.
    pub max_batch: usize,
    pub policies: Vec<ServingPolicy>,
    /// The SLO goodput counts: time to first token and time per output token, in ms.
    pub slo_ttft_ms: f64,
    pub slo_tpot_ms: f64,
    /// The machine's price, for the cost of a million output tokens.
    pub usd_per_hour: f64,
    /// A second price the report shows as a what-if (a rented GPU's).
    pub what_if_usd_per_hour: f64,
}

impl Default for ServingPlan {
    fn default() -> Self {
        Self {
            concurrency: vec![1, 2, 4, 8, 16],
            shapes: vec![(64, 64), (256, 8)],
            requests: None,
            warmup: 2,
            max_batch: 16,
            policies: ServingPolicy::ALL.to_vec(),
            slo_ttft_ms: 2000.0,
            slo_tpot_ms: 150.0,
            usd_per_hour: 0.10,
            what_if_usd_per_hour: 2.93,
        }
    }
}

impl ServingPlan {
    /// Requests of the level at concurrency `c`.
    pub fn requests(&self, c: usize) -> usize {
        self.requests.unwrap_or((2 * c).max(8))
    }

    pub fn slo(&self) -> Slo {
        Slo {
            ttft: Some(Duration::from_secs_f64(self.slo_ttft_ms / 1e3)),
            tpot: Some(Duration::from_secs_f64(self.slo_tpot_ms / 1e3)),
            e2e: None,
        }
    }

    /// Check what a person wrote; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        let bad = |what: &str, v: String| Err(format!("demo serving {what}: {v}"));
        if self.concurrency.is_empty() || self.shapes.is_empty() || self.policies.is_empty() {
            return bad(
                "concurrency, shapes and policies",
                "each needs one entry at least".into(),
            );
        }
        if let Some(c) = self.concurrency.iter().find(|&&c| !(1..=256).contains(&c)) {
            return bad("concurrency", format!("{c} is out of range (1 to 256)"));
        }
        if let Some((p, o)) = self
            .shapes
            .iter()
            .find(|(p, o)| !(1..=32_768).contains(p) || !(1..=4096).contains(o))
        {
            return bad(
                "shapes",
                format!("({p}, {o}) is out of range (prompt 1 to 32768, output 1 to 4096)"),
            );
        }
        if self.requests == Some(0) || !(1..=256).contains(&self.max_batch) {
            return bad("requests and max_batch", "each must be at least 1".into());
        }
        let prices = [self.usd_per_hour, self.what_if_usd_per_hour];
        let times = [self.slo_ttft_ms, self.slo_tpot_ms];
        if prices
            .iter()
            .chain(&times)
            .any(|v| !(v.is_finite() && *v > 0.0))
        {
            return bad("prices and SLO", "each must be a positive number".into());
        }
        Ok(())
    }
}

/// How far a level's numbers keep the identities that tie them together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Identities {
    /// Per request, E2E − (TTFT + (n − 1) · its own mean ITL): the time from the last token to the
    /// end of the answer; the largest over the level.
    pub tail_max: Duration,
    /// Per request, |E2E − (TTFT + (n − 1) · the level's mean ITL)| ÷ E2E, averaged: how well the
    /// level's averages predict one request.
    pub from_means_error: f64,
    /// Little's law over the level, first send to last end: its requests per second × their mean
    /// E2E, the requests in flight on average (the closed loop holds at most `concurrency`).
    pub little_in_flight: f64,
}

/// One closed-loop level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingLevel {
    pub concurrency: usize,
    pub summary: LevelSummary,
    pub identities: Identities,
    /// Dollars per million output tokens at the plan's what-if price.
    pub what_if_usd_per_mtok: Option<f64>,
}

/// One policy's levels on one shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyRun {
    pub policy: ServingPolicy,
    /// Most requests running at once (1 for one at a time).
    pub max_batch: usize,
    pub levels: Vec<ServingLevel>,
}

impl PolicyRun {
    /// The highest concurrency whose level met the SLO for at least 90% of its requests.
    pub fn users_within_slo(&self) -> Option<usize> {
        self.levels
            .iter()
            .filter(|l| {
                let s = &l.summary;
                s.slo_met
                    .is_some_and(|m| m as f64 >= 0.9 * s.requests as f64)
            })
            .map(|l| l.concurrency)
            .max()
    }

    pub fn level(&self, c: usize) -> Option<&ServingLevel> {
        self.levels.iter().find(|l| l.concurrency == c)
    }
}

/// One prompt × output shape, every policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapeRun {
    /// The shape asked for.
    pub prompt_tokens: usize,
    pub output_tokens: usize,
    /// The synthetic words each prompt had (fewer than asked where the model's tokenizer made
    /// more tokens of them than its context holds) and the tokens they made.
    pub prompt_words: usize,
    pub tokens_per_prompt: usize,
    pub policies: Vec<PolicyRun>,
}

impl ShapeRun {
    pub fn label(&self) -> String {
        format!("{}:{}", self.prompt_tokens, self.output_tokens)
    }

    pub fn policy(&self, p: ServingPolicy) -> Option<&PolicyRun> {
        self.policies.iter().find(|r| r.policy == p)
    }
}

/// The demo's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingMetrics {
    pub plan: ServingPlan,
    pub shapes: Vec<ShapeRun>,
    /// Steps of at most this many tokens (decode rows first, prompt chunks after).
    pub step_tokens: usize,
}
