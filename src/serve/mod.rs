//! The serving lab, client side: measure OpenAI-compatible servers (vLLM, TGI, SGLang, llama.cpp's
//! `llama-server`) from where their users sit.
//!
//! - [`client`]: one streamed request, measured at the client (TTFT, every token's arrival, E2E),
//!   its faults named.
//! - [`scrape`]: the server's Prometheus metrics, recognised by engine.
//! - [`mock`]: a scripted server on loopback, for tests and the client's own benchmark.
//!
//! Only the URLs the user gives are contacted.

pub mod client;
pub mod mock;
pub mod scrape;

use serde::{Deserialize, Serialize};
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

/// One request of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
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
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.failure.is_none()
    }

    /// Inter-token latencies: gaps between consecutive tokens.
    pub fn itl(&self) -> Vec<Duration> {
        self.token_at.windows(2).map(|w| w[1] - w[0]).collect()
    }

    /// Time per output token after the first: (E2E − TTFT) ÷ (tokens − 1).
    pub fn tpot(&self) -> Option<Duration> {
        let ttft = self.ttft?;
        (self.output_tokens > 1)
            .then(|| (self.e2e.saturating_sub(ttft)) / (self.output_tokens as u32 - 1))
    }
}

/// Default time with no byte from the server before a request counts as stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
