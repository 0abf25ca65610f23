//! Headless speed measurements: our engine against candle-transformers' reference model on the
//! same GGUF, in the same run, as medians of repeats after a warm-up.

use crate::cli::BenchEngineArgs;
use crate::engine::{self, generate, source, Control, Engine, Prompt};
use crate::protocol::{GenParams, RunSettings};
use crate::stats::{median, tok_per_s};
use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use std::time::Instant;

/// Physical cores of this machine (the default thread count).
pub fn physical_cores() -> usize {
    sysinfo::System::physical_core_count()
        .ok()
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// Deterministic ordinary-token ids for benchmark prompts.
pub fn bench_tokens(n: usize, vocab: usize) -> Vec<u32> {
    let span = vocab.clamp(2, 30_000) as u64 - 1;
    (0..n as u64).map(|i| (1 + (i * 7919 + 13) % span) as u32).collect()
}

/// candle-transformers' own model code for the same file: the independent reference.
pub enum Reference {
    Qwen2(candle_transformers::models::quantized_qwen2::ModelWeights),
    Llama(candle_transformers::models::quantized_llama::ModelWeights),
}

impl Reference {
    pub fn from_gguf_bytes_or_file(spec: &str, device: &Device) -> Result<Self> {
        let bytes = match source::resolve(spec)? {
            source::ModelSource::Synthetic => engine::synthetic::gguf_bytes(&Default::default())?,
            source::ModelSource::File(p) => std::fs::read(&p).with_context(|| format!("cannot read {}", p.display()))?,
            source::ModelSource::Hub { .. } => bail!("the reference benchmark needs a local file"),
        };
        Self::from_bytes(bytes, device)
    }

    pub fn from_bytes(bytes: Vec<u8>, device: &Device) -> Result<Self> {
        let mut r = std::io::Cursor::new(bytes);
        let content = gguf_file::Content::read(&mut r)?;
        let arch = content.metadata.get("general.architecture").and_then(|v| v.to_string().ok()).cloned().unwrap_or_default();
        Ok(match arch.as_str() {
            "qwen2" => Self::Qwen2(candle_transformers::models::quantized_qwen2::ModelWeights::from_gguf(content, &mut r, device)?),
            "llama" => Self::Llama(candle_transformers::models::quantized_llama::ModelWeights::from_gguf(content, &mut r, device)?),
            other => bail!("no reference model for architecture {other}"),
        })
    }

    /// Last-position logits of `tokens` placed at `pos` (the cache holds what came before).
    pub fn forward(&mut self, tokens: &[u32], pos: usize, device: &Device) -> Result<Vec<f32>> {
        let x = Tensor::new(tokens, device)?.unsqueeze(0)?;
        let l = match self {
            Self::Qwen2(m) => m.forward(&x, pos)?,
            Self::Llama(m) => m.forward(&x, pos)?,
        };
        Ok(l.flatten_all()?.to_vec1()?)
    }

    /// Forget the cache (both models start afresh when `pos` is 0 — the llama one needs no call).
    pub fn clear(&mut self) {
        if let Self::Qwen2(m) = self {
            m.clear_kv_cache()
        }
    }
}

/// Decode tok/s of the reference: greedy steps after a prompt, only the steps timed.
fn reference_decode(r: &mut Reference, prompt: &[u32], tg: usize, device: &Device) -> Result<f64> {
    r.clear();
    let mut logits = r.forward(prompt, 0, device)?;
    let t = Instant::now();
    for i in 0..tg {
        let next = engine::sampling::argmax(&logits) as u32;
        logits = r.forward(&[next], prompt.len() + i, device)?;
    }
    Ok(tok_per_s(tg, t.elapsed()))
}

fn time<F: FnMut() -> Result<()>>(repeats: usize, mut f: F) -> Result<Vec<f64>> {
    f()?; // warm-up
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect()
}

/// One engine measurement through the instrumented generation loop; returns (prefill tok/s, decode tok/s).
fn ours(engine: &mut Engine, ids: Vec<u32>, decode: usize) -> Result<(f64, f64)> {
    let params = GenParams { max_tokens: decode + 1, ignore_eos: true, ..GenParams::default() };
    let settings = RunSettings { params: params.clone(), quantization: "as loaded".into(), draft_mode: "none".into(), k: 0 };
    let (tx, _rx) = std::sync::mpsc::channel();
    let mut emit = |e| {
        let _ = tx.send(e);
    };
    let s = generate(engine, 0, Prompt::Ids(ids), &params, settings, &mut emit, &mut || Control::Continue)?;
    Ok((s.prefill_tok_s, s.decode_tok_s))
}

pub fn engine(spec: &str, args: &BenchEngineArgs) -> Result<()> {
    let device = engine::default_device();
    let mut eng = Engine::open(spec, &device, |_, _| {})?;
    let vocab = eng.info.vocab;
    let mut reference = if args.no_reference { None } else { Some(Reference::from_gguf_bytes_or_file(spec, &device)?) };
    println!(
        "model {} ({}), {} threads, median of {} after a warm-up",
        eng.info.name,
        eng.info.arch,
        engine::threads(),
        args.repeats
    );
    println!("{:<8} {:>14} {:>16} {:>7}", "test", "labtui tok/s", "reference tok/s", "ratio");
    let row = |name: String, ours: f64, theirs: Option<f64>| match theirs {
        Some(t) => println!("{name:<8} {ours:>14.1} {t:>16.1} {:>6.2}x", ours / t),
        None => println!("{name:<8} {ours:>14.1} {:>16} {:>7}", "-", "-"),
    };
    for &pp in &args.pp {
        let ids = bench_tokens(pp, vocab);
        let mut rates = Vec::new();
        for _ in 0..=args.repeats {
            rates.push(ours(&mut eng, ids.clone(), 0)?.0);
        }
        rates.remove(0);
        let theirs = match reference.as_mut() {
            Some(r) => {
                let secs = time(args.repeats, || {
                    r.clear();
                    r.forward(&ids, 0, &device)?;
                    Ok(())
                })?;
                Some(pp as f64 / median(&secs).unwrap_or(f64::NAN))
            }
            None => None,
        };
        row(format!("pp{pp}"), median(&rates).unwrap_or(0.0), theirs);
    }
    let prompt = bench_tokens(16, vocab);
    let mut rates = Vec::new();
    for _ in 0..=args.repeats {
        rates.push(ours(&mut eng, prompt.clone(), args.tg)?.1);
    }
    rates.remove(0);
    let theirs = match reference.as_mut() {
        Some(r) => {
            let mut decode_rates = Vec::new();
            for _ in 0..=args.repeats {
                decode_rates.push(reference_decode(r, &prompt, args.tg, &device)?);
            }
            decode_rates.remove(0); // warm-up
            median(&decode_rates)
        }
        None => None,
    };
    row(format!("tg{}", args.tg), median(&rates).unwrap_or(0.0), theirs);
    Ok(())
}
