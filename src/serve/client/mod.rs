//! One streamed request to an OpenAI-compatible server, measured where its user sits: when the
//! request left, when each output token arrived, when the stream ended — and, when it went wrong,
//! what went wrong, with everything measured before the fault kept.
//!
//! HTTP is reqwest's (one pooled client), SSE framing is eventsource-stream's; this module reads
//! the chunks, counts their tokens ([`tally`]) and names the faults ([`fault`]).

pub mod connect;
mod fault;
mod tally;

use super::openai;
use super::{Endpoint, Failure, FailureKind, Outcome, Request, STALL_TIMEOUT};
use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tally::Tally;

/// Counts the tokens of a text for a model, when the server gives no usage. A small trait so that
/// `serve` needs no engine type: the caller wraps whatever tokenizer it has.
pub trait CountTokens: Send + Sync {
    fn count(&self, text: &str) -> usize;
}

/// What one content chunk gave.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Piece<'a> {
    /// Arrival, since the request was sent.
    pub at: Duration,
    /// Output tokens the chunk carried (0 for text the server counted with a later chunk).
    pub tokens: usize,
    pub text: &'a str,
    /// The prompt's tokens, once the server's usage has given them (on this chunk or before).
    pub prompt_tokens: Option<usize>,
}

/// A flag that stops requests: the ones running end with what they measured so far and a
/// [`FailureKind::Cancelled`] failure. Clones share the flag.
#[derive(Debug, Clone)]
pub struct Cancel(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Cancel {
    fn default() -> Self {
        Cancel(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl Cancel {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once [`cancel`](Self::cancel) was called (at once if it was already).
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = rx.wait_for(|&c| c).await;
    }
}

/// After `[DONE]`, how long the rest of the body (normally already here) may take to arrive, so
/// that the connection goes back to the pool instead of being closed.
const DRAIN: Duration = Duration::from_millis(100);

/// Sends the request; when the connection closes before any answer, sends it once more on a
/// fresh one. Servers drop keep-alive connections when idle or after a number of requests
/// (llama.cpp's httplib), and a request written as they do meets a closed socket that the server
/// never read — a POST the HTTP client does not retry itself. Says whether it sent it again:
/// the outcome says so (its TTFT includes the first try, and a server that had read the first
/// one serves it twice).
async fn send(rb: reqwest::RequestBuilder) -> (reqwest::Result<reqwest::Response>, bool) {
    let again = rb.try_clone();
    match rb.send().await {
        Err(e) if e.is_request() && !e.is_connect() && !e.is_timeout() => match again {
            Some(rb) => (rb.send().await, true),
            None => (Err(e), false),
        },
        r => (r, false),
    }
}

/// Longest a pooled connection stays idle: a minute, as benchmark clients keep them (vLLM's
/// aiohttp connector), so a low-rate level's TTFT is not a new connection's setup each time.
/// A server that closes an idle connection sooner (llama.cpp's httplib and uvicorn after ~5 s)
/// is noticed by the pool, which drops it, or the request is retried on a new connection
/// before any of it was sent.
const IDLE: Duration = Duration::from_secs(60);

/// Most bytes of an error response read for its message.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Streams requests and measures them. Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    stall: Duration,
    tokenizer: Option<Arc<dyn CountTokens>>,
    /// Model names asked of `/v1/models`, by base URL, for endpoints given without one.
    models: Arc<Mutex<HashMap<String, String>>>,
    /// Setup times of the connections opened.
    setups: connect::Setups,
    /// What every request adds: body fields, headers, and whether it streams.
    extra: Arc<Extra>,
}

/// What a user adds to every request: fields merged into the body (`--extra-body`), headers
/// (`--header`), and `stream: false` (`--no-stream`).
#[derive(Debug, Clone, Default)]
pub struct Extra {
    pub body: serde_json::Map<String, serde_json::Value>,
    pub headers: Vec<(String, String)>,
    pub no_stream: bool,
}

impl Default for Client {
    fn default() -> Self {
        Self::new(STALL_TIMEOUT)
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("stall", &self.stall)
            .field("tokenizer", &self.tokenizer.is_some())
            .finish()
    }
}

impl Client {
    /// A client whose requests fail as stalled when the server sends nothing for `stall` (also
    /// the connect timeout).
    pub fn new(stall: Duration) -> Self {
        let setups = connect::Setups::default();
        let http = reqwest::Client::builder()
            .connector_layer(connect::Timed(setups.clone()))
            // Only the URLs the user gives are contacted: no proxy from the environment.
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(IDLE)
            .connect_timeout(stall)
            .build()
            // Fails only when the TLS backend cannot start, which no input of ours changes.
            .expect("the HTTP client's TLS backend failed to start");
        Client {
            http,
            stall,
            tokenizer: None,
            models: Arc::default(),
            setups,
            extra: Arc::default(),
        }
    }

    /// Adds `extra` to every request (the pool is shared).
    pub fn with_extra(mut self, extra: Extra) -> Self {
        self.extra = Arc::new(extra);
        self
    }

    /// Setup times of the connections opened since the last call.
    pub fn take_setups(&self) -> Vec<Duration> {
        self.setups.take()
    }

    /// Counts tokens with `tokenizer` when the server gives no usage (the pool is shared).
    pub fn with_tokenizer(mut self, tokenizer: Arc<dyn CountTokens>) -> Self {
        self.tokenizer = Some(tokenizer);
        self
    }

    pub fn stall_timeout(&self) -> Duration {
        self.stall
    }

    fn authorized(&self, rb: reqwest::RequestBuilder, ep: &Endpoint) -> reqwest::RequestBuilder {
        let rb = self
            .extra
            .headers
            .iter()
            .fold(rb, |rb, (k, v)| rb.header(k, v));
        match &ep.api_key {
            Some(key) => rb.bearer_auth(key),
            None => rb,
        }
    }

    /// The model names the server lists at `/v1/models`.
    pub async fn models(&self, ep: &Endpoint) -> Result<Vec<String>, Failure> {
        let url = openai::url(&ep.url, "models");
        let ask = async {
            let resp = self
                .authorized(self.http.get(&url), ep)
                .send()
                .await
                .map_err(|e| fault::request(&e, &url))?;
            let status = resp.status();
            let body = resp
                .text()
                .await
                .map_err(|e| fault::closed(0, Some(fault::body_error(&e))))?;
            if !status.is_success() {
                return Err(fault::status(status, &body));
            }
            openai::model_names(&body)
                .map_err(|e| fault::malformed(&format!("not a model list ({e})"), &body))
        };
        tokio::time::timeout(self.stall, ask)
            .await
            .unwrap_or_else(|_| Err(fault::stalled(self.stall, 0)))
    }

    /// What the server says of its model (`/v1/models`, llama.cpp's `/props`, TGI's `/info`),
    /// each asked once with a short wait; what it does not say stays `None`.
    pub async fn server_info(&self, ep: &Endpoint) -> super::info::ServerInfo {
        let mut info = super::info::ServerInfo::default();
        let base = ep
            .url
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        let get = |url: String| {
            let rb = self.authorized(self.http.get(url), ep);
            async move {
                let resp = tokio::time::timeout(Duration::from_secs(2), rb.send()).await;
                match resp {
                    Ok(Ok(r)) if r.status().is_success() => {
                        r.json::<serde_json::Value>().await.ok()
                    }
                    _ => None,
                }
            }
        };
        if let Some(v) = get(openai::url(&ep.url, "models")).await {
            info.models(&v);
        }
        if let Some(v) = get(format!("{base}/props")).await {
            info.props(&v);
        }
        if info.context.is_none() {
            if let Some(v) = get(format!("{base}/info")).await {
                info.tgi(&v);
            }
        }
        info
    }

    /// The endpoint's model name, else the first the server lists (asked once per URL).
    pub async fn model(&self, ep: &Endpoint) -> Result<String, Failure> {
        if let Some(m) = &ep.model {
            return Ok(m.clone());
        }
        if let Some(m) = self.models.lock().unwrap().get(&ep.url) {
            return Ok(m.clone());
        }
        let first = self.models(ep).await?.into_iter().next().ok_or_else(|| {
            Failure::new(
                FailureKind::Other,
                format!("{} lists no models: name one", ep.url),
            )
        })?;
        self.models
            .lock()
            .unwrap()
            .insert(ep.url.clone(), first.clone());
        Ok(first)
    }

    /// Streams `req` to `ep` and measures it. `clock_origin` is the caller's clock: the outcome's
    /// `sent` is measured from it, everything else from the send. `on_piece` sees each chunk that
    /// carried output as it arrives. Ends at `[DONE]`, at a fault, or when `cancel` is set; dropping
    /// the future stops the request too.
    pub async fn stream(
        &self,
        ep: &Endpoint,
        req: &Request,
        clock_origin: Instant,
        cancel: Option<&Cancel>,
        mut on_piece: impl FnMut(&Piece<'_>),
    ) -> Outcome {
        let mut tally = Tally::new(self.tokenizer.as_deref());
        // Most requests run to max_tokens: one allocation instead of a dozen regrowths.
        tally.out.token_at.reserve(req.max_tokens.min(4096));
        let model = match self.model(ep).await {
            Ok(m) => m,
            Err(f) => {
                let mut out = tally.finish();
                out.sent = Instant::now().saturating_duration_since(clock_origin);
                out.failure = Some(f);
                return out;
            }
        };
        let url = openai::url(&ep.url, openai::route(ep.api));
        let mut body = openai::SentBody::new(ep.api, Some(&model), req);
        if self.extra.no_stream {
            body = body.whole();
        }
        let rb = self.authorized(self.http.post(&url), ep);
        let rb = if self.extra.body.is_empty() {
            rb.json(&body)
        } else {
            rb.json(&merged(&body, &self.extra.body))
        };
        let sent = Instant::now();
        let cancelled = async {
            match cancel {
                Some(c) => c.cancelled().await,
                None => std::future::pending().await,
            }
        };
        let result = self
            .run(rb, &url, sent, cancelled, &mut tally, &mut on_piece)
            .await;
        let mut out = tally.finish();
        out.sent = sent.saturating_duration_since(clock_origin);
        if let Err(f) = result {
            out.e2e = sent.elapsed();
            out.failure = Some(f);
        }
        out
    }

    async fn run(
        &self,
        rb: reqwest::RequestBuilder,
        url: &str,
        sent: Instant,
        cancelled: impl std::future::Future<Output = ()>,
        tally: &mut Tally<'_>,
        on_piece: &mut impl FnMut(&Piece<'_>),
    ) -> Result<(), Failure> {
        tokio::pin!(cancelled);
        // One timer for the whole stream, re-armed only when it fires early (cheaper than
        // resetting it at every chunk).
        let stall = tokio::time::sleep(self.stall);
        tokio::pin!(stall);
        let tokens = |t: &Tally| t.out.token_at.len();

        let mut retried = false;
        let resp = self
            .respond(rb, url, &mut cancelled, &mut stall, &mut retried)
            .await;
        tally.out.retried = retried;
        let resp = resp?;
        if self.extra.no_stream {
            return self.whole(resp, sent, cancelled, tally, on_piece).await;
        }
        // The stall timer runs from the last bytes, not the last event: a server's `: ping`
        // keep-alives (comments, which make no event) show it is alive while a request waits.
        // The headers count: the timer starts again when they come.
        let last_bytes = Arc::new(AtomicU64::new(sent.elapsed().as_nanos() as u64));
        let seen = last_bytes.clone();
        let mut events = resp
            .bytes_stream()
            .inspect(move |_| seen.store(sent.elapsed().as_nanos() as u64, Ordering::Relaxed))
            .eventsource();
        let last = || {
            tokio::time::Instant::from_std(
                sent + Duration::from_nanos(last_bytes.load(Ordering::Relaxed)),
            )
        };
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut cancelled => return Err(fault::cancelled(tokens(tally))),
                ev = events.next() => ev,
                _ = &mut stall => {
                    let due = last().max(tokio::time::Instant::from_std(sent)) + self.stall;
                    if tokio::time::Instant::now() >= due {
                        return Err(fault::stalled(self.stall, tokens(tally)));
                    }
                    stall.as_mut().reset(due);
                    continue;
                }
            };
            let now = Instant::now();
            let at = now.saturating_duration_since(sent);
            let event = match next {
                None if tally.finished() => break,
                None => return Err(fault::closed(tokens(tally), None)),
                Some(Ok(ev)) => ev,
                Some(Err(EventStreamError::Transport(e))) => {
                    return Err(fault::closed(tokens(tally), Some(fault::body_error(&e))))
                }
                Some(Err(e)) => return Err(fault::malformed(&e.to_string(), "")),
            };
            let data = event.data.trim();
            if data == "[DONE]" {
                break;
            }
            on_chunk(data, at, tally, on_piece)?;
        }
        tally.out.e2e = sent.elapsed();
        // Read the end of the body so the connection can be reused.
        let _ = tokio::time::timeout(DRAIN, async { while events.next().await.is_some() {} }).await;
        Ok(())
    }

    /// A whole answer (`--no-stream`): read to its end, its tokens all arriving then, so TTFT
    /// is the whole answer's time (as vLLM's benchmark counts a request that does not stream).
    async fn whole(
        &self,
        resp: reqwest::Response,
        sent: Instant,
        cancelled: impl std::future::Future<Output = ()>,
        tally: &mut Tally<'_>,
        on_piece: &mut impl FnMut(&Piece<'_>),
    ) -> Result<(), Failure> {
        let body = tokio::select! {
            biased;
            _ = cancelled => return Err(fault::cancelled(0)),
            b = tokio::time::timeout(self.stall, resp.text()) => match b {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => return Err(fault::closed(0, Some(fault::body_error(&e)))),
                Err(_) => return Err(fault::stalled(self.stall, 0)),
            },
        };
        let at = sent.elapsed();
        on_chunk(&body, at, tally, on_piece)?;
        tally.out.e2e = at;
        Ok(())
    }

    /// Sends the request and checks that the answer is a stream of events; a failure, the
    /// stream stalling or the caller cancelling ends it first.
    async fn respond<C: std::future::Future<Output = ()>>(
        &self,
        rb: reqwest::RequestBuilder,
        url: &str,
        cancelled: &mut std::pin::Pin<&mut C>,
        stall: &mut std::pin::Pin<&mut tokio::time::Sleep>,
        retried: &mut bool,
    ) -> Result<reqwest::Response, Failure> {
        let resp = tokio::select! {
            biased;
            _ = cancelled.as_mut() => return Err(fault::cancelled(0)),
            (r, again) = send(rb) => {
                *retried = again;
                r.map_err(|e| fault::request(&e, url))?
            }
            _ = stall.as_mut() => return Err(fault::stalled(self.stall, 0)),
        };
        let status = resp.status();
        if !status.is_success() {
            let body = tokio::select! {
                biased;
                _ = cancelled.as_mut() => return Err(fault::cancelled(0)),
                b = read_capped(resp, ERROR_BODY_BYTES) => b,
                _ = stall.as_mut() => String::new(),
            };
            return Err(fault::status(status, &body));
        }
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|ct| ct.to_str().unwrap_or("").to_string());
        if let Some(ct) = content_type {
            let whole = self.extra.no_stream && ct.contains("json");
            if !(ct.contains("event-stream") || whole) {
                let body = read_capped(resp, 200).await;
                return Err(fault::malformed(
                    &format!("expected text/event-stream, got {ct}"),
                    &body,
                ));
            }
        }
        Ok(resp)
    }
}

/// The body with the user's fields merged in (theirs win).
fn merged(
    body: &openai::SentBody<'_>,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> serde_json::Value {
    let mut v = serde_json::to_value(body).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.extend(extra.clone());
    }
    v
}

/// One chunk of the stream: counted, and handed on if it carries tokens or text.
fn on_chunk(
    data: &str,
    at: Duration,
    tally: &mut Tally<'_>,
    on_piece: &mut impl FnMut(&Piece<'_>),
) -> Result<(), Failure> {
    let chunk: openai::Chunk =
        serde_json::from_str(data).map_err(|e| fault::malformed(&e.to_string(), data))?;
    if let Some(c) = chunk.cached_tokens() {
        tally.out.cached_tokens = Some(c);
    }
    if let Some(e) = &chunk.error {
        return Err(Failure::new(
            FailureKind::Other,
            format!(
                "the server stopped the stream after {} tokens: {}",
                tally.out.token_at.len(),
                openai::stream_error(e)
            ),
        ));
    }
    let first = chunk.choices.first();
    let text = first.map_or("", |c| c.text());
    let finish = first.and_then(|c| c.finish_reason.as_ref().map(|f| f.0.as_ref()));
    let n = tally.chunk(at, text, first.is_some(), finish, chunk.usage);
    if n > 0 || !text.is_empty() {
        on_piece(&Piece {
            at,
            tokens: n,
            text,
            prompt_tokens: tally.out.prompt_tokens,
        });
    }
    Ok(())
}

/// The body of a response, at most `cap` bytes of it, as text (empty if it broke off).
async fn read_capped(mut resp: reqwest::Response, cap: usize) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < cap {
        match resp.chunk().await {
            Ok(Some(c)) => bytes.extend_from_slice(&c),
            _ => break,
        }
    }
    bytes.truncate(cap);
    String::from_utf8_lossy(&bytes).into_owned()
}
