//! Rendering a model's `tokenizer.chat_template` (Jinja) with minijinja.

use super::error::{EngineError, Result};
use super::tokenizer::Tokenizer;

pub use crate::protocol::serve::Turn;

/// The prompt as the model was trained to see it: one user turn, then the assistant's turn opened.
/// Without a template the text is returned as is.
pub fn apply(tokenizer: &Tokenizer, user: &str) -> Result<String> {
    apply_turns(tokenizer, &[Turn::user(user)])
}

/// A conversation as the model was trained to see it, the assistant's turn opened after it.
/// Without a template the messages' texts are joined by blank lines.
pub fn apply_turns(tokenizer: &Tokenizer, turns: &[Turn]) -> Result<String> {
    let Some(template) = &tokenizer.chat_template else {
        let texts: Vec<&str> = turns.iter().map(|t| t.content.as_str()).collect();
        return Ok(texts.join("\n\n"));
    };
    let mut env = minijinja::Environment::new();
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function(
        "raise_exception",
        |msg: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                msg,
            ))
        },
    );
    env.add_template("chat", template)
        .map_err(|e| EngineError::Template(e.to_string()))?;
    let tok = |id: Option<u32>| id.and_then(|i| tokenizer.token_text(i)).unwrap_or_default();
    let ctx = minijinja::context! {
        messages => turns,
        add_generation_prompt => true,
        bos_token => tok(tokenizer.bos),
        eos_token => tok(tokenizer.eos),
    };
    env.get_template("chat")
        .and_then(|t| t.render(ctx))
        .map_err(|e| EngineError::Template(e.to_string()))
}
