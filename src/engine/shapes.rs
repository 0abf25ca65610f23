//! The shape each weight must have, from the model's hyper-parameters: checked on the file's tensor
//! table before a byte of weights is read, so a file whose tensors disagree with its metadata is
//! refused with the tensor's name rather than failing (or panicking) inside the forward pass.
//! Shapes are candle's order, rows first: a matrix is `[out, in]`, as llama.cpp's `{in, out}`.

use super::config::{Arch, ModelConfig};
use super::error::{EngineError, Result};
use candle_core::quantized::gguf_file::Content;

/// Each weight the forward pass reads, its shape, and whether the file must have it.
pub fn expected(cfg: &ModelConfig) -> Vec<(String, Vec<usize>, bool)> {
    let (hidden, vocab, ffn) = (cfg.hidden, cfg.vocab, cfg.ffn);
    let q = cfg.heads * cfg.head_dim;
    let kv = cfg.kv_heads * cfg.head_dim;
    let mut w = vec![
        ("token_embd.weight".to_string(), vec![vocab, hidden], true),
        ("output_norm.weight".to_string(), vec![hidden], true),
        // Without its own head the model reads the embedding's transpose.
        ("output.weight".to_string(), vec![vocab, hidden], false),
    ];
    for i in 0..cfg.layers {
        let mut push =
            |name: &str, shape: Vec<usize>| w.push((format!("blk.{i}.{name}"), shape, true));
        push("attn_norm.weight", vec![hidden]);
        push("attn_q.weight", vec![q, hidden]);
        push("attn_k.weight", vec![kv, hidden]);
        push("attn_v.weight", vec![kv, hidden]);
        if cfg.arch == Arch::Qwen2 {
            push("attn_q.bias", vec![q]);
            push("attn_k.bias", vec![kv]);
            push("attn_v.bias", vec![kv]);
        }
        push("attn_output.weight", vec![hidden, q]);
        push("ffn_norm.weight", vec![hidden]);
        push("ffn_gate.weight", vec![ffn, hidden]);
        push("ffn_up.weight", vec![ffn, hidden]);
        push("ffn_down.weight", vec![hidden, ffn]);
        if cfg.arch == Arch::Gemma3 {
            push("attn_q_norm.weight", vec![cfg.head_dim]);
            push("attn_k_norm.weight", vec![cfg.head_dim]);
            push("post_attention_norm.weight", vec![hidden]);
            push("post_ffw_norm.weight", vec![hidden]);
        }
    }
    w
}

/// Check every weight the model reads is in the file with the shape its hyper-parameters give.
pub fn check(content: &Content, cfg: &ModelConfig, path: &str) -> Result<()> {
    let corrupt = |detail: String| EngineError::Corrupt {
        path: path.to_string(),
        detail,
    };
    for (name, want, required) in expected(cfg) {
        match content.tensor_infos.get(&name) {
            Some(t) if t.shape.dims() == want.as_slice() => {}
            Some(t) => {
                return Err(corrupt(format!(
                    "tensor {name} is {:?} but a {} model of hidden size {}, {} heads × {} dims \
                     ({} KV heads), feed-forward {} and vocabulary {} needs {want:?}",
                    t.shape.dims(),
                    cfg.arch.name(),
                    cfg.hidden,
                    cfg.heads,
                    cfg.head_dim,
                    cfg.kv_heads,
                    cfg.ffn,
                    cfg.vocab
                )))
            }
            None if required => return Err(corrupt(format!("tensor {name} is missing"))),
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::config::Meta;
    use crate::engine::synthetic::{gguf_bytes, SyntheticSpec};

    fn content(spec: &SyntheticSpec) -> Content {
        let bytes = gguf_bytes(spec).unwrap();
        Content::read(&mut std::io::Cursor::new(bytes)).unwrap()
    }

    #[test]
    fn the_synthetic_models_have_the_shapes_their_metadata_gives() {
        for arch in ["qwen2", "llama"] {
            let spec = SyntheticSpec {
                arch,
                ..Default::default()
            };
            let c = content(&spec);
            let cfg = ModelConfig::from_meta(&Meta {
                content: &c,
                path: "synthetic",
            })
            .unwrap();
            check(&c, &cfg, "synthetic").unwrap();
        }
    }

    #[test]
    fn a_weight_of_the_wrong_shape_is_named() {
        let c = content(&SyntheticSpec::default());
        let meta = Meta {
            content: &c,
            path: "x.gguf",
        };
        let cfg = ModelConfig {
            ffn: 384,
            ..ModelConfig::from_meta(&meta).unwrap()
        };
        let err = check(&c, &cfg, "x.gguf").unwrap_err().to_string();
        assert!(
            err.contains("tensor blk.0.ffn_gate.weight is [512, 256]")
                && err.contains("needs [384, 256]"),
            "{err}"
        );
    }
}
