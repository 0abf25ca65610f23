//! A server's own numbers, read from its Prometheus `/metrics` ([`ServerSample`], carried by
//! [`super::Event::Server`], recorded and drawn like any event), and the [`Rates`] its counters
//! give between two samples.
//!
//! Every field is an `Option`: an engine that does not export a number leaves it `None`, and a
//! pane shows nothing for it rather than a zero.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// Most draft positions a sample carries: a body (or a recording) claiming position 10⁹ must not
/// size a vector by it. Engines draft far fewer (vLLM's `num_speculative_tokens` is single digits).
pub const MAX_SPEC_POSITIONS: usize = 64;

/// The serving engine a `/metrics` body came from, recognised by its metric names' prefix.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServerEngine {
    /// `vllm:` metrics.
    Vllm,
    /// `tgi_` metrics (text-generation-inference's router).
    Tgi,
    /// `llamacpp:` metrics (`llama-server --metrics`).
    LlamaCpp,
    /// `sglang:` metrics (`--enable-metrics`).
    Sglang,
    /// `labtui:` metrics (`labtui serve`).
    Labtui,
    /// Prometheus text, but none of the engines above.
    #[default]
    Unknown,
}

impl ServerEngine {
    /// How recordings and reports write it: the metric prefix's name (`vllm`, `llamacpp`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Vllm => "vllm",
            Self::Tgi => "tgi",
            Self::LlamaCpp => "llamacpp",
            Self::Sglang => "sglang",
            Self::Labtui => "labtui",
            Self::Unknown => "unknown",
        }
    }

    /// The engine of a key; any other word is [`ServerEngine::Unknown`].
    pub fn from_key(key: &str) -> Self {
        [
            Self::Vllm,
            Self::Tgi,
            Self::LlamaCpp,
            Self::Sglang,
            Self::Labtui,
        ]
        .into_iter()
        .find(|e| e.key() == key)
        .unwrap_or_default()
    }
}

/// Serde for an engine written as its [`ServerEngine::key`], as the serving levels record it.
pub mod engine_key {
    use super::ServerEngine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &ServerEngine, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(e.key())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ServerEngine, D::Error> {
        Ok(ServerEngine::from_key(&String::deserialize(d)?))
    }
}

impl fmt::Display for ServerEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Vllm => "vLLM",
            Self::Tgi => "TGI",
            Self::LlamaCpp => "llama.cpp",
            Self::Sglang => "SGLang",
            Self::Labtui => "labtui",
            Self::Unknown => "unknown engine",
        })
    }
}

/// One scrape of a server's `/metrics`, normalised across engines.
///
/// Counters (`*_tokens`, `prefix_*`, `spec_*` totals) count since the server started; [`Rates`]
/// turns two samples into per-second numbers. Gauges the server computes itself
/// (`generation_tok_s`, `prefix_hit_rate`, …) are kept beside them: some engines export only those.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerSample {
    /// When the body arrived, on the caller's clock (time since the session started).
    pub at: Duration,
    pub engine: ServerEngine,
    /// Share of the KV cache in use, 0 to 1.
    pub kv_usage: Option<f64>,
    /// Tokens held in the KV cache.
    pub kv_tokens: Option<f64>,
    /// Requests in the running batch.
    pub running: Option<f64>,
    /// Requests queued, not yet scheduled.
    pub waiting: Option<f64>,
    /// Prompt (prefill) tokens processed, a counter.
    pub prompt_tokens: Option<f64>,
    /// Generated (decode) tokens, a counter.
    pub generation_tokens: Option<f64>,
    /// Prompt tokens found in the prefix cache, and prompt tokens looked up there (counters).
    pub prefix_hits: Option<f64>,
    pub prefix_queries: Option<f64>,
    /// Speculative decoding counters: verification steps (drafts), drafted tokens, accepted ones.
    pub spec_drafts: Option<f64>,
    pub spec_draft_tokens: Option<f64>,
    pub spec_accepted: Option<f64>,
    /// Accepted drafted tokens at draft position 0, 1, … (counters, at most
    /// [`MAX_SPEC_POSITIONS`]); empty when not exported.
    pub spec_accepted_per_pos: Vec<f64>,
    /// Generation and prompt throughput as the server measures it (tokens/s gauges).
    pub generation_tok_s: Option<f64>,
    pub prompt_tok_s: Option<f64>,
    /// The server's own prefix-cache hit rate, 0 to 1 (a gauge).
    pub prefix_hit_rate: Option<f64>,
    /// The server's own speculative numbers: mean accepted length (bonus token included) and
    /// acceptance rate 0 to 1 (gauges).
    pub spec_accept_length: Option<f64>,
    pub spec_accept_rate: Option<f64>,
    /// Each field that was filled → the metric it was read from, e.g.
    /// `kv_usage` → `vllm:kv_cache_usage_perc`.
    pub sources: BTreeMap<String, String>,
}

/// What a server's counters say over an interval: per-second throughput and the shares the
/// interval's increments give. A counter that went down (the server restarted) counts from zero
/// again, as Prometheus's `rate()` does.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// The interval's length in seconds (on the caller's clock).
    pub seconds: f64,
    pub generation_tok_s: Option<f64>,
    pub prompt_tok_s: Option<f64>,
    /// Prefix-cache hits ÷ queries over the interval.
    pub prefix_hit_rate: Option<f64>,
    /// Accepted ÷ drafted tokens over the interval.
    pub spec_acceptance: Option<f64>,
    /// 1 + accepted ÷ drafts: tokens per verification step, the bonus token included.
    pub spec_mean_len: Option<f64>,
    /// Accepted at position i ÷ drafts: the share of drafts whose token i was accepted (vLLM's
    /// "per-position acceptance rate"; unconditional, so it only falls with i).
    pub spec_per_pos: Vec<f64>,
    /// A counter went down in the interval: the server restarted.
    pub reset: bool,
}

/// Increase of a counter from `a` to `b`; a decrease is a restart, after which it counted `b`.
pub fn counter_delta(a: f64, b: f64) -> f64 {
    if b >= a {
        b - a
    } else {
        b.max(0.0)
    }
}

impl Rates {
    /// Rates between two samples.
    pub fn between(a: &ServerSample, b: &ServerSample) -> Option<Rates> {
        Rates::over([a, b])
    }

    /// The shares a sample's counters give since the server started (its counters over zero);
    /// no per-second numbers, the server's start time being unknown.
    pub fn since_start(s: &ServerSample) -> Rates {
        let zero = |x: Option<f64>| x.map(|_| 0.0);
        let start = ServerSample {
            at: s.at,
            generation_tokens: zero(s.generation_tokens),
            prompt_tokens: zero(s.prompt_tokens),
            prefix_hits: zero(s.prefix_hits),
            prefix_queries: zero(s.prefix_queries),
            spec_drafts: zero(s.spec_drafts),
            spec_draft_tokens: zero(s.spec_draft_tokens),
            spec_accepted: zero(s.spec_accepted),
            spec_accepted_per_pos: vec![0.0; s.spec_accepted_per_pos.len()],
            ..ServerSample::default()
        };
        Rates::between(&start, s).unwrap_or_default()
    }

    /// Rates over consecutive samples, oldest first: the increments of each pair added up (so a
    /// restart in the middle loses nothing after it). `None` with fewer than two samples.
    pub fn over<'a>(samples: impl IntoIterator<Item = &'a ServerSample>) -> Option<Rates> {
        let samples: Vec<&ServerSample> = samples.into_iter().collect();
        let (first, last) = (samples.first()?, samples.last()?);
        if samples.len() < 2 {
            return None;
        }
        let mut reset = false;
        let mut delta = |get: &dyn Fn(&ServerSample) -> Option<f64>| {
            let mut sum = None;
            for w in samples.windows(2) {
                if let (Some(a), Some(b)) = (get(w[0]), get(w[1])) {
                    reset |= b < a;
                    *sum.get_or_insert(0.0) += counter_delta(a, b);
                }
            }
            sum
        };
        let generation = delta(&|s| s.generation_tokens);
        let prompt = delta(&|s| s.prompt_tokens);
        let hits = delta(&|s| s.prefix_hits);
        let queries = delta(&|s| s.prefix_queries);
        let drafts = delta(&|s| s.spec_drafts);
        let draft_tokens = delta(&|s| s.spec_draft_tokens);
        let accepted = delta(&|s| s.spec_accepted);
        let positions = samples
            .iter()
            .map(|s| s.spec_accepted_per_pos.len())
            .min()
            .unwrap_or(0);
        let per_pos: Vec<Option<f64>> = (0..positions)
            .map(|i| delta(&|s| s.spec_accepted_per_pos.get(i).copied()))
            .collect();
        let seconds = last.at.as_secs_f64() - first.at.as_secs_f64();
        let per_second = |n: Option<f64>| n.filter(|_| seconds > 0.0).map(|n| n / seconds);
        let share = |n: Option<f64>, d: Option<f64>| match (n, d) {
            (Some(n), Some(d)) if d > 0.0 => Some(n / d),
            _ => None,
        };
        Some(Rates {
            seconds,
            generation_tok_s: per_second(generation),
            prompt_tok_s: per_second(prompt),
            prefix_hit_rate: share(hits, queries),
            spec_acceptance: share(accepted, draft_tokens),
            spec_mean_len: share(accepted, drafts).map(|x| 1.0 + x),
            spec_per_pos: per_pos
                .into_iter()
                .map_while(|a| share(a, drafts))
                .collect(),
            reset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64, generation: f64, hits: f64, queries: f64) -> ServerSample {
        ServerSample {
            at: Duration::from_millis(ms),
            generation_tokens: Some(generation),
            prefix_hits: Some(hits),
            prefix_queries: Some(queries),
            ..ServerSample::default()
        }
    }

    #[test]
    fn rates_between_two_samples() {
        let r = Rates::between(&at(0, 100.0, 10.0, 100.0), &at(500, 150.0, 40.0, 200.0)).unwrap();
        assert_eq!(r.seconds, 0.5);
        assert_eq!(r.generation_tok_s, Some(100.0));
        assert_eq!(r.prefix_hit_rate, Some(0.3));
        assert_eq!(r.prompt_tok_s, None, "not exported: no rate");
        assert!(!r.reset);
    }

    #[test]
    fn a_restart_counts_from_zero() {
        assert_eq!(counter_delta(1000.0, 30.0), 30.0);
        let s = [
            at(0, 1000.0, 0.0, 0.0),
            at(1000, 1100.0, 0.0, 0.0),
            at(2000, 30.0, 0.0, 0.0),
        ];
        let r = Rates::over(&s).unwrap();
        assert_eq!(r.generation_tok_s, Some(65.0), "(100 + 30) tokens in 2 s");
        assert!(r.reset);
        assert_eq!(r.prefix_hit_rate, None, "no queries: no rate");
    }

    #[test]
    fn no_time_no_throughput() {
        let r = Rates::between(&at(7, 1.0, 0.0, 1.0), &at(7, 5.0, 1.0, 2.0)).unwrap();
        assert_eq!(r.generation_tok_s, None);
        assert_eq!(r.prefix_hit_rate, Some(1.0));
        assert!(Rates::over(&[at(0, 1.0, 0.0, 0.0)]).is_none());
    }

    #[test]
    fn speculation_by_position() {
        let spec = |ms, drafts: f64, tokens: f64, accepted: f64, per_pos: Vec<f64>| ServerSample {
            at: Duration::from_millis(ms),
            spec_drafts: Some(drafts),
            spec_draft_tokens: Some(tokens),
            spec_accepted: Some(accepted),
            spec_accepted_per_pos: per_pos,
            ..ServerSample::default()
        };
        let a = spec(0, 10.0, 30.0, 12.0, vec![6.0, 4.0, 2.0]);
        let b = spec(1000, 20.0, 60.0, 27.0, vec![14.0, 9.0, 4.0]);
        let r = Rates::between(&a, &b).unwrap();
        assert_eq!(r.spec_acceptance, Some(0.5));
        assert_eq!(r.spec_mean_len, Some(2.5));
        assert_eq!(r.spec_per_pos, vec![0.8, 0.5, 0.2]);
        let total = Rates::since_start(&b);
        assert_eq!(total.spec_per_pos, vec![0.7, 0.45, 0.2]);
        assert_eq!(total.spec_acceptance, Some(0.45));
        assert_eq!(total.generation_tok_s, None, "uptime unknown");
    }
}
