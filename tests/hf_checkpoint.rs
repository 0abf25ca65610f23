//! Hugging Face checkpoints written by the test: the synthetic model's weights, dequantized, as
//! safetensors with the checkpoint's names and layouts (Llama's query and key rows in the halves
//! layout llama.cpp's converter permutes away, Gemma's norms without llama.cpp's added 1), with
//! config.json, tokenizer.json and tokenizer_config.json. Loaded as a folder, each gives the
//! logits of the same weights loaded from GGUF (requantised to f32), prefill and decode, and the
//! same token ids; `labtui generate --model DIR` runs on it.

mod common;

use candle_core::quantized::gguf_file::Content;
use candle_core::{DType, Device, Tensor};
use common::{max_abs, max_abs_diff, OutputWithin};
use labtui::engine::sampling::argmax;
use labtui::engine::synthetic::{gguf_bytes, SyntheticSpec};
use labtui::engine::{Engine, Forward, Model};
use labtui::protocol::Quant;
use std::collections::HashMap;
use std::path::Path;

fn spec(arch: &'static str) -> SyntheticSpec {
    SyntheticSpec {
        arch,
        layers: if arch == "gemma3" { 6 } else { 2 },
        ..SyntheticSpec::default()
    }
}

/// The checkpoint's name for one of llama.cpp's.
fn hf_name(arch: &str, gguf: &str) -> String {
    match gguf {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.").expect("a layer tensor");
    let (i, name) = rest.split_once('.').unwrap();
    let (part, suffix) = name.rsplit_once('.').unwrap();
    let hf = match (part, arch == "gemma3") {
        ("attn_norm", _) => "input_layernorm",
        ("ffn_norm", false) => "post_attention_layernorm",
        ("ffn_norm", true) => "pre_feedforward_layernorm",
        ("post_attention_norm", _) => "post_attention_layernorm",
        ("post_ffw_norm", _) => "post_feedforward_layernorm",
        ("attn_q", _) => "self_attn.q_proj",
        ("attn_k", _) => "self_attn.k_proj",
        ("attn_v", _) => "self_attn.v_proj",
        ("attn_output", _) => "self_attn.o_proj",
        ("attn_q_norm", _) => "self_attn.q_norm",
        ("attn_k_norm", _) => "self_attn.k_norm",
        ("ffn_gate", _) => "mlp.gate_proj",
        ("ffn_up", _) => "mlp.up_proj",
        ("ffn_down", _) => "mlp.down_proj",
        other => panic!("no checkpoint name for {other:?}"),
    };
    format!("model.layers.{i}.{hf}.{suffix}")
}

/// Undo llama.cpp's permutation of Llama's query and key rows: per head, rows (pair j, member m)
/// go back to (member m, pair j).
fn unpermute(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    w.reshape((heads, rows / heads / 2, 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
}

/// Write the synthetic model's weights as a checkpoint into `dir`, as `dtype`.
fn write_checkpoint(arch: &'static str, e: &Engine, dir: &Path, dtype: DType) {
    let bytes = gguf_bytes(&spec(arch)).unwrap();
    let mut reader = std::io::Cursor::new(bytes);
    let content = Content::read(&mut reader).unwrap();
    let c = &e.model.cfg;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for name in content.tensor_infos.keys() {
        let q = content.tensor(&mut reader, name, &Device::Cpu).unwrap();
        let mut t = q.dequantize(&Device::Cpu).unwrap();
        if arch == "llama" && name.ends_with("attn_q.weight") {
            t = unpermute(&t, c.heads);
        }
        if arch == "llama" && name.ends_with("attn_k.weight") {
            t = unpermute(&t, c.kv_heads);
        }
        if arch == "gemma3" && name.ends_with("norm.weight") {
            t = (t - 1.0).unwrap();
        }
        tensors.insert(hf_name(arch, name), t.to_dtype(dtype).unwrap());
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let mut config = serde_json::json!({
        "model_type": arch,
        "hidden_size": c.hidden,
        "intermediate_size": c.ffn,
        "num_hidden_layers": c.layers,
        "num_attention_heads": c.heads,
        "num_key_value_heads": c.kv_heads,
        "head_dim": c.head_dim,
        "vocab_size": c.vocab,
        "max_position_embeddings": c.context_length,
        "rms_norm_eps": c.rms_eps,
        "rope_theta": c.rope_base,
        "eos_token_id": e.tokenizer.eos,
        "bos_token_id": e.tokenizer.bos,
        "tie_word_embeddings": !content.tensor_infos.contains_key("output.weight"),
    });
    if let Some(s) = c.sliding {
        config["sliding_window"] = s.window.into();
        config["sliding_window_pattern"] = s.pattern.into();
        config["rope_local_base_freq"] = s.rope_base.into();
        config["query_pre_attn_scalar"] = (1.0 / (c.attn_scale * c.attn_scale)).round().into();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    e.tokenizer
        .inner
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    let tc = serde_json::json!({
        "add_bos_token": e.tokenizer.add_bos,
        "chat_template": e.tokenizer.chat_template,
    });
    std::fs::write(dir.join("tokenizer_config.json"), tc.to_string()).unwrap();
}

/// Last-position logits after a 20-token prompt and after each of 5 greedy decode steps.
fn trace(m: &Model, prompt: &[u32]) -> Vec<Vec<f32>> {
    let mut cache = m.new_cache(DType::F32);
    let mut l = Model::last_logits(&m.forward(prompt, &mut cache, Forward::LAST).unwrap()).unwrap();
    let mut out = vec![l.clone()];
    for _ in 0..5 {
        let t = argmax(&l) as u32;
        l = Model::last_logits(&m.forward(&[t], &mut cache, Forward::LAST).unwrap()).unwrap();
        out.push(l.clone());
    }
    out
}

fn same_model_as_gguf(arch: &'static str, dtype: DType, tolerance: f32) {
    let mut gguf = Engine::synthetic(&spec(arch), &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(arch, &gguf, dir.path(), dtype);
    let hf = Engine::from_file(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(hf.model.cfg.layers, gguf.model.cfg.layers);
    assert_eq!(hf.model.cfg.sliding, gguf.model.cfg.sliding, "{arch}");
    assert_eq!(hf.model.cfg.attn_scale, gguf.model.cfg.attn_scale, "{arch}");
    let text = "Hello, world: 12 tokens of plain text.";
    let ids = gguf.prompt_ids(text, false).unwrap();
    assert_eq!(
        hf.prompt_ids(text, false).unwrap(),
        ids,
        "{arch}: token ids"
    );
    assert_eq!(hf.tokenizer.eog, gguf.tokenizer.eog, "{arch}");
    let want_quant = match dtype {
        DType::F16 => Quant::F16,
        _ => Quant::F32,
    };
    gguf.set_quant(want_quant, &mut |_, _| {}).unwrap();
    let prompt: Vec<u32> = (0..20u32).map(|i| 3 + (i * 37) % 200).collect();
    let (ours, theirs) = (trace(&hf.model, &prompt), trace(&gguf.model, &prompt));
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        let diff = max_abs_diff(a, b);
        assert!(
            diff <= tolerance * max_abs(b),
            "{arch} {dtype:?}, step {i}: max diff {diff} of {}",
            max_abs(b)
        );
    }
}

#[test]
fn qwen2_checkpoint_gives_the_gguf_logits() {
    same_model_as_gguf("qwen2", DType::F32, 1e-5);
}

/// Llama's query and key rows are in the checkpoint's halves layout: RoPE pairs them the other
/// way, and the dot products sum in another order (last bits only).
#[test]
fn llama_checkpoint_gives_the_gguf_logits() {
    same_model_as_gguf("llama", DType::F32, 1e-4);
}

#[test]
fn gemma3_checkpoint_gives_the_gguf_logits() {
    same_model_as_gguf("gemma3", DType::F32, 1e-5);
}

/// Half-width weights load as f16 and match the GGUF's weights requantised to f16.
#[test]
fn f16_checkpoint_gives_the_f16_logits() {
    same_model_as_gguf("qwen2", DType::F16, 1e-3);
}

#[test]
fn generate_runs_on_a_checkpoint_folder_and_a_broken_one_is_refused() {
    let e = Engine::synthetic(&spec("qwen2"), &Device::Cpu).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint("qwen2", &e, dir.path(), DType::BF16);
    let o = common::labtui_cmd()
        .args(["generate", "--prompt", "hello", "-n", "4", "--model"])
        .arg(dir.path())
        .output_bounded();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // A config without the layer count names the key.
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "qwen2", "hidden_size": 64}"#,
    )
    .unwrap();
    let o = common::labtui_cmd()
        .args(["generate", "--prompt", "hello", "-n", "4", "--model"])
        .arg(dir.path())
        .output_bounded();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("num_hidden_layers"),
        "{err}"
    );
}

/// `hf:OWNER/REPO` names a checkpoint on the Hub. With the Hub out of reach, the Hugging Face
/// cache's copy of its main revision is used (the layout `huggingface_hub` writes: `refs/main`
/// holds the commit, `snapshots/COMMIT/` the files); a repository the cache lacks is refused with
/// both reasons, and `HF_HUB_OFFLINE` does not try the network at all.
#[test]
fn a_hub_checkpoint_loads_from_the_cache_when_the_hub_is_out_of_reach() {
    let e = Engine::synthetic(&spec("qwen2"), &Device::Cpu).unwrap();
    let hub = tempfile::tempdir().unwrap();
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = hub.path().join("models--labtui--tiny-qwen2");
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    write_checkpoint("qwen2", &e, &snap, DType::F32);
    let run = |model: &str, offline: bool| {
        let mut c = common::labtui_cmd();
        c.args(["generate", "--prompt", "hello", "-n", "4", "--model", model])
            .env("HF_HUB_CACHE", hub.path())
            // Nothing listens there: every request to the Hub fails at once.
            .env("HF_ENDPOINT", "http://127.0.0.1:9");
        if offline {
            c.env("HF_HUB_OFFLINE", "1");
        }
        c.output_bounded()
    };
    let local = generate_from(&snap);
    for offline in [false, true] {
        generates_like(&run("hf:labtui/tiny-qwen2", offline), &local);
    }
    let tok = common::labtui_cmd()
        .args([
            "tokenize",
            "--json",
            "--model",
            "hf:labtui/tiny-qwen2",
            "hello",
        ])
        .env("HF_HUB_CACHE", hub.path())
        .env("HF_HUB_OFFLINE", "1")
        .output_bounded();
    assert!(
        tok.status.success(),
        "{}",
        String::from_utf8_lossy(&tok.stderr)
    );
    let o = run("hf:labtui/not-cached", false);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("labtui/not-cached") && err.contains("cache"),
        "{err}"
    );
    let o = run("hf:labtui/not-cached", true);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("HF_HUB_OFFLINE is set"),
        "{err}"
    );
}

/// A stand-in for the Hugging Face Hub on loopback, serving one repository at one commit: the
/// calls hf-hub makes for a snapshot (the revision's commit, the file tree, then HEAD and GET of
/// each file under `resolve/COMMIT/`). It counts the files it sends.
struct MockHub {
    url: String,
    sent: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    _rt: tokio::runtime::Runtime,
}

/// `labtui generate` of four tokens from `model` (a folder), which must succeed.
fn generate_from(model: &Path) -> std::process::Output {
    let o = common::labtui_cmd()
        .args(["generate", "--prompt", "hello", "-n", "4", "--model"])
        .arg(model)
        .output_bounded();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// A run through the Hub succeeded and printed what the folder itself gives.
fn generates_like(o: &std::process::Output, local: &std::process::Output) {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        o.stdout, local.stdout,
        "the same model as the folder itself"
    );
}

fn mock_hub(repo: &'static str, commit: &'static str, dir: &Path) -> MockHub {
    use axum::extract::{Path as UrlPath, State};
    use axum::http::{header, HeaderMap, Method, StatusCode};
    use axum::response::IntoResponse;
    use axum::routing::get;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};
    let files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    let sent = Arc::new(Mutex::new(Vec::new()));
    #[derive(Clone)]
    struct Hub {
        files: Arc<BTreeMap<String, Vec<u8>>>,
        sent: Arc<Mutex<Vec<String>>>,
        commit: &'static str,
    }
    let hub = Hub {
        files: Arc::new(files),
        sent: sent.clone(),
        commit,
    };
    let api = format!("/api/models/{repo}");
    let app = axum::Router::new()
        .route(
            &format!("{api}/revision/{{rev}}"),
            get(|State(h): State<Hub>| async move { axum::Json(serde_json::json!({ "sha": h.commit })) }),
        )
        .route(
            &format!("{api}/tree/{{rev}}"),
            get(|State(h): State<Hub>| async move {
                let entries: Vec<serde_json::Value> = h
                    .files
                    .iter()
                    .map(|(p, b)| serde_json::json!({"type": "file", "oid": format!("{:x}", b.len()), "size": b.len(), "path": p}))
                    .collect();
                axum::Json(entries)
            }),
        )
        .route(
            &format!("/{repo}/resolve/{{rev}}/{{file}}"),
            get(
                |State(h): State<Hub>, method: Method, UrlPath((_rev, file)): UrlPath<(String, String)>| async move {
                    let Some(bytes) = h.files.get(&file) else {
                        return StatusCode::NOT_FOUND.into_response();
                    };
                    if method == Method::GET {
                        h.sent.lock().unwrap().push(file.clone());
                    }
                    let mut headers = HeaderMap::new();
                    // A content hash stands in for the Hub's ETag: one blob per file content.
                    let etag = format!("\"{:016x}{:08x}\"", bytes.iter().fold(0u64, |a, &b| a.rotate_left(5) ^ b as u64), bytes.len());
                    headers.insert(header::ETAG, etag.parse().unwrap());
                    headers.insert("x-repo-commit", h.commit.parse().unwrap());
                    (headers, bytes.clone()).into_response()
                },
            ),
        )
        .with_state(hub);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
    MockHub { url, sent, _rt: rt }
}

/// `hf:OWNER/REPO` downloads a checkpoint from the Hub (a stand-in on loopback here) into the
/// Hugging Face cache: only the configuration, tokenizer and weights, once; the next load finds
/// them in the cache.
#[test]
fn a_hub_checkpoint_downloads_into_the_cache_once() {
    let e = Engine::synthetic(&spec("qwen2"), &Device::Cpu).unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    write_checkpoint("qwen2", &e, repo_dir.path(), DType::F32);
    // Files a checkpoint repository also holds, which labtui does not need.
    std::fs::write(repo_dir.path().join("README.md"), "# tiny").unwrap();
    std::fs::write(repo_dir.path().join("pytorch_model.bin"), vec![7u8; 4096]).unwrap();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let hub = mock_hub("labtui/tiny-qwen2", commit, repo_dir.path());
    let cache = tempfile::tempdir().unwrap();
    let run = || {
        common::labtui_cmd()
            .args([
                "generate",
                "--prompt",
                "hello",
                "-n",
                "4",
                "--model",
                "hf:labtui/tiny-qwen2",
            ])
            .env("HF_HUB_CACHE", cache.path())
            .env("HF_ENDPOINT", &hub.url)
            .env_remove("HF_HUB_OFFLINE")
            .output_bounded()
    };
    let local = generate_from(repo_dir.path());
    let first = run();
    generates_like(&first, &local);
    let snap = cache
        .path()
        .join("models--labtui--tiny-qwen2/snapshots")
        .join(commit);
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        assert!(snap.join(f).exists(), "{f} in {}", snap.display());
    }
    for f in ["README.md", "pytorch_model.bin"] {
        assert!(!snap.join(f).exists(), "{f} is not needed");
    }
    let second = run();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let sent = hub.sent.lock().unwrap().clone();
    assert_eq!(
        sent.iter().filter(|f| *f == "model.safetensors").count(),
        1,
        "the weights are sent once: {sent:?}"
    );
}
