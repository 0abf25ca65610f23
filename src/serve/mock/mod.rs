//! A scripted OpenAI-compatible server on 127.0.0.1, for tests and the client's own benchmark:
//! `/v1/chat/completions` and `/v1/completions` stream as a [`Script`] says (timing, tokens per
//! chunk, usage, an injected fault), `/v1/models` lists one model, and `/metrics` serves a settable
//! Prometheus text — by default llama.cpp-style counters of what it streamed. It stops when its
//! [`Mock`] handle drops.

mod script;
mod stream;

pub use script::{Fault, Script};

use super::client::Cancel;
use super::{Api, Endpoint};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use stream::{Asked, Gen};

/// The model name the mock lists and answers with.
pub const MODEL: &str = "mock-model";

/// Most requests the mock remembers (the oldest are dropped).
const SEEN_MAX: usize = 1024;

/// A request the mock received.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    pub body: serde_json::Value,
    /// Every header, names lower case.
    pub headers: Vec<(String, String)>,
}

/// What the handlers share.
pub(crate) struct Shared {
    script: Mutex<Script>,
    metrics: Mutex<Option<String>>,
    api_key: Mutex<Option<String>>,
    seen: Mutex<Vec<Seen>>,
    model: String,
    /// The clock of stamped chunks.
    origin: Instant,
    stop: Cancel,
    requests: AtomicU64,
    processing: AtomicI64,
    prompt_tokens: AtomicU64,
    tokens: AtomicU64,
    decodes: AtomicU64,
}

/// A running mock server; dropping it stops the server and ends its streams.
pub struct Mock {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Drop for Mock {
    fn drop(&mut self) {
        self.shared.stop.cancel();
    }
}

impl std::fmt::Debug for Mock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mock").field("addr", &self.addr).finish()
    }
}

impl Mock {
    /// Starts a mock on a free port of 127.0.0.1, on the current Tokio runtime (call it within
    /// one; the server runs there).
    pub fn start(script: Script) -> std::io::Result<Mock> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let shared = Arc::new(Shared {
            script: Mutex::new(script),
            metrics: Mutex::new(None),
            api_key: Mutex::new(None),
            seen: Mutex::new(Vec::new()),
            model: MODEL.to_string(),
            origin: Instant::now(),
            stop: Cancel::new(),
            requests: AtomicU64::new(0),
            processing: AtomicI64::new(0),
            prompt_tokens: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            decodes: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .route("/v1/models", get(models))
            .route("/metrics", get(metrics))
            .with_state(shared.clone());
        let stop = shared.stop.clone();
        // Small chunks go out at once (no Nagle delay).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
        Ok(Mock { addr, shared })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://127.0.0.1:PORT` (no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// An endpoint for this mock, its model named.
    pub fn endpoint(&self, api: Api) -> Endpoint {
        Endpoint {
            url: self.url(),
            api_key: None,
            model: Some(MODEL.to_string()),
            api,
        }
    }

    /// The script for requests from now on.
    pub fn set_script(&self, script: Script) {
        *self.shared.script.lock().unwrap() = script;
    }

    /// The `/metrics` body; `None` serves the llama.cpp-style counters of what the mock streamed.
    pub fn set_metrics(&self, body: Option<String>) {
        *self.shared.metrics.lock().unwrap() = body;
    }

    /// Require `Authorization: Bearer KEY` (401 otherwise).
    pub fn set_api_key(&self, key: Option<String>) {
        *self.shared.api_key.lock().unwrap() = key;
    }

    /// The requests received, oldest first (the last 1024).
    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Output tokens streamed so far, over all requests.
    pub fn tokens_streamed(&self) -> u64 {
        self.shared.tokens.load(Ordering::Relaxed)
    }

    /// The clock of stamped chunks: a stamp `@N` was sent `N` ns after this.
    pub fn origin(&self) -> Instant {
        self.shared.origin
    }
}

/// The send time a stamped chunk's text carries (see [`Script::stamp`]).
pub fn stamp_of(text: &str) -> Option<std::time::Duration> {
    let word = text.strip_prefix('@')?.split(' ').next()?;
    word.parse().ok().map(std::time::Duration::from_nanos)
}

fn error(code: StatusCode, message: &str) -> Response {
    let body = super::openai::ErrorBody::new(message, "mock_error");
    (code, axum::Json(body)).into_response()
}

/// Whitespace-separated words of the prompt: the mock's prompt tokens.
fn prompt_tokens(body: &serde_json::Value) -> usize {
    let words = |v: &serde_json::Value| v.as_str().map_or(0, |s| s.split_whitespace().count());
    let messages = body["messages"]
        .as_array()
        .map_or(0, |ms| ms.iter().map(|m| words(&m["content"])).sum());
    messages + words(&body["prompt"])
}

async fn chat(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    complete(s, Api::Chat, headers, body).await
}

async fn completions(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    complete(s, Api::Completions, headers, body).await
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from)
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    match &*s.api_key.lock().unwrap() {
        Some(key) => authorization(headers).as_deref() == Some(&format!("Bearer {key}")),
        None => true,
    }
}

async fn complete(s: Arc<Shared>, api: Api, headers: HeaderMap, body: Bytes) -> Response {
    let arrived = Instant::now();
    let script = s.script.lock().unwrap().clone();
    let body: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("not JSON: {e}")),
    };
    {
        let mut seen = s.seen.lock().unwrap();
        if seen.len() >= SEEN_MAX {
            seen.remove(0);
        }
        seen.push(Seen {
            path: match api {
                Api::Chat => "/v1/chat/completions",
                Api::Completions => "/v1/completions",
            }
            .to_string(),
            authorization: authorization(&headers),
            body: body.clone(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect(),
        });
    }
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    if let Some(Fault::Status { code, body }) = &script.fault {
        let code = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let ct = if serde_json::from_str::<serde_json::Value>(body).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        return (code, [(header::CONTENT_TYPE, ct)], body.clone()).into_response();
    }
    if body["stream"] != true {
        return whole(&script, api, &body).await;
    }
    let options = &body["stream_options"];
    let asked = Asked {
        api,
        max_tokens: body["max_tokens"].as_u64().map(|m| m as usize),
        include_usage: options["include_usage"] == true,
        continuous_usage: options["continuous_usage_stats"] == true,
        prompt_tokens: prompt_tokens(&body),
    };
    let stream = Gen::new(s, script, asked, arrived).into_stream();
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// A whole answer (`stream: false`), sent when the script's last chunk would have been.
async fn whole(script: &Script, api: Api, body: &serde_json::Value) -> Response {
    let max = body["max_tokens"]
        .as_u64()
        .map_or(usize::MAX, |m| m as usize);
    let tokens = script.tokens.min(max);
    let chunks = tokens.div_ceil(script.tokens_per_chunk.max(1));
    let mut wait = script.ttft;
    for d in script
        .chunk_delays
        .iter()
        .cycle()
        .take(chunks.saturating_sub(1))
    {
        wait += *d;
    }
    tokio::time::sleep(wait).await;
    let text = vec!["tok"; tokens].join(" ");
    let usage = stream::usage(script, prompt_tokens(body), tokens);
    let choice = match api {
        Api::Chat => serde_json::json!({"index": 0, "finish_reason": "length",
            "message": {"role": "assistant", "content": text}}),
        Api::Completions => {
            serde_json::json!({"index": 0, "finish_reason": "length", "text": text})
        }
    };
    axum::Json(
        serde_json::json!({"id": "mock", "object": "chat.completion", "created": 0,
        "model": MODEL, "choices": [choice], "usage": usage}),
    )
    .into_response()
}

async fn models(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return error(StatusCode::UNAUTHORIZED, "invalid API key");
    }
    axum::Json(super::openai::ModelList::one(&s.model)).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let body = s
        .metrics
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| llamacpp_metrics(&s));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Counters named as llama.cpp's `--metrics` names them, of what the mock streamed.
fn llamacpp_metrics(s: &Shared) -> String {
    let rows = [
        (
            "prompt_tokens_total",
            "counter",
            "Number of prompt tokens processed.",
            s.prompt_tokens.load(Ordering::Relaxed) as i64,
        ),
        (
            "tokens_predicted_total",
            "counter",
            "Number of generation tokens processed.",
            s.tokens.load(Ordering::Relaxed) as i64,
        ),
        (
            "n_decode_total",
            "counter",
            "Total number of llama_decode() calls",
            s.decodes.load(Ordering::Relaxed) as i64,
        ),
        (
            "requests_processing",
            "gauge",
            "Number of requests processing.",
            s.processing.load(Ordering::Relaxed),
        ),
        (
            "requests_deferred",
            "gauge",
            "Number of requests deferred.",
            0,
        ),
    ];
    let mut out = String::new();
    for (name, kind, help, value) in rows {
        out.push_str(&format!(
            "# HELP llamacpp:{name} {help}\n# TYPE llamacpp:{name} {kind}\nllamacpp:{name} {value}\n"
        ));
    }
    out
}
