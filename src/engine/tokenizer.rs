//! A `tokenizers::Tokenizer` built from GGUF metadata (`tokenizer.ggml.*`), with the file's
//! special tokens, end-of-generation ids and chat template.

use super::config::Meta;
use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// Pre-tokenizer regexes, as llama.cpp uses them for each `tokenizer.ggml.pre`.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const GPT2_REGEX: &str =
    r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

fn pre_regex(pre: &str) -> Option<&'static str> {
    match pre {
        "qwen2" => Some(QWEN2_REGEX),
        "llama-bpe" | "llama3" | "smaug-bpe" => Some(LLAMA3_REGEX),
        "gpt2" | "default" | "gpt-2" => Some(GPT2_REGEX),
        _ => None,
    }
}

pub struct Tokenizer {
    pub inner: tokenizers::Tokenizer,
    /// Ids that end a generation (EOS, EOT and the end-of-turn tokens the vocabulary has).
    pub eog: Vec<u32>,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    pub chat_template: Option<String>,
    pub vocab_size: usize,
}

fn strings(values: &[Value], what: &str) -> Result<Vec<String>> {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            _ => Err(EngineError::Tokenizer(format!(
                "{what} holds a non-string value"
            ))),
        })
        .collect()
}

fn token_types(values: &[Value]) -> Vec<i32> {
    values
        .iter()
        .map(|v| match v {
            Value::I32(x) => *x,
            Value::U32(x) => *x as i32,
            Value::I64(x) => *x as i32,
            Value::U8(x) => *x as i32,
            _ => 1,
        })
        .collect()
}

impl Tokenizer {
    pub fn from_gguf(meta: &Meta) -> Result<Self> {
        let model = meta.string("tokenizer.ggml.model")?;
        if model != "gpt2" {
            return Err(EngineError::Tokenizer(format!(
                "{}: tokenizer model {model:?} is not supported yet (supported: gpt2 byte-level BPE)",
                meta.path
            )));
        }
        let pre = meta.string("tokenizer.ggml.pre").unwrap_or("default");
        let regex = pre_regex(pre).ok_or_else(|| {
            EngineError::Tokenizer(format!(
                "{}: pre-tokenizer {pre:?} is not supported (supported: qwen2, llama-bpe, gpt2)",
                meta.path
            ))
        })?;
        let tokens = strings(
            meta.array("tokenizer.ggml.tokens")?,
            "tokenizer.ggml.tokens",
        )?;
        let merges = strings(
            meta.array("tokenizer.ggml.merges")?,
            "tokenizer.ggml.merges",
        )?;
        let types = meta
            .array("tokenizer.ggml.token_type")
            .map(|a| token_types(a))
            .unwrap_or_default();

        let vocab: ahash::AHashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges: Vec<(String, String)> = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| EngineError::Tokenizer(format!("merge {m:?} is not two tokens")))
            })
            .collect::<Result<_>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, merges)
            .ignore_merges(matches!(pre, "llama-bpe" | "llama3"))
            .build()
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        let mut inner = tokenizers::Tokenizer::new(bpe);
        let split = Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        inner.with_pre_tokenizer(Some(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, false, false).into(),
        ])));
        inner.with_decoder(Some(ByteLevelDecoder::default()));

        let special: Vec<AddedToken> = tokens
            .iter()
            .zip(types.iter())
            .filter(|(_, t)| **t == TOKEN_CONTROL || **t == TOKEN_USER_DEFINED)
            .map(|(s, t)| AddedToken::from(s.clone(), *t == TOKEN_CONTROL).normalized(false))
            .collect();
        inner.add_special_tokens(&special);

        // A special id must name a token: it is looked up in the embedding.
        for key in [
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
            "tokenizer.ggml.eot_token_id",
        ] {
            if let Some(id) = meta.usize(key).ok().filter(|&id| id >= tokens.len()) {
                return Err(EngineError::Corrupt {
                    path: meta.path.to_string(),
                    detail: format!(
                        "{key} = {id} is out of range (0 to {}, the last token)",
                        tokens.len().saturating_sub(1)
                    ),
                });
            }
        }
        let id = |key: &str| meta.usize(key).ok().map(|x| x as u32);
        let mut eog: Vec<u32> = [
            id("tokenizer.ggml.eos_token_id"),
            id("tokenizer.ggml.eot_token_id"),
        ]
        .into_iter()
        .flatten()
        .collect();
        for name in [
            "<|im_end|>",
            "<|endoftext|>",
            "<|eot_id|>",
            "<end_of_turn>",
            "<|end|>",
        ] {
            if let Some(i) = inner.token_to_id(name) {
                eog.push(i);
            }
        }
        eog.sort_unstable();
        eog.dedup();
        Ok(Self {
            inner,
            eog,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos: meta.bool_or("tokenizer.ggml.add_bos_token", false),
            chat_template: meta
                .string("tokenizer.chat_template")
                .ok()
                .map(str::to_string),
            vocab_size: tokens.len(),
        })
    }

    /// Token ids of `text`, special tokens parsed, no BOS added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode_fast(text, false)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Ids of a prompt for the model: BOS first when the file asks for it and the text lacks it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.encode(text)?;
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))
    }

    /// The vocabulary entry of one id, special tokens shown as written.
    pub fn piece(&self, id: u32) -> String {
        self.inner.decode(&[id], false).unwrap_or_default()
    }

    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }
}
