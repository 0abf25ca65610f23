//! The answers: one streamed chunk (or one whole answer) as a typed value that serializes itself
//! (our server and the mock) and deserializes borrowing from the event's text (the client), so a
//! chunk costs one parse and (without escapes) no string copies.

use crate::serve::Api;
use axum::body::Bytes;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// A string that borrows from the input unless it had escapes (serde borrows a `Cow` only when
/// it is the field's whole type, not inside an `Option`).
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(transparent)]
pub struct Text<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl<'a> From<&'a str> for Text<'a> {
    fn from(s: &'a str) -> Self {
        Text(Cow::Borrowed(s))
    }
}

/// One `data:` line of a stream, or a whole answer. The client reads only what it measures:
/// the head fields (`id`, `object`, `created`, `model`) are written, never read.
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Chunk<'a> {
    #[serde(skip_deserializing)]
    pub id: Text<'a>,
    #[serde(skip_deserializing)]
    pub object: Text<'a>,
    #[serde(skip_deserializing)]
    pub created: u64,
    #[serde(skip_deserializing)]
    pub model: Text<'a>,
    #[serde(default, borrow)]
    pub choices: Vec<Choice<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// An error the server reports inside the stream (vLLM, TGI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
    /// llama.cpp's own timings (on the last chunk): `cache_n` is the prompt tokens its cache
    /// served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timings: Option<Timings>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timings {
    #[serde(default)]
    pub cache_n: Option<usize>,
}

impl Chunk<'_> {
    /// Prompt tokens the server says its prefix cache served: OpenAI's
    /// `usage.prompt_tokens_details.cached_tokens`, else llama.cpp's `timings.cache_n`.
    pub fn cached_tokens(&self) -> Option<usize> {
        self.usage
            .and_then(|u| u.prompt_tokens_details)
            .and_then(|d| d.cached_tokens)
            .or(self.timings.and_then(|t| t.cache_n))
    }
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Choice<'a> {
    #[serde(skip_deserializing)]
    pub index: usize,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta<'a>>,
    /// A whole answer's message (a request that did not stream).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub message: Option<Delta<'a>>,
    /// `/v1/completions` streams `text` instead of a delta.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub text: Option<Text<'a>>,
    /// Written as `null` until the last chunk, as OpenAI does.
    #[serde(default, borrow)]
    pub finish_reason: Option<Text<'a>>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct Delta<'a> {
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub role: Option<Text<'a>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub content: Option<Text<'a>>,
    /// Reasoning models' thinking (vLLM `reasoning_content`, newer `reasoning`): output tokens
    /// too, so they count for TTFT and throughput.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<Text<'a>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Text<'a>>,
    /// Function calls, their names and arguments streamed in fragments: output tokens too, so a
    /// reply that calls a tool has a first token and a throughput like one that speaks.
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall<'a>>>,
}

/// One tool call's fragment in a delta (`id` and `type` are not read).
#[derive(Serialize, Deserialize, Debug, Default)]
pub struct ToolCall<'a> {
    #[serde(default)]
    pub index: usize,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCall<'a>>,
}

#[derive(Serialize, Deserialize, Debug, Default)]
pub struct FunctionCall<'a> {
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<'a>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<Text<'a>>,
}

impl<'a> Delta<'a> {
    /// The first non-empty fragment of a tool call: its arguments, else its name.
    fn tool_text(&self) -> Option<&str> {
        self.tool_calls
            .iter()
            .flatten()
            .filter_map(|c| c.function.as_ref())
            .flat_map(|f| [&f.arguments, &f.name])
            .flatten()
            .map(|t| t.0.as_ref())
            .find(|t| !t.is_empty())
    }
}

impl<'a> Delta<'a> {
    /// The assistant's words with the role named (a first chunk; our server names it on each).
    pub fn assistant(content: &'a str) -> Self {
        Delta {
            role: Some("assistant".into()),
            content: Some(content.into()),
            ..Delta::default()
        }
    }

    /// Words alone.
    pub fn content(content: &'a str) -> Self {
        Delta {
            content: Some(content.into()),
            ..Delta::default()
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: Option<usize>,
    #[serde(default)]
    pub completion_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_tokens: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PromptTokensDetails {
    #[serde(default)]
    pub cached_tokens: Option<usize>,
}

impl Usage {
    pub fn new(prompt: usize, completion: usize) -> Self {
        Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
            total_tokens: Some(prompt + completion),
            prompt_tokens_details: None,
        }
    }
}

impl<'a> Choice<'a> {
    /// The output text this choice carries (content, else reasoning, else a tool call's
    /// fragment, else completion text).
    pub fn text(&self) -> &str {
        let delta = self.delta.as_ref().and_then(|d| {
            [&d.content, &d.reasoning_content, &d.reasoning]
                .into_iter()
                .flatten()
                .map(|t| t.0.as_ref())
                .find(|t| !t.is_empty())
                .or_else(|| d.tool_text())
        });
        let message = self
            .message
            .as_ref()
            .and_then(|m| m.content.as_ref())
            .map(|t| t.0.as_ref());
        delta
            .or(self.text.as_ref().map(|t| t.0.as_ref()))
            .or(message)
            .unwrap_or("")
    }
}

/// What every answer of one request carries.
#[derive(Debug, Clone)]
pub struct Head {
    pub api: Api,
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Head {
    fn object(&self, chunk: bool) -> &'static str {
        match (self.api, chunk) {
            (Api::Chat, true) => "chat.completion.chunk",
            (Api::Chat, false) => "chat.completion",
            (Api::Completions, _) => "text_completion",
        }
    }

    fn wrap<'a>(&'a self, chunk: bool, choices: Vec<Choice<'a>>) -> Chunk<'a> {
        Chunk {
            id: self.id.as_str().into(),
            object: self.object(chunk).into(),
            created: self.created,
            model: self.model.as_str().into(),
            choices,
            ..Chunk::default()
        }
    }

    /// A streamed chunk: `delta` (for completions, its content as `text`) and the finish reason
    /// (on the last).
    pub fn chunk<'a>(&'a self, delta: Delta<'a>, finish: Option<&'a str>) -> Chunk<'a> {
        let choice = match self.api {
            Api::Chat => Choice {
                delta: Some(delta),
                ..Choice::default()
            },
            Api::Completions => Choice {
                text: Some(delta.content.unwrap_or_default()),
                ..Choice::default()
            },
        };
        self.wrap(
            true,
            vec![Choice {
                finish_reason: finish.map(Text::from),
                ..choice
            }],
        )
    }

    /// The streamed usage chunk (`stream_options.include_usage`): no choices.
    pub fn usage_chunk(&self, usage: Usage) -> Chunk<'_> {
        self.wrap(true, Vec::new()).with_usage(usage)
    }

    /// The whole answer of a request that did not stream.
    pub fn answer<'a>(&'a self, text: &'a str, finish: &'a str, usage: Usage) -> Chunk<'a> {
        let choice = match self.api {
            Api::Chat => Choice {
                message: Some(Delta::assistant(text)),
                ..Choice::default()
            },
            Api::Completions => Choice {
                text: Some(text.into()),
                ..Choice::default()
            },
        };
        let choice = Choice {
            finish_reason: Some(finish.into()),
            ..choice
        };
        self.wrap(false, vec![choice]).with_usage(usage)
    }
}

impl<'a> Chunk<'a> {
    pub fn with_usage(self, usage: Usage) -> Self {
        Chunk {
            usage: Some(usage),
            ..self
        }
    }

    /// The chunk as one SSE frame, `data: {…}\n\n`.
    pub fn frame(&self) -> Bytes {
        super::frame(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn head(api: Api) -> Head {
        Head {
            api,
            id: "x".into(),
            created: 7,
            model: "m".into(),
        }
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
    fn each_shape_as_written() {
        let v = |c: &Chunk| serde_json::to_value(c).unwrap();
        let chat = head(Api::Chat);
        assert_eq!(
            v(&chat.chunk(Delta::assistant("hi"), None)),
            json!({"id": "x", "object": "chat.completion.chunk", "created": 7, "model": "m",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"},
                                "finish_reason": null}]})
        );
        assert_eq!(
            v(&chat.chunk(Delta::default(), Some("stop")))["choices"][0],
            json!({"index": 0, "delta": {}, "finish_reason": "stop"})
        );
        assert_eq!(
            v(&chat.usage_chunk(Usage::new(3, 2))),
            json!({"id": "x", "object": "chat.completion.chunk", "created": 7, "model": "m",
                   "choices": [],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})
        );
        let a = v(&chat.answer("ok", "length", Usage::new(1, 1)));
        assert_eq!(a["object"], "chat.completion");
        assert_eq!(
            a["choices"][0],
            json!({"index": 0, "message": {"role": "assistant", "content": "ok"},
                   "finish_reason": "length"})
        );
        let text = head(Api::Completions);
        assert_eq!(
            v(&text.chunk(Delta::default(), Some("stop")))["choices"][0],
            json!({"index": 0, "text": "", "finish_reason": "stop"})
        );
        assert_eq!(
            v(&text.answer("ok", "stop", Usage::new(1, 1)))["object"],
            "text_completion"
        );
        let frame = chat.chunk(Delta::content("a\"b"), None).frame();
        let data = std::str::from_utf8(&frame).unwrap();
        assert!(data.starts_with("data: {") && data.ends_with("}\n\n"));
        let back: Chunk = serde_json::from_str(&data[6..]).unwrap();
        assert_eq!(back.choices[0].text(), "a\"b");
    }

    #[test]
    fn tool_call_fragments_are_output() {
        let first = r#"{"choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}}]}"#;
        let c: Chunk = serde_json::from_str(first).unwrap();
        assert_eq!(c.choices[0].text(), "get_weather");
        let next = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}}]}"#;
        let c: Chunk = serde_json::from_str(next).unwrap();
        assert_eq!(c.choices[0].text(), "{\"city\":");
    }
}
