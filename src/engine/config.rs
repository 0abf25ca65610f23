//! Model hyper-parameters read from GGUF metadata.

use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file::{Content, Value};

/// Most layers (blocks) a model may have (the largest open models have about 130).
pub const MAX_LAYERS: u64 = 1024;
/// Longest context: the RoPE tables and the KV cache's limit are sized from it.
pub const MAX_CONTEXT: u64 = 1 << 20;
/// Widest hidden state (embedding length; the largest open models use 16,384).
pub const MAX_EMBEDDING: u64 = 65_536;
/// Widest feed-forward layer (four to eight times the embedding length in practice).
pub const MAX_FFN: u64 = 1 << 20;
/// Most attention heads, query or KV (the largest open models have 128).
pub const MAX_HEADS: u64 = 1024;
/// Widest attention head (real heads have 64 to 256 dimensions; the RoPE tables are sized by it).
pub const MAX_HEAD_DIM: u64 = 512;
/// Largest vocabulary (the largest open models have about 260k tokens).
pub const MAX_VOCAB: u64 = 1 << 22;

/// The hyper-parameters under `ARCH.`, each from 1 to its limit.
const LIMITS: [(&str, u64); 8] = [
    ("block_count", MAX_LAYERS),
    ("context_length", MAX_CONTEXT),
    ("embedding_length", MAX_EMBEDDING),
    ("feed_forward_length", MAX_FFN),
    ("attention.head_count", MAX_HEADS),
    ("attention.head_count_kv", MAX_HEADS),
    ("attention.key_length", MAX_HEAD_DIM),
    ("vocab_size", MAX_VOCAB),
];

/// The architectures whose forward pass we implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Qwen2,
    Llama,
    Gemma3,
}

impl Arch {
    pub const SUPPORTED: &'static str = "qwen2, llama, gemma3";

    pub fn name(self) -> &'static str {
        match self {
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
            Arch::Gemma3 => "gemma3",
        }
    }
}

/// The activation that gates the feed-forward layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// SwiGLU: Qwen2, Llama.
    Silu,
    /// GeGLU with GELU's tanh approximation (`gelu_pytorch_tanh`): Gemma.
    GeluTanh,
}

/// Gemma 3's interleaved attention: most layers see only the last `window` positions (with their
/// own RoPE base); every `pattern`-th layer sees the whole context.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlidingWindow {
    pub window: usize,
    pub pattern: usize,
    pub rope_base: f32,
}

/// Gemma 3's default layer pattern (five local layers, then a global one) and local RoPE base,
/// as llama.cpp uses them when the file does not say.
const GEMMA3_PATTERN: usize = 6;
const GEMMA3_LOCAL_ROPE_BASE: f32 = 10_000.0;

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
    /// Linear RoPE scaling of the global layers: positions are multiplied by it (1 / the file's
    /// `rope.scaling.factor` when `rope.scaling.type` is linear).
    pub rope_scale: f32,
    pub vocab: usize,
    pub activation: Activation,
    /// Multiplier of the token embeddings (Gemma: √hidden).
    pub embed_scale: Option<f32>,
    /// Multiplier of the query·key products.
    pub attn_scale: f32,
    pub sliding: Option<SlidingWindow>,
}

impl ModelConfig {
    /// The window layer `i` attends within, `None` for a layer that sees the whole context.
    pub fn window(&self, layer: usize) -> Option<usize> {
        let s = self.sliding?;
        (!(layer + 1).is_multiple_of(s.pattern)).then_some(s.window)
    }
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

    fn corrupt(&self, detail: String) -> EngineError {
        EngineError::Corrupt {
            path: self.path.to_string(),
            detail,
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

/// The integer `v` holds, of any integer type.
fn integer(v: &Value) -> Option<i128> {
    Some(match v {
        Value::U8(x) => *x as i128,
        Value::I8(x) => *x as i128,
        Value::U16(x) => *x as i128,
        Value::I16(x) => *x as i128,
        Value::U32(x) => *x as i128,
        Value::I32(x) => *x as i128,
        Value::U64(x) => *x as i128,
        Value::I64(x) => *x as i128,
        _ => return None,
    })
}

/// Check the hyper-parameters a file declares against the limits, whatever its architecture, before
/// anything is sized from them: the error names the key, its value and the limit. `tokenize`, which
/// reads no weights, refuses such a file too.
pub fn check_limits(meta: &Meta) -> Result<()> {
    let Ok(arch) = meta.string("general.architecture") else {
        return Ok(());
    };
    for (name, max) in LIMITS {
        let key = format!("{arch}.{name}");
        let out =
            |at: &str, v: i128| meta.corrupt(format!("{at} = {v} is out of range (1 to {max})"));
        match meta.get(&key) {
            Some(Value::Array(per_layer)) => {
                // Some architectures give a value per layer, 0 for a layer without attention.
                for (i, v) in per_layer.iter().enumerate() {
                    match integer(v) {
                        Some(v) if !(0..=max as i128).contains(&v) => {
                            return Err(meta
                                .corrupt(format!("{key}[{i}] = {v} is out of range (0 to {max})")))
                        }
                        _ => {}
                    }
                }
            }
            Some(v) => match integer(v) {
                Some(v) if !(1..=max as i128).contains(&v) => return Err(out(&key, v)),
                // Another type: the architecture's own reading says what is wrong.
                _ => {}
            },
            None => {}
        }
    }
    if let Ok(tokens) = meta.array("tokenizer.ggml.tokens") {
        if tokens.is_empty() || tokens.len() as u64 > MAX_VOCAB {
            return Err(meta.corrupt(format!(
                "tokenizer.ggml.tokens has {} entries (1 to {MAX_VOCAB})",
                tokens.len()
            )));
        }
    }
    Ok(())
}

impl ModelConfig {
    pub fn from_meta(meta: &Meta) -> Result<Self> {
        check_limits(meta)?;
        let arch_name = meta.string("general.architecture")?;
        let arch = arch_of(meta, arch_name)?;
        let m = ArchMeta { meta, arch_name };
        let hidden = meta.usize(&m.key("embedding_length"))?;
        let heads = meta.usize(&m.key("attention.head_count"))?;
        let kv_heads = meta
            .usize(&m.key("attention.head_count_kv"))
            .unwrap_or(heads);
        let head_dim = m.head_dim(hidden, heads)?;
        let vocab = match meta.usize(&m.key("vocab_size")) {
            Ok(v) => v,
            Err(_) => meta.array("tokenizer.ggml.tokens")?.len(),
        };
        let cfg = Self {
            arch,
            name: meta.string("general.name").unwrap_or("unnamed").to_string(),
            layers: meta.usize(&m.key("block_count"))?,
            hidden,
            heads,
            kv_heads,
            head_dim,
            ffn: meta.usize(&m.key("feed_forward_length"))?,
            context_length: meta.usize(&m.key("context_length"))?,
            rms_eps: m.float(
                "attention.layer_norm_rms_epsilon",
                1e-6,
                |x| (0.0..1.0).contains(&x),
                "0 to below 1",
            )? as f64,
            rope_base: m.float(
                "rope.freq_base",
                10_000.0,
                |x| x.is_finite() && x > 1.0,
                "a finite number above 1",
            )?,
            rope_style: match arch {
                Arch::Qwen2 | Arch::Gemma3 => RopeStyle::Halves,
                Arch::Llama => RopeStyle::Interleaved,
            },
            rope_scale: m.rope_scale()?,
            vocab,
            activation: match arch {
                Arch::Gemma3 => Activation::GeluTanh,
                _ => Activation::Silu,
            },
            embed_scale: (arch == Arch::Gemma3).then(|| (hidden as f32).sqrt()),
            // llama.cpp's `attention.scale` where a file gives one; Gemma 3's query_pre_attn_scalar
            // is the head dimension in every size but 27B, whose GGUF carries no such key either.
            attn_scale: m.float(
                "attention.scale",
                1.0 / (head_dim as f32).sqrt(),
                |x| x.is_finite() && x > 0.0,
                "a finite number above 0",
            )?,
            sliding: match arch {
                Arch::Gemma3 => Some(m.sliding_window()?),
                _ => None,
            },
        };
        m.check_shape(&cfg)?;
        Ok(cfg)
    }
}

/// The architecture a file names, or why it is not one we run.
fn arch_of(meta: &Meta, arch_name: &str) -> Result<Arch> {
    match arch_name {
        "qwen2" => Ok(Arch::Qwen2),
        "llama" => Ok(Arch::Llama),
        "gemma3" => Ok(Arch::Gemma3),
        other => Err(EngineError::UnsupportedArch {
            path: meta.path.to_string(),
            arch: other.to_string(),
            supported: Arch::SUPPORTED.to_string(),
        }),
    }
}

/// The metadata under one architecture's `ARCH.` prefix.
struct ArchMeta<'m, 'a> {
    meta: &'m Meta<'a>,
    arch_name: &'m str,
}

impl ArchMeta<'_, '_> {
    fn key(&self, k: &str) -> String {
        format!("{}.{k}", self.arch_name)
    }

    fn head_dim(&self, hidden: usize, heads: usize) -> Result<usize> {
        match self.meta.usize(&self.key("attention.key_length")) {
            Ok(d) => Ok(d),
            // Without a key length the head is the hidden state split evenly between the heads.
            Err(_) if hidden.is_multiple_of(heads) => Ok(hidden / heads),
            Err(_) => Err(self.meta.corrupt(format!(
                "{} = {hidden} is not a multiple of {} = {heads}",
                self.key("embedding_length"),
                self.key("attention.head_count")
            ))),
        }
    }

    /// An optional float: `default` when absent, an error when present but outside `ok`.
    fn float(&self, key: &str, default: f32, ok: fn(f32) -> bool, limit: &str) -> Result<f32> {
        let key = self.key(key);
        let meta = self.meta;
        match meta.get(&key) {
            None => Ok(default),
            Some(_) => match meta.f32(&key) {
                Ok(x) if ok(x) => Ok(x),
                Ok(x) => Err(meta.corrupt(format!("{key} = {x} is out of range ({limit})"))),
                Err(e) => Err(e),
            },
        }
    }

    fn rope_scale(&self) -> Result<f32> {
        Ok(match self.meta.string(&self.key("rope.scaling.type")) {
            Ok("linear") => {
                1.0 / self.float(
                    "rope.scaling.factor",
                    1.0,
                    |x| x.is_finite() && x >= 1.0,
                    "a finite number from 1",
                )?
            }
            _ => 1.0,
        })
    }

    fn sliding_window(&self) -> Result<SlidingWindow> {
        Ok(SlidingWindow {
            window: self.meta.usize(&self.key("attention.sliding_window"))?,
            pattern: self
                .meta
                .usize(&self.key("attention.sliding_window_pattern"))
                .unwrap_or(GEMMA3_PATTERN),
            rope_base: self.float(
                "rope.local_freq_base",
                GEMMA3_LOCAL_ROPE_BASE,
                |x| x.is_finite() && x > 1.0,
                "a finite number above 1",
            )?,
        })
    }

    /// The shape rules the layers rely on: a window and pattern of at least 1, query heads in
    /// whole groups per KV head, an even head for RoPE.
    fn check_shape(&self, cfg: &ModelConfig) -> Result<()> {
        let meta = self.meta;
        if let Some(s) = cfg.sliding {
            if s.window == 0 || s.pattern == 0 {
                return Err(meta.corrupt(format!(
                    "{} = {} and the layer pattern {} must be at least 1",
                    self.key("attention.sliding_window"),
                    s.window,
                    s.pattern
                )));
            }
        }
        if !cfg.heads.is_multiple_of(cfg.kv_heads) {
            return Err(meta.corrupt(format!(
                "{} = {} is not a multiple of {} = {}",
                self.key("attention.head_count"),
                cfg.heads,
                self.key("attention.head_count_kv"),
                cfg.kv_heads
            )));
        }
        if !cfg.head_dim.is_multiple_of(2) {
            return Err(meta.corrupt(format!(
                "the head dimension {} is odd (RoPE rotates pairs of dimensions)",
                cfg.head_dim
            )));
        }
        Ok(())
    }
}
