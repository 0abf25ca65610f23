//! candle-transformers' own model code on the same GGUF: the independent reference our engine's
//! logits and speed are checked against.

use crate::engine::{self, source};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};

/// candle-transformers' own model code for the same file: the independent reference.
pub enum Reference {
    Qwen2(candle_transformers::models::quantized_qwen2::ModelWeights),
    Llama(candle_transformers::models::quantized_llama::ModelWeights),
    /// Its MLP applies SiLU where Gemma 3 has GELU (candle issue #3745), its decode steps ignore
    /// the sliding window and its prefill window is one position wider: our model equals it with
    /// [`crate::engine::config::Activation::Silu`] set and within the window.
    Gemma3(candle_transformers::models::quantized_gemma3::ModelWeights),
    /// candle-transformers' full-precision Gemma 3 (GELU, sliding windows and all) on the file's
    /// weights dequantized to f32: see [`Reference::gemma3_dense`].
    Gemma3Dense(Box<candle_transformers::models::gemma3::Model>),
}

impl Reference {
    pub fn from_gguf_bytes_or_file(spec: &str, device: &Device) -> Result<Self> {
        let bytes = match source::resolve(spec)? {
            source::ModelSource::Synthetic => engine::synthetic::gguf_bytes(&Default::default())?,
            source::ModelSource::File(p) => {
                std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?
            }
            source::ModelSource::Hub { .. } | source::ModelSource::HubCheckpoint { .. } => {
                bail!("the reference benchmark needs a local file")
            }
        };
        Self::from_bytes(bytes, device)
    }

    pub fn from_bytes(bytes: Vec<u8>, device: &Device) -> Result<Self> {
        let mut r = std::io::Cursor::new(bytes);
        let content = engine::loader::read_content(&mut r, "reference")?;
        let arch = content
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        Ok(match arch.as_str() {
            "qwen2" => Self::Qwen2(
                candle_transformers::models::quantized_qwen2::ModelWeights::from_gguf(
                    content, &mut r, device,
                )?,
            ),
            "llama" => Self::Llama(
                candle_transformers::models::quantized_llama::ModelWeights::from_gguf(
                    content, &mut r, device,
                )?,
            ),
            "gemma3" => Self::Gemma3(
                candle_transformers::models::quantized_gemma3::ModelWeights::from_gguf(
                    content, &mut r, device,
                )?,
            ),
            other => bail!("no reference model for architecture {other}"),
        })
    }

    /// candle-transformers' full-precision Gemma 3 model (`models::gemma3`, the Hugging Face
    /// checkpoint code) on a Gemma 3 GGUF's weights dequantized to f32, its configuration read
    /// from the file's metadata. Unlike `quantized_gemma3` it gates with Gemma's GELU and keeps
    /// the sliding window at decode: the reference for the architecture itself, against our
    /// engine with its weights switched to F32.
    pub fn gemma3_dense(bytes: Vec<u8>, device: &Device) -> Result<Self> {
        use candle_core::DType;
        use candle_transformers::models::gemma3::Model;
        let mut r = std::io::Cursor::new(bytes);
        let content = engine::loader::read_content(&mut r, "reference")?;
        let cfg = gemma3_config(&content)?;
        let names = gemma3_checkpoint_names(cfg.num_hidden_layers);
        let mut tensors = std::collections::HashMap::new();
        for hf in names {
            let gguf = engine::hf::gguf_name(engine::config::Arch::Gemma3, &hf)
                .with_context(|| format!("no GGUF name for {hf}"))?;
            let t = content.tensor(&mut r, &gguf, device)?.dequantize(device)?;
            let t = match hf.ends_with("norm.weight") {
                true => (t - 1.0)?,
                false => t,
            };
            tensors.insert(hf, t);
        }
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, device);
        Ok(Self::Gemma3Dense(Box::new(Model::new(false, &cfg, vb)?)))
    }

    /// Last-position logits of `tokens` placed at `pos` (the cache holds what came before).
    pub fn forward(&mut self, tokens: &[u32], pos: usize, device: &Device) -> Result<Vec<f32>> {
        let x = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let l = match self {
            Self::Qwen2(m) => m.forward(&x, pos)?,
            Self::Llama(m) => m.forward(&x, pos)?,
            Self::Gemma3(m) => m.forward(&x, pos)?,
            Self::Gemma3Dense(m) => {
                // Its caches only append: a prompt at 0 starts them afresh here.
                if pos == 0 {
                    m.clear_kv_cache();
                }
                m.forward(&x, pos)?
            }
        };
        Ok(l.flatten_all()?.to_vec1()?)
    }

    /// Forget the cache (every model but qwen2 starts afresh when `pos` is 0 and needs no call).
    pub fn clear(&mut self) {
        match self {
            Self::Qwen2(m) => m.clear_kv_cache(),
            Self::Gemma3Dense(m) => m.clear_kv_cache(),
            Self::Llama(_) | Self::Gemma3(_) => {}
        }
    }
}

/// The checkpoint code's configuration, read from a Gemma 3 GGUF's metadata.
fn gemma3_config(
    content: &candle_core::quantized::gguf_file::Content,
) -> Result<candle_transformers::models::gemma3::Config> {
    let meta = |key: &str| content.metadata.get(&format!("gemma3.{key}"));
    let int = |key: &str| -> Result<usize> {
        Ok(meta(key)
            .with_context(|| format!("gemma3.{key} is missing"))?
            .to_u32()? as usize)
    };
    let float = |key: &str, default: f64| -> Result<f64> {
        Ok(meta(key)
            .map(|v| v.to_f32())
            .transpose()?
            .map_or(default, f64::from))
    };
    let head_dim = int("attention.key_length")?;
    let vocab_size = content
        .tensor_infos
        .get("token_embd.weight")
        .context("token_embd.weight is missing")?
        .shape
        .dims()[0];
    Ok(candle_transformers::models::gemma3::Config {
        attention_bias: false,
        head_dim,
        hidden_activation: candle_nn::Activation::GeluPytorchTanh,
        hidden_size: int("embedding_length")?,
        intermediate_size: int("feed_forward_length")?,
        num_attention_heads: int("attention.head_count")?,
        num_hidden_layers: int("block_count")?,
        num_key_value_heads: int("attention.head_count_kv")?,
        rms_norm_eps: float("attention.layer_norm_rms_epsilon", 1e-6)?,
        rope_theta: float("rope.freq_base", 1e6)?,
        rope_local_base_freq: float("rope.local_freq_base", 1e4)?,
        vocab_size,
        final_logit_softcapping: None,
        attn_logit_softcapping: None,
        query_pre_attn_scalar: head_dim,
        sliding_window: int("attention.sliding_window")?,
        sliding_window_pattern: 6,
        // The RoPE tables are built this long for every layer: a test's length, not 32k.
        max_position_embeddings: int("context_length")?.min(4096),
    })
}

/// The checkpoint's names, through our loader's map to llama.cpp's. llama.cpp stores Gemma's
/// norm weights plus one; the checkpoint code adds the one itself.
fn gemma3_checkpoint_names(layers: usize) -> Vec<String> {
    let mut names = vec![
        "model.embed_tokens.weight".to_string(),
        "model.norm.weight".to_string(),
    ];
    for i in 0..layers {
        for part in [
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "self_attn.q_norm",
            "self_attn.k_norm",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        ] {
            names.push(format!("model.layers.{i}.{part}.weight"));
        }
    }
    names
}
