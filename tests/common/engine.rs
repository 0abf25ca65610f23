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
