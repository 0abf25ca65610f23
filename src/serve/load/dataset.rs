//! Prompts from a file: plain lines, JSON Lines (a prompt or a conversation per line, with an
//! output length where the line gives one) or a ShareGPT JSON array (every turn up to the last
//! user turn that was answered, and that answer's length as the output length).

use crate::protocol::serve::Turn;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// Where prompts come from.
/// A request's messages: the turns before the last user message, and that message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversation {
    pub context: Vec<Turn>,
    pub prompt: String,
    /// The output length the data gives (a JSONL line's `max_tokens`, `output_tokens` or
    /// `output_tokens_count`; a ShareGPT reply's length).
    pub max_tokens: Option<usize>,
}

impl From<String> for Conversation {
    fn from(prompt: String) -> Self {
        Conversation {
            context: Vec::new(),
            prompt,
            max_tokens: None,
        }
    }
}

impl From<&str> for Conversation {
    fn from(prompt: &str) -> Self {
        prompt.to_string().into()
    }
}

/// Tokens of a text by the rule of thumb of four characters a token, for lengths a file gives
/// as text when no tokenizer was named.
pub fn estimate(text: &str) -> usize {
    text.chars().count().div_ceil(4).max(1)
}

/// Prompts from a file: JSON Lines (each line an object with `prompt`, or with `messages` whose
/// last user message is taken, or a JSON string), else one prompt per non-empty text line.
pub fn read_prompts(path: &Path, count: &dyn Fn(&str) -> usize) -> Result<Vec<Conversation>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading prompts from {}", path.display()))?;
    if text.trim_start().starts_with('[') {
        return sharegpt(path, &text, count);
    }
    let jsonl = text.trim_start().starts_with('{') || text.trim_start().starts_with('"');
    let mut prompts = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if !jsonl {
            prompts.push(line.into());
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("{}:{}: not a JSON line", path.display(), i + 1))?;
        let p = conversation_of(&v).with_context(|| {
            format!(
                "{}:{}: a line needs a `prompt` string or `messages` with a user message",
                path.display(),
                i + 1
            )
        })?;
        prompts.push(p);
    }
    if prompts.is_empty() {
        bail!("{} holds no prompts", path.display());
    }
    Ok(prompts)
}

/// A JSON line's conversation: a string, `prompt`, or `messages` (every message before the last
/// user one kept as context, the system's and earlier turns').
fn conversation_of(v: &serde_json::Value) -> Option<Conversation> {
    if let Some(s) = v.as_str() {
        return Some(s.into());
    }
    // The output length a line gives, under the names the peers' datasets use.
    let max_tokens = [
        "max_tokens",
        "output_tokens",
        "output_tokens_count",
        "output_len",
    ]
    .iter()
    .find_map(|k| v.get(*k)?.as_u64())
    .map(|n| n.max(1) as usize);
    if let Some(s) = v.get("prompt").and_then(|p| p.as_str()) {
        return Some(Conversation {
            max_tokens,
            ..s.into()
        });
    }
    let turns: Vec<Turn> = v
        .get("messages")?
        .as_array()?
        .iter()
        .filter_map(|m| {
            Some(Turn {
                role: m.get("role")?.as_str()?.to_string(),
                content: m.get("content")?.as_str()?.to_string(),
            })
        })
        .collect();
    let last_user = turns.iter().rposition(|t| t.role == "user")?;
    Some(Conversation {
        prompt: turns[last_user].content.clone(),
        context: turns[..last_user].to_vec(),
        max_tokens,
    })
}

/// The role a ShareGPT `from` names.
fn role(from: &str) -> Option<&'static str> {
    Some(match from {
        "human" | "user" => "user",
        "gpt" | "assistant" | "chatgpt" | "bard" | "bing" | "model" => "assistant",
        "system" => "system",
        _ => return None,
    })
}

/// A ShareGPT array: each entry's `conversations` up to its last answered user turn, the answer's
/// length (by `count`) its output length. Entries without an answered user turn are skipped.
fn sharegpt(path: &Path, text: &str, count: &dyn Fn(&str) -> usize) -> Result<Vec<Conversation>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .with_context(|| format!("{}: not a JSON array (ShareGPT)", path.display()))?;
    let entries = v.as_array().context("not an array")?;
    let mut out = Vec::new();
    for e in entries {
        let turns: Vec<Turn> = e
            .get("conversations")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
            .filter_map(|t| {
                Some(Turn {
                    role: role(t.get("from")?.as_str()?)?.to_string(),
                    content: t.get("value")?.as_str()?.to_string(),
                })
            })
            .collect();
        let answered = (1..turns.len())
            .rev()
            .find(|&i| turns[i].role == "assistant" && turns[i - 1].role == "user");
        if let Some(i) = answered {
            out.push(Conversation {
                context: turns[..i - 1].to_vec(),
                prompt: turns[i - 1].content.clone(),
                max_tokens: Some(count(&turns[i].content).max(1)),
            });
        }
    }
    if out.is_empty() {
        bail!(
            "{}: no entry has `conversations` with a human turn and its reply (ShareGPT)",
            path.display()
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_files_in_text_and_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let txt = dir.path().join("p.txt");
        std::fs::write(&txt, "first\n\n second \n").unwrap();
        let prompts = |p: &Path| -> Vec<String> {
            read_prompts(p, &estimate)
                .unwrap()
                .into_iter()
                .map(|c| c.prompt)
                .collect()
        };
        assert_eq!(prompts(&txt), vec!["first", "second"]);
        let jl = dir.path().join("p.jsonl");
        std::fs::write(
            &jl,
            "{\"prompt\":\"a\"}\n{\"messages\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"b\"}]}\n\"c\"\n",
        )
        .unwrap();
        assert_eq!(prompts(&jl), vec!["a", "b", "c"]);
        // The system message and earlier turns are kept as the request's context.
        let second = &read_prompts(&jl, &estimate).unwrap()[1];
        assert_eq!(second.context.len(), 1);
        assert_eq!(
            (
                second.context[0].role.as_str(),
                second.context[0].content.as_str()
            ),
            ("system", "s")
        );
        std::fs::write(&jl, "{\"prompt\":\"a\"}\n{\"nope\":1}\n").unwrap();
        let e = format!("{:#}", read_prompts(&jl, &estimate).unwrap_err());
        assert!(e.contains(":2:"), "{e}");
        std::fs::write(&txt, "\n\n").unwrap();
        assert!(read_prompts(&txt, &estimate).is_err());
    }

    #[test]
    fn output_lengths_come_from_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let jl = dir.path().join("p.jsonl");
        std::fs::write(
            &jl,
            "{\"prompt\":\"a\",\"output_tokens_count\":64}\n{\"prompt\":\"b\"}\n",
        )
        .unwrap();
        let c = read_prompts(&jl, &estimate).unwrap();
        assert_eq!((c[0].max_tokens, c[1].max_tokens), (Some(64), None));
        let sg = dir.path().join("sharegpt.json");
        std::fs::write(
            &sg,
            r#"[
              {"id": "1", "conversations": [
                {"from": "system", "value": "Be brief."},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello there"},
                {"from": "human", "value": "Name a prime"},
                {"from": "gpt", "value": "Seven is one"},
                {"from": "human", "value": "unanswered"}]},
              {"id": "2", "conversations": [{"from": "gpt", "value": "alone"}]},
              {"id": "3", "conversations": [
                {"from": "human", "value": "Q"}, {"from": "gpt", "value": "twelve chars"}]}
            ]"#,
        )
        .unwrap();
        let words = |t: &str| t.split_whitespace().count();
        let c = read_prompts(&sg, &words).unwrap();
        assert_eq!(c.len(), 2, "the entry with no human turn is skipped");
        assert_eq!(c[0].prompt, "Name a prime");
        assert_eq!(
            c[0].context
                .iter()
                .map(|t| t.role.as_str())
                .collect::<Vec<_>>(),
            ["system", "user", "assistant"]
        );
        assert_eq!(c[0].max_tokens, Some(3));
        assert_eq!(read_prompts(&sg, &estimate).unwrap()[1].max_tokens, Some(3));
        std::fs::write(&sg, "[{\"conversations\": []}]").unwrap();
        assert!(format!("{:#}", read_prompts(&sg, &estimate).unwrap_err()).contains("ShareGPT"));
    }
}
