//! The synthetic engine and the greedy reference that batched runs are held to.

use candle_core::{DType, Device};
use labtui::engine::synthetic::SyntheticSpec;
use labtui::engine::{Engine, Forward, Model};

/// The default synthetic model on the CPU: small, random weights, no files.
pub fn synthetic() -> Engine {
    Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap()
}

/// `prompt`'s greedy continuation of `n` tokens run alone on a fresh cache, as a batch must
/// reproduce it: the prompt in chunks of `chunk` tokens (as a scheduler prefills it), then one
/// decode step per token. Each token comes with the logits that chose it.
pub fn greedy_alone(model: &Model, prompt: &[u32], n: usize, chunk: usize) -> Vec<(u32, Vec<f32>)> {
    let mut cache = model.new_cache(DType::F32);
    let mut logits = None;
    for c in prompt.chunks(chunk) {
        logits = Some(model.forward(c, &mut cache, Forward::LAST).unwrap());
    }
    let mut logits = Model::last_logits(&logits.expect("a prompt")).unwrap();
    let mut out = Vec::new();
    loop {
        let t = labtui::engine::sampling::argmax(&logits) as u32;
        out.push((t, logits));
        if out.len() == n {
            return out;
        }
        logits =
            Model::last_logits(&model.forward(&[t], &mut cache, Forward::LAST).unwrap()).unwrap();
    }
}

/// A synthetic gemma3 (six layers: five sliding-window ones and a global one) whose sliding
/// layers see `window` positions: the engine, its GGUF's bytes and the folder holding the file.
pub fn gemma3_window(window: u32) -> (Engine, Vec<u8>, tempfile::TempDir) {
    let spec = SyntheticSpec {
        arch: "gemma3",
        layers: 6,
        ..SyntheticSpec::default()
    };
    let bytes = labtui::engine::synthetic::gguf_bytes_with(
        &spec,
        &[(
            "gemma3.attention.sliding_window",
            candle_core::quantized::gguf_file::Value::U32(window),
        )],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gemma3.gguf");
    std::fs::write(&path, &bytes).unwrap();
    (Engine::from_file(&path, &Device::Cpu).unwrap(), bytes, dir)
}
