//! The serving lab's wire types: a server to measure, a request of a workload, and what the
//! client measured of it. Plain data, so a load run is recorded and replayed like a local one.

use super::scraped::ServerEngine;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Which OpenAI-compatible route a request takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Api {
    /// `/v1/chat/completions`: the prompt as one user message, the server's chat template applied.
    #[default]
    Chat,
    /// `/v1/completions`: the prompt as is.
    Completions,
}

/// A server to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Base URL as the user gave it, e.g. `http://127.0.0.1:8080` or `https://host/v1`.
    pub url: String,
    pub api_key: Option<String>,
    /// The model name sent in requests; `None` asks `/v1/models` for the first one.
    pub model: Option<String>,
    pub api: Api,
}

/// One earlier message of a conversation: its role (`system`, `user`, `assistant`) and text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub role: String,
    pub content: String,
}

impl Turn {
    pub fn new(role: &str, content: &str) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    pub fn system(content: &str) -> Self {
        Self::new("system", content)
    }

    pub fn user(content: &str) -> Self {
        Self::new("user", content)
    }
}

/// One request of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// The conversation before `prompt`: a system message, earlier turns (chat sends them as
    /// they are; completions joins their text before the prompt).
    #[serde(default)]
    pub context: Vec<Turn>,
    /// The last user message (for completions, the prompt).
    pub prompt: String,
    pub max_tokens: usize,
    /// Ask the server to keep going past end-of-sequence (vLLM, SGLang and llama.cpp honour it).
    pub ignore_eos: bool,
    pub temperature: f32,
}

/// How a request's output tokens were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Counted {
    /// The server's `usage` (per chunk or at the end).
    Usage,
    /// labtui's tokenizer for the model, on the streamed text.
    Tokenizer,
    /// Neither: one token per content chunk.
    Chunks,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailureKind {
    /// Nothing listens there (connection refused).
    Refused,
    /// The host name does not resolve.
    Dns,
    Tls,
    /// The server answered with an HTTP error status.
    Status(u16),
    /// The stream was not the SSE/JSON an OpenAI-compatible server sends.
    Malformed,
    /// No byte arrived for longer than the stall timeout.
    Stalled,
    /// The connection closed before the stream's end (`[DONE]` or a finish reason).
    Closed,
    /// Stopped by labtui (a quit, a level's end).
    Cancelled,
    Other,
}

/// A failed request's reason: the kind (for counting) and what happened, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

/// One request as the client measured it. Times are since the request was sent; whatever arrived
/// before a fault is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// When the request was sent, on the caller's clock.
    pub sent: Duration,
    /// Arrival of each output token (a chunk carrying n tokens gives n entries, spread over the
    /// gap since the previous chunk; the first chunk's arrive together). A chunk's tokens are the
    /// server's per-chunk usage, else the tokenizer's count of its text, else one: with usage only
    /// at the end, this may hold fewer entries than `output_tokens`.
    pub token_at: Vec<Duration>,
    /// Arrival of each chunk that carried output tokens: the gaps between them are the ITL, as
    /// vLLM's benchmark defines it (empty in recordings made before it was kept).
    #[serde(default)]
    pub chunk_at: Vec<Duration>,
    /// Time to the first content token.
    pub ttft: Option<Duration>,
    /// Time to the end of the stream (or to the fault).
    pub e2e: Duration,
    pub output_tokens: usize,
    /// The server's count of prompt tokens, when it gave usage.
    pub prompt_tokens: Option<usize>,
    pub counted: Option<Counted>,
    /// The finish reason the server gave (`stop`, `length`).
    pub finish: Option<String>,
    pub text: String,
    pub failure: Option<Failure>,
    /// The connection closed before any answer and the request was sent again on a new one:
    /// its TTFT and E2E include the first try.
    #[serde(default)]
    pub retried: bool,
    /// Prompt tokens the server answered from its prefix cache, when it says (OpenAI's
    /// `usage.prompt_tokens_details.cached_tokens`, llama.cpp's `timings.cache_n`).
    #[serde(default)]
    pub cached_tokens: Option<usize>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// Inter-token latencies as vLLM's benchmark defines them: the gaps between consecutive
    /// chunks that carried output (a chunk of several tokens is one gap, not several, and adds
    /// no zero gaps). Recordings without chunk times give the gaps between tokens.
    pub fn itl(&self) -> Vec<Duration> {
        let at = if self.chunk_at.is_empty() {
            &self.token_at
        } else {
            &self.chunk_at
        };
        at.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Time to the second token, from the first (AIPerf's TTST): the gap between the first
    /// two chunks that carried output (a first chunk of several tokens has none).
    pub fn ttst(&self) -> Option<Duration> {
        self.itl().first().copied()
    }

    /// Output tokens per second as this request's user saw them: tokens ÷ E2E.
    pub fn user_tok_s(&self) -> Option<f64> {
        let s = self.e2e.as_secs_f64();
        (self.output_tokens > 0 && s > 0.0).then(|| self.output_tokens as f64 / s)
    }

    /// Time per output token after the first: (E2E − TTFT) ÷ (tokens − 1).
    pub fn tpot(&self) -> Option<Duration> {
        let ttft = self.ttft?;
        (self.output_tokens > 1)
            .then(|| (self.e2e.saturating_sub(ttft)) / (self.output_tokens as u32 - 1))
    }
}

/// How load is offered at one level of a serving benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Load {
    /// Closed loop: this many requests in flight, each sent when one ends.
    Concurrency(usize),
    /// Open loop: arrivals at `rate` requests per second, gamma-distributed gaps of shape
    /// `burstiness` (1 is Poisson; below 1 burstier, above 1 more regular), at most
    /// `max_concurrency` in flight (the rest wait their turn).
    Rate {
        rate: f64,
        burstiness: f64,
        max_concurrency: Option<usize>,
    },
}

impl std::fmt::Display for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Load::Concurrency(c) => write!(f, "concurrency {c}"),
            Load::Rate {
                rate,
                burstiness,
                max_concurrency,
            } => {
                write!(f, "rate {rate} req/s")?;
                if *burstiness != 1.0 {
                    write!(f, ", burstiness {burstiness}")?;
                }
                if let Some(m) = max_concurrency {
                    write!(f, ", ≤{m} in flight")?;
                }
                Ok(())
            }
        }
    }
}

/// Mean and percentiles of one latency over a level's successful requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub mean: Duration,
    pub p50: Duration,
    pub p90: Duration,
    pub p99: Duration,
    /// Samples it was computed from.
    pub n: usize,
    #[serde(default)]
    pub min: Duration,
    #[serde(default)]
    pub max: Duration,
    /// Standard deviation (population).
    #[serde(default)]
    pub std: Duration,
}

/// A spread of rates (per-request tok/s): mean, median and the slow tail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RateDist {
    pub mean: f64,
    pub p50: f64,
    /// The 10th percentile: the slowest tenth of requests saw this or less.
    pub p10: f64,
    pub min: f64,
    pub n: usize,
}

/// Percentiles asked for by name (`--percentiles 50,90,95,99,99.9`), nearest rank, per latency.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub at: Vec<f64>,
    pub ttft: Vec<Duration>,
    pub tpot: Vec<Duration>,
    pub itl: Vec<Duration>,
    pub e2e: Vec<Duration>,
}

/// The steady part of a level: from when the load was fully offered (after any ramp and
/// warm-up) to the last send (before any cool-down), the drain after it cut off. Times are from
/// the level's first send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Steady {
    pub from: Duration,
    pub to: Duration,
    /// Output tokens that arrived inside the window, per second of it.
    pub output_tok_s: f64,
    /// Successful requests that ended inside the window, per second of it.
    pub req_s: f64,
    /// Requests sent inside the window: the ones the latencies are taken from.
    pub requests: usize,
}

/// New connections a level opened and how long each took to set up (TCP, and TLS where used):
/// time a request's TTFT includes beyond the server's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Connections {
    pub opened: usize,
    pub setup: Dist,
}

/// Latency targets a request must meet to count towards goodput.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Slo {
    pub ttft: Option<Duration>,
    pub tpot: Option<Duration>,
    pub e2e: Option<Duration>,
}

/// What one level of a serving benchmark measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LevelSummary {
    pub endpoint: String,
    pub load: Load,
    /// Requests sent (warm-up excluded), finished well, and failed.
    pub requests: usize,
    pub ok: usize,
    pub failed: usize,
    /// From the first send to the last end.
    pub duration: Duration,
    /// Successful requests per second.
    pub req_s: f64,
    /// Output tokens of successful requests per second.
    pub output_tok_s: f64,
    pub output_tokens: u64,
    /// Prompt tokens the server reported (0 when it gave no usage).
    pub prompt_tokens: u64,
    pub ttft: Dist,
    /// Time per output token after the first, per request.
    pub tpot: Dist,
    /// Gaps between tokens, over every token of every request.
    pub itl: Dist,
    pub e2e: Dist,
    /// Failed requests by reason.
    pub errors: std::collections::BTreeMap<String, usize>,
    /// Successful requests per second that met the SLO, when one was given.
    pub goodput: Option<f64>,
    /// Requests that met the SLO (of `requests` sent), when one was given.
    #[serde(default)]
    pub slo_met: Option<usize>,
    /// Dollars per million output tokens at the given hourly price.
    pub usd_per_mtok: Option<f64>,
    /// How the output tokens were counted (the most common way over the level).
    pub counted: Option<Counted>,
    /// Why the level ended before its bound, if it did (saturation, errors).
    #[serde(deserialize_with = "stop_reason_or_words")]
    pub stopped_early: Option<StopReason>,
    /// What the server's own counters say of the level, when its metrics could be read.
    #[serde(default)]
    pub server: Option<ServerLevel>,
    /// With `ignore_eos` asked: the successful requests that still ended at end-of-sequence
    /// (`finish_reason: stop`), a server that does not honour the flag.
    #[serde(default)]
    pub eos_stops: Option<usize>,
    /// Open loop: how far behind its scheduled arrival each request was sent (held by the
    /// concurrency cap, or a client that fell behind). Large, it means the offered load was
    /// lower than asked and latencies under it read better than they are (coordinated omission).
    #[serde(default)]
    pub send_lag: Option<Dist>,
    /// Requests sent a second time after their connection closed unanswered.
    #[serde(default)]
    pub retried: usize,
    /// Time from the first token to the second, per request.
    #[serde(default)]
    pub ttst: Dist,
    /// Prompt tokens (server-counted) per second of the level, and prompt plus output.
    #[serde(default)]
    pub input_tok_s: f64,
    #[serde(default)]
    pub total_tok_s: f64,
    /// The most output tokens that arrived in any one-second bucket of the level.
    #[serde(default)]
    pub peak_output_tok_s: f64,
    /// Each successful request's own output tokens ÷ its E2E.
    #[serde(default)]
    pub per_user_tok_s: Option<RateDist>,
    /// Prompt tokens the server said it served from its prefix cache, summed over the level.
    #[serde(default)]
    pub cached_tokens: Option<u64>,
    #[serde(default)]
    pub steady: Option<Steady>,
    #[serde(default)]
    pub connections: Option<Connections>,
    #[serde(default)]
    pub percentiles: Option<Percentiles>,
    /// Median TTFT of the last quarter of requests sent ÷ that of the first quarter (at least
    /// 8 requests): near 1 when the server keeps up, growing when a queue builds up.
    #[serde(default)]
    pub ttft_growth: Option<f64>,
}

impl LevelSummary {
    /// The share of prompt tokens served from a prefix cache: the server's own counters over the
    /// level where it has them, else what its answers said.
    pub fn prefix_hit(&self) -> Option<f64> {
        if let Some(h) = self.server.as_ref().and_then(ServerLevel::prefix_hit) {
            return Some(h);
        }
        let cached = self.cached_tokens? as f64;
        (self.prompt_tokens > 0).then(|| cached / self.prompt_tokens as f64)
    }
}

/// Why a level ended before its bound. Recorded with its numbers; the words are made where it
/// is shown ([`fmt::Display`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "why", rename_all = "snake_case")]
pub enum StopReason {
    /// The benchmark was stopped (a quit, Ctrl-C).
    Stopped,
    /// More requests waited or ran than the backlog limit: the server fell behind the rate.
    Saturated { outstanding: usize, limit: usize },
    /// More than `max_error_rate` of at least 10 ended requests failed.
    Errors {
        max_error_rate: f64,
        failed: usize,
        ended: usize,
    },
    /// The level's duration ran out before it sent all its requests.
    Duration { sent: usize, requests: usize },
    /// A reason held only as words (recordings that wrote it so).
    Said { words: String },
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stopped => f.write_str("stopped"),
            Self::Saturated { outstanding, limit } => write!(
                f,
                "saturated: {outstanding} requests waiting or in flight (limit {limit})"
            ),
            Self::Errors {
                max_error_rate,
                failed,
                ended,
            } => write!(
                f,
                "errors passed {:.0}%: {failed} of {ended} failed",
                max_error_rate * 100.0
            ),
            Self::Duration { sent, requests } => {
                write!(f, "duration reached after {sent} of {requests} requests")
            }
            Self::Said { words } => f.write_str(words),
        }
    }
}

/// A stop reason as recorded, or the words of one (read as [`StopReason::Said`]).
fn stop_reason_or_words<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<StopReason>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Typed(StopReason),
        Words(String),
    }
    Ok(Option::<Either>::deserialize(d)?.map(|e| match e {
        Either::Typed(r) => r,
        Either::Words(words) => StopReason::Said { words },
    }))
}

/// A server's token counters at one moment, read from its metrics.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerTotals {
    /// The engine the metric names belong to, written as its key (`llamacpp`, `vllm`).
    #[serde(with = "super::scraped::engine_key")]
    pub engine: ServerEngine,
    pub prompt_tokens: Option<f64>,
    pub generation_tokens: Option<f64>,
    /// Prompt tokens found in the prefix cache, and prompt tokens looked up there.
    #[serde(default)]
    pub prefix_hits: Option<f64>,
    #[serde(default)]
    pub prefix_queries: Option<f64>,
}

/// The server's counters over one level: the change from its start to its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerLevel {
    #[serde(with = "super::scraped::engine_key")]
    pub engine: ServerEngine,
    pub prompt_tokens: Option<u64>,
    pub generation_tokens: Option<u64>,
    #[serde(default)]
    pub prefix_hits: Option<u64>,
    #[serde(default)]
    pub prefix_queries: Option<u64>,
}

impl ServerLevel {
    /// The change between two readings (`None` for a counter either lacks or that went back,
    /// as after a restart).
    pub fn between(start: &ServerTotals, end: &ServerTotals) -> Self {
        let delta = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b >= a => Some((b - a).round() as u64),
            _ => None,
        };
        Self {
            engine: end.engine,
            prompt_tokens: delta(start.prompt_tokens, end.prompt_tokens),
            generation_tokens: delta(start.generation_tokens, end.generation_tokens),
            prefix_hits: delta(start.prefix_hits, end.prefix_hits),
            prefix_queries: delta(start.prefix_queries, end.prefix_queries),
        }
    }

    /// Prefix-cache hits over lookups in the level (none without lookups).
    pub fn prefix_hit(&self) -> Option<f64> {
        match (self.prefix_hits, self.prefix_queries) {
            (Some(h), Some(q)) if q > 0 => Some(h as f64 / q as f64),
            _ => None,
        }
    }
}

/// The events of a serving benchmark, as the load generator runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ServeEvent {
    /// A level starts: `index` of `levels`, against `endpoint`.
    LevelStarted {
        endpoint: String,
        index: usize,
        levels: usize,
        load: Load,
        /// Requests the level sends at most.
        requests: usize,
    },
    /// A request was sent (`id` counts within the benchmark).
    Sent { level: usize, id: u64 },
    /// A request ended, well or not.
    Done {
        level: usize,
        id: u64,
        outcome: Outcome,
    },
    LevelDone {
        level: usize,
        summary: Box<LevelSummary>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_reasons_keep_their_numbers_and_read_old_words() {
        let reasons = [
            StopReason::Stopped,
            StopReason::Saturated {
                outstanding: 40,
                limit: 16,
            },
            StopReason::Errors {
                max_error_rate: 0.5,
                failed: 6,
                ended: 10,
            },
            StopReason::Duration {
                sent: 3,
                requests: 8,
            },
        ];
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Field {
            #[serde(deserialize_with = "stop_reason_or_words")]
            stopped_early: Option<StopReason>,
        }
        for r in reasons.iter().cloned().map(Some).chain([None]) {
            let f = Field { stopped_early: r };
            let ron_text = ron::to_string(&f).unwrap();
            assert_eq!(ron::from_str::<Field>(&ron_text).unwrap(), f, "{ron_text}");
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<Field>(&json).unwrap(), f, "{json}");
        }
        assert_eq!(
            reasons.map(|r| r.to_string()),
            [
                "stopped",
                "saturated: 40 requests waiting or in flight (limit 16)",
                "errors passed 50%: 6 of 10 failed",
                "duration reached after 3 of 8 requests",
            ]
        );
        let old: Field =
            ron::from_str(r#"(stopped_early:Some("saturated: 9 (limit 4)"))"#).unwrap();
        assert_eq!(
            old.stopped_early.unwrap().to_string(),
            "saturated: 9 (limit 4)"
        );
    }

    #[test]
    fn server_levels_write_the_engine_as_its_key() {
        let l: ServerLevel =
            ron::from_str(r#"(engine:"llamacpp",prompt_tokens:Some(78),generation_tokens:None)"#)
                .unwrap();
        assert_eq!(l.engine, ServerEngine::LlamaCpp);
        assert!(ron::to_string(&l).unwrap().contains(r#"engine:"llamacpp""#));
    }
}
