//! Model hyper-parameters read from GGUF metadata.

use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file::{Content, Value};

/// The architectures whose forward pass we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Qwen2,
    Llama,
}

impl Arch {
    pub const SUPPORTED: &'static str = "qwen2, llama";

    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
        }
    }
}

/// How RoPE pairs the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (i, i + d/2): GPT-NeoX, Qwen2.
    Halves,
    /// Pairs (2i, 2i + 1): llama.cpp's llama layout.
    Interleaved,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub arch: Arch,
    pub name: String,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    pub context_length: usize,
    pub rms_eps: f64,
    pub rope_base: f32,
    pub rope_style: RopeStyle,
    pub vocab: usize,
}

/// Typed reads of GGUF metadata with errors that name the file and the key.
pub struct Meta<'a> {
    pub content: &'a Content,
    pub path: &'a str,
}

impl<'a> Meta<'a> {
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.content.metadata.get(key)
    }

    fn missing(&self, key: &str) -> EngineError {
        EngineError::Metadata {
            path: self.path.to_string(),
            key: key.to_string(),
        }
    }

    pub fn usize(&self, key: &str) -> Result<usize> {
        let v = self.get(key).ok_or_else(|| self.missing(key))?;
        let n = match v {
            Value::U8(x) => *x as u64,
            Value::U16(x) => *x as u64,
            Value::U32(x) => *x as u64,
            Value::U64(x) => *x,
            Value::I32(x) if *x >= 0 => *x as u64,
            Value::I64(x) if *x >= 0 => *x as u64,
            _ => return Err(self.missing(key)),
        };
        Ok(n as usize)
    }

    pub fn f32(&self, key: &str) -> Result<f32> {
        match self.get(key) {
            Some(Value::F32(x)) => Ok(*x),
            Some(Value::F64(x)) => Ok(*x as f32),
            _ => Err(self.missing(key)),
        }
    }

    pub fn string(&self, key: &str) -> Result<&'a str> {
        match self.get(key) {
            Some(Value::String(s)) => Ok(s),
            _ => Err(self.missing(key)),
        }
    }

    pub fn bool_or(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            Some(Value::Bool(b)) => *b,
            _ => default,
        }
    }

    pub fn array(&self, key: &str) -> Result<&'a Vec<Value>> {
        match self.get(key) {
            Some(Value::Array(a)) => Ok(a),
            _ => Err(self.missing(key)),
        }
    }
}

impl ModelConfig {
    pub fn from_meta(meta: &Meta) -> Result<Self> {
        let arch_name = meta.string("general.architecture")?;
        let arch = match arch_name {
            "qwen2" => Arch::Qwen2,
            "llama" => Arch::Llama,
            other => {
                return Err(EngineError::UnsupportedArch {
                    path: meta.path.to_string(),
                    arch: other.to_string(),
                    supported: Arch::SUPPORTED.to_string(),
                })
            }
        };
        let p = |k: &str| format!("{arch_name}.{k}");
        let hidden = meta.usize(&p("embedding_length"))?;
        let heads = meta.usize(&p("attention.head_count"))?;
        let kv_heads = meta.usize(&p("attention.head_count_kv")).unwrap_or(heads);
        let head_dim = meta
            .usize(&p("attention.key_length"))
            .unwrap_or(hidden / heads.max(1));
        let vocab = match meta.usize(&p("vocab_size")) {
            Ok(v) => v,
            Err(_) => meta.array("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            arch,
            name: meta.string("general.name").unwrap_or("unnamed").to_string(),
            layers: meta.usize(&p("block_count"))?,
            hidden,
            heads,
            kv_heads,
            head_dim,
            ffn: meta.usize(&p("feed_forward_length"))?,
            context_length: meta.usize(&p("context_length"))?,
            rms_eps: meta
                .f32(&p("attention.layer_norm_rms_epsilon"))
                .unwrap_or(1e-6) as f64,
            rope_base: meta.f32(&p("rope.freq_base")).unwrap_or(10_000.0),
            rope_style: match arch {
                Arch::Qwen2 => RopeStyle::Halves,
                Arch::Llama => RopeStyle::Interleaved,
            },
            vocab,
        };
        if cfg.heads == 0
            || cfg.kv_heads == 0
            || !cfg.heads.is_multiple_of(cfg.kv_heads)
            || !cfg.head_dim.is_multiple_of(2)
        {
            return Err(EngineError::Corrupt {
                path: meta.path.to_string(),
                detail: format!(
                    "inconsistent attention shape: {} heads, {} KV heads, head dim {}",
                    cfg.heads, cfg.kv_heads, cfg.head_dim
                ),
            });
        }
        Ok(cfg)
    }
}
