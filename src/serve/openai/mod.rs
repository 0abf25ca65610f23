//! The OpenAI wire format, one place for each shape: the request body the client sends and the
//! one a server reads ([`request`]), the stream chunks and whole answers ([`chunk`]), error bodies,
//! the model list and SSE frames. Our client, our server and the mock all speak through it
//! (llama.cpp's server keeps one `to_json_oaicompat_*` per result the same way).

pub mod chunk;
pub mod request;

pub use chunk::{Choice, Chunk, Delta, Head, Text, Usage};
pub use request::{ReceivedBody, SentBody};

use crate::protocol::FinishReason;
use crate::serve::Api;
use axum::body::Bytes;
use serde::{Deserialize, Serialize};

/// The frame that ends a stream.
pub const DONE: &[u8] = b"data: [DONE]\n\n";

/// `value` as one SSE frame, `data: {…}\n\n`.
pub fn frame(value: &impl Serialize) -> Bytes {
    let mut out = b"data: ".to_vec();
    // Serializing our own types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut out, value);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// A frame of `data` as given, for output that is wrong on purpose (the mock's faults).
pub fn raw_frame(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// The finish reason OpenAI names for ours.
pub fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Eos | FinishReason::Stopped => "stop",
        FinishReason::MaxTokens | FinishReason::ContextFull => "length",
    }
}

/// An error body, `{"error":{"message":…,"type":…}}`, as an answer or inside a stream.
#[derive(Serialize, Debug)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, Debug)]
pub struct ErrorDetail<'a> {
    pub message: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
}

impl<'a> ErrorBody<'a> {
    pub fn new(message: &'a str, kind: &'a str) -> Self {
        ErrorBody {
            error: ErrorDetail { message, kind },
        }
    }
}

/// A `/v1/models` answer. A client reads only the ids.
#[derive(Serialize, Deserialize, Debug)]
pub struct ModelList {
    #[serde(skip_deserializing)]
    pub object: String,
    pub data: Vec<Model>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Model {
    pub id: String,
    #[serde(skip_deserializing)]
    pub object: String,
    #[serde(skip_deserializing)]
    pub owned_by: String,
}

impl ModelList {
    /// The list of one model of ours.
    pub fn one(id: &str) -> Self {
        ModelList {
            object: "list".into(),
            data: vec![Model {
                id: id.into(),
                object: "model".into(),
                owned_by: "labtui".into(),
            }],
        }
    }
}

/// The URL of `route` (`chat/completions`, `models`) under a base URL given with or without a
/// trailing `/v1`.
pub fn url(base: &str, route: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/v1") {
        format!("{base}/{route}")
    } else {
        format!("{base}/v1/{route}")
    }
}

pub fn route(api: Api) -> &'static str {
    match api {
        Api::Chat => "chat/completions",
        Api::Completions => "completions",
    }
}

/// Most characters of a server's message kept in a failure.
pub const MESSAGE_CHARS: usize = 200;

/// `text` on one line, at most [`MESSAGE_CHARS`] characters (an ellipsis marks a cut).
pub fn one_line(text: &str) -> String {
    crate::protocol::one_line(text, MESSAGE_CHARS)
}

/// The message of an error value: `{"message": …}`, a string, or the JSON itself.
fn message_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => match o.get("message").or_else(|| o.get("detail")) {
            Some(m) => message_of(m),
            None => v.to_string(),
        },
        other => other.to_string(),
    }
}

/// What an error body says: OpenAI's `{"error":{"message":…}}`, TGI's `{"error":"…"}`,
/// vLLM's older `{"message":…}`, FastAPI's `{"detail":…}`, or the plain text — on one line.
pub fn error_message(body: &str) -> String {
    let said = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(o)) => {
            match ["error", "message", "detail"]
                .iter()
                .find_map(|k| o.get(*k))
            {
                Some(v) => message_of(v),
                None => body.to_string(),
            }
        }
        _ => body.to_string(),
    };
    one_line(&said)
}

/// The message of an in-stream `error` field.
pub fn stream_error(v: &serde_json::Value) -> String {
    one_line(&message_of(v))
}

/// The model names of a `/v1/models` answer.
pub fn model_names(body: &str) -> Result<Vec<String>, serde_json::Error> {
    Ok(serde_json::from_str::<ModelList>(body)?
        .data
        .into_iter()
        .map(|m| m.id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_and_without_v1() {
        for base in [
            "http://h:1",
            "http://h:1/",
            "http://h:1/v1",
            "http://h:1/v1/",
        ] {
            assert_eq!(url(base, "models"), "http://h:1/v1/models");
        }
        assert_eq!(
            url("https://h/api/v1", "chat/completions"),
            "https://h/api/v1/chat/completions"
        );
    }

    #[test]
    fn error_bodies_in_each_shape() {
        assert_eq!(
            error_message(r#"{"error":{"message":"model x not found","type":"x"}}"#),
            "model x not found"
        );
        assert_eq!(
            error_message(r#"{"error":"Input validation error","error_type":"validation"}"#),
            "Input validation error"
        );
        assert_eq!(
            error_message(r#"{"object":"error","message":"too long"}"#),
            "too long"
        );
        assert_eq!(error_message(r#"{"detail":"Not Found"}"#), "Not Found");
        assert_eq!(error_message("Bad\n  gateway\n"), "Bad gateway");
        let long = "x".repeat(1000);
        assert_eq!(error_message(&long).chars().count(), MESSAGE_CHARS + 1);
    }
}
