//! A tiny random-weight GGUF written in memory, so labtui and its tests run with no weights at all.
//!
//! It is a real GGUF (byte-level BPE vocabulary, chat template, quantized weights) read by the same
//! loader as downloaded files, and by candle-transformers' reference models in tests.

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::Cursor;

/// The shape and kind of a synthetic model.
#[derive(Debug, Clone)]
pub struct SyntheticSpec {
    /// "qwen2" (biases, tied head, NeoX RoPE), "llama" (own head, interleaved RoPE) or "gemma3"
    /// (tied head, NeoX RoPE, query/key norms and post norms, sliding-window layers of
    /// [`GEMMA3_WINDOW`] positions).
    pub arch: &'static str,
    pub layers: usize,
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub ffn: usize,
    pub context: usize,
    pub seed: u64,
}

impl Default for SyntheticSpec {
    fn default() -> Self {
        Self {
            arch: "qwen2",
            layers: 2,
            hidden: 256,
            heads: 4,
            kv_heads: 2,
            ffn: 512,
            context: 512,
            seed: 7,
        }
    }
}

/// The synthetic gemma3's sliding window: wider than the tests' sequences, so candle's reference
/// (which ignores the window in decode steps) still applies; tests narrow it through metadata.
pub const GEMMA3_WINDOW: usize = 160;

const SPECIALS: [&str; 4] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|fim_pad|>"];
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
/// Merges over GPT-2's byte alphabet (`Ġ` is a space).
const MERGES: [(&str, &str); 24] = [
    ("Ġ", "t"),
    ("h", "e"),
    ("i", "n"),
    ("e", "r"),
    ("Ġ", "a"),
    ("o", "n"),
    ("r", "e"),
    ("Ġt", "he"),
    ("a", "t"),
    ("o", "r"),
    ("e", "n"),
    ("Ġ", "s"),
    ("Ġ", "w"),
    ("e", "s"),
    ("Ġ", "c"),
    ("i", "s"),
    ("i", "t"),
    ("a", "n"),
    ("Ġ", "f"),
    ("n", "g"),
    ("in", "g"),
    ("Ġ", "p"),
    ("l", "l"),
    ("e", "d"),
];

/// GPT-2's reversible byte → printable character map.
pub fn byte_alphabet() -> Vec<char> {
    let printable =
        |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
    let mut extra = 0;
    (0u32..256)
        .map(|b| {
            if printable(b) {
                char::from_u32(b).unwrap()
            } else {
                extra += 1;
                char::from_u32(255 + extra).unwrap()
            }
        })
        .collect()
}

/// Vocabulary: 256 byte tokens, the merges' results, then the special tokens.
fn vocabulary() -> (Vec<String>, Vec<String>, Vec<i32>) {
    let mut tokens: Vec<String> = byte_alphabet().into_iter().map(String::from).collect();
    let mut types = vec![1; tokens.len()];
    let mut merges = Vec::new();
    for (a, b) in MERGES {
        tokens.push(format!("{a}{b}"));
        types.push(1);
        merges.push(format!("{a} {b}"));
    }
    for s in SPECIALS {
        tokens.push(s.to_string());
        types.push(3);
    }
    (tokens, merges, types)
}

struct Weights {
    rng: StdRng,
    device: Device,
}

impl Weights {
    fn tensor(
        &mut self,
        rows: usize,
        cols: usize,
        scale: f32,
        dtype: GgmlDType,
    ) -> Result<QTensor> {
        let v: Vec<f32> = (0..rows * cols)
            .map(|_| self.rng.random_range(-scale..scale))
            .collect();
        let shape: Vec<usize> = if rows == 1 {
            vec![cols]
        } else {
            vec![rows, cols]
        };
        QTensor::quantize(&Tensor::from_vec(v, shape, &self.device)?, dtype)
    }

    fn norm(&mut self, n: usize) -> Result<QTensor> {
        let v: Vec<f32> = (0..n)
            .map(|_| 1.0 + self.rng.random_range(-0.1f32..0.1))
            .collect();
        QTensor::quantize(&Tensor::from_vec(v, n, &self.device)?, GgmlDType::F32)
    }
}

/// Write the GGUF bytes of a synthetic model.
pub fn gguf_bytes(spec: &SyntheticSpec) -> Result<Vec<u8>> {
    gguf_bytes_with(spec, &[])
}

/// The GGUF bytes of a synthetic model with some metadata replaced or added (tests craft broken
/// files with it: an alignment of 0, a context of 2⁴⁰).
pub fn gguf_bytes_with(spec: &SyntheticSpec, overrides: &[(&str, Value)]) -> Result<Vec<u8>> {
    let (tokens, merges, types) = vocabulary();
    let tensors = synthetic_tensors(spec, tokens.len())?;
    let mut meta = synthetic_meta(spec, &tokens, &merges, &types);
    for (key, value) in overrides {
        match meta.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.clone(),
            None => meta.push((key.to_string(), value.clone())),
        }
    }
    let meta_refs: Vec<(&str, &Value)> = meta.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensor_refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta_refs, &tensor_refs)?;
    Ok(out.into_inner())
}

/// Every weight of the model, drawn from one seeded stream in file order (the order is part of
/// the fixture: changing it changes every weight).
fn synthetic_tensors(spec: &SyntheticSpec, vocab: usize) -> Result<Vec<(String, QTensor)>> {
    let mut w = Weights {
        rng: StdRng::seed_from_u64(spec.seed),
        device: Device::Cpu,
    };
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    tensors.push((
        "token_embd.weight".into(),
        w.tensor(vocab, spec.hidden, 1.0, GgmlDType::Q5_0)?,
    ));
    tensors.push(("output_norm.weight".into(), w.norm(spec.hidden)?));
    if spec.arch == "llama" {
        tensors.push((
            "output.weight".into(),
            w.tensor(vocab, spec.hidden, 0.2, GgmlDType::Q8_0)?,
        ));
    }
    for i in 0..spec.layers {
        push_attention(&mut w, spec, i, &mut tensors)?;
        push_ffn(&mut w, spec, i, &mut tensors)?;
    }
    Ok(tensors)
}

/// Block `i`'s attention weights, its norms included (the FFN norm and gemma3's extra norms sit
/// here too, to keep the file order).
fn push_attention(
    w: &mut Weights,
    spec: &SyntheticSpec,
    i: usize,
    tensors: &mut Vec<(String, QTensor)>,
) -> Result<()> {
    let head_dim = spec.hidden / spec.heads;
    let s_in = 1.0 / (spec.hidden as f32).sqrt() * 1.7;
    let p = |n: &str| format!("blk.{i}.{n}");
    tensors.push((p("attn_norm.weight"), w.norm(spec.hidden)?));
    tensors.push((
        p("attn_q.weight"),
        w.tensor(spec.heads * head_dim, spec.hidden, s_in, GgmlDType::Q8_0)?,
    ));
    tensors.push((
        p("attn_k.weight"),
        w.tensor(spec.kv_heads * head_dim, spec.hidden, s_in, GgmlDType::Q8_0)?,
    ));
    tensors.push((
        p("attn_v.weight"),
        w.tensor(spec.kv_heads * head_dim, spec.hidden, s_in, GgmlDType::Q5_0)?,
    ));
    if spec.arch == "qwen2" {
        tensors.push((
            p("attn_q.bias"),
            w.tensor(1, spec.heads * head_dim, 0.1, GgmlDType::F32)?,
        ));
        tensors.push((
            p("attn_k.bias"),
            w.tensor(1, spec.kv_heads * head_dim, 0.1, GgmlDType::F32)?,
        ));
        tensors.push((
            p("attn_v.bias"),
            w.tensor(1, spec.kv_heads * head_dim, 0.1, GgmlDType::F32)?,
        ));
    }
    tensors.push((
        p("attn_output.weight"),
        w.tensor(spec.hidden, spec.heads * head_dim, s_in, GgmlDType::Q5_0)?,
    ));
    tensors.push((p("ffn_norm.weight"), w.norm(spec.hidden)?));
    if spec.arch == "gemma3" {
        tensors.push((p("attn_q_norm.weight"), w.norm(head_dim)?));
        tensors.push((p("attn_k_norm.weight"), w.norm(head_dim)?));
        tensors.push((p("post_attention_norm.weight"), w.norm(spec.hidden)?));
        tensors.push((p("post_ffw_norm.weight"), w.norm(spec.hidden)?));
    }
    Ok(())
}

/// Block `i`'s gate, up and down projections: k-quants where the row length allows them.
fn push_ffn(
    w: &mut Weights,
    spec: &SyntheticSpec,
    i: usize,
    tensors: &mut Vec<(String, QTensor)>,
) -> Result<()> {
    let kq = |cols: usize, fallback: GgmlDType, k: GgmlDType| {
        if cols.is_multiple_of(256) {
            k
        } else {
            fallback
        }
    };
    let s_in = 1.0 / (spec.hidden as f32).sqrt() * 1.7;
    let s_ffn = 1.0 / (spec.ffn as f32).sqrt() * 1.7;
    let p = |n: &str| format!("blk.{i}.{n}");
    // Gate, then up: the weights are drawn from one stream in file order.
    for name in ["ffn_gate.weight", "ffn_up.weight"] {
        let dtype = kq(spec.hidden, GgmlDType::Q4_0, GgmlDType::Q4K);
        tensors.push((p(name), w.tensor(spec.ffn, spec.hidden, s_in, dtype)?));
    }
    tensors.push((
        p("ffn_down.weight"),
        w.tensor(
            spec.hidden,
            spec.ffn,
            s_ffn,
            kq(spec.ffn, GgmlDType::Q8_0, GgmlDType::Q6K),
        )?,
    ));
    Ok(())
}

/// The model's metadata: shape, tokenizer and chat template, in the order llama.cpp writes them.
fn synthetic_meta(
    spec: &SyntheticSpec,
    tokens: &[String],
    merges: &[String],
    types: &[i32],
) -> Vec<(String, Value)> {
    let a = spec.arch;
    let head_dim = spec.hidden / spec.heads;
    let u = |x: usize| Value::U32(x as u32);
    let strs = |v: &[String]| Value::Array(v.iter().map(|s| Value::String(s.clone())).collect());
    let id = |s: &str| u(tokens.iter().position(|t| t == s).expect("special token"));
    let mut meta: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        (
            "general.name".into(),
            Value::String(format!("synthetic-{a}")),
        ),
        (format!("{a}.block_count"), u(spec.layers)),
        (format!("{a}.context_length"), u(spec.context)),
        (format!("{a}.embedding_length"), u(spec.hidden)),
        (format!("{a}.feed_forward_length"), u(spec.ffn)),
        (format!("{a}.attention.head_count"), u(spec.heads)),
        (format!("{a}.attention.head_count_kv"), u(spec.kv_heads)),
        (format!("{a}.rope.dimension_count"), u(head_dim)),
        (format!("{a}.rope.freq_base"), Value::F32(10_000.0)),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-6),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        (
            "tokenizer.ggml.pre".into(),
            Value::String(if a == "qwen2" { "qwen2" } else { "llama-bpe" }.into()),
        ),
        ("tokenizer.ggml.tokens".into(), strs(tokens)),
        ("tokenizer.ggml.merges".into(), strs(merges)),
        (
            "tokenizer.ggml.token_type".into(),
            Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        ("tokenizer.ggml.eos_token_id".into(), id("<|im_end|>")),
        ("tokenizer.ggml.bos_token_id".into(), id("<|endoftext|>")),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            Value::String(CHATML.into()),
        ),
    ];
    if a == "gemma3" {
        meta.extend([
            (format!("{a}.attention.key_length"), u(head_dim)),
            (format!("{a}.attention.value_length"), u(head_dim)),
            (format!("{a}.attention.sliding_window"), u(GEMMA3_WINDOW)),
        ]);
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_alphabet_is_a_bijection() {
        let a = byte_alphabet();
        let mut sorted = a.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 256);
        assert_eq!(a[b' ' as usize], 'Ġ');
        assert_eq!(a[b'\n' as usize], 'Ċ');
    }

    #[test]
    fn same_seed_same_bytes() -> Result<()> {
        let spec = SyntheticSpec {
            layers: 1,
            ..Default::default()
        };
        assert_eq!(gguf_bytes(&spec)?, gguf_bytes(&spec)?);
        Ok(())
    }
}
