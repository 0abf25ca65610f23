//! A run in progress: its prefill, the events of the tokens its steps produce, and its summary.

use super::produced::{Produced, Step};
use super::request::{Prompt, RunRequest};
use super::StepControl;
use crate::engine::error::{EngineError, Result};
use crate::engine::kv_cache::KvCache;
use crate::engine::model::{Forward, Logits, Model};
use crate::engine::sampling::{Sampler, SamplingParams};
use crate::engine::spec::accept::Acceptance;
use crate::engine::spec::{Drafter, SpecStats, Speculator};
use crate::engine::tokenizer::Tokenizer;
use crate::engine::Engine;
use crate::protocol::{Event, FinishReason, GenParams, KvBlocks, Phase, RunSummary, TokenEvent};
use crate::stats;
use candle_core::Tensor;
use std::time::{Duration, Instant};
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::ModelWrapper;
use tokenizers::normalizers::NormalizerWrapper;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::PostProcessorWrapper;

/// Text out of token ids one at a time, as `tokenizers::Tokenizer` decodes them.
type TextStream<'t> = tokenizers::DecodeStream<
    't,
    ModelWrapper,
    NormalizerWrapper,
    PreTokenizerWrapper,
    PostProcessorWrapper,
    DecoderWrapper,
>;

/// One generation from its prefill to its summary: the target, its cache and the speculator it
/// runs with, and what it has produced and measured so far.
pub struct Generation<'a> {
    pub(super) model: &'a Model,
    pub(super) tokenizer: &'a Tokenizer,
    pub(super) cache: &'a mut KvCache,
    pub(super) spec: &'a mut Speculator,
    pub(super) sampler: Sampler,
    /// How verification decides which drafts to keep.
    pub(super) acceptance: Acceptance,
    pub(super) request: &'a RunRequest,
    params: &'a GenParams,
    /// The run's clock: from before the prompt is tokenized.
    start: Instant,
    prompt_tokens: usize,
    prompt_text: String,
    pub(super) ctx: usize,
    pub(super) max_tokens: usize,
    ttft: Duration,
    prefill: Duration,
    stream: TextStream<'a>,
    /// The prompt and every token generated so far: what drafters draft from.
    pub(super) text_ids: Vec<u32>,
    pub(super) generated: Vec<u32>,
    text: String,
    /// Each decoded token's share of its step.
    itl: Vec<Duration>,
    pub(super) stats: SpecStats,
    blocks_sent: Option<KvBlocks>,
    /// The target's last hidden state where it chose the pending token `(1, hidden)`, kept
    /// for drafters that read it.
    pub(super) hidden: Option<candle_core::Tensor>,
    /// The states of the last forward pass's rows (one for a decode step, K + 1 for a
    /// verification): `hidden` is picked from them once acceptance has spoken.
    pub(super) hidden_rows: Option<candle_core::Tensor>,
}

impl<'a> Generation<'a> {
    /// Ready to prefill `request` on `engine`: the drafter's costs measured when its controller
    /// needs them (before the run's clock starts), and the prompt tokenized.
    pub fn new(
        engine: &'a mut Engine,
        spec: &'a mut Speculator,
        request: &'a RunRequest,
    ) -> Result<Self> {
        // Once per drafter: what speculation costs here.
        if spec.is_on() && spec.controller.needs_costs() {
            let costs = spec.drafter.calibrate(&engine.model)?;
            spec.controller.set_costs(costs);
        }
        let start = Instant::now();
        let params = request.params();
        let (ids, prompt_text) = match &request.prompt {
            Prompt::Text(text) => (engine.prompt_ids(text, params.raw)?, text.clone()),
            Prompt::Ids(ids) => (ids.clone(), String::new()),
        };
        let Engine {
            model,
            tokenizer,
            cache,
            ..
        } = engine;
        let ctx = model.cfg.context_length;
        let max_tokens = params.max_tokens.max(1);
        // A run never outgrows the context, whatever max_tokens says.
        let room = max_tokens.min(ctx.saturating_sub(ids.len()) + 1);
        let sampler = Sampler::new(SamplingParams {
            temperature: params.temperature,
            top_k: params.top_k,
            top_p: params.top_p,
            seed: params.seed,
        });
        let acceptance = spec
            .policy
            .unwrap_or_else(|| Acceptance::lossless(sampler.params()));
        Ok(Self {
            model,
            tokenizer,
            cache,
            spec,
            acceptance,
            sampler,
            request,
            params,
            start,
            prompt_tokens: ids.len(),
            prompt_text,
            ctx,
            max_tokens,
            ttft: Duration::ZERO,
            prefill: Duration::ZERO,
            stream: tokenizer.inner.decode_stream(true),
            text_ids: ids,
            generated: Vec::with_capacity(room),
            text: String::new(),
            itl: Vec::with_capacity(room),
            stats: SpecStats::default(),
            blocks_sent: None,
            hidden: None,
            hidden_rows: None,
        })
    }

    /// The run's id (its request's).
    pub fn run_id(&self) -> u64 {
        self.request.run
    }

    /// Announce the run, fill the cache with the prompt and sample the first token.
    pub fn prefill(&mut self, emit: &mut dyn FnMut(Event)) -> Result<Step> {
        let run = self.request.run;
        emit(Event::RunStarted {
            run,
            prompt_tokens: self.prompt_tokens,
            settings: self.request.settings.clone(),
            prompt: std::mem::take(&mut self.prompt_text),
        });
        self.cache.clear();
        self.spec.drafter.reset();
        // What a model drafter costs does not depend on the prompt; what lookup finds does.
        let carry_pause = !matches!(self.spec.drafter, Drafter::PromptLookup);
        self.spec.controller.start_run(carry_pause);
        let t = Instant::now();
        let ids = std::mem::take(&mut self.text_ids);
        let logits = self.forward_kept(&ids, Logits::Last);
        self.text_ids = ids;
        self.keep_hidden(0)?;
        let first = self.sampler.sample(&Model::last_logits(&logits?)?);
        self.prefill = t.elapsed();
        self.ttft = self.start.elapsed();
        emit(Event::PrefillDone {
            run,
            tokens: self.prompt_tokens,
            duration: self.prefill,
        });
        Ok(Step::one(
            Produced {
                id: first.id,
                prob: first.prob,
                phase: Phase::Prefill,
            },
            self.prefill,
        ))
    }

    /// Run `tokens` after the cache: logits of the last position (`Last`) or of every one
    /// (`All`). A drafter that reads the target's hidden state gets it: the pass then stops at
    /// the states, keeps them, and the head makes the logits (bitwise the same).
    pub(super) fn forward_kept(&mut self, tokens: &[u32], which: Logits) -> Result<Tensor> {
        if !self.spec.drafter.wants_hidden() {
            let opts = Forward {
                logits: which,
                layers: None,
            };
            return Ok(self.model.forward(tokens, self.cache, opts)?);
        }
        let h = self.model.forward(
            tokens,
            self.cache,
            Forward {
                logits: Logits::Hidden,
                layers: None,
            },
        )?;
        let h = match which {
            Logits::Last => h.narrow(0, tokens.len() - 1, 1)?,
            _ => h,
        };
        self.hidden_rows = Some(h.clone());
        Ok(self.model.head_logits(&h)?)
    }

    /// Report each token `step` produced (and the cache's blocks when they change); the reason
    /// the run ends when one of them ends it or the context has no room for another step.
    pub fn emit(
        &mut self,
        step: &Step,
        emit: &mut dyn FnMut(Event),
    ) -> Result<Option<FinishReason>> {
        let share = step.time / step.tokens().len() as u32;
        for p in step.tokens() {
            let time = if p.phase == Phase::Prefill {
                step.time
            } else {
                self.itl.push(share);
                share
            };
            self.token(p, time, emit)?;
            if self.tokenizer.is_eog(p.id) && !self.params.ignore_eos {
                return Ok(Some(FinishReason::Eos));
            }
            if self.generated.len() >= self.max_tokens {
                return Ok(Some(FinishReason::MaxTokens));
            }
        }
        Ok((self.cache.len() + 1 > self.ctx).then_some(FinishReason::ContextFull))
    }

    /// One token's `Token` event, and `KvBlocks` when the blocks changed.
    fn token(&mut self, p: &Produced, time: Duration, emit: &mut dyn FnMut(Event)) -> Result<()> {
        self.generated.push(p.id);
        self.text_ids.push(p.id);
        let piece = self
            .stream
            .step(p.id)
            .map_err(|e| EngineError::Tokenizer(e.to_string()))?
            .unwrap_or_default();
        self.text.push_str(&piece);
        emit(Event::Token(TokenEvent {
            index: self.generated.len() - 1,
            id: p.id,
            text: piece,
            phase: p.phase,
            prob: p.prob,
            elapsed: self.start.elapsed(),
            step: time,
            kv_tokens: self.cache.len(),
            kv_bytes: self.cache.bytes(),
        }));
        let blocks = KvBlocks::from(self.cache.usage());
        if self.blocks_sent != Some(blocks) {
            emit(Event::KvBlocks {
                run: self.request.run,
                blocks,
            });
            self.blocks_sent = Some(blocks);
        }
        Ok(())
    }

    /// Ask the caller what to do before the next step: `Stopped` when it says stop; K changes
    /// are taken on the way.
    pub fn poll(&mut self, control: &mut dyn FnMut() -> StepControl) -> Option<FinishReason> {
        loop {
            match control() {
                StepControl::Continue => return None,
                StepControl::Stop => return Some(FinishReason::Stopped),
                StepControl::SetK(k) => self.spec.controller.set_policy(k),
            }
        }
    }

    /// The run's numbers, ended for `reason`.
    pub fn finish(self, reason: FinishReason) -> Result<RunSummary> {
        // Bytes that never completed a character still belong to the text, as a full decode shows them.
        let full = self.tokenizer.decode(&self.generated)?;
        let decode: Duration = self.itl.iter().sum();
        let spec = self.spec.is_on().then(|| {
            self.stats.summary(
                self.spec.drafter.mode(),
                self.spec.controller.policy(),
                decode,
                self.itl.len(),
            )
        });
        let [itl_p50, itl_p90, itl_p99] = stats::itl_percentiles(&self.itl);
        Ok(RunSummary {
            reason,
            prompt_tokens: self.prompt_tokens,
            generated_tokens: self.generated.len(),
            ttft: self.ttft,
            prefill: self.prefill,
            prefill_tok_s: stats::tok_per_s(self.prompt_tokens, self.prefill),
            decode,
            decode_tok_s: stats::tok_per_s(self.itl.len(), decode),
            itl_p50,
            itl_p90,
            itl_p99,
            end_to_end: self.start.elapsed(),
            kv_tokens: self.cache.len(),
            kv_bytes: self.cache.bytes(),
            text: if full.starts_with(&self.text) {
                full
            } else {
                self.text
            },
            spec,
        })
    }
}
