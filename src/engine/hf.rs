//! Hugging Face checkpoints: a folder with `config.json`, `tokenizer.json` (and, optionally,
//! `tokenizer_config.json` for the chat template and BOS), and the weights in one or several
//! `.safetensors` files. The hyper-parameters are mapped onto the GGUF keys our config reader
//! checks and the tensor names onto llama.cpp's, so the limits, the shape checks and the forward
//! pass are the ones GGUF files go through. Weights keep their dtype (f32 and f16; bf16, which
//! candle's CPU backend cannot multiply, becomes f32 there), and the quantization switcher
//! requantises them like any loaded weights.
//!
//! What llama.cpp's converter changes on the way to GGUF is undone here instead: Llama's query and
//! key rows stay in the checkpoint's halves layout (RoPE pairs `(i, i + d/2)`), and Gemma's norms,
//! stored as `w` and applied as `1 + w`, get their 1 added.

use super::config::{Arch, Meta, ModelConfig, RopeStyle};
use super::error::{EngineError, Result};
use super::loader::{build_model, Loaded};
use super::tokenizer::{named_eog, Tokenizer};
use crate::protocol::WeightTypeStat;
use candle_core::quantized::gguf_file::{Content, TensorInfo, Value, VersionedMagic};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use serde_json::Value as Json;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Whether `dir` looks like a checkpoint folder (it has a `config.json`).
pub fn is_checkpoint(dir: &Path) -> bool {
    dir.is_dir() && dir.join("config.json").is_file()
}

fn corrupt(dir: &Path, detail: String) -> EngineError {
    EngineError::Corrupt {
        path: dir.display().to_string(),
        detail,
    }
}

fn read_json(dir: &Path, file: &str) -> Result<Option<Json>> {
    let path = dir.join(file);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| EngineError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| corrupt(dir, format!("{file} is not valid JSON: {e}")))
}

/// The architecture a `model_type` names, and the object holding the text model's parameters
/// (Gemma 3's multimodal checkpoints keep them under `text_config`).
fn arch_of<'a>(dir: &Path, config: &'a Json) -> Result<(Arch, &'a Json)> {
    let model_type = config["model_type"].as_str().unwrap_or("");
    let text = config.get("text_config").unwrap_or(config);
    let arch = match model_type {
        "qwen2" => Arch::Qwen2,
        "llama" => Arch::Llama,
        "gemma3" | "gemma3_text" => Arch::Gemma3,
        other => {
            return Err(EngineError::UnsupportedArch {
                path: dir.display().to_string(),
                arch: format!("{other} (config.json's model_type)"),
                supported: Arch::SUPPORTED.to_string(),
            })
        }
    };
    Ok((arch, text))
}

/// config.json's hyper-parameters as the GGUF metadata keys llama.cpp's converter writes.
fn metadata(dir: &Path, arch: Arch, c: &Json) -> Result<HashMap<String, Value>> {
    let a = arch.name();
    let mut m = HashMap::new();
    m.insert("general.architecture".into(), Value::String(a.into()));
    let name = dir
        .file_name()
        .map_or("checkpoint".into(), |n| n.to_string_lossy().into_owned());
    m.insert("general.name".into(), Value::String(name));
    let int = |key: &str| c[key].as_u64();
    let float = |key: &str| c[key].as_f64();
    let put_int =
        |m: &mut HashMap<String, Value>, gguf: &str, json: &str, required: bool| match int(json) {
            Some(v) => {
                m.insert(format!("{a}.{gguf}"), Value::U64(v));
                Ok(())
            }
            None if required => Err(corrupt(
                dir,
                format!("config.json has no whole number {json:?}"),
            )),
            None => Ok(()),
        };
    put_int(&mut m, "block_count", "num_hidden_layers", true)?;
    put_int(&mut m, "embedding_length", "hidden_size", true)?;
    put_int(&mut m, "feed_forward_length", "intermediate_size", true)?;
    put_int(&mut m, "attention.head_count", "num_attention_heads", true)?;
    put_int(
        &mut m,
        "attention.head_count_kv",
        "num_key_value_heads",
        false,
    )?;
    put_int(&mut m, "attention.key_length", "head_dim", false)?;
    put_int(&mut m, "vocab_size", "vocab_size", true)?;
    put_int(&mut m, "context_length", "max_position_embeddings", true)?;
    put_int(&mut m, "attention.sliding_window", "sliding_window", false)?;
    put_int(
        &mut m,
        "attention.sliding_window_pattern",
        "sliding_window_pattern",
        false,
    )?;
    let mut put_float = |gguf: &str, v: Option<f64>| {
        if let Some(v) = v {
            m.insert(format!("{a}.{gguf}"), Value::F32(v as f32));
        }
    };
    put_float("attention.layer_norm_rms_epsilon", float("rms_norm_eps"));
    put_float("rope.freq_base", float("rope_theta"));
    put_float("rope.local_freq_base", float("rope_local_base_freq"));
    put_float(
        "attention.scale",
        float("query_pre_attn_scalar").map(|s| 1.0 / s.sqrt()),
    );
    let scaling = &c["rope_scaling"];
    let kind = scaling["rope_type"].as_str().or(scaling["type"].as_str());
    if kind == Some("linear") {
        put_float("rope.scaling.factor", scaling["factor"].as_f64());
        m.insert(
            format!("{a}.rope.scaling.type"),
            Value::String("linear".into()),
        );
    } else if let Some(kind) = kind.filter(|k| *k != "default") {
        return Err(corrupt(
            dir,
            format!("rope_scaling of type {kind:?} is not supported (linear is)"),
        ));
    }
    // Newer Gemma 3 configs list each layer's kind instead of a pattern.
    if let Some(kinds) = c["layer_types"].as_array() {
        if let Some(p) = kinds.iter().position(|k| k == "full_attention") {
            m.insert(
                format!("{a}.attention.sliding_window_pattern"),
                Value::U64(p as u64 + 1),
            );
        }
    }
    Ok(m)
}

/// llama.cpp's name for a checkpoint tensor (`None`: not one the forward pass reads).
pub fn gguf_name(arch: Arch, hf: &str) -> Option<String> {
    let hf = hf.strip_prefix("language_model.").unwrap_or(hf);
    let top = match hf {
        "model.embed_tokens.weight" => Some("token_embd.weight"),
        "model.norm.weight" => Some("output_norm.weight"),
        "lm_head.weight" => Some("output.weight"),
        _ => None,
    };
    if let Some(t) = top {
        return Some(t.to_string());
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (i, name) = rest.split_once('.')?;
    let i: usize = i.parse().ok()?;
    let (part, suffix) = name.rsplit_once('.')?;
    let gemma = arch == Arch::Gemma3;
    let ours = match part {
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" if gemma => "post_attention_norm",
        "post_attention_layernorm" => "ffn_norm",
        "pre_feedforward_layernorm" => "ffn_norm",
        "post_feedforward_layernorm" => "post_ffw_norm",
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "self_attn.q_norm" => "attn_q_norm",
        "self_attn.k_norm" => "attn_k_norm",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        _ => return None,
    };
    Some(format!("blk.{i}.{ours}.{suffix}"))
}

/// The safetensors files: `model.safetensors`, or every `*.safetensors` (shards) in name order.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let io = |source| EngineError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(corrupt(dir, "it has no .safetensors weights".into()));
    }
    Ok(files)
}

fn tokenizer(dir: &Path, config: &Json, vocab: usize) -> Result<Tokenizer> {
    let path = dir.join("tokenizer.json");
    let inner = tokenizers::Tokenizer::from_file(&path)
        .map_err(|e| EngineError::Tokenizer(format!("{}: {e}", path.display())))?;
    let tc = read_json(dir, "tokenizer_config.json")?.unwrap_or(Json::Null);
    let id_of = |key: &str| -> Vec<u32> {
        let ids: Vec<u64> = match &config[key] {
            Json::Number(n) => n.as_u64().into_iter().collect(),
            Json::Array(a) => a.iter().filter_map(Json::as_u64).collect(),
            _ => {
                // tokenizer_config.json names the token instead: "bos_token": "<bos>".
                let token = tc[key.trim_end_matches("_id")]
                    .as_str()
                    .or(tc[key.trim_end_matches("_id")]["content"].as_str());
                token
                    .and_then(|t| inner.token_to_id(t))
                    .map(u64::from)
                    .into_iter()
                    .collect()
            }
        };
        ids.into_iter()
            .filter(|&i| (i as usize) < vocab)
            .map(|i| i as u32)
            .collect()
    };
    let bos = id_of("bos_token_id").first().copied();
    let eos_all = id_of("eos_token_id");
    let mut eog = eos_all.clone();
    eog.extend(named_eog(&inner));
    eog.sort_unstable();
    eog.dedup();
    let vocab_size = inner.get_vocab_size(true);
    Ok(Tokenizer {
        eog,
        bos,
        eos: eos_all.first().copied(),
        add_bos: tc["add_bos_token"].as_bool().unwrap_or(false),
        chat_template: tc["chat_template"].as_str().map(str::to_string),
        vocab_size,
        inner,
    })
}

/// The checkpoint's tokenizer alone: no weight is read.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer> {
    let config = read_json(dir, "config.json")?
        .ok_or_else(|| corrupt(dir, "it has no config.json".into()))?;
    let (_, text) = arch_of(dir, &config)?;
    let vocab = text["vocab_size"]
        .as_u64()
        .ok_or_else(|| corrupt(dir, "config.json has no vocab_size".into()))?;
    tokenizer(dir, text, vocab as usize)
}

/// Load the checkpoint in `dir`.
pub fn load_dir(dir: &Path, device: &Device) -> Result<Loaded> {
    let config = read_json(dir, "config.json")?
        .ok_or_else(|| corrupt(dir, "it has no config.json".into()))?;
    let (arch, text) = arch_of(dir, &config)?;
    let files = weight_files(dir)?;
    // SAFETY: the files are mapped read-only for the load; another process truncating them
    // meanwhile is the one case memory maps cannot guard against.
    let st = unsafe { MmapedSafetensors::multi(&files) }
        .map_err(|e| corrupt(dir, format!("cannot read the safetensors: {e}")))?;
    let TensorIndex {
        names,
        tensor_infos,
        weight_types,
        parameters,
        file_bytes,
    } = index_tensors(&st, arch);
    let metadata = metadata(dir, arch, text)?;
    let content = Content {
        magic: VersionedMagic::GgufV3,
        metadata,
        tensor_infos,
        tensor_data_offset: 0,
    };
    let shown = dir.display().to_string();
    let meta = Meta {
        content: &content,
        path: &shown,
    };
    let mut cfg = ModelConfig::from_meta(&meta)?;
    cfg.rope_style = RopeStyle::Halves; // the checkpoint's own layout (see the module's notes)
    super::shapes::check(&content, &cfg, &shown)?;
    let tokenizer = tokenizer(dir, text, cfg.vocab)?;
    if tokenizer.vocab_size > cfg.vocab {
        return Err(corrupt(
            dir,
            format!(
                "tokenizer.json has {} tokens but the model's vocabulary is {}",
                tokenizer.vocab_size, cfg.vocab
            ),
        ));
    }
    let read = |name: &str| read_tensor(dir, &st, &names, arch, device, name);
    let has = |name: &str| names.contains_key(name);
    let model = build_model(cfg, has, read, device)?;
    Ok(Loaded {
        model,
        tokenizer,
        parameters,
        file_bytes,
        weight_types,
    })
}

/// The checkpoint's tensors by llama.cpp's name, with their shapes (for the same checks a GGUF
/// gets) and what they add up to.
struct TensorIndex {
    /// Our name to the checkpoint's.
    names: HashMap<String, String>,
    tensor_infos: HashMap<String, TensorInfo>,
    weight_types: BTreeMap<String, WeightTypeStat>,
    parameters: u64,
    file_bytes: u64,
}

fn index_tensors(st: &MmapedSafetensors, arch: Arch) -> TensorIndex {
    let mut names: HashMap<String, String> = HashMap::new();
    let mut tensor_infos = HashMap::new();
    let mut weight_types: BTreeMap<String, WeightTypeStat> = BTreeMap::new();
    let mut parameters = 0u64;
    let mut file_bytes = 0u64;
    for (hf, view) in st.tensors() {
        let Some(ours) = gguf_name(arch, &hf) else {
            continue;
        };
        let elems: usize = view.shape().iter().product();
        let bytes = (elems * view.dtype().bitsize() / 8) as u64;
        parameters += elems as u64;
        file_bytes += bytes;
        let s = weight_types
            .entry(format!("{:?}", view.dtype()).to_uppercase())
            .or_insert(WeightTypeStat {
                tensors: 0,
                bytes: 0,
            });
        s.tensors += 1;
        s.bytes += bytes;
        tensor_infos.insert(
            ours.clone(),
            TensorInfo {
                ggml_dtype: GgmlDType::F32,
                shape: candle_core::Shape::from(view.shape().to_vec()),
                offset: 0,
            },
        );
        names.insert(ours, hf);
    }
    TensorIndex {
        names,
        tensor_infos,
        weight_types,
        parameters,
        file_bytes,
    }
}

/// Tensor `name` (llama.cpp's) read from the checkpoint onto `device`; Gemma 3's norms get
/// their stored offset of 1 added back.
fn read_tensor(
    dir: &Path,
    st: &MmapedSafetensors,
    names: &HashMap<String, String>,
    arch: Arch,
    device: &Device,
    name: &str,
) -> Result<QTensor> {
    let hf = names
        .get(name)
        .ok_or_else(|| corrupt(dir, format!("tensor {name} is missing")))?;
    let fail = |e: candle_core::Error| corrupt(dir, format!("tensor {hf}: {e}"));
    let t = st.load(hf, &Device::Cpu).map_err(fail)?;
    let t = if arch == Arch::Gemma3 && name.ends_with("norm.weight") {
        (t.to_dtype(DType::F32).map_err(fail)? + 1.0).map_err(fail)?
    } else {
        t
    };
    quantized(t, device).map_err(fail)
}

/// A checkpoint tensor as a QTensor of its own float type (bf16 as f32 on the CPU).
fn quantized(t: Tensor, device: &Device) -> candle_core::Result<QTensor> {
    let (t, dtype) = match t.dtype() {
        DType::F16 => (t, GgmlDType::F16),
        DType::BF16 if !device.is_cpu() => (t, GgmlDType::BF16),
        _ => (t.to_dtype(DType::F32)?, GgmlDType::F32),
    };
    QTensor::quantize(&t.to_device(device)?, dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_llama_cpps() {
        let g = |a, n| gguf_name(a, n);
        assert_eq!(
            g(Arch::Qwen2, "model.layers.3.self_attn.q_proj.bias").as_deref(),
            Some("blk.3.attn_q.bias")
        );
        assert_eq!(
            g(
                Arch::Llama,
                "model.layers.0.post_attention_layernorm.weight"
            )
            .as_deref(),
            Some("blk.0.ffn_norm.weight")
        );
        assert_eq!(
            g(
                Arch::Gemma3,
                "model.layers.0.post_attention_layernorm.weight"
            )
            .as_deref(),
            Some("blk.0.post_attention_norm.weight")
        );
        assert_eq!(
            g(Arch::Gemma3, "language_model.model.embed_tokens.weight").as_deref(),
            Some("token_embd.weight")
        );
        assert_eq!(
            g(Arch::Qwen2, "model.layers.0.self_attn.rotary_emb.inv_freq"),
            None
        );
        assert_eq!(g(Arch::Qwen2, "vision_tower.x.weight"), None);
    }
}
