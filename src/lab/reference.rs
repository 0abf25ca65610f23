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

    /// Last-position logits of `tokens` placed at `pos` (the cache holds what came before).
    pub fn forward(&mut self, tokens: &[u32], pos: usize, device: &Device) -> Result<Vec<f32>> {
        let x = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let l = match self {
            Self::Qwen2(m) => m.forward(&x, pos)?,
            Self::Llama(m) => m.forward(&x, pos)?,
            Self::Gemma3(m) => m.forward(&x, pos)?,
        };
        Ok(l.flatten_all()?.to_vec1()?)
    }

    /// Forget the cache (every model starts afresh when `pos` is 0 — the llama and gemma3 ones
    /// need no call).
    pub fn clear(&mut self) {
        if let Self::Qwen2(m) = self {
            m.clear_kv_cache()
        }
    }
}
