//! The scraper: GET a server's `/metrics` every period (2 Hz by default) with a short timeout,
//! and send each sample as a stamped [`Event::Server`] on the caller's clock. A failure (no
//! `--metrics`, nothing listening, a timeout) is said once as a notice, and again only when it
//! changes or the metrics come back; the loop goes on until it is stopped or its receiver is gone.

use super::{parse, ParseError};
use crate::protocol::{Event, ServerEngine, ServerSample, Stamped, Stamper};
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc::UnboundedSender, oneshot};

/// 2 Hz: fine enough to follow a batch fill, light on the server.
pub const DEFAULT_PERIOD: Duration = Duration::from_millis(500);
/// A scrape slower than this is a failure: the next one is due soon anyway.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest body read (vLLM's, with every histogram, is a few hundred kB).
pub const MAX_BODY: usize = 16 << 20;

/// What to scrape and how often.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeConfig {
    /// The server's base URL as the user gave it (`http://host:8000`, `http://host:8000/v1`) or
    /// its metrics URL (`…/metrics`); see [`metrics_url`].
    pub url: String,
    /// Sent as a bearer token, for servers that guard every route.
    pub api_key: Option<String>,
    pub period: Duration,
    pub timeout: Duration,
}

impl ScrapeConfig {
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_string(),
            api_key: None,
            period: DEFAULT_PERIOD,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The metrics of a server the serving lab measures.
    pub fn for_endpoint(e: &crate::serve::Endpoint) -> Self {
        Self {
            api_key: e.api_key.clone(),
            ..Self::new(&e.url)
        }
    }
}

/// Why a scrape gave no sample.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    #[error("{url:?} is not a URL ({why}): give one like http://127.0.0.1:8000")]
    BadUrl { url: String, why: String },
    #[error("nothing listens at {url} (connection refused): is the server running?")]
    Refused { url: String },
    #[error("{url} did not answer within {ms} ms")]
    Timeout { url: String, ms: u128 },
    #[error("{url} answered HTTP {status}{hint}")]
    Status {
        url: String,
        status: u16,
        hint: &'static str,
    },
    #[error("{url}: the answer is larger than {MAX_BODY} bytes")]
    TooLarge { url: String },
    #[error("{url}: {error}")]
    Parse { url: String, error: ParseError },
    #[error("{url}: {message}")]
    Other { url: String, message: String },
}

impl ScrapeError {
    /// Two failures a person would read as the same (the same status, both refused, …).
    fn same_as(&self, other: &ScrapeError) -> bool {
        match (self, other) {
            (Self::Status { status: a, .. }, Self::Status { status: b, .. }) => a == b,
            (Self::Parse { error: a, .. }, Self::Parse { error: b, .. }) => {
                std::mem::discriminant(a) == std::mem::discriminant(b)
            }
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// Where a server's metrics are: `/metrics` at the root of its base URL (a trailing `/v1` is the
/// OpenAI API's, not the server's root), or the URL itself when it already ends in `/metrics`.
pub fn metrics_url(base: &str) -> Result<reqwest::Url, ScrapeError> {
    let bad = |why: String| ScrapeError::BadUrl {
        url: base.to_string(),
        why,
    };
    let mut url = reqwest::Url::parse(base.trim()).map_err(|e| bad(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!("scheme {} is not http or https", url.scheme())));
    }
    let path = url.path().trim_end_matches('/');
    if !path.ends_with("/metrics") {
        let root = path.strip_suffix("/v1").unwrap_or(path);
        url.set_path(&format!("{root}/metrics"));
    }
    url.set_query(None);
    Ok(url)
}

/// Whether an error's causes include a refused connection.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused)
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The innermost cause's words (reqwest's own message is "error sending request").
fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn fetch_error(url: &reqwest::Url, timeout: Duration, e: reqwest::Error) -> ScrapeError {
    let url = url.to_string();
    if e.is_timeout() {
        ScrapeError::Timeout {
            url,
            ms: timeout.as_millis(),
        }
    } else if refused(&e) {
        ScrapeError::Refused { url }
    } else {
        ScrapeError::Other {
            url,
            message: cause(&e),
        }
    }
}

/// One GET of the metrics URL, read into a sample (`at` left at zero).
pub async fn scrape_once(
    client: &reqwest::Client,
    url: &reqwest::Url,
    config: &ScrapeConfig,
) -> Result<ServerSample, ScrapeError> {
    let mut req = client.get(url.clone()).timeout(config.timeout);
    if let Some(key) = &config.api_key {
        req = req.bearer_auth(key);
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| fetch_error(url, config.timeout, e))?;
    let status = resp.status();
    if !status.is_success() {
        let hint = match status.as_u16() {
            404 => {
                ": this server serves no metrics (llama-server needs --metrics, \
                 SGLang --enable-metrics)"
            }
            401 | 403 => ": the metrics need an API key (--api-key)",
            _ => "",
        };
        return Err(ScrapeError::Status {
            url: url.to_string(),
            status: status.as_u16(),
            hint,
        });
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fetch_error(url, config.timeout, e))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(ScrapeError::TooLarge {
                url: url.to_string(),
            });
        }
        body.extend_from_slice(&chunk);
    }
    parse(&String::from_utf8_lossy(&body)).map_err(|error| ScrapeError::Parse {
        url: url.to_string(),
        error,
    })
}

fn notice(message: String) -> Event {
    Event::Notice { message }
}

/// Scrape until `stop` resolves or `out`'s receiver is gone. Each sample and each notice is
/// stamped on `out`'s clock when the answer arrived (the sample's `at` too).
pub async fn run(config: ScrapeConfig, out: Stamper, stop: impl Future<Output = ()>) {
    let say = |event: Event| {
        out.send(event);
    };
    let url = match metrics_url(&config.url) {
        Ok(u) => u,
        Err(e) => return say(notice(format!("server metrics: {e}"))),
    };
    let client = match reqwest::Client::builder()
        .connect_timeout(config.timeout)
        .build()
    {
        Ok(c) => c,
        Err(e) => return say(notice(format!("server metrics: no HTTP client ({e})"))),
    };
    let mut tick = tokio::time::interval(config.period.max(Duration::from_millis(10)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    let mut failing: Option<ScrapeError> = None;
    let mut engine: Option<ServerEngine> = None;
    loop {
        let got = tokio::select! {
            _ = &mut stop => break,
            got = async {
                tick.tick().await;
                scrape_once(&client, &url, &config).await
            } => got,
        };
        let at = out.elapsed();
        let mut events = Vec::new();
        match got {
            Ok(mut sample) => {
                if failing.take().is_some() || engine != Some(sample.engine) {
                    events.push(notice(match sample.engine {
                        ServerEngine::Unknown => format!(
                            "server metrics: {url} answers, but with no vLLM, TGI, llama.cpp or \
                             SGLang metrics"
                        ),
                        e => format!("server metrics: {e} at {url}"),
                    }));
                }
                engine = Some(sample.engine);
                sample.at = at;
                events.push(Event::Server(sample));
            }
            Err(e) => {
                if !failing.as_ref().is_some_and(|f| f.same_as(&e)) {
                    events.push(notice(format!("server metrics: {e}")));
                }
                failing = Some(e);
            }
        }
        for event in events {
            if !out.send_at(at, event) {
                return;
            }
        }
    }
}

/// A scraper running on the tokio runtime; dropping it (or [`Scraper::stop`]) ends the loop.
#[derive(Debug)]
pub struct Scraper {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Scraper {
    /// Stop and wait for the loop's end (at once: a scrape in flight is dropped).
    pub async fn stop(self) {
        let Scraper { stop, task } = self;
        drop(stop);
        let _ = task.await;
    }

    /// Whether the loop ended by itself (a bad URL, its receiver gone).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// Start scraping on the current tokio runtime; samples and notices go to `tx` stamped with
/// `clock.elapsed()` (the session's clock, as the worker's events are).
pub fn spawn(config: ScrapeConfig, clock: Instant, tx: UnboundedSender<Stamped>) -> Scraper {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(run(config, Stamper { tx, clock }, async move {
        let _ = stopped.await;
    }));
    Scraper { stop, task }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_metrics_live_at_the_servers_root() {
        let u = |s| metrics_url(s).unwrap().to_string();
        assert_eq!(u("http://127.0.0.1:8000"), "http://127.0.0.1:8000/metrics");
        assert_eq!(u("http://h:8000/v1/"), "http://h:8000/metrics");
        assert_eq!(u("https://h/proxy/v1"), "https://h/proxy/metrics");
        assert_eq!(u("http://h:9/metrics"), "http://h:9/metrics");
        assert!(matches!(
            metrics_url("localhost:8000"),
            Err(ScrapeError::BadUrl { .. })
        ));
        assert!(matches!(
            metrics_url("nonsense"),
            Err(ScrapeError::BadUrl { .. })
        ));
    }
}
