//! Naming what went wrong: a transport error, a status, a stall, a stream cut short — each as a
//! [`Failure`] of one line a person can act on.

use crate::serve::openai;
use crate::serve::{Failure, FailureKind};
use std::error::Error as _;
use std::time::Duration;

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// `host:port` of a URL, for messages.
fn host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

/// The deepest cause's words: hyper's and reqwest's outer layers only say "error sending request".
fn root_cause(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg = s.to_string();
        source = s.source();
    }
    openai::one_line(&msg)
}

fn io_kind(e: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source = e.source();
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// A request that got no response.
pub fn request(e: &reqwest::Error, url: &str) -> Failure {
    let cause = root_cause(e);
    let at = host(url);
    let http = url.starts_with("http://") || url.starts_with("https://");
    if e.is_builder() || !http {
        return Failure::new(
            FailureKind::Other,
            format!("cannot request {url}: {cause} (a base URL looks like http://host:port)"),
        );
    }
    if e.is_dns() {
        return Failure::new(
            FailureKind::Dns,
            format!("cannot resolve the host {at}: {cause}"),
        );
    }
    if io_kind(e) == Some(std::io::ErrorKind::ConnectionRefused) {
        return Failure::new(
            FailureKind::Refused,
            format!("connection refused by {at}: is the server running on that port?"),
        );
    }
    if e.is_timeout() {
        return Failure::new(
            FailureKind::Stalled,
            format!("connecting to {at} timed out: {cause}"),
        );
    }
    // A connect error past DNS and TCP on https is the TLS handshake's (rustls says why).
    if e.is_connect() && url.starts_with("https:") {
        return Failure::new(
            FailureKind::Tls,
            format!("TLS handshake with {at} failed: {cause}"),
        );
    }
    if e.is_connect() {
        return Failure::new(
            FailureKind::Other,
            format!("cannot connect to {at}: {cause}"),
        );
    }
    Failure::new(
        FailureKind::Closed,
        format!("{at} closed the connection before answering: {cause}"),
    )
}

/// An HTTP error status with what its body said.
pub fn status(code: reqwest::StatusCode, body: &str) -> Failure {
    let said = openai::error_message(body);
    let reason = code.canonical_reason().unwrap_or("");
    let message = match (said.is_empty(), reason.is_empty()) {
        (true, _) => format!("HTTP {}", code.as_u16()),
        (false, true) => format!("HTTP {}: {said}", code.as_u16()),
        (false, false) => format!("HTTP {} {reason}: {said}", code.as_u16()),
    };
    Failure::new(FailureKind::Status(code.as_u16()), message)
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 1.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.0} ms", s * 1e3)
    }
}

pub fn stalled(timeout: Duration, tokens: usize) -> Failure {
    let when = if tokens == 0 {
        "before the first token".to_string()
    } else {
        format!("after {tokens} tokens")
    };
    Failure::new(
        FailureKind::Stalled,
        format!(
            "the server sent nothing for {} {when} (stall timeout)",
            secs(timeout)
        ),
    )
}

pub fn closed(tokens: usize, cause: Option<String>) -> Failure {
    let cause = cause.map_or(String::new(), |c| format!(" ({c})"));
    Failure::new(
        FailureKind::Closed,
        format!(
            "the connection closed after {tokens} tokens, before [DONE] or a finish reason{cause}"
        ),
    )
}

pub fn body_error(e: &reqwest::Error) -> String {
    root_cause(e)
}

pub fn malformed(what: &str, data: &str) -> Failure {
    let data = openai::one_line(data);
    let data: String = data.chars().take(80).collect();
    Failure::new(
        FailureKind::Malformed,
        format!("malformed stream: {what} in `{data}`"),
    )
}

pub fn cancelled(tokens: usize) -> Failure {
    Failure::new(
        FailureKind::Cancelled,
        format!("cancelled after {tokens} tokens"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_statuses_read_well() {
        assert_eq!(host("http://127.0.0.1:8080/v1/x"), "127.0.0.1:8080");
        assert_eq!(host("a.invalid"), "a.invalid");
        let f = status(
            reqwest::StatusCode::NOT_FOUND,
            r#"{"error":{"message":"no such model"}}"#,
        );
        assert_eq!(f.kind, FailureKind::Status(404));
        assert_eq!(f.message, "HTTP 404 Not Found: no such model");
        assert_eq!(
            status(reqwest::StatusCode::BAD_GATEWAY, "").message,
            "HTTP 502"
        );
        assert_eq!(
            stalled(Duration::from_millis(250), 3).message,
            "the server sent nothing for 250 ms after 3 tokens (stall timeout)"
        );
    }
}
