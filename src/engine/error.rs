//! The engine's error type: what went wrong, said so a person can act on it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("model file {path} not found{hint}")]
    NotFound { path: PathBuf, hint: String },
    #[error("model {spec:?} not found: {hint}")]
    UnknownModel { spec: String, hint: String },
    #[error("{path} is not a GGUF file ({detail})")]
    NotGguf { path: String, detail: String },
    #[error("{path} is truncated or corrupt: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("{path}: architecture {arch:?} is not supported (supported: {supported})")]
    UnsupportedArch {
        path: String,
        arch: String,
        supported: String,
    },
    #[error("{path}: metadata key {key} is missing or has the wrong type")]
    Metadata { path: String, key: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("the prompt is empty: give some text to start from")]
    EmptyPrompt,
    #[error("the prompt is {tokens} tokens but the context holds {context}: shorten it")]
    PromptTooLong { tokens: usize, context: usize },
    #[error("chat template: {0} (use --raw to send the prompt untemplated)")]
    Template(String),
    #[error("draft model {draft} cannot draft for {target}: {why}")]
    DraftMismatch {
        draft: String,
        target: String,
        why: String,
    },
    #[error("{0}")]
    Setting(String),
    #[error("Hugging Face Hub: {0}")]
    Hub(String),
    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", first_line(.0))]
    Candle(#[from] candle_core::Error),
}

/// The message of an error without the backtrace candle appends when RUST_BACKTRACE is set.
pub fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

pub type Result<T> = std::result::Result<T, EngineError>;
