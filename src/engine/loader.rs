//! Reading a GGUF file into a [`Model`] and its [`Tokenizer`], with errors that say what is wrong
//! with the file.

use super::config::{Arch, Meta, ModelConfig};
use super::error::{first_line, EngineError, Result};
use super::kernels::QWeight;
use super::model::{Layer, Linear, Model};
use super::tokenizer::Tokenizer;
use crate::protocol::WeightTypeStat;
use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::io::{Read, Seek};
use std::sync::Arc;

/// A model ready to run: weights, tokenizer and what we know of the file.
pub struct Loaded {
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub parameters: u64,
    pub file_bytes: u64,
    pub weight_types: BTreeMap<String, WeightTypeStat>,
}

/// Read the GGUF header, naming the file when it is not GGUF at all. The header is checked first
/// ([`super::header::check`]): candle's reader trusts its counts, lengths and alignment.
pub fn read_content<R: Read + Seek>(reader: &mut R, path: &str) -> Result<Content> {
    super::header::check(reader, path)?;
    Content::read(reader).map_err(|e| {
        let msg = first_line(&e);
        if msg.contains("magic") {
            EngineError::NotGguf {
                path: path.to_string(),
                detail: "it does not start with the GGUF magic bytes".into(),
            }
        } else {
            EngineError::Corrupt {
                path: path.to_string(),
                detail: format!("cannot read the GGUF header: {msg}"),
            }
        }
    })
}

/// Bytes a tensor of this type and shape takes in the file.
fn tensor_bytes(dtype: GgmlDType, elems: usize) -> usize {
    elems / dtype.block_size() * dtype.type_size()
}

/// Check the file is long enough for every tensor it declares.
pub fn check_length(content: &Content, file_bytes: u64, path: &str) -> Result<()> {
    let end = content
        .tensor_infos
        .values()
        .map(|t| {
            let dims: Vec<u64> = t.shape.dims().iter().map(|&d| d as u64).collect();
            let bytes = super::header::tensor_bytes(t.ggml_dtype, &dims).unwrap_or(u64::MAX);
            content
                .tensor_data_offset
                .saturating_add(t.offset)
                .saturating_add(bytes)
        })
        .max()
        .unwrap_or(content.tensor_data_offset);
    if end > file_bytes {
        return Err(EngineError::Corrupt {
            path: path.to_string(),
            detail: format!("its tensors need {end} bytes but the file has {file_bytes} (an interrupted download?)"),
        });
    }
    Ok(())
}

/// llama.cpp's name for a GGML type: Q4_K, Q8_0, F32.
pub fn type_name(t: GgmlDType) -> String {
    let s = format!("{t:?}").to_uppercase();
    match s.strip_suffix('K') {
        Some(head) if !head.contains('_') => format!("{head}_K"),
        _ => s,
    }
}

/// Read tensor `name` straight into its block storage on the CPU. candle's reader reads the raw
/// bytes and then copies them into typed blocks: for a moment the largest tensor is held twice
/// (the 0.5B's head is 146 MB), which set the process's peak resident memory.
fn read_cpu<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    name: &str,
) -> candle_core::Result<QTensor> {
    use candle_core::quantized::k_quants::*;
    use candle_core::quantized::{GgmlDType as G, QStorage};
    let info = &content.tensor_infos[name];
    let (elems, block) = (info.shape.elem_count(), info.ggml_dtype.block_size());
    if !elems.is_multiple_of(block) {
        candle_core::bail!("{elems} elements are not whole blocks of {block}");
    }
    let bytes = elems / block * info.ggml_dtype.type_size();
    let start = content.tensor_data_offset.saturating_add(info.offset);
    let file = reader.seek(std::io::SeekFrom::End(0))?;
    if bytes as u64 > file.saturating_sub(start) {
        candle_core::bail!(
            "tensor needs {bytes} bytes at offset {start}, past the end of the file"
        );
    }
    reader.seek(std::io::SeekFrom::Start(start))?;
    fn typed<T: GgmlType + Send + Sync + 'static>(
        reader: &mut impl Read,
        bytes: usize,
        dims: Vec<usize>,
    ) -> candle_core::Result<QTensor> {
        let n = bytes / std::mem::size_of::<T>();
        let mut blocks = vec![T::zeros(); n];
        // SAFETY: the blocks are plain `repr(C)` data, valid for any bytes, `n` of them long.
        let raw = unsafe {
            std::slice::from_raw_parts_mut(
                blocks.as_mut_ptr() as *mut u8,
                n * std::mem::size_of::<T>(),
            )
        };
        reader.read_exact(raw)?;
        QTensor::new(QStorage::Cpu(Box::new(blocks)), dims)
    }
    let dims = info.shape.dims().to_vec();
    match info.ggml_dtype {
        G::F32 => typed::<f32>(reader, bytes, dims),
        G::F16 => typed::<half::f16>(reader, bytes, dims),
        G::BF16 => typed::<half::bf16>(reader, bytes, dims),
        G::Q4_0 => typed::<BlockQ4_0>(reader, bytes, dims),
        G::Q4_1 => typed::<BlockQ4_1>(reader, bytes, dims),
        G::Q5_0 => typed::<BlockQ5_0>(reader, bytes, dims),
        G::Q5_1 => typed::<BlockQ5_1>(reader, bytes, dims),
        G::Q8_0 => typed::<BlockQ8_0>(reader, bytes, dims),
        G::Q2K => typed::<BlockQ2K>(reader, bytes, dims),
        G::Q3K => typed::<BlockQ3K>(reader, bytes, dims),
        G::Q4K => typed::<BlockQ4K>(reader, bytes, dims),
        G::Q5K => typed::<BlockQ5K>(reader, bytes, dims),
        G::Q6K => typed::<BlockQ6K>(reader, bytes, dims),
        other => candle_core::bail!("weights of type {other:?} are not supported"),
    }
}

/// Load weights and tokenizer from GGUF content.
pub fn load<R: Read + Seek>(
    content: &Content,
    reader: &mut R,
    path: &str,
    file_bytes: u64,
    device: &Device,
) -> Result<Loaded> {
    check_length(content, file_bytes, path)?;
    let meta = Meta { content, path };
    let cfg = ModelConfig::from_meta(&meta)?;
    super::shapes::check(content, &cfg, path)?;
    let tokenizer = Tokenizer::from_gguf(&meta)?;
    if tokenizer.vocab_size > cfg.vocab {
        return Err(EngineError::Corrupt {
            path: path.to_string(),
            detail: format!(
                "tokenizer.ggml.tokens has {} entries but the model's vocabulary is {}",
                tokenizer.vocab_size, cfg.vocab
            ),
        });
    }

    let get = |name: &str| -> Result<QTensor> {
        if !content.tensor_infos.contains_key(name) {
            return Err(EngineError::Corrupt {
                path: path.to_string(),
                detail: format!("tensor {name} is missing"),
            });
        }
        let read = if device.is_cpu() {
            read_cpu(content, reader, name)
        } else {
            content.tensor(reader, name, device)
        };
        read.map_err(|e| EngineError::Corrupt {
            path: path.to_string(),
            detail: format!("tensor {name}: {}", first_line(&e)),
        })
    };
    let has = |name: &str| content.tensor_infos.contains_key(name);
    let model = build_model(cfg, has, get, device)?;

    let mut weight_types: BTreeMap<String, WeightTypeStat> = BTreeMap::new();
    let mut parameters = 0u64;
    for info in content.tensor_infos.values() {
        let elems = info.shape.elem_count();
        parameters += elems as u64;
        let s = weight_types
            .entry(type_name(info.ggml_dtype))
            .or_insert(WeightTypeStat {
                tensors: 0,
                bytes: 0,
            });
        s.tensors += 1;
        s.bytes += tensor_bytes(info.ggml_dtype, elems) as u64;
    }
    Ok(Loaded {
        model,
        tokenizer,
        parameters,
        file_bytes,
        weight_types,
    })
}

/// The model from its weights by llama.cpp's names (`read` gives one tensor), as `cfg` says:
/// shared by GGUF files and Hugging Face checkpoints.
pub(crate) fn build_model(
    cfg: ModelConfig,
    has: impl Fn(&str) -> bool,
    mut read: impl FnMut(&str) -> Result<QTensor>,
    device: &Device,
) -> Result<Model> {
    let mut get = |name: &str| -> Result<QTensor> {
        // A load stops between tensors when asked (a tensor reads in milliseconds).
        super::interrupt::check()?;
        read(name)
    };
    let dense = |t: QTensor| -> Result<Tensor> { Ok(t.dequantize(device)?.to_dtype(DType::F32)?) };

    let embed = Arc::new(get("token_embd.weight")?);
    let head = if has("output.weight") {
        QWeight::new(Arc::new(get("output.weight")?))?
    } else {
        QWeight::new(embed.clone())?
    };
    let norm = dense(get("output_norm.weight")?)?;
    let mut layers = Vec::with_capacity(cfg.layers);
    for i in 0..cfg.layers {
        let mut lin = |name: &str, bias: bool| -> Result<Linear> {
            let weight = QWeight::new(Arc::new(get(&format!("blk.{i}.{name}.weight"))?))?;
            let bias = if bias {
                Some(dense(get(&format!("blk.{i}.{name}.bias"))?)?)
            } else {
                None
            };
            Ok(Linear { weight, bias })
        };
        let qkv_bias = cfg.arch == Arch::Qwen2;
        let q = lin("attn_q", qkv_bias)?;
        let k = lin("attn_k", qkv_bias)?;
        let v = lin("attn_v", qkv_bias)?;
        let o = lin("attn_output", false)?;
        let gate = lin("ffn_gate", false)?;
        let up = lin("ffn_up", false)?;
        let down = lin("ffn_down", false)?;
        let mut norm = |name: &str| dense(get(&format!("blk.{i}.{name}.weight"))?);
        let attn_norm = norm("attn_norm")?;
        let ffn_norm = norm("ffn_norm")?;
        // llama.cpp's converter stores Gemma's norms as 1 + the checkpoint's weight: they
        // multiply as they are, as every other norm does.
        let mut gemma = |name: &str| match cfg.arch {
            Arch::Gemma3 => norm(name).map(Some),
            _ => Ok(None),
        };
        let q_norm = gemma("attn_q_norm")?;
        let k_norm = gemma("attn_k_norm")?;
        let post_attn_norm = gemma("post_attention_norm")?;
        let post_ffn_norm = gemma("post_ffw_norm")?;
        layers.push(Layer {
            attn_norm,
            q,
            k,
            v,
            o,
            ffn_norm,
            gate,
            up,
            down,
            q_norm,
            k_norm,
            post_attn_norm,
            post_ffn_norm,
        });
    }

    Ok(Model::new(cfg, embed, layers, norm, head, device)?)
}
