//! `labtui serve`: our engine behind an OpenAI-compatible HTTP server, batching continuously.
//!
//! `/v1/chat/completions` and `/v1/completions` (streamed as SSE ending in `data: [DONE]`, or one
//! JSON answer; `usage`, and `stream_options.include_usage`), `/v1/models`, and Prometheus
//! `/metrics` with vLLM's names under `labtui:` ([`metrics`]). The model runs on a thread of its
//! own ([`engine`]) driving the [`crate::engine::sched::Scheduler`]; handlers reach it by channel,
//! and a client that disconnects cancels its request. The server stops when its [`Server`] handle
//! drops.

pub mod engine;
pub mod metrics;

use super::client::Cancel;
use crate::engine::sampling::SamplingParams;
use crate::engine::sched::SchedConfig;
use crate::engine::{chat, Engine, Tokenizer};
use crate::protocol::serve::Api;
use crate::serve::openai::{self, Delta, ErrorBody, Head, ModelList, Usage};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use engine::{Job, Out};
use metrics::Metrics;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

/// Tokens generated when a request names no `max_tokens`.
pub const DEFAULT_MAX_TOKENS: usize = 256;

/// What `labtui serve` runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub sched: SchedConfig,
}

/// What the handlers share.
struct Shared {
    jobs: Mutex<mpsc::Sender<Job>>,
    tokenizer: Tokenizer,
    model: String,
    metrics: Arc<Metrics>,
    next: AtomicU64,
}

/// A running server; dropping it stops the HTTP server and the model thread.
pub struct Server {
    addr: SocketAddr,
    stop: Cancel,
    model_stop: Arc<AtomicBool>,
    model_name: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.cancel();
        self.model_stop.store(true, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish()
    }
}

impl Server {
    /// Serve `engine` on `cfg.addr` (port 0: a free one), on the current Tokio runtime (call it
    /// within one); the model gets a thread of its own.
    pub fn start(engine: Engine, cfg: &ServeConfig) -> std::io::Result<Server> {
        Self::start_tapped(engine, cfg, None)
    }

    /// As [`Self::start`], sending every scheduler decision to `tap` too.
    pub fn start_tapped(
        engine: Engine,
        cfg: &ServeConfig,
        tap: Option<engine::Tap>,
    ) -> std::io::Result<Server> {
        let Engine {
            model,
            tokenizer,
            info,
            ..
        } = engine;
        Self::start_model(model, tokenizer, info.name, cfg, tap)
    }

    /// Serve `model` under `name`: what [`Self::start_tapped`] runs, for a caller that keeps its
    /// engine (the model's weights are shared, not copied).
    pub fn start_model(
        model: crate::engine::Model,
        tokenizer: Tokenizer,
        name: String,
        cfg: &ServeConfig,
        tap: Option<engine::Tap>,
    ) -> std::io::Result<Server> {
        let listener = std::net::TcpListener::bind(cfg.addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let (tx, rx) = mpsc::channel();
        let metrics = Arc::new(Metrics::default());
        let model_stop = Arc::new(AtomicBool::new(false));
        let eog = tokenizer.eog.clone();
        {
            let (sched, metrics, stop) = (cfg.sched.clone(), metrics.clone(), model_stop.clone());
            std::thread::Builder::new()
                .name("labtui-serve-model".into())
                .spawn(move || engine::run(model, eog, sched, rx, metrics, stop, tap))?;
        }
        let shared = Arc::new(Shared {
            jobs: Mutex::new(tx),
            tokenizer,
            model: name.clone(),
            metrics,
            next: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/completions", post(completions))
            .route("/v1/models", get(models))
            .route("/metrics", get(metrics_text))
            .route("/health", get(|| async { "ok" }))
            .with_state(shared);
        let stop = Cancel::new();
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await;
            });
        }
        Ok(Server {
            addr,
            stop,
            model_stop,
            model_name: name,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL, `http://ADDR` (no `/v1`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The model name the server lists and answers with.
    pub fn model(&self) -> &str {
        &self.model_name
    }

    /// Until the server stops (Ctrl-C is the caller's).
    pub async fn stopped(&self) {
        self.stop.cancelled().await
    }
}

fn error(code: StatusCode, message: &str) -> Response {
    let body = ErrorBody::new(message, "invalid_request_error");
    (code, axum::Json(body)).into_response()
}

async fn chat(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    complete(s, Api::Chat, body).await
}

async fn completions(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    complete(s, Api::Completions, body).await
}

async fn models(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(ModelList::one(&s.model)).into_response()
}

async fn metrics_text(State(s): State<Arc<Shared>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(&s.model),
    )
        .into_response()
}

/// Output text as tokens come: the decoded text grows, and what is new since the last piece goes
/// out, held back while it ends in an incomplete character.
struct Detok {
    ids: Vec<u32>,
    sent: usize,
}

impl Detok {
    fn push(&mut self, tok: &Tokenizer, id: u32) -> String {
        self.ids.push(id);
        let text = tok.decode(&self.ids).unwrap_or_default();
        if text.ends_with('\u{FFFD}') {
            return String::new();
        }
        self.take(&text)
    }

    fn take(&mut self, text: &str) -> String {
        match text.get(self.sent..) {
            Some(new) => {
                self.sent = text.len();
                new.to_string()
            }
            None => String::new(),
        }
    }

    fn finish(&mut self, tok: &Tokenizer) -> String {
        let text = tok.decode(&self.ids).unwrap_or_default();
        self.take(&text)
    }
}

/// The request's body and its prompt's tokens, or what is wrong with it (a 400's message).
fn parse(s: &Shared, api: Api, body: &Bytes) -> Result<(openai::ReceivedBody, Vec<u32>), String> {
    let body: openai::ReceivedBody =
        serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))?;
    body.validate()?;
    // A chat request's whole conversation goes through the template (its system prompt too).
    let templated = match api {
        Api::Chat => chat::apply_turns(&s.tokenizer, &body.chat_turns()?),
        Api::Completions => Ok(body.prompt_text(api)?),
    };
    match templated.and_then(|t| s.tokenizer.encode_prompt(&t)) {
        Ok(p) if !p.is_empty() => Ok((body, p)),
        Ok(_) => Err("the prompt is empty".into()),
        Err(e) => Err(e.to_string()),
    }
}

async fn complete(s: Arc<Shared>, api: Api, body: Bytes) -> Response {
    let (body, prompt) = match parse(&s, api, &body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e),
    };
    let sampling = SamplingParams {
        temperature: body.temperature.unwrap_or(1.0),
        top_k: body.top_k,
        top_p: body.top_p,
        seed: body.seed.unwrap_or(0),
    };
    let (out, mut rx) = unbounded_channel();
    let prompt_tokens = prompt.len();
    let job = Job {
        prompt,
        max_tokens: body.max_tokens(DEFAULT_MAX_TOKENS),
        sampling,
        ignore_eos: body.ignore_eos,
        out,
    };
    if s.jobs.lock().unwrap().send(job).is_err() {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the model thread has stopped",
        );
    }
    match rx.recv().await {
        Some(Out::Queued) => {}
        Some(Out::Refused(why)) => return error(StatusCode::BAD_REQUEST, &why),
        _ => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the model thread has stopped",
            )
        }
    }
    let head = head(&s, api);
    let detok = Detok {
        ids: Vec::new(),
        sent: 0,
    };
    if body.stream {
        let sse = Sse {
            s,
            rx,
            head,
            detok,
            include_usage: body.include_usage(),
            continuous: body.continuous_usage().then_some(prompt_tokens),
            generated: 0,
            queue: VecDeque::new(),
            done: false,
        };
        let stream = futures::stream::unfold(sse, |mut sse| async move {
            let frame = sse.next().await?;
            Some((Ok::<Bytes, Infallible>(frame), sse))
        });
        return (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            Body::from_stream(stream),
        )
            .into_response();
    }
    whole(&s, head, detok, rx).await
}

/// What every answer of the next request carries.
fn head(s: &Shared, api: Api) -> Head {
    let n = s.next.fetch_add(1, Ordering::Relaxed);
    Head {
        api,
        id: format!("cmpl-labtui-{n}"),
        created: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: s.model.clone(),
    }
}

/// The whole answer of a request that did not stream, once the model thread is done with it.
async fn whole(
    s: &Shared,
    head: Head,
    mut detok: Detok,
    mut rx: UnboundedReceiver<Out>,
) -> Response {
    let mut text = String::new();
    while let Some(o) = rx.recv().await {
        match o {
            Out::Token(id) => text.push_str(&detok.push(&s.tokenizer, id)),
            Out::Done {
                reason,
                prompt_tokens,
                completion_tokens,
            } => {
                text.push_str(&detok.finish(&s.tokenizer));
                let finish = openai::finish_reason(reason);
                let usage = Usage::new(prompt_tokens, completion_tokens);
                return axum::Json(head.answer(&text, finish, usage)).into_response();
            }
            Out::Failed(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, &e),
            Out::Queued | Out::Refused(_) => {}
        }
    }
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the model thread has stopped",
    )
}

/// A streamed answer: SSE frames from the model thread's messages.
struct Sse {
    s: Arc<Shared>,
    rx: UnboundedReceiver<Out>,
    head: Head,
    detok: Detok,
    include_usage: bool,
    /// `stream_options.continuous_usage_stats`: the prompt's tokens, and usage on every chunk.
    continuous: Option<usize>,
    generated: usize,
    queue: VecDeque<Bytes>,
    done: bool,
}

impl Sse {
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(b) = self.queue.pop_front() {
                return Some(b);
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Some(Out::Token(id)) => {
                    self.generated += 1;
                    let piece = self.detok.push(&self.s.tokenizer, id);
                    if !piece.is_empty() {
                        let mut chunk = self.head.chunk(Delta::assistant(&piece), None);
                        if let Some(prompt) = self.continuous {
                            chunk = chunk.with_usage(Usage::new(prompt, self.generated));
                        }
                        self.queue.push_back(chunk.frame());
                    }
                }
                Some(Out::Done {
                    reason,
                    prompt_tokens,
                    completion_tokens,
                }) => {
                    let rest = self.detok.finish(&self.s.tokenizer);
                    if !rest.is_empty() {
                        let chunk = self.head.chunk(Delta::assistant(&rest), None);
                        self.queue.push_back(chunk.frame());
                    }
                    let finish = openai::finish_reason(reason);
                    let last = self.head.chunk(Delta::default(), Some(finish));
                    self.queue.push_back(last.frame());
                    if self.include_usage {
                        let usage = Usage::new(prompt_tokens, completion_tokens);
                        self.queue.push_back(self.head.usage_chunk(usage).frame());
                    }
                    self.queue.push_back(Bytes::from_static(openai::DONE));
                    self.done = true;
                }
                Some(Out::Failed(e)) => {
                    let body = ErrorBody::new(&e, "server_error");
                    self.queue.push_back(openai::frame(&body));
                    self.done = true;
                }
                Some(Out::Queued | Out::Refused(_)) => {}
                None => self.done = true,
            }
        }
    }
}
