//! Request bodies of `/v1/chat/completions` and `/v1/completions`: the one our client sends
//! ([`SentBody`], borrowed) and the one our server reads ([`ReceivedBody`], lenient).

use crate::engine::chat::Turn;
use crate::serve::{Api, Request};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Serialize)]
struct SentMessage<'a> {
    role: &'a str,
    content: &'a str,
}

#[derive(Serialize)]
struct SentStreamOptions {
    include_usage: bool,
    /// vLLM's per-chunk usage; servers that do not know it ignore it.
    continuous_usage_stats: bool,
}

/// What our client asks: a stream with usage.
#[derive(Serialize)]
pub struct SentBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<SentMessage<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt: Option<std::borrow::Cow<'a, str>>,
    max_tokens: usize,
    temperature: f32,
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<SentStreamOptions>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    ignore_eos: bool,
}

impl<'a> SentBody<'a> {
    pub fn new(api: Api, model: Option<&'a str>, req: &'a Request) -> Self {
        let (messages, prompt) = match api {
            Api::Chat => {
                let turns = req.context.iter().map(|t| SentMessage {
                    role: &t.role,
                    content: &t.content,
                });
                let last = SentMessage {
                    role: "user",
                    content: &req.prompt,
                };
                (Some(turns.chain([last]).collect()), None)
            }
            // A completion has one text: the conversation's, a blank line between messages.
            Api::Completions if req.context.is_empty() => {
                (None, Some(std::borrow::Cow::Borrowed(req.prompt.as_str())))
            }
            Api::Completions => {
                let mut text: Vec<&str> = req.context.iter().map(|t| t.content.as_str()).collect();
                text.push(&req.prompt);
                (None, Some(std::borrow::Cow::Owned(text.join("\n\n"))))
            }
        };
        SentBody {
            model,
            messages,
            prompt,
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            stream: true,
            stream_options: Some(SentStreamOptions {
                include_usage: true,
                continuous_usage_stats: true,
            }),
            ignore_eos: req.ignore_eos,
        }
    }
}

impl SentBody<'_> {
    /// The same request, answered whole (`stream: false`, no stream options).
    pub fn whole(mut self) -> Self {
        self.stream = false;
        self.stream_options = None;
        self
    }
}

/// The fields of a request body our server reads; the rest is ignored, as OpenAI-compatible
/// servers do.
#[derive(Debug, Clone, Deserialize)]
pub struct ReceivedBody {
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
    /// Choices per request: our server makes one.
    pub n: Option<usize>,
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
    /// vLLM's: usage (prompt tokens, completion tokens so far) on every chunk.
    #[serde(default)]
    pub continuous_usage_stats: bool,
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

impl ReceivedBody {
    /// The conversation of a chat request: every message in order (a `developer` message as
    /// a system one), at least one from the user.
    pub fn chat_turns(&self) -> Result<Vec<Turn>, String> {
        let ms = self
            .messages
            .as_ref()
            .ok_or("`messages` is required on /v1/chat/completions")?;
        if !ms.iter().any(|m| m.role == "user") {
            return Err("`messages` holds no user message".into());
        }
        Ok(ms
            .iter()
            .map(|m| {
                let role = match m.role.as_str() {
                    "developer" => "system",
                    r => r,
                };
                Turn::new(role, &text_of(&m.content))
            })
            .collect())
    }

    /// The prompt text: for chat, the user messages' text; for completions, the prompt string
    /// (or the first of a list).
    pub fn prompt_text(&self, api: Api) -> Result<String, String> {
        match api {
            Api::Chat => {
                let user: Vec<String> = self
                    .chat_turns()?
                    .into_iter()
                    .filter(|t| t.role == "user")
                    .map(|t| t.content)
                    .collect();
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

    pub fn continuous_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.continuous_usage_stats)
    }

    /// Values out of the range this server (and OpenAI's API) accepts: the message names the
    /// field and the range.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(t) = self.temperature.filter(|t| !(0.0..=2.0).contains(t)) {
            return Err(format!("`temperature` must be between 0 and 2 (got {t})"));
        }
        if let Some(p) = self.top_p.filter(|p| !(*p > 0.0 && *p <= 1.0)) {
            return Err(format!("`top_p` must be above 0 and at most 1 (got {p})"));
        }
        if let Some(n) = self.n.filter(|n| *n != 1) {
            return Err(format!(
                "`n` must be 1: this server makes one choice per request (got {n})"
            ));
        }
        if let Some(0) = self.top_k {
            return Err("`top_k` must be at least 1 (got 0)".into());
        }
        if self.max_completion_tokens.or(self.max_tokens) == Some(0) {
            return Err("`max_tokens` must be at least 1 (got 0)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sent_body_asks_for_a_stream_with_usage() {
        let req = Request {
            context: Vec::new(),
            prompt: "hello".into(),
            max_tokens: 7,
            ignore_eos: true,
            temperature: 0.0,
        };
        let v = serde_json::to_value(SentBody::new(Api::Chat, Some("m"), &req)).unwrap();
        assert_eq!(v["messages"][0]["content"], "hello");
        assert_eq!(v["stream"], true);
        assert_eq!(v["stream_options"]["include_usage"], true);
        assert_eq!(v["stream_options"]["continuous_usage_stats"], true);
        assert_eq!(v["ignore_eos"], true);
        assert_eq!(v["max_tokens"], 7);
        let req = Request {
            context: Vec::new(),
            ignore_eos: false,
            ..req
        };
        let v = serde_json::to_value(SentBody::new(Api::Completions, None, &req)).unwrap();
        assert_eq!(v["prompt"], "hello");
        assert!(v.get("ignore_eos").is_none() && v.get("model").is_none());
    }

    #[test]
    fn reads_chat_and_completion_bodies() {
        let b: ReceivedBody = serde_json::from_value(json!({
            "messages": [{"role": "system", "content": "be brief"},
                         {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            "max_tokens": 5, "stream": true, "stream_options": {"include_usage": true}
        }))
        .unwrap();
        assert_eq!(b.prompt_text(Api::Chat).unwrap(), "hi");
        assert_eq!(
            b.chat_turns().unwrap(),
            [Turn::system("be brief"), Turn::user("hi")]
        );
        assert_eq!((b.max_tokens(100), b.include_usage()), (5, true));
        assert!(b.prompt_text(Api::Completions).is_err());
        let b: ReceivedBody = serde_json::from_value(json!({"prompt": ["once"]})).unwrap();
        assert_eq!(b.prompt_text(Api::Completions).unwrap(), "once");
        assert_eq!(b.max_tokens(100), 100);
    }

    #[test]
    fn out_of_range_values_are_refused_by_name() {
        let body = |extra: &str| -> ReceivedBody {
            serde_json::from_str(&format!(r#"{{"prompt": "hi"{extra}}}"#)).unwrap()
        };
        assert_eq!(body("").validate(), Ok(()));
        assert_eq!(
            body(r#", "temperature": 0.7, "n": 1, "top_p": 1"#).validate(),
            Ok(())
        );
        for (extra, field) in [
            (
                r#", "temperature": -1"#,
                "`temperature` must be between 0 and 2 (got -1)",
            ),
            (r#", "temperature": 2.5"#, "`temperature`"),
            (r#", "n": 5"#, "`n` must be 1"),
            (r#", "top_p": 0"#, "`top_p`"),
            (r#", "top_k": 0"#, "`top_k`"),
            (r#", "max_tokens": 0"#, "`max_tokens`"),
        ] {
            let e = body(extra).validate().unwrap_err();
            assert!(e.contains(field), "{extra}: {e}");
        }
    }

    #[test]
    fn a_conversation_is_sent_whole() {
        let req = Request {
            context: vec![
                crate::protocol::serve::Turn {
                    role: "system".into(),
                    content: "be brief".into(),
                },
                crate::protocol::serve::Turn {
                    role: "assistant".into(),
                    content: "hello".into(),
                },
            ],
            prompt: "and now?".into(),
            max_tokens: 4,
            ignore_eos: false,
            temperature: 0.0,
        };
        let chat = serde_json::to_value(SentBody::new(Api::Chat, None, &req)).unwrap();
        let roles: Vec<&str> = chat["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "assistant", "user"]);
        assert_eq!(chat["messages"][2]["content"], "and now?");
        let text = serde_json::to_value(SentBody::new(Api::Completions, None, &req)).unwrap();
        assert_eq!(text["prompt"], "be brief\n\nhello\n\nand now?");
    }
}
