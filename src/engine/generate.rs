//! The token-by-token generation loop: prefill, then one decode step per token, each measured
//! where it happens and reported as an event.

use super::error::Result;
use super::kernels::SMALL_BATCH;
use super::model::{Forward, Model};
use super::sampling::{argmax, Sampler, SamplingParams};
use super::spec::{accept, KPolicy, Plan, SpecStats, Speculator};
use super::Engine;
use crate::protocol::{
    Event, FinishReason, GenParams, KvBlocks, Phase, RunSettings, RunSummary, SpecStep, TokenEvent,
};
use crate::stats;
use std::time::{Duration, Instant};

/// What the caller wants after each token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
    /// Change K from the next step on; the caller is asked again.
    SetK(KPolicy),
}

/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt<'a> {
    /// Text, templated unless the parameters say `raw`.
    Text(&'a str),
    /// Token ids as they are (benchmarks).
    Ids(Vec<u32>),
}

/// Plain decoding: [`generate_with`] without a drafter.
pub fn generate(
    engine: &mut Engine,
    run: u64,
    prompt: Prompt,
    params: &GenParams,
    settings: RunSettings,
    emit: &mut dyn FnMut(Event),
    control: &mut dyn FnMut() -> Control,
) -> Result<RunSummary> {
    generate_with(
        engine,
        &mut Speculator::none(),
        run,
        prompt,
        params,
        settings,
        emit,
        control,
    )
}

/// One token of a decode step, with how it came about.
struct Produced {
    id: u32,
    prob: f32,
    phase: Phase,
}

/// Generate from `prompt`, emitting `RunStarted`, `PrefillDone`, one `Token` per token (after a
/// `SpecStep` for each speculative step) and `RunFinished`. `control` is asked before every
/// decode step, so a stop lands within one step.
#[allow(clippy::too_many_arguments)]
pub fn generate_with(
    engine: &mut Engine,
    spec: &mut Speculator,
    run: u64,
    prompt: Prompt,
    params: &GenParams,
    settings: RunSettings,
    emit: &mut dyn FnMut(Event),
    control: &mut dyn FnMut() -> Control,
) -> Result<RunSummary> {
    // Once per drafter, before the run's clock starts: what speculation costs here.
    if spec.is_on() && spec.controller.needs_costs() {
        let costs = spec.drafter.calibrate(&engine.model)?;
        spec.controller.set_costs(costs);
    }
    let start = Instant::now();
    let (ids, prompt_text) = match prompt {
        Prompt::Text(text) => (engine.prompt_ids(text, params.raw)?, text.to_string()),
        Prompt::Ids(ids) => (ids, String::new()),
    };
    let Engine {
        model,
        tokenizer,
        cache,
        ..
    } = engine;
    let ctx = model.cfg.context_length;
    let max_tokens = params.max_tokens.max(1);
    let mut sampler = Sampler::new(SamplingParams {
        temperature: params.temperature,
        top_k: params.top_k,
        top_p: params.top_p,
        seed: params.seed,
    });
    emit(Event::RunStarted {
        run,
        prompt_tokens: ids.len(),
        settings,
        prompt: prompt_text,
    });

    cache.clear();
    spec.drafter.reset();
    // What a model drafter costs does not depend on the prompt; what lookup finds does.
    let carry_pause = !matches!(spec.drafter, super::spec::Drafter::PromptLookup);
    spec.controller.start_run(carry_pause);
    let t = Instant::now();
    let logits = model.forward(&ids, cache, Forward::LAST)?;
    let first = sampler.sample(&Model::last_logits(&logits)?);
    let prefill = t.elapsed();
    let ttft = start.elapsed();
    emit(Event::PrefillDone {
        run,
        tokens: ids.len(),
        duration: prefill,
    });

    let mut stream = tokenizer.inner.decode_stream(true);
    let mut text_ids = ids.clone();
    // A run never outgrows the context, whatever max_tokens says.
    let room = max_tokens.min(ctx.saturating_sub(ids.len()) + 1);
    let mut generated: Vec<u32> = Vec::with_capacity(room);
    let mut text = String::new();
    let mut itl: Vec<Duration> = Vec::with_capacity(room);
    let mut spec_stats = SpecStats::default();
    let mut step_tokens = vec![Produced {
        id: first.id,
        prob: first.prob,
        phase: Phase::Prefill,
    }];
    let mut step = prefill;
    let mut blocks_sent: Option<KvBlocks> = None;
    let reason = 'run: loop {
        let share = step / step_tokens.len() as u32;
        for p in step_tokens.drain(..) {
            generated.push(p.id);
            text_ids.push(p.id);
            if p.phase != Phase::Prefill {
                itl.push(share);
            }
            let piece = stream
                .step(p.id)
                .map_err(|e| super::EngineError::Tokenizer(e.to_string()))?
                .unwrap_or_default();
            text.push_str(&piece);
            emit(Event::Token(TokenEvent {
                index: generated.len() - 1,
                id: p.id,
                text: piece,
                phase: p.phase,
                prob: p.prob,
                elapsed: start.elapsed(),
                step: if p.phase == Phase::Prefill {
                    step
                } else {
                    share
                },
                kv_tokens: cache.len(),
                kv_bytes: cache.bytes(),
            }));
            let blocks = KvBlocks::from(cache.usage());
            if blocks_sent != Some(blocks) {
                emit(Event::KvBlocks { run, blocks });
                blocks_sent = Some(blocks);
            }
            if tokenizer.is_eog(p.id) && !params.ignore_eos {
                break 'run FinishReason::Eos;
            }
            if generated.len() >= max_tokens {
                break 'run FinishReason::MaxTokens;
            }
        }
        if cache.len() + 1 > ctx {
            break FinishReason::ContextFull;
        }
        loop {
            match control() {
                Control::Continue => break,
                Control::Stop => break 'run FinishReason::Stopped,
                Control::SetK(k) => spec.controller.set_policy(k),
            }
        }
        let pending = *generated.last().expect("a token before each step");
        let plan = if spec.is_on() {
            let unseen = spec.drafter.unseen(text_ids.len());
            spec.controller.plan(unseen, max_tokens - generated.len())
        } else {
            Plan::Plain
        };
        // Verification appends K + 1 positions; keep them inside the context and the batch
        // size our products are batch-invariant for.
        let room = ctx - cache.len() - 1;
        let k = match plan {
            Plan::Speculate(k) => k.min(room).min(SMALL_BATCH - 1),
            Plan::Plain => 0,
        };
        let t = Instant::now();
        let draft = if k > 0 {
            spec.drafter
                .draft(model, cache, &text_ids, k, &mut sampler)?
        } else {
            Default::default()
        };
        let draft_time = t.elapsed();
        if draft.tokens.is_empty() {
            let t = Instant::now();
            let logits = model.forward(&[pending], cache, Forward::LAST)?;
            let next = sampler.sample(&Model::last_logits(&logits)?);
            step = t.elapsed();
            if spec.is_on() {
                spec.drafter.rollback(text_ids.len());
                spec_stats.plain_step(step);
                spec.controller.observe(0, 0, 1, 0.0, step.as_secs_f64());
            }
            step += draft_time;
            step_tokens.push(Produced {
                id: next.id,
                prob: next.prob,
                phase: Phase::Decode,
            });
            continue;
        }

        let t = Instant::now();
        let before = cache.len();
        let mut input = Vec::with_capacity(draft.tokens.len() + 1);
        input.push(pending);
        input.extend_from_slice(&draft.tokens);
        let rows: Vec<Vec<f32>> = model.forward(&input, cache, Forward::ALL)?.to_vec2()?;
        let verdict = if sampler.params().is_greedy() {
            let target: Vec<u32> = rows.iter().map(|r| argmax(r) as u32).collect();
            accept::greedy(&draft.tokens, &target)
        } else {
            let p: Vec<Vec<f32>> = rows.iter().map(|r| sampler.distribution(r)).collect();
            accept::sampled(&draft.tokens, &draft.q, &p, &mut sampler)
        };
        let verify = t.elapsed();
        let n = verdict.accepted;
        cache.truncate(before + 1 + n);
        spec.drafter.rollback(text_ids.len() + n);
        spec_stats.spec_step(draft.tokens.len(), n, draft_time, verify);
        spec.controller.observe(
            draft.tokens.len(),
            n,
            n + 1,
            draft_time.as_secs_f64(),
            verify.as_secs_f64(),
        );
        emit(Event::SpecStep(SpecStep {
            run,
            k,
            drafted: draft.tokens.clone(),
            drafted_text: draft.tokens.iter().map(|&t| tokenizer.piece(t)).collect(),
            accepted: n,
            token: verdict.token,
            draft: draft_time,
            verify,
            live_speedup: spec_stats.live_speedup(),
            predicted_speedup: spec_stats.predicted_speedup(),
        }));
        for (i, &id) in draft.tokens[..n].iter().enumerate() {
            step_tokens.push(Produced {
                id,
                prob: sampler.prob_of(&rows[i], id),
                phase: Phase::Draft,
            });
        }
        step_tokens.push(Produced {
            id: verdict.token,
            prob: sampler.prob_of(&rows[n], verdict.token),
            phase: if n == draft.tokens.len() {
                Phase::Bonus
            } else {
                Phase::Correction
            },
        });
        step = draft_time + verify;
    };

    // Bytes that never completed a character still belong to the text, as a full decode shows them.
    let full = tokenizer.decode(&generated)?;
    let decode: Duration = itl.iter().sum();
    let spec_summary = spec.is_on().then(|| {
        spec_stats.summary(
            spec.drafter.mode(),
            &spec.controller.policy().to_string(),
            decode,
            itl.len(),
        )
    });
    let [itl_p50, itl_p90, itl_p99] = stats::itl_percentiles(&itl);
    Ok(RunSummary {
        reason,
        prompt_tokens: ids.len(),
        generated_tokens: generated.len(),
        ttft,
        prefill,
        prefill_tok_s: stats::tok_per_s(ids.len(), prefill),
        decode,
        decode_tok_s: stats::tok_per_s(itl.len(), decode),
        itl_p50,
        itl_p90,
        itl_p99,
        end_to_end: start.elapsed(),
        kv_tokens: cache.len(),
        kv_bytes: cache.bytes(),
        text: if full.starts_with(&text) { full } else { text },
        spec: spec_summary,
    })
}
