//! The serving lab: measure OpenAI-compatible servers (vLLM, TGI, SGLang, llama.cpp's
//! `llama-server`) from where their users sit, and serve our own engine as one.
//!
//! - [`client`]: one streamed request, measured at the client (TTFT, every token's arrival, E2E),
//!   its faults named.
//! - [`scrape`]: the server's Prometheus metrics, recognised by engine.
//! - [`mock`]: a scripted server on loopback, for tests and the client's own benchmark.
//! - [`openai`]: the OpenAI wire shapes all three speak.
//! - [`server`]: `labtui serve`, our engine batching continuously behind the same API.
//! - [`lesson`]: the serving-metrics demo, that server measured by our own load generator.
//!
//! Only the URLs the user gives are contacted.

pub mod client;
pub mod info;
pub mod lesson;
pub mod load;
pub mod mock;
pub mod openai;
pub mod scrape;
pub mod server;
pub mod target;

pub use crate::protocol::serve::{Api, Counted, Endpoint, Failure, FailureKind, Outcome, Request};

use std::time::Duration;

/// Default time with no byte from the server before a request counts as stalled.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);
