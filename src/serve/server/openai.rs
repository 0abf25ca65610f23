//! The OpenAI wire format of `labtui serve`: request bodies of `/v1/chat/completions` and
//! `/v1/completions`, and the JSON of answers and SSE chunks.

use crate::protocol::serve::Api;
use crate::protocol::FinishReason;
use serde::Deserialize;
use serde_json::{json, Value};

/// The fields of a request body we read; the rest is ignored, as OpenAI-compatible servers do.
#[derive(Debug, Clone, Deserialize)]
pub struct Body {
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
    #[serde(default)]
    pub prompt: Option<Value>,
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub seed: Option<u64>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub ignore_eos: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub content: Value,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Text of a message's content: a string, or the text parts of an array.
fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

impl Body {
    /// The prompt text: for chat, the user messages' text (our chat template takes one user
    /// turn); for completions, the prompt string (or the first of a list).
    pub fn prompt_text(&self, api: Api) -> Result<String, String> {
        match api {
            Api::Chat => {
                let ms = self
                    .messages
                    .as_ref()
                    .ok_or("`messages` is required on /v1/chat/completions")?;
                let user: Vec<String> = ms
                    .iter()
                    .filter(|m| m.role == "user")
                    .map(|m| text_of(&m.content))
                    .collect();
                if user.is_empty() {
                    return Err("`messages` holds no user message".into());
                }
                Ok(user.join("\n"))
            }
            Api::Completions => match &self.prompt {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
                    Ok(a[0].as_str().unwrap_or_default().to_string())
                }
                Some(_) => Err("`prompt` must be one string".into()),
                None => Err("`prompt` is required on /v1/completions".into()),
            },
        }
    }

    pub fn max_tokens(&self, default: usize) -> usize {
        self.max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(default)
            .max(1)
    }

    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }
}

pub fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Eos | FinishReason::Stopped => "stop",
        FinishReason::MaxTokens | FinishReason::ContextFull => "length",
    }
}

pub fn usage(prompt: usize, completion: usize) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    })
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

    fn wrap(&self, chunk: bool, choices: Value, usage: Option<Value>) -> Value {
        let mut v = json!({
            "id": self.id,
            "object": self.object(chunk),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        v
    }

    /// A streamed chunk: `text` (when some) and the finish reason (on the last).
    pub fn chunk(&self, text: Option<&str>, finish: Option<&str>) -> Value {
        let choice = match self.api {
            Api::Chat => {
                let delta = match text {
                    Some(t) => json!({"role": "assistant", "content": t}),
                    None => json!({}),
                };
                json!({"index": 0, "delta": delta, "finish_reason": finish})
            }
            Api::Completions => {
                json!({"index": 0, "text": text.unwrap_or(""), "finish_reason": finish})
            }
        };
        self.wrap(true, json!([choice]), None)
    }

    /// The streamed usage chunk (`stream_options.include_usage`): no choices.
    pub fn usage_chunk(&self, prompt: usize, completion: usize) -> Value {
        self.wrap(true, json!([]), Some(usage(prompt, completion)))
    }

    /// The whole answer of a request that did not stream.
    pub fn answer(&self, text: &str, finish: &str, prompt: usize, completion: usize) -> Value {
        let choice = match self.api {
            Api::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
            }),
            Api::Completions => json!({"index": 0, "text": text, "finish_reason": finish}),
        };
        self.wrap(false, json!([choice]), Some(usage(prompt, completion)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chat_and_completion_bodies() {
        let b: Body = serde_json::from_value(json!({
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}
        }))
        .unwrap();
        assert_eq!(b.prompt_text(Api::Chat).unwrap(), "hi");
        assert_eq!((b.max_tokens(100), b.include_usage()), (5, true));
        assert!(b.prompt_text(Api::Completions).is_err());
        let b: Body = serde_json::from_value(json!({"prompt": ["once"]})).unwrap();
        assert_eq!(b.prompt_text(Api::Completions).unwrap(), "once");
        assert_eq!(b.max_tokens(100), 100);
    }
}
