//! Medusa-lite and EAGLE-lite heads: trained inside labtui, saved and refused for another model,
//! lossless in greedy and sampled runs — on the synthetic model (fast, exact) and on the real
//! Qwen2.5-Coder pair.

mod common;

use candle_core::Device;
use common::{real_model, synthetic, QWEN_05B, QWEN_15B};
use labtui::engine::heads::corpus::Doc;
use labtui::engine::heads::features::Features;
use labtui::engine::heads::train::{self, Target, TrainOptions};
use labtui::engine::heads::{file, HeadKind};
use labtui::engine::spec::{pick, Drafter, Speculator};
use labtui::engine::synthetic::SyntheticSpec;
use labtui::engine::{generate, Engine, Prompt, RunRequest, StepControl};
use labtui::protocol::{DraftMode, Event, GenParams, KPolicy, Quant, RunSettings, RunSummary};
use std::sync::Arc;

fn run(
    e: &mut Engine,
    s: &mut Speculator,
    prompt: &str,
    p: &GenParams,
) -> (RunSummary, Vec<Event>) {
    let settings = RunSettings {
        params: p.clone(),
        quantization: Quant::AsLoaded,
        draft_mode: s.drafter.mode(),
        k: s.controller.policy(),
        policy: Default::default(),
    };
    let request = RunRequest::new(1, Prompt::Text(prompt.into()), settings);
    let mut events = Vec::new();
    let mut emit = |ev| events.push(ev);
    let sum = generate(e, s, &request, &mut emit, &mut || StepControl::Continue).unwrap();
    (sum, events)
}

fn greedy(n: usize, raw: bool) -> GenParams {
    GenParams {
        max_tokens: n,
        ignore_eos: true,
        raw,
        ..GenParams::default()
    }
}

/// A corpus of the model's own greedy text from a few starts: text it predicts well.
fn own_text(e: &mut Engine, starts: &[&str], n: usize) -> Vec<Doc> {
    starts
        .iter()
        .map(|s| {
            let sum = run(e, &mut Speculator::none(), s, &greedy(n, true)).0;
            Doc {
                name: s.to_string(),
                text: format!("{s}{}", sum.text),
            }
        })
        .collect()
}

/// Train `kind` heads on `docs` for `e`, saved at `out`.
fn train_heads(
    e: &Engine,
    docs: &[Doc],
    kind: HeadKind,
    out: &std::path::Path,
    opts: TrainOptions,
) -> train::Outcome {
    let f = Features::extract(
        &e.model,
        &e.tokenizer,
        docs,
        opts.seq_len,
        opts.max_tokens,
        &mut |_, _| {},
    )
    .unwrap();
    let target = Target {
        model: &e.model,
        name: e.info.name.clone(),
        hash: file::fingerprint(e).unwrap(),
        out: out.to_path_buf(),
    };
    train::train(
        &target,
        &f,
        "test",
        &TrainOptions { kind, ..opts },
        None,
        &mut |_| {},
    )
    .unwrap()
}

fn small(kind: HeadKind) -> TrainOptions {
    TrainOptions {
        kind,
        heads: 3,
        seq_len: 64,
        max_tokens: 1200,
        epochs: 6.0,
        batch: 16,
        lr: 3e-3,
        // Smaller than the synthetic vocabulary: drafts are scored over a draft vocabulary.
        draft_vocab: 100,
        ..TrainOptions::default()
    }
}

const STARTS: [&str; 6] = [
    "the cat sat on the mat",
    "one two three four",
    "fn main() { let x = 1;",
    "def f(a, b): return a",
    "hello world, hello",
    "a b c d e f g",
];

#[test]
fn heads_train_save_load_and_keep_greedy_output_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = synthetic();
    let docs = own_text(&mut e, &STARTS, 200);
    let prompt = "the cat sat on the mat and the dog";
    let p = greedy(60, true);
    let reference = run(&mut e, &mut Speculator::none(), prompt, &p).0;
    for kind in [HeadKind::Medusa, HeadKind::Eagle] {
        let out = dir.path().join(format!("syn.{}.safetensors", kind.name()));
        let trained = train_heads(&e, &docs, kind, &out, small(kind));
        let t = &trained.header.training;
        assert!(!trained.stopped_early);
        assert_eq!(t.steps_done, t.steps_total);
        assert!(t.steps_done > 20, "{} steps", t.steps_done);
        assert_eq!(
            t.held_out_acceptance.len(),
            3,
            "{kind:?}: one estimate per place"
        );
        // Loaded back through the drafter's own path, the heads are the ones trained.
        let Drafter::Heads(loaded) =
            pick::open_heads(&e, kind, Some(out.to_str().unwrap()), &Device::Cpu).unwrap()
        else {
            panic!("heads")
        };
        for (name, t) in trained.heads.tensors() {
            let a: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f32> = loaded.heads.tensors()[&name]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(a, b, "{name}");
        }
        let mode = if kind == HeadKind::Medusa {
            DraftMode::Medusa
        } else {
            DraftMode::Eagle
        };
        for (k, tree) in [
            (KPolicy::Fixed(1), false),
            (KPolicy::Fixed(3), false),
            (KPolicy::Fixed(6), false),
            (KPolicy::Fixed(2), true),
            (KPolicy::Fixed(4), true),
        ] {
            let mut s = Speculator::new(Drafter::Heads(loaded.clone()), k);
            s.tree = tree;
            let (sum, events) = run(&mut e, &mut s, prompt, &p);
            let spec = sum.spec.clone().unwrap();
            assert_eq!(spec.mode, mode);
            assert_eq!(sum.text, reference.text, "{kind:?} K {k} tree {tree}");
            assert!(spec.steps > 0, "{kind:?} K {k}: no speculative step");
            let most = events
                .iter()
                .filter_map(|e| match e {
                    Event::SpecStep(s) => Some(s.drafted.len()),
                    _ => None,
                })
                .max()
                .unwrap();
            // Medusa drafts at most one token per head.
            let cap = if kind == HeadKind::Medusa { 3 } else { 6 };
            assert!(most <= cap && most >= 1, "{kind:?} K {k}: drafted {most}");
        }
    }
}

#[test]
fn training_learns_the_targets_later_choices() {
    let dir = tempfile::tempdir().unwrap();
    let e = synthetic();
    // Real text: the synthetic model's own greedy text repeats one pair of tokens.
    let docs = labtui::engine::heads::corpus::default_docs();
    for kind in [HeadKind::Medusa, HeadKind::Eagle] {
        let out = dir.path().join(format!("a.{}.safetensors", kind.name()));
        let f = Features::extract(&e.model, &e.tokenizer, &docs, 64, 1200, &mut |_, _| {}).unwrap();
        let untrained =
            labtui::engine::heads::Heads::init(kind, 3, e.model.cfg.hidden, &Device::Cpu).unwrap();
        let held = f.positions(f.chunks.len() - 2..f.chunks.len(), 3);
        let before = train::evaluate(&untrained.into(), &e.model, &f, &held, 3).unwrap();
        let trained = train_heads(&e, &docs, kind, &out, small(kind));
        let t = &trained.header.training;
        eprintln!(
            "{kind:?}: held-out loss {} → {}",
            before.loss, t.held_out_loss
        );
        assert!(
            t.held_out_loss < 0.5 * before.loss,
            "{kind:?}: held-out loss {} → {}",
            before.loss,
            t.held_out_loss
        );
    }
}

#[test]
fn heads_are_refused_for_another_model_and_a_broken_file_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = synthetic();
    let docs = own_text(&mut e, &STARTS[..2], 80);
    let out = dir.path().join("m.medusa.safetensors");
    let opts = TrainOptions {
        epochs: 1.0,
        ..small(HeadKind::Medusa)
    };
    train_heads(&e, &docs, HeadKind::Medusa, &out, opts);
    let path = out.to_str().unwrap();
    // Another synthetic model of the same shape, other weights.
    let other = Engine::synthetic(
        &SyntheticSpec {
            arch: "llama",
            ..SyntheticSpec::default()
        },
        &Device::Cpu,
    )
    .unwrap();
    let m = pick::open_heads(&other, HeadKind::Medusa, Some(path), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(
        m.contains("were trained on synthetic-qwen2") && m.contains("not on"),
        "{m}"
    );
    // The wrong kind.
    let m = pick::open_heads(&e, HeadKind::Eagle, Some(path), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(m.contains("holds medusa heads, not eagle"), "{m}");
    // No file: how to make one.
    let missing = dir.path().join("none.safetensors");
    let m = pick::open_heads(
        &e,
        HeadKind::Medusa,
        Some(missing.to_str().unwrap()),
        &Device::Cpu,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(m.contains("labtui train-draft --kind medusa"), "{m}");
    // A truncated weights file.
    let bytes = std::fs::read(&out).unwrap();
    std::fs::write(&out, &bytes[..bytes.len() / 2]).unwrap();
    let m = pick::open_heads(&e, HeadKind::Medusa, Some(path), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(m.contains("could not be read"), "{m}");
}

/// Sampled runs with heads keep the target's distribution: over many seeds, the third and fourth
/// tokens (the first step after the plain baseline step drafts and verifies them) are distributed
/// as plain sampling's, within the noise of two samples of that size, while the heads' drafts
/// alone are not.
#[test]
fn sampled_runs_with_heads_keep_the_targets_distribution() {
    let mut e = synthetic();
    let prompt = "the cat sat";
    // Heads with random blocks: drafts from a distribution unlike the target's (an untrained
    // head repeats the target's last distribution, which on this model is close to its next).
    let hidden = e.model.cfg.hidden;
    let block = |seed: u64| {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let scale = 12.0 / (hidden as f32).sqrt();
        let w: Vec<f32> = (0..hidden * hidden)
            .map(|_| (rng.random::<f32>() - 0.5) * 2.0 * scale)
            .collect();
        labtui::engine::heads::ResBlock {
            w: candle_core::Tensor::from_vec(w, (hidden, hidden), &Device::Cpu).unwrap(),
            b: candle_core::Tensor::zeros(hidden, candle_core::DType::F32, &Device::Cpu).unwrap(),
        }
    };
    let heads = labtui::engine::heads::Heads::Medusa(vec![block(1), block(2)]);
    let heads = Arc::new(labtui::engine::heads::Drafting::from(heads));
    let n = 2500;
    let vocab = e.model.cfg.vocab;
    let mut counts_from = |spec: bool, first_seed: usize| {
        let mut c = vec![vec![0usize; vocab]; 2];
        let mut drafted_first = vec![0usize; vocab];
        for seed in first_seed..first_seed + n {
            let p = GenParams {
                max_tokens: 4,
                ignore_eos: true,
                raw: true,
                temperature: 6.0,
                seed: seed as u64,
                ..GenParams::default()
            };
            let mut s = if spec {
                Speculator::new(Drafter::Heads(heads.clone()), KPolicy::Fixed(2))
            } else {
                Speculator::none()
            };
            let (_, events) = run(&mut e, &mut s, prompt, &p);
            let ids: Vec<u32> = events
                .iter()
                .filter_map(|e| match e {
                    Event::Token(t) => Some(t.id),
                    _ => None,
                })
                .collect();
            c[0][ids[2] as usize] += 1;
            c[1][ids[3] as usize] += 1;
            if let Some(d) = events.iter().find_map(|e| match e {
                Event::SpecStep(s) => Some(s.drafted[0]),
                _ => None,
            }) {
                drafted_first[d as usize] += 1;
            }
        }
        (c, drafted_first)
    };
    let (plain, _) = counts_from(false, 0);
    let (spec, drafts) = counts_from(true, 0);
    let (plain2, _) = counts_from(false, n);
    let tv = |a: &[usize], b: &[usize]| -> f64 {
        let (na, nb) = (
            a.iter().sum::<usize>() as f64,
            b.iter().sum::<usize>() as f64,
        );
        a.iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 / na - y as f64 / nb).abs())
            .sum::<f64>()
            / 2.0
    };
    for place in 0..2 {
        let (d, noise) = (
            tv(&spec[place], &plain[place]),
            tv(&plain2[place], &plain[place]),
        );
        eprintln!(
            "token {}: tv(spec, plain) {d:.3}, tv(plain, plain) {noise:.3}",
            place + 3
        );
        assert!(
            d < 2.0 * noise + 0.02,
            "token {}: tv {d} against noise {noise}",
            place + 3
        );
    }
    // The drafts themselves follow another distribution: the test can tell them apart.
    assert_eq!(drafts.iter().sum::<usize>(), n, "every spec run drafted");
    let d_drafts = tv(&drafts, &plain[0]);
    let noise = tv(&plain2[0], &plain[0]);
    assert!(
        d_drafts > 3.0 * noise + 0.02,
        "drafts tv {d_drafts}, noise {noise}"
    );
}

/// On the real Qwen2.5-Coder 0.5B and 1.5B, briefly trained heads of both kinds give plain
/// greedy decoding's text exactly, with speculative steps taken; on the 0.5B, training makes
/// the first place's drafts agree with the target more often on held-out text than untrained
/// heads (which repeat the target's last guess).
#[test]
fn real_heads_keep_greedy_output_on_the_qwen_pair() {
    let (Some(small_m), Some(large_m)) = (real_model(QWEN_05B), real_model(QWEN_15B)) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let docs = labtui::engine::heads::corpus::default_docs();
    let prompt = "Write a Python function that returns the n-th Fibonacci number iteratively.";
    let p = greedy(32, false);
    // The 1.5B's heads train for three steps: its test is that trained heads stay lossless (which
    // does not depend on how well they learned), and its training costs ~4× the 0.5B's per token.
    for (path, tokens, epochs) in [(small_m, 768, 2.0), (large_m, 48, 1.0)] {
        let mut e = Engine::from_file(&path, &Device::Cpu).unwrap();
        let reference = run(&mut e, &mut Speculator::none(), prompt, &p).0;
        for kind in [HeadKind::Medusa, HeadKind::Eagle] {
            let out = dir.path().join(format!("q.{}.safetensors", kind.name()));
            let opts = TrainOptions {
                kind,
                heads: 3,
                seq_len: 128,
                max_tokens: tokens,
                epochs,
                batch: 16,
                lr: 1e-3,
                ..TrainOptions::default()
            };
            let trained = train_heads(&e, &docs, kind, &out, opts.clone());
            if tokens > 384 {
                let f =
                    Features::extract(&e.model, &e.tokenizer, &docs, 128, tokens, &mut |_, _| {})
                        .unwrap();
                let untrained =
                    labtui::engine::heads::Heads::init(kind, 3, e.model.cfg.hidden, &Device::Cpu)
                        .unwrap();
                let n = f.chunks.len();
                let held = f.positions(n - (n as f64 * 0.1).round() as usize..n, 3);
                let before = train::evaluate(&untrained.into(), &e.model, &f, &held, 3).unwrap();
                let after = &trained.header.training.held_out_top1;
                eprintln!("{kind:?}: held-out top-1 {:?} → {after:?}", before.top1);
                assert!(
                    after[0] > before.top1[0] + 0.05,
                    "{kind:?}: {:?} → {after:?}",
                    before.top1
                );
            }
            let _ = trained;
            let drafter =
                pick::open_heads(&e, kind, Some(out.to_str().unwrap()), &Device::Cpu).unwrap();
            let mut s = Speculator::new(drafter, KPolicy::Fixed(3));
            s.tree = true;
            let (sum, _) = run(&mut e, &mut s, prompt, &p);
            let spec = sum.spec.unwrap();
            eprintln!(
                "{} {kind:?}: accepted {}/{}",
                e.info.name, spec.accepted, spec.drafted
            );
            assert_eq!(sum.text, reference.text, "{} {kind:?}", e.info.name);
            assert!(spec.steps > 0);
        }
    }
}
