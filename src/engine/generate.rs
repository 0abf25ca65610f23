//! The token-by-token generation loop: prefill, then one decode step per token, each measured
//! where it happens and reported as an event.

use super::error::Result;
use super::model::{Forward, Model};
use super::sampling::{Sampler, SamplingParams};
use super::Engine;
use crate::protocol::{Event, FinishReason, GenParams, Phase, RunSettings, RunSummary, TokenEvent};
use crate::stats;
use std::time::{Duration, Instant};

/// What the caller wants after each token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Generate from `prompt`, emitting `RunStarted`, `PrefillDone`, one `Token` per token and
/// `RunFinished`. `control` is asked before every decode step, so a stop lands within one token.
/// What to generate from.
#[derive(Debug, Clone)]
pub enum Prompt<'a> {
    /// Text, templated unless the parameters say `raw`.
    Text(&'a str),
    /// Token ids as they are (benchmarks).
    Ids(Vec<u32>),
}

pub fn generate(
    engine: &mut Engine,
    run: u64,
    prompt: Prompt,
    params: &GenParams,
    settings: RunSettings,
    emit: &mut dyn FnMut(Event),
    control: &mut dyn FnMut() -> Control,
) -> Result<RunSummary> {
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
    let t = Instant::now();
    let logits = model.forward(&ids, cache, Forward::LAST)?;
    let mut next = sampler.sample(&Model::last_logits(&logits)?);
    let prefill = t.elapsed();
    let ttft = start.elapsed();
    emit(Event::PrefillDone {
        run,
        tokens: ids.len(),
        duration: prefill,
    });

    let mut stream = tokenizer.inner.decode_stream(true);
    let mut generated: Vec<u32> = Vec::with_capacity(max_tokens);
    let mut text = String::new();
    let mut itl: Vec<Duration> = Vec::with_capacity(max_tokens);
    let mut step = prefill;
    let mut phase = Phase::Prefill;
    let reason = loop {
        generated.push(next.id);
        let piece = stream
            .step(next.id)
            .map_err(|e| super::EngineError::Tokenizer(e.to_string()))?
            .unwrap_or_default();
        text.push_str(&piece);
        emit(Event::Token(TokenEvent {
            index: generated.len() - 1,
            id: next.id,
            text: piece,
            phase,
            prob: next.prob,
            elapsed: start.elapsed(),
            step,
            kv_tokens: cache.len(),
            kv_bytes: cache.bytes(),
        }));
        if tokenizer.is_eog(next.id) && !params.ignore_eos {
            break FinishReason::Eos;
        }
        if generated.len() >= max_tokens {
            break FinishReason::MaxTokens;
        }
        if cache.len() + 1 > ctx {
            break FinishReason::ContextFull;
        }
        if control() == Control::Stop {
            break FinishReason::Stopped;
        }
        let t = Instant::now();
        let logits = model.forward(&[next.id], cache, Forward::LAST)?;
        next = sampler.sample(&Model::last_logits(&logits)?);
        step = t.elapsed();
        itl.push(step);
        phase = Phase::Decode;
    };

    // Bytes that never completed a character still belong to the text, as a full decode shows them.
    let full = tokenizer.decode(&generated)?;
    let decode: Duration = itl.iter().sum();
    Ok(RunSummary {
        reason,
        prompt_tokens: ids.len(),
        generated_tokens: generated.len(),
        ttft,
        prefill,
        prefill_tok_s: stats::tok_per_s(ids.len(), prefill),
        decode,
        decode_tok_s: stats::tok_per_s(itl.len(), decode),
        itl_p50: stats::percentile(&itl, 50.0),
        itl_p90: stats::percentile(&itl, 90.0),
        itl_p99: stats::percentile(&itl, 99.0),
        end_to_end: start.elapsed(),
        kv_tokens: cache.len(),
        kv_bytes: cache.bytes(),
        text: if full.starts_with(&text) { full } else { text },
    })
}
