//! A `tokenizers::Tokenizer` built from GGUF metadata (`tokenizer.ggml.*`), with the file's
//! special tokens, end-of-generation ids and chat template. Two kinds of vocabulary: GPT-2's
//! byte-level BPE with merges (`gpt2`: Qwen2, Llama 3) and SentencePiece's BPE with scores and
//! byte fallback (`llama`: Gemma, Llama 2), whose merges are the scores' order, as Hugging Face's
//! converter derives them.

use super::config::Meta;
use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::BPE;
use tokenizers::normalizers::{Prepend, Replace};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, SplitDelimiterBehavior};

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

/// SentencePiece's stand-in for a space.
const SPM_SPACE: &str = "\u{2581}";

/// Gemma's turn format, for a Gemma file without a `tokenizer.chat_template` (Gemma 3 270M's GGUF
/// has none): Hugging Face's template for Gemma 3, a system turn folded into the first user turn.
const GEMMA_TEMPLATE: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\n\n' %}{% set loop_messages = messages[1:] %}{% else %}{% set first = '' %}{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}<start_of_turn>{{ role }}\n{% if loop.first %}{{ first }}{% endif %}{{ message['content'] | trim }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

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

#[derive(Clone)]
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

/// The end-of-turn and end-of-text tokens a vocabulary has, by their usual names (Qwen, Llama 3,
/// Gemma, Phi).
pub fn named_eog(inner: &tokenizers::Tokenizer) -> Vec<u32> {
    [
        "<|im_end|>",
        "<|endoftext|>",
        "<|eot_id|>",
        "<end_of_turn>",
        "<|end|>",
    ]
    .iter()
    .filter_map(|name| inner.token_to_id(name))
    .collect()
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

/// Floats of a GGUF array (`tokenizer.ggml.scores`).
fn floats(values: &[Value], what: &str) -> Result<Vec<f32>> {
    values
        .iter()
        .map(|v| match v {
            Value::F32(x) => Ok(*x),
            Value::F64(x) => Ok(*x as f32),
            _ => Err(EngineError::Tokenizer(format!(
                "{what} holds a non-float value"
            ))),
        })
        .collect()
}

/// SentencePiece BPE merges from the pieces' scores: every split of a piece into two pieces of
/// the vocabulary, the best-scored result first (Hugging Face's `SentencePieceExtractor`, which
/// llama.cpp's score-driven merging agrees with).
fn merges_from_scores(tokens: &[String], scores: &[f32]) -> Vec<(String, String)> {
    let index: ahash::AHashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(usize, usize, usize)> = Vec::new();
    for (id, t) in tokens.iter().enumerate() {
        for (at, _) in t.char_indices().skip(1) {
            if let (Some(&l), Some(&r)) = (index.get(&t[..at]), index.get(&t[at..])) {
                merges.push((id, l, r));
            }
        }
    }
    let score = |id: usize| scores.get(id).copied().unwrap_or(f32::NEG_INFINITY);
    merges.sort_by(|a, b| score(b.0).total_cmp(&score(a.0)).then(a.cmp(b)));
    merges
        .into_iter()
        .map(|(_, l, r)| (tokens[l].clone(), tokens[r].clone()))
        .collect()
}

/// GPT-2's byte-level BPE (`tokenizer.ggml.model` = gpt2).
fn byte_level(meta: &Meta, tokens: &[String]) -> Result<tokenizers::Tokenizer> {
    let pre = meta.string("tokenizer.ggml.pre").unwrap_or("default");
    let regex = pre_regex(pre).ok_or_else(|| {
        EngineError::Tokenizer(format!(
            "{}: pre-tokenizer {pre:?} is not supported (supported: qwen2, llama-bpe, gpt2)",
            meta.path
        ))
    })?;
    let merges = strings(
        meta.array("tokenizer.ggml.merges")?,
        "tokenizer.ggml.merges",
    )?;
    let vocab = vocab_map(tokens);
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
    Ok(inner)
}

/// Each token's id: its index in the file's list.
fn vocab_map(tokens: &[String]) -> ahash::AHashMap<String, u32> {
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect()
}

/// SentencePiece's BPE (`tokenizer.ggml.model` = llama): spaces become `▁`, merges follow the
/// scores, and a character outside the vocabulary is spelled in byte tokens (`<0x0A>`).
fn sentencepiece(meta: &Meta, tokens: &[String]) -> Result<tokenizers::Tokenizer> {
    let scores = floats(
        meta.array("tokenizer.ggml.scores")?,
        "tokenizer.ggml.scores",
    )?;
    let vocab = vocab_map(tokens);
    let unk = meta
        .usize("tokenizer.ggml.unknown_token_id")
        .ok()
        .and_then(|i| tokens.get(i))
        .cloned()
        .unwrap_or_else(|| "<unk>".to_string());
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges_from_scores(tokens, &scores))
        .unk_token(unk)
        .fuse_unk(true)
        .byte_fallback(true)
        .build()
        .map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    let space = Replace::new(" ", SPM_SPACE).map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    let unspace =
        Replace::new(SPM_SPACE, " ").map_err(|e| EngineError::Tokenizer(e.to_string()))?;
    // llama.cpp's default for this kind is a leading space; Gemma's files turn it off.
    let prefix = meta.bool_or("tokenizer.ggml.add_space_prefix", true);
    let mut decoders: Vec<DecoderWrapper> = vec![
        unspace.into(),
        ByteFallback::default().into(),
        Fuse::default().into(),
    ];
    if prefix {
        inner.with_normalizer(Some(tokenizers::normalizers::Sequence::new(vec![
            Prepend::new(SPM_SPACE.to_string()).into(),
            space.into(),
        ])));
        decoders.push(Strip::new(' ', 1, 0).into());
    } else {
        inner.with_normalizer(Some(space));
    }
    inner.with_decoder(Some(tokenizers::decoders::sequence::Sequence::new(
        decoders,
    )));
    Ok(inner)
}

impl Tokenizer {
    pub fn from_gguf(meta: &Meta) -> Result<Self> {
        let tokens = strings(
            meta.array("tokenizer.ggml.tokens")?,
            "tokenizer.ggml.tokens",
        )?;
        let types = meta
            .array("tokenizer.ggml.token_type")
            .map(|a| token_types(a))
            .unwrap_or_default();
        let mut inner = match meta.string("tokenizer.ggml.model")? {
            "gpt2" => byte_level(meta, &tokens)?,
            "llama" => sentencepiece(meta, &tokens)?,
            model => {
                return Err(EngineError::Tokenizer(format!(
                "{}: tokenizer model {model:?} is not supported yet (supported: gpt2 byte-level \
                     BPE, llama SentencePiece BPE)",
                meta.path
            )))
            }
        };

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
        eog.extend(named_eog(&inner));
        eog.sort_unstable();
        eog.dedup();
        Ok(Self {
            inner,
            eog,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            add_bos: meta.bool_or("tokenizer.ggml.add_bos_token", false),
            chat_template: match meta.string("tokenizer.chat_template") {
                Ok(t) => Some(t.to_string()),
                Err(_)
                    if meta
                        .string("general.architecture")
                        .is_ok_and(|a| a.starts_with("gemma")) =>
                {
                    Some(GEMMA_TEMPLATE.to_string())
                }
                Err(_) => None,
            },
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
