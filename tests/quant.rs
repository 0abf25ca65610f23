//! Quantization switching on synthetic models: every type round-trips to the loaded weights with
//! identical logits, the memory reported is the memory held, fallbacks are listed, quality
//! behaves, and the KV cache's dtype follows the switch.

mod common;

use candle_core::{DType, Device};
use labtui::engine::quality::Probe;
use labtui::engine::synthetic::SyntheticSpec;
use labtui::engine::{Engine, Forward};
use labtui::protocol::{KvDtype, Quant, Setting};

const PROMPT: [u32; 12] = [5, 17, 99, 3, 42, 250, 7, 7, 64, 120, 33, 8];

fn logits(e: &Engine) -> Vec<f32> {
    let mut cache = e.model.new_cache(e.cache.dtype());
    let l = e.model.forward(&PROMPT, &mut cache, Forward::ALL).unwrap();
    l.flatten_all().unwrap().to_vec1().unwrap()
}

/// Hidden size 160: rows of 160 values are not whole K-quant super-blocks, so they fall back.
fn narrow_spec() -> SyntheticSpec {
    SyntheticSpec {
        hidden: 160,
        heads: 4,
        kv_heads: 2,
        ffn: 512,
        ..SyntheticSpec::default()
    }
}

fn none(_: usize, _: usize) {}

#[test]
fn every_type_switches_and_back_to_the_loaded_logits_bit_for_bit() {
    let mut e = Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap();
    let loaded = logits(&e);
    let loaded_bytes = e.model.weight_bytes();
    for q in Quant::ALL
        .iter()
        .copied()
        .skip(1)
        .filter(|q| *q != Quant::BF16)
    {
        let v = e.set_quant(q, &mut none).unwrap();
        assert_eq!(v.quant, q);
        assert_eq!(
            v.kept_bytes, loaded_bytes,
            "{q}: the loaded weights are kept"
        );
        let got = logits(&e);
        assert!(got.iter().all(|x| x.is_finite()), "{q}: logits finite");
        assert_ne!(got, loaded, "{q}: a variant computes with other weights");
        let back = e.set_quant(Quant::AsLoaded, &mut none).unwrap();
        assert_eq!(back.kept_bytes, 0, "{q}: the variant is dropped");
        assert_eq!(back.weight_bytes, loaded_bytes);
        assert_eq!(logits(&e), loaded, "{q} → as loaded");
    }
}

#[test]
fn switching_from_one_variant_to_another_starts_from_the_loaded_weights() {
    let mut e = Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap();
    e.set_quant(Quant::Q8_0, &mut none).unwrap();
    let q8 = logits(&e);
    e.set_quant(Quant::Q2K, &mut none).unwrap();
    e.set_quant(Quant::Q8_0, &mut none).unwrap();
    assert_eq!(
        logits(&e),
        q8,
        "Q8_0 made after Q2_K is Q8_0 made from the file"
    );
}

/// Bytes of `n` × `k` weights in a block type of `block` values and `bytes` bytes per block.
fn blocks(n: usize, k: usize, block: usize, bytes: usize) -> u64 {
    (n * k / block * bytes) as u64
}

#[test]
fn memory_reported_is_the_memory_of_the_tensors_held() {
    let spec = narrow_spec();
    let mut e = Engine::synthetic(&spec, &Device::Cpu).unwrap();
    let c = e.model.cfg.clone();
    let (h, f, hd) = (spec.hidden, spec.ffn, c.head_dim);
    let vocab = c.vocab;
    // Dense f32: norms (2 per layer + the final one) and the q/k/v biases of qwen2.
    let dense = 4 * (h * (2 * c.layers + 1) + c.layers * (c.heads + 2 * c.kv_heads) * hd) as u64;

    // Q8_0 (34 bytes per 32 values) everywhere; the head is tied to the embeddings.
    let v = e.set_quant(Quant::Q8_0, &mut none).unwrap();
    let q8 = |n, k| blocks(n, k, 32, 34);
    let per_layer = q8(c.heads * hd, h)
        + 2 * q8(c.kv_heads * hd, h)
        + q8(h, c.heads * hd)
        + 2 * q8(f, h)
        + q8(h, f);
    let expected = q8(vocab, h) + c.layers as u64 * per_layer + dense;
    assert_eq!(v.weight_bytes, expected);
    assert_eq!(e.model.weight_bytes(), expected);
    assert_eq!(
        v.weight_types.values().map(|t| t.bytes).sum::<u64>(),
        expected
    );
    assert!(v.fallbacks.is_empty());

    // Q4_K: rows of 160 fall back to Q5_0 (22 bytes per 32); the down projection's rows of 512
    // are two super-blocks of Q4_K (144 bytes per 256).
    let v = e.set_quant(Quant::Q4K, &mut none).unwrap();
    let q5 = |n, k| blocks(n, k, 32, 22);
    let per_layer = q5(c.heads * hd, h)
        + 2 * q5(c.kv_heads * hd, h)
        + q5(h, c.heads * hd)
        + 2 * q5(f, h)
        + blocks(h, f, 256, 144);
    assert_eq!(
        v.weight_bytes,
        q5(vocab, h) + c.layers as u64 * per_layer + dense
    );
    assert_eq!(v.weight_types["Q4_K"].tensors, c.layers);
    assert_eq!(v.fallbacks.len(), 1);
    let fb = &v.fallbacks[0];
    assert_eq!((fb.wanted.as_str(), fb.used.as_str()), ("Q4_K", "Q5_0"));
    assert_eq!(
        fb.tensors,
        1 + 6 * c.layers,
        "the embeddings and six matrices a layer"
    );
    assert!(fb.why.contains("160"), "{}", fb.why);
}

#[test]
fn fewer_bits_hold_fewer_bytes() {
    let mut e = Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap();
    let order = [
        Quant::F32,
        Quant::F16,
        Quant::Q8_0,
        Quant::Q6K,
        Quant::Q5K,
        Quant::Q4K,
        Quant::Q3K,
        Quant::Q2K,
    ];
    let bytes: Vec<u64> = order
        .iter()
        .map(|&q| e.set_quant(q, &mut none).unwrap().weight_bytes)
        .collect();
    assert!(bytes.windows(2).all(|w| w[0] > w[1]), "{bytes:?}");
}

#[test]
fn a_type_the_backend_cannot_run_is_refused_and_the_loaded_weights_stay() {
    let mut e = Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap();
    let loaded = logits(&e);
    e.set_quant(Quant::Q8_0, &mut none).unwrap();
    let err = e.set_quant(Quant::BF16, &mut none).unwrap_err().to_string();
    assert!(
        err.contains("BF16 is not available on cpu") && err.contains("matrix multiply"),
        "{err}"
    );
    assert_eq!(e.quant, Quant::AsLoaded);
    assert!(e.original.is_none(), "no variant is held");
    assert_eq!(logits(&e), loaded);
}

#[test]
fn quality_is_exact_for_the_loaded_weights_and_degrades_with_fewer_bits() {
    // The llama-shaped synthetic model has its own, smaller head: its next-token distributions
    // are spread out (the qwen2 one ties a large embedding and is nearly one-hot).
    let spec = SyntheticSpec {
        arch: "llama",
        ..SyntheticSpec::default()
    };
    let mut e = Engine::synthetic(&spec, &Device::Cpu).unwrap();
    let mut probe = Probe::new(&e, 256, 64).unwrap();
    assert_eq!(probe.tokens(), 256);
    let loaded = probe.measure(&e, &mut none).unwrap();
    assert_eq!((loaded.mean_kl, loaded.top1), (0.0, 1.0));
    assert_eq!(
        loaded.scored,
        4 * 31,
        "half of each 64-token chunk, less its last token"
    );
    assert!(loaded.perplexity > 1.0 && loaded.perplexity.is_finite());
    let mut kl = Vec::new();
    for q in [Quant::F16, Quant::Q8_0, Quant::Q4_0, Quant::Q2K] {
        e.set_quant(q, &mut none).unwrap();
        let m = probe.measure(&e, &mut none).unwrap();
        assert_eq!(m.quant, q);
        assert!(m.perplexity.is_finite() && m.mean_kl >= 0.0, "{m:?}");
        kl.push(m.mean_kl);
    }
    assert!(
        kl.windows(2).all(|w| w[0] < w[1]),
        "KL grows as bits shrink: {kl:?}"
    );
    assert!(kl[1] < 0.01, "Q8_0 is close to the loaded weights: {kl:?}");
}

#[test]
fn a_half_width_kv_cache_halves_its_bytes_and_keeps_the_answer_close() {
    let mut e = Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap();
    let f32_logits = logits(&e);
    let per_token = e.cache.bytes_per_token();
    for dtype in [KvDtype::F16, KvDtype::BF16] {
        let v = e.set_kv_dtype(dtype).unwrap();
        assert_eq!(v.kv_bytes_per_token * 2, per_token);
        assert_eq!(e.info.kv_bytes_per_token * 2, per_token);
        let got = logits(&e);
        let diff = common::max_abs_diff(&got, &f32_logits);
        assert!(
            diff > 0.0 && diff < 0.05 * common::max_abs(&f32_logits),
            "{dtype:?}: {diff}"
        );
    }
    // The cache really holds the dtype asked for.
    let mut cache = e.model.new_cache(DType::F16);
    e.model.forward(&PROMPT, &mut cache, Forward::LAST).unwrap();
    let (k, _) = cache.layer(0).unwrap();
    assert_eq!(k.dtype(), DType::F16);
}

#[test]
fn a_decode_step_reads_one_embedding_row_unless_the_head_is_tied() {
    let tied = Engine::synthetic(&SyntheticSpec::default(), &Device::Cpu).unwrap();
    assert_eq!(tied.model.bytes_read_per_token(), tied.model.weight_bytes());
    let spec = SyntheticSpec {
        arch: "llama",
        ..SyntheticSpec::default()
    };
    let own = Engine::synthetic(&spec, &Device::Cpu).unwrap();
    let (vocab, hidden) = (own.model.cfg.vocab, own.model.cfg.hidden);
    // The synthetic embeddings are Q5_0: 22 bytes per 32 values.
    let embed = (vocab * hidden / 32 * 22) as u64;
    let row = (hidden / 32 * 22) as u64;
    assert_eq!(
        own.model.bytes_read_per_token(),
        own.model.weight_bytes() - embed + row
    );
}
