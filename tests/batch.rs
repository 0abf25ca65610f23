//! Batched forward passes over the paged KV cache: each sequence's greedy tokens (and logits, bit
//! for bit) equal running it alone, whatever else shares its steps, on the synthetic models and on
//! the real 0.5B; every block goes back to the pool when the sequences finish.

mod common;

use candle_core::{DType, Device};
use common::{real_model, QWEN_05B};
use labtui::engine::kernels::SMALL_BATCH;
use labtui::engine::synthetic::SyntheticSpec;
use labtui::engine::{BlockTable, Engine, Forward, Model, Seq};
use labtui::lab::measure::bench_tokens;

/// Prompts are prefilled in chunks of at most this many tokens, alone and batched alike; it is
/// above SMALL_BATCH so that a step holds long chunks, short tails and decode rows.
const CHUNK: usize = SMALL_BATCH + 7;

/// What a sequence produced: its greedy tokens and the bits of the logits that chose them.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    tokens: Vec<u32>,
    logits: Vec<Vec<u32>>,
}

fn bits(logits: &candle_core::Tensor) -> Vec<u32> {
    Model::last_logits(logits)
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

fn argmax(bits: &[u32]) -> u32 {
    let v: Vec<f32> = bits.iter().map(|b| f32::from_bits(*b)).collect();
    labtui::engine::sampling::argmax(&v) as u32
}

/// `prompt` alone through the single-sequence cache: its chunks, then `n` decode steps.
fn alone(model: &Model, prompt: &[u32], n: usize) -> Run {
    let (tokens, logits) = common::greedy_alone(model, prompt, n, CHUNK)
        .into_iter()
        .map(|(t, l)| (t, l.iter().map(|x| x.to_bits()).collect()))
        .unzip();
    Run { tokens, logits }
}

/// Every prompt in one pool, batched: sequence `j` joins at step `j % 3`; each step holds every
/// active sequence's next prompt chunk or decode row. Returns each run, and checks that the
/// pool gets every block back.
fn batched(model: &Model, prompts: &[Vec<u32>], n: usize) -> Vec<Run> {
    let mut pool = model.new_pool(DType::F32, 1 << 16);
    let mut tables = vec![BlockTable::default(); prompts.len()];
    let mut fed = vec![0usize; prompts.len()];
    let mut runs: Vec<Run> = prompts
        .iter()
        .map(|_| Run {
            tokens: vec![],
            logits: vec![],
        })
        .collect();
    let mut step = 0;
    while runs.iter().any(|r| r.tokens.len() < n) {
        let mut inputs: Vec<(usize, Vec<u32>)> = Vec::new();
        for (j, p) in prompts.iter().enumerate() {
            if step < j % 3 || runs[j].tokens.len() >= n {
                continue;
            }
            let piece = if fed[j] < p.len() {
                let end = (fed[j] + CHUNK).min(p.len());
                p[fed[j]..end].to_vec()
            } else {
                vec![*runs[j].tokens.last().unwrap()]
            };
            inputs.push((j, piece));
        }
        step += 1;
        if inputs.is_empty() {
            continue;
        }
        let mut free: Vec<Option<&mut BlockTable>> = tables.iter_mut().map(Some).collect();
        let mut seqs: Vec<Seq> = inputs
            .iter()
            .map(|(j, piece)| Seq {
                tokens: piece,
                table: free[*j].take().unwrap(),
            })
            .collect();
        let out = model
            .forward_batch(&mut pool, &mut seqs, Forward::LAST)
            .unwrap();
        drop(seqs);
        for ((j, piece), logits) in inputs.iter().zip(out) {
            fed[*j] += piece.len();
            if fed[*j] < prompts[*j].len() {
                continue; // a prompt chunk before the last
            }
            let l = bits(&logits);
            runs[*j].tokens.push(argmax(&l));
            runs[*j].logits.push(l);
        }
    }
    let usage = pool.usage(&tables);
    assert!(usage.held > 0 && usage.wasted_tokens < usage.held * 16);
    for t in &mut tables {
        pool.release(t);
    }
    let usage = pool.usage(&tables);
    assert_eq!((usage.held, usage.wasted_tokens), (0, 0));
    runs
}

/// Ragged prompts: lengths from 1 to 3 chunks.
fn ragged(vocab: usize, count: usize) -> Vec<Vec<u32>> {
    let all = bench_tokens(4096, vocab);
    (0..count)
        .map(|j| {
            let len = 1 + (j * 13 + 5) % (2 * CHUNK + 9);
            all[j * 61..j * 61 + len].to_vec()
        })
        .collect()
}

fn synthetic_batches_equal_alone(arch: &'static str) {
    let spec = SyntheticSpec {
        arch,
        ..SyntheticSpec::default()
    };
    let e = Engine::synthetic(&spec, &Device::Cpu).unwrap();
    let prompts = ragged(e.info.vocab, 32);
    let n = 6;
    let solo: Vec<Run> = prompts.iter().map(|p| alone(&e.model, p, n)).collect();
    for b in [1, 2, 3, 4, 5, 7, 8, 12, 16, 17, 18, 24, 31, 32] {
        let runs = batched(&e.model, &prompts[..b], n);
        for (j, (r, s)) in runs.iter().zip(&solo).enumerate() {
            assert_eq!(
                r.tokens, s.tokens,
                "{arch} batch {b}: sequence {j}'s tokens"
            );
            assert!(
                r == s,
                "{arch} batch {b}: sequence {j}'s logits differ in bits"
            );
        }
    }
}

#[test]
fn synthetic_qwen2_batches_of_1_to_32_equal_each_sequence_alone() {
    synthetic_batches_equal_alone("qwen2");
}

#[test]
fn synthetic_llama_batches_equal_each_sequence_alone() {
    synthetic_batches_equal_alone("llama");
}

#[test]
fn real_05b_batches_of_1_4_16_equal_each_sequence_alone() {
    let Some(path) = real_model(QWEN_05B) else {
        return;
    };
    let e = Engine::from_file(&path, &Device::Cpu).unwrap();
    // 16 ragged prompts: one request cut at 16 lengths, short spans and long ones.
    let ids = e
        .prompt_ids("Explain paged attention in two sentences.", false)
        .unwrap();
    assert!(ids.len() >= 38, "the request has {} tokens", ids.len());
    let prompts: Vec<Vec<u32>> = (0..16).map(|j| ids[..8 + 2 * j].to_vec()).collect();
    // 8 tokens each: every step past the first mixes decode rows with prefill chunks.
    let n = 8;
    let solo: Vec<Run> = prompts.iter().map(|p| alone(&e.model, p, n)).collect();
    for b in [1, 4, 16] {
        let runs = batched(&e.model, &prompts[..b], n);
        for (j, (r, s)) in runs.iter().zip(&solo).enumerate() {
            assert_eq!(r.tokens, s.tokens, "batch {b}: sequence {j}'s tokens");
            assert!(r == s, "batch {b}: sequence {j}'s logits differ in bits");
        }
    }
}
