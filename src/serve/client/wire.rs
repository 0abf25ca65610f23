//! What goes over the wire: the request body we send, the stream chunks and error bodies we
//! read, in the shapes OpenAI-compatible servers use. Chunks are read borrowing from the event's
//! text, so a chunk costs one parse and (without escapes) no string copies.

use crate::serve::{Api, Request};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

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

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
    /// vLLM's per-chunk usage; servers that do not know it ignore it.
    continuous_usage_stats: bool,
}

#[derive(Serialize)]
pub struct Body<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<[Message<'a>; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<&'a str>,
    max_tokens: usize,
    temperature: f32,
    stream: bool,
    stream_options: StreamOptions,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignore_eos: bool,
}

impl<'a> Body<'a> {
    pub fn new(api: Api, model: Option<&'a str>, req: &'a Request) -> Self {
        let (messages, prompt) = match api {
            Api::Chat => (
                Some([Message {
                    role: "user",
                    content: &req.prompt,
                }]),
                None,
            ),
            Api::Completions => (None, Some(req.prompt.as_str())),
        };
        Body {
            model,
            messages,
            prompt,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
                continuous_usage_stats: true,
            },
            ignore_eos: req.ignore_eos,
        }
    }
}

/// A string that borrows from the input unless it had escapes (serde borrows a `Cow` only when
/// it is the field's whole type, not inside an `Option`).
#[derive(Deserialize)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

/// One `data:` line of a stream.
#[derive(Deserialize)]
pub struct Chunk<'a> {
    #[serde(default, borrow)]
    pub choices: Vec<Choice<'a>>,
    #[serde(default)]
    pub usage: Option<Usage>,
    /// An error the server reports inside the stream (vLLM, TGI).
    #[serde(default)]
    pub error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
pub struct Choice<'a> {
    #[serde(default, borrow)]
    pub delta: Option<Delta<'a>>,
    /// `/v1/completions` streams `text` instead of a delta.
    #[serde(default, borrow)]
    pub text: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub finish_reason: Option<Text<'a>>,
}

#[derive(Deserialize)]
pub struct Delta<'a> {
    #[serde(default, borrow)]
    pub content: Option<Text<'a>>,
    /// Reasoning models' thinking (vLLM `reasoning_content`, newer `reasoning`): output tokens
    /// too, so they count for TTFT and throughput.
    #[serde(default, borrow)]
    pub reasoning_content: Option<Text<'a>>,
    #[serde(default, borrow)]
    pub reasoning: Option<Text<'a>>,
}

#[derive(Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<usize>,
    #[serde(default)]
    pub completion_tokens: Option<usize>,
}

impl<'a> Choice<'a> {
    /// The output text this choice carries (content, else reasoning, else completion text).
    pub fn text(&self) -> &str {
        let delta = self.delta.as_ref().and_then(|d| {
            [&d.content, &d.reasoning_content, &d.reasoning]
                .into_iter()
                .flatten()
                .map(|t| t.0.as_ref())
                .find(|t| !t.is_empty())
        });
        delta
            .or(self.text.as_ref().map(|t| t.0.as_ref()))
            .unwrap_or("")
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
    #[derive(Deserialize)]
    struct Model {
        id: String,
    }
    #[derive(Deserialize)]
    struct List {
        data: Vec<Model>,
    }
    Ok(serde_json::from_str::<List>(body)?
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

    #[test]
    fn chunks_borrow_and_read_every_shape() {
        let c: Chunk = serde_json::from_str(
            r#"{"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}],
                "usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        )
        .unwrap();
        assert_eq!(c.choices[0].text(), "hi");
        assert!(matches!(
            c.choices[0]
                .delta
                .as_ref()
                .unwrap()
                .content
                .as_ref()
                .unwrap()
                .0,
            Cow::Borrowed(_)
        ));
        assert_eq!(c.usage.unwrap().completion_tokens, Some(2));
        let c: Chunk =
            serde_json::from_str(r#"{"choices":[{"text":"a\nb","finish_reason":"length"}]}"#)
                .unwrap();
        assert_eq!(c.choices[0].text(), "a\nb");
        assert_eq!(c.choices[0].finish_reason.as_ref().unwrap().0, "length");
        let c: Chunk = serde_json::from_str(
            r#"{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}]}"#,
        )
        .unwrap();
        assert_eq!(c.choices[0].text(), "think");
        let c: Chunk = serde_json::from_str(r#"{"choices":[],"usage":null}"#).unwrap();
        assert!(c.choices.is_empty() && c.usage.is_none());
    }

    #[test]
    fn the_body_asks_for_a_stream_with_usage() {
        let req = Request {
            prompt: "hello".into(),
            max_tokens: 7,
            ignore_eos: true,
            temperature: 0.0,
        };
        let v = serde_json::to_value(Body::new(Api::Chat, Some("m"), &req)).unwrap();
        assert_eq!(v["messages"][0]["content"], "hello");
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["continuous_usage_stats"], true);
        assert_eq!(v["ignore_eos"], true);
        assert_eq!(v["max_tokens"], 7);
        let req = Request {
            ignore_eos: false,
            ..req
        };
        let v = serde_json::to_value(Body::new(Api::Completions, None, &req)).unwrap();
        assert_eq!(v["prompt"], "hello");
        assert!(v.get("ignore_eos").is_none() && v.get("model").is_none());
    }
}
