//! Speculative decoding end to end: lossless greedy output in every draft mode, KV rollback equal
//! to a fresh prefill, speculative sampling keeping the target's distribution — on the synthetic
//! model (fast, exact) and on the real Qwen2.5-Coder pair.

mod common;

use common::{synthetic, OutputWithin};

use candle_core::{DType, Device, Tensor};
use common::{real_model, QWEN_05B, QWEN_15B};
use labtui::engine::spec::{pick, Drafter, Speculator};
use labtui::engine::synthetic::SyntheticSpec;
use labtui::engine::{generate, Engine, Forward, Model, Prompt, RunRequest, StepControl};
use labtui::protocol::{DraftMode, KPolicy, Quant, Setting};
use labtui::protocol::{Event, GenParams, KvBlocks, RunSettings, RunSummary};

fn settings(p: &GenParams) -> RunSettings {
    RunSettings {
        params: p.clone(),
        quantization: Quant::AsLoaded,
        draft_mode: DraftMode::None,
        k: KPolicy::Adaptive,
        policy: Default::default(),
    }
}

fn plain(e: &mut Engine, prompt: &str, p: &GenParams) -> RunSummary {
    speculative(e, &mut Speculator::none(), prompt, p).0
}

/// A speculative run; also returns its events.
fn speculative(
    e: &mut Engine,
    s: &mut Speculator,
    prompt: &str,
    p: &GenParams,
) -> (RunSummary, Vec<Event>) {
    let mut events = Vec::new();
    let request = RunRequest::new(1, Prompt::Text(prompt.into()), settings(p));
    let mut emit = |ev| events.push(ev);
    let sum = generate(e, s, &request, &mut emit, &mut || StepControl::Continue).unwrap();
    (sum, events)
}

fn greedy(n: usize) -> GenParams {
    GenParams {
        max_tokens: n,
        ignore_eos: true,
        raw: true,
        ..GenParams::default()
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn a_verify_pass_scores_each_position_exactly_as_a_decode_step() {
    let e = synthetic();
    let prompt: Vec<u32> = (1..40).collect();
    let next = [7u32, 99, 3, 250, 18, 42, 5, 61, 77];
    let mut a = e.model.new_cache(DType::F32);
    e.model.forward(&prompt, &mut a, Forward::LAST).unwrap();
    let batch = e.model.forward(&next, &mut a, Forward::ALL).unwrap();
    let mut b = e.model.new_cache(DType::F32);
    e.model.forward(&prompt, &mut b, Forward::LAST).unwrap();
    for (i, &t) in next.iter().enumerate() {
        let one = e.model.forward(&[t], &mut b, Forward::LAST).unwrap();
        assert_eq!(
            bits(&batch.get(i).unwrap()),
            bits(&one.get(0).unwrap()),
            "position {i}"
        );
    }
}

#[test]
fn rollback_leaves_the_cache_as_a_fresh_prefill_of_the_kept_text() {
    let e = synthetic();
    let prompt: Vec<u32> = (1..30).collect();
    let drafted = [5u32, 6, 7, 8, 9];
    let mut a = e.model.new_cache(DType::F32);
    e.model.forward(&prompt, &mut a, Forward::LAST).unwrap();
    e.model.forward(&drafted, &mut a, Forward::ALL).unwrap();
    a.truncate(prompt.len() + 2); // kept two of five
    let mut b = e.model.new_cache(DType::F32);
    let kept: Vec<u32> = prompt.iter().chain(&drafted[..2]).copied().collect();
    e.model
        .forward(&kept[..prompt.len()], &mut b, Forward::LAST)
        .unwrap();
    e.model
        .forward(&kept[prompt.len()..], &mut b, Forward::LAST)
        .unwrap();
    assert_eq!(a.len(), b.len());
    for layer in 0..e.model.cfg.layers {
        let (ka, va) = a.layer(layer).unwrap();
        let (kb, vb) = b.layer(layer).unwrap();
        assert_eq!(bits(&ka), bits(&kb), "K of layer {layer}");
        assert_eq!(bits(&va), bits(&vb), "V of layer {layer}");
    }
    // And the next step sees the same past.
    let la = Model::last_logits(&e.model.forward(&[11], &mut a, Forward::LAST).unwrap()).unwrap();
    let lb = Model::last_logits(&e.model.forward(&[11], &mut b, Forward::LAST).unwrap()).unwrap();
    assert_eq!(la, lb);
}

fn drafters(e: &Engine) -> Vec<Drafter> {
    let draft = pick::synthetic_draft(&Device::Cpu).unwrap();
    vec![
        Drafter::PromptLookup,
        Drafter::layer_skip(&e.model, 1),
        Drafter::draft_model(e, draft).unwrap(),
    ]
}

/// After every token, the KV blocks last reported hold exactly the cache's tokens (whole blocks,
/// the last one partly empty), through speculative growth and rollback; a report follows a token
/// and comes only when the counts change.
fn kv_blocks_follow_the_cache(events: &[Event], what: &str) {
    let mut last: Option<KvBlocks> = None;
    let mut reports = 0;
    for (i, ev) in events.iter().enumerate() {
        match ev {
            Event::Token(t) => {
                let now = match events.get(i + 1) {
                    Some(Event::KvBlocks { blocks, .. }) => *blocks,
                    _ => last
                        .unwrap_or_else(|| panic!("{what}: token {} before any blocks", t.index)),
                };
                assert_eq!(
                    now.held,
                    t.kv_tokens.div_ceil(now.block_tokens),
                    "{what}: token {} with {} tokens cached",
                    t.index,
                    t.kv_tokens
                );
                assert!(now.slack(t.kv_tokens) < now.block_tokens);
            }
            Event::KvBlocks { blocks, .. } => {
                assert!(
                    matches!(events[i - 1], Event::Token(_)),
                    "{what}: blocks reported after {:?}",
                    events[i - 1]
                );
                assert_ne!(last, Some(*blocks), "{what}: an unchanged report");
                last = Some(*blocks);
                reports += 1;
            }
            _ => {}
        }
    }
    // The prompt and 80 tokens span several 16-token blocks.
    assert!(reports >= 4, "{what}: {reports} block reports");
}

#[test]
fn greedy_speculation_is_token_for_token_plain_decoding_in_every_mode() {
    let mut e = synthetic();
    let prompt = "the cat sat on the mat and the cat sat on the hat and the cat";
    let p = greedy(80);
    let reference = plain(&mut e, prompt, &p);
    let mut accepted_somewhere = 0;
    for drafter in drafters(&e) {
        let mode = drafter.mode();
        let mut s = Speculator::new(drafter, KPolicy::Fixed(4));
        for k in [
            KPolicy::Fixed(1),
            KPolicy::Fixed(4),
            KPolicy::Fixed(16),
            KPolicy::Adaptive,
        ] {
            s.controller = labtui::engine::spec::Controller::new(k);
            if k == KPolicy::Adaptive {
                // Costs under which speculation pays (cheap drafts, cheap verification), so
                // adaptive K speculates whatever this machine's timings: the first plans come
                // from them, before measured steps update them.
                s.controller
                    .set_costs(Some(labtui::engine::spec::adaptive::Costs {
                        plain: 1e-3,
                        draft: 1e-5,
                        verify_extra: 1e-4,
                        catch_up: 0.0,
                    }));
            }
            let (sum, events) = speculative(&mut e, &mut s, prompt, &p);
            kv_blocks_follow_the_cache(&events, &format!("{mode:?} K {k}"));
            let spec = sum.spec.clone().expect("speculation summary");
            assert_eq!(sum.text, reference.text, "{mode:?} K {k}");
            assert_eq!(sum.generated_tokens, reference.generated_tokens);
            assert!(spec.steps > 0, "{mode:?} K {k}: no speculative step");
            let steps = events
                .iter()
                .filter(|e| matches!(e, Event::SpecStep(_)))
                .count();
            assert_eq!(steps, spec.steps);
            accepted_somewhere += spec.accepted;
        }
    }
    assert!(accepted_somewhere > 0, "no draft was ever accepted");
}

/// The lossy rules on the synthetic model: top-k over the whole vocabulary keeps every draft
/// (each is among the target's likeliest), and a threshold of 1 keeps only what greedy matching
/// keeps, so its text is plain decoding's.
#[test]
fn lossy_rules_keep_more_or_the_same_as_their_bounds_say() {
    use labtui::engine::spec::accept::Acceptance;
    let mut e = synthetic();
    let prompt = "the cat sat on the mat and the cat sat on the hat and the cat";
    let p = greedy(48);
    let reference = plain(&mut e, prompt, &p);
    let draft = pick::synthetic_draft(&Device::Cpu).unwrap();
    let mut s = Speculator::new(Drafter::draft_model(&e, draft).unwrap(), KPolicy::Fixed(4));
    s.policy = Some(Acceptance::TopK { k: 1 << 20 });
    let all_run = speculative(&mut e, &mut s, prompt, &p).0;
    let all = all_run.spec.clone().unwrap();
    assert!(all.drafted > 0);
    assert_eq!(
        all.accepted, all.drafted,
        "every draft is among the top 2^20"
    );
    // What keeping every draft gave up, in nats: something exactly when the text changed.
    let gap = all.logp_gap.expect("a lossy run measures its gap");
    assert!(gap >= 0.0, "gap {gap}");
    assert_eq!(gap > 0.0, all_run.text != reference.text, "gap {gap}");
    s.policy = Some(Acceptance::Threshold { tau: 1.0 });
    let (strict, _) = speculative(&mut e, &mut s, prompt, &p);
    assert_eq!(strict.text, reference.text);
    // A rule that keeps only the target's own choices gives up nothing.
    assert_eq!(strict.spec.unwrap().logp_gap, Some(0.0));
    s.policy = None;
    let lossless = speculative(&mut e, &mut s, prompt, &p).0.spec.unwrap();
    assert_eq!(lossless.logp_gap, None);
}

#[test]
fn the_draft_cache_rolls_back_to_the_kept_text() {
    let mut e = synthetic();
    let p = greedy(40);
    let draft = pick::synthetic_draft(&Device::Cpu).unwrap();
    let mut s = Speculator::new(Drafter::draft_model(&e, draft).unwrap(), KPolicy::Fixed(5));
    let (_, events) = speculative(&mut e, &mut s, "one two three four", &p);
    let ids = e.prompt_ids("one two three four", true).unwrap();
    let mut text: Vec<u32> = ids.clone();
    text.extend(events.iter().filter_map(|ev| match ev {
        Event::Token(t) => Some(t.id),
        _ => None,
    }));
    // The draft cache holds a prefix of the text: bitwise a fresh prefill of it by the draft.
    let Drafter::DraftModel { engine: d, .. } = &s.drafter else {
        unreachable!()
    };
    let cache = s.drafter.cache().unwrap();
    let m = cache.len().min(text.len());
    assert!(m > ids.len(), "the draft saw generated tokens");
    let mut fresh = d.model.new_cache(DType::F32);
    d.model
        .forward(&text[..ids.len()], &mut fresh, Forward::LAST)
        .unwrap();
    for &t in &text[ids.len()..m] {
        d.model.forward(&[t], &mut fresh, Forward::LAST).unwrap();
    }
    let (ka, va) = cache.layer(0).unwrap();
    let (kb, vb) = fresh.layer(0).unwrap();
    assert_eq!(bits(&ka.narrow(2, 0, m).unwrap()), bits(&kb));
    assert_eq!(bits(&va.narrow(2, 0, m).unwrap()), bits(&vb));
}

#[test]
fn layer_skip_drafts_leave_the_target_cache_as_it_was() {
    let e = synthetic();
    let prompt: Vec<u32> = (1..12).collect();
    let mut cache = e.model.new_cache(DType::F32);
    e.model
        .forward(&prompt[..10], &mut cache, Forward::LAST)
        .unwrap();
    let before: Vec<_> = (0..e.model.cfg.layers)
        .map(|l| bits(&cache.layer(l).unwrap().0))
        .collect();
    let mut d = Drafter::layer_skip(&e.model, 1);
    let mut sampler =
        labtui::engine::sampling::Sampler::new(labtui::engine::sampling::SamplingParams::greedy());
    let draft = d
        .draft(&e.model, &mut cache, &prompt[..11], None, 4, &mut sampler)
        .unwrap();
    assert_eq!(draft.tokens.len(), 4);
    assert_eq!(cache.len(), 10);
    for (l, b) in before.iter().enumerate() {
        assert_eq!(&bits(&cache.layer(l).unwrap().0), b, "layer {l}");
    }
}

#[test]
fn speculative_sampling_reproduces_the_targets_next_token_distribution() {
    use labtui::engine::sampling::{Sampler, SamplingParams};
    use labtui::engine::spec::accept;
    let e = synthetic();
    let prompt: Vec<u32> = (3..20).collect();
    let logits = |layers: Option<usize>| {
        let mut c = e.model.new_cache(DType::F32);
        let l = e
            .model
            .forward(
                &prompt,
                &mut c,
                Forward {
                    layers,
                    ..Forward::LAST
                },
            )
            .unwrap();
        Model::last_logits(&l).unwrap()
    };
    let (target, shallow) = (logits(None), logits(Some(1)));
    // Random weights give peaked logits: a temperature that spreads them makes the test mean
    // something (the draft, one layer shallower, must then differ from the target).
    let (params, p, q, tv) = [1.0f32, 4.0, 16.0, 64.0, 256.0]
        .into_iter()
        .map(|t| {
            let params = SamplingParams {
                temperature: t,
                top_k: None,
                top_p: None,
                seed: 5,
            };
            let p = Sampler::new(params.clone()).distribution(&target);
            let q = Sampler::new(params.clone()).distribution(&shallow);
            let tv: f32 = p.iter().zip(&q).map(|(a, b)| (a - b).abs()).sum::<f32>() / 2.0;
            (params, p, q, tv)
        })
        .find(|(_, p, _, tv)| *tv > 0.1 && p.iter().copied().fold(0.0, f32::max) < 0.6)
        .expect("a temperature where draft and target differ");
    let mut s = Sampler::new(params.clone());
    let n = 30_000;
    let mut counts = vec![0usize; p.len()];
    for _ in 0..n {
        let x = s.draw(&q);
        let v = accept::sampled(&[x], &[Some(q.clone())], &[p.clone(), p.clone()], &mut s);
        counts[if v.accepted == 1 { x } else { v.token } as usize] += 1;
    }
    // Against the noise of drawing as many tokens from p itself.
    let mut direct = vec![0usize; p.len()];
    for _ in 0..n {
        direct[s.draw(&p) as usize] += 1;
    }
    let tv_to_p = |c: &[usize]| -> f64 {
        c.iter()
            .zip(&p)
            .map(|(&c, &pi)| (c as f64 / n as f64 - pi as f64).abs())
            .sum::<f64>()
            / 2.0
    };
    let (tv_out, tv_noise) = (tv_to_p(&counts), tv_to_p(&direct));
    assert!(
        tv_out < 2.0 * tv_noise + 0.01 && tv_out < tv as f64 / 2.0,
        "tv(output, p) {tv_out}, sampling noise {tv_noise}, tv(q, p) {tv}"
    );
}

#[test]
fn a_draft_model_with_the_same_tokenizer_is_taken_and_another_is_refused() {
    // The synthetic architectures share one tokenizer: a llama drafts for a qwen2.
    let target = synthetic();
    let same = Engine::synthetic(
        &SyntheticSpec {
            arch: "llama",
            ..SyntheticSpec::default()
        },
        &Device::Cpu,
    )
    .unwrap();
    assert!(Drafter::draft_model(&target, same).is_ok());
    assert_eq!(DraftMode::parse("draft-model"), Ok(DraftMode::DraftModel));
    // Gemma 3 (another vocabulary) as a draft for Qwen is refused with a message that says why.
    let (Some(qwen), Some(gemma)) = (real_model(QWEN_05B), real_model(common::GEMMA_270M)) else {
        return;
    };
    let target = Engine::from_file(&qwen, &Device::Cpu).unwrap();
    // Gemma loads; it is its vocabulary that is refused.
    let draft = pick::open_draft(&target, Some(gemma.to_str().unwrap()), &Device::Cpu).unwrap();
    assert_eq!(draft.info.arch, "gemma3");
    let Err(e) = Drafter::draft_model(&target, draft) else {
        panic!("Gemma 3 must not draft for Qwen");
    };
    let m = e.to_string();
    assert!(
        m.contains("cannot draft for") && m.contains("vocabularies differ (262144 and 151"),
        "the refusal says why: {m}"
    );
}

/// Each drafter with its K on the real model `e`: 40 greedy tokens of `prompt`, the same text as
/// plain decoding, with speculative steps taken; returns the draft model's acceptance rate.
fn greedy_speculation_equals_plain(
    e: &mut Engine,
    prompt: &str,
    draft: Engine,
    layer_skip: (usize, KPolicy),
) -> f64 {
    let p = GenParams {
        max_tokens: 40,
        ignore_eos: true,
        ..GenParams::default()
    };
    let reference = plain(e, prompt, &p);
    let list = vec![
        (Drafter::draft_model(e, draft).unwrap(), KPolicy::Fixed(4)),
        (Drafter::PromptLookup, KPolicy::Fixed(8)),
        (Drafter::layer_skip(&e.model, layer_skip.0), layer_skip.1),
    ];
    let mut draft_model_rate = 0.0;
    for (drafter, k) in list {
        let mode = drafter.mode();
        let mut s = Speculator::new(drafter, k);
        let (sum, _) = speculative(e, &mut s, prompt, &p);
        let spec = sum.spec.unwrap();
        eprintln!(
            "{mode:?} K {k}: accepted {}/{} ({:.0}%)",
            spec.accepted,
            spec.drafted,
            spec.acceptance_rate * 100.0
        );
        assert_eq!(sum.text, reference.text, "{mode:?}");
        // Adaptive K may find that speculating does not pay here.
        if k != KPolicy::Adaptive {
            assert!(spec.steps > 0, "{mode:?}: no speculative step");
        }
        if mode == DraftMode::DraftModel {
            draft_model_rate = spec.acceptance_rate;
        }
    }
    draft_model_rate
}

#[test]
fn qwen_pair_greedy_speculation_equals_plain_decoding() {
    let (Some(target), Some(draft)) = (real_model(QWEN_15B), real_model(QWEN_05B)) else {
        return;
    };
    let dev = Device::Cpu;
    let mut e = Engine::from_file(&target, &dev).unwrap();
    let prompt = "Rewrite this code with the variable `n` renamed to `count`:\n\ndef total(items):\n    n = 0\n    for item in items:\n        n = n + item.price\n    return n\n";
    let d = Engine::from_file(&draft, &dev).unwrap();
    let rate = greedy_speculation_equals_plain(&mut e, prompt, d, (14, KPolicy::Adaptive));
    assert!(rate > 0.3, "the 0.5B should agree with the 1.5B often");
}

/// Gemma 3 speculates in every mode with its output unchanged. Only one Gemma model is here, so
/// its draft model is that model requantised to Q4_0 (other weights, the same vocabulary).
#[test]
fn gemma_greedy_speculation_equals_plain_decoding() {
    let Some(path) = real_model(common::GEMMA_270M) else {
        return;
    };
    let dev = Device::Cpu;
    let mut e = Engine::from_file(&path, &dev).unwrap();
    let mut d = Engine::from_file(&path, &dev).unwrap();
    d.model = labtui::engine::quant::requantize(&d.model, Quant::Q4_0, &mut |_, _| {})
        .unwrap()
        .0;
    let prompt = "List the days of the week, one per line, then the months of the year.";
    let rate = greedy_speculation_equals_plain(&mut e, prompt, d, (12, KPolicy::Fixed(3)));
    // Measured: 48% (25 of 52) at K 4.
    assert!(rate > 0.3, "a Q4_0 copy should often agree with its model");
}

/// `labtui bench spec` with pairs: a row per mode and K, each the median of its pairs, every
/// text identical to plain greedy decoding.
#[test]
fn bench_spec_pairs_each_run_with_a_plain_run_and_prints_the_table() {
    let out = common::labtui_cmd()
        .args([
            "bench",
            "spec",
            "--model",
            "synthetic",
            "--tokens",
            "12",
            "--prompts",
            "2",
            "--modes",
            "prompt-lookup",
            "--ks",
            "2,auto",
            "--pairs",
            "3",
        ])
        .output_bounded();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let (main, controllers) = stdout
        .split_once("K controllers")
        .expect("the controllers' table");
    let rows: Vec<&str> = main
        .lines()
        .filter(|l| l.starts_with("| complete") || l.starts_with("| explain"))
        .collect();
    // Adaptive K set against the best fixed K (the only one here), per prompt.
    assert!(
        controllers.contains("| complete-fn | prompt-lookup | 2 |")
            && controllers.contains("| auto |"),
        "{controllers}"
    );
    // Per prompt: the plain row, then K 2 and K auto.
    assert_eq!(rows.len(), 2 * 3, "{stdout}");
    assert!(rows.iter().all(|r| r.contains("| yes |")), "{stdout}");
    assert!(rows.iter().any(|r| r.contains("| prompt-lookup | auto |")));
    let bad = common::labtui_cmd()
        .args(["bench", "spec", "--model", "synthetic", "--pairs", "0"])
        .output_bounded();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--pairs"));
}
