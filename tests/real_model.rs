//! End-to-end checks on the real Qwen2.5-Coder-0.5B GGUF against candle-transformers' own model
//! code. Skipped (with a note) when the model is not downloaded, unless LABTUI_REQUIRE_MODELS=1.

mod common;

use candle_core::{DType, Device};
use common::{max_abs, max_abs_diff, real_model, QWEN_05B};
use labtui::bench::Reference;
use labtui::engine::sampling::argmax;
use labtui::engine::{Engine, Forward, Model};

/// A fixed 64-token prompt: the chat-templated request, cut to 64 tokens.
fn prompt_64(e: &Engine) -> Vec<u32> {
    let ids = e.prompt_ids("Write a Rust function that parses a comma-separated list of integers, skipping blanks, and returns their sum; explain each step.", false).unwrap();
    assert!(ids.len() >= 64, "prompt has {} tokens", ids.len());
    ids[..64].to_vec()
}

#[test]
fn qwen_logits_and_greedy_match_candle_transformers() {
    let Some(path) = real_model(QWEN_05B) else { return };
    let dev = Device::Cpu;
    let e = Engine::from_file(&path, &dev).unwrap();
    let mut r = Reference::from_bytes(std::fs::read(&path).unwrap(), &dev).unwrap();
    let prompt = prompt_64(&e);
    let mut cache = e.model.new_cache(DType::F32);
    let ours = Model::last_logits(&e.model.forward(&prompt, &mut cache, Forward::LAST).unwrap()).unwrap();
    let theirs = r.forward(&prompt, 0, &dev).unwrap();
    let diff = max_abs_diff(&ours, &theirs);
    eprintln!("max |logit diff| {diff} (largest logit {})", max_abs(&theirs));
    assert!(diff < 1e-3 * max_abs(&theirs), "max diff {diff}");

    let (mut a, mut b) = (argmax(&ours) as u32, argmax(&theirs) as u32);
    let (mut ot, mut tt) = (vec![a], vec![b]);
    for i in 0..31 {
        a = argmax(&Model::last_logits(&e.model.forward(&[a], &mut cache, Forward::LAST).unwrap()).unwrap()) as u32;
        b = argmax(&r.forward(&[b], prompt.len() + i, &dev).unwrap()) as u32;
        ot.push(a);
        tt.push(b);
    }
    eprintln!("continuation: {:?}", e.tokenizer.decode(&ot).unwrap());
    assert_eq!(ot, tt);
}

#[test]
fn qwen_kv_steps_equal_recomputation_and_bytes_follow_the_formula() {
    let Some(path) = real_model(QWEN_05B) else { return };
    let e = Engine::from_file(&path, &Device::Cpu).unwrap();
    // 2 × 24 layers × 2 KV heads × 64 dims × 4 bytes.
    assert_eq!(e.info.kv_bytes_per_token, 24_576);
    let prompt = prompt_64(&e);
    let mut cache = e.model.new_cache(DType::F32);
    e.model.forward(&prompt[..60], &mut cache, Forward::LAST).unwrap();
    let mut stepped = Vec::new();
    for t in &prompt[60..] {
        stepped = Model::last_logits(&e.model.forward(&[*t], &mut cache, Forward::LAST).unwrap()).unwrap();
    }
    assert_eq!(cache.bytes(), 64 * 24_576);
    let mut fresh = e.model.new_cache(DType::F32);
    let full = Model::last_logits(&e.model.forward(&prompt, &mut fresh, Forward::LAST).unwrap()).unwrap();
    let diff = max_abs_diff(&stepped, &full);
    assert!(diff < 1e-3 * max_abs(&full), "diff {diff}");
}

#[test]
fn qwen_writes_a_prime_checker() {
    let Some(path) = real_model(QWEN_05B) else { return };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args(["generate", "--model", path.to_str().unwrap(), "-n", "96", "--prompt"])
        .arg("Write a Python function that checks whether a number is prime.")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{text}\n{err}");
    assert!(out.status.success());
    assert!(text.contains("def ") && text.contains("prime"), "{text}");
    assert!(err.contains("decode") && err.contains("tok/s"));
}
