//! Continuous batching: which requests share each forward step, within a KV-block budget.
//!
//! Between two steps the [`Scheduler`] admits waiting requests (FIFO) while the batch and the
//! blocks allow; a step holds every running request's next piece — a decode row, or a chunk of its
//! prompt within the step's token budget (chunked prefill beside decodes, as vLLM and SGLang do) —
//! and runs them all in one [`Model::forward_batch`]. When a running request needs a block and none
//! is free, the newest running request is preempted: its blocks go back to the pool and it waits
//! again at the head of the queue, to recompute its prompt and the tokens it had generated (vLLM's
//! recompute preemption). Each decision is a [`SchedEvent`]; [`Replay`] rebuilds the queues from
//! them. [`SchedPolicy::Static`] admits a batch only when the previous one has finished.
//!
//! Outputs do not depend on the policy, the budget, the other requests or preemption (batch
//! invariance). [`Model::forward_batch`] gives each span what it would get alone, but a long span's
//! products sum in another order than decode rows, and a prompt prefilled as 40 + 40 tokens gets
//! other bits than as 80. So a request's pieces are a function of its positions only: its prompt
//! runs in chunks that end at multiples of `step_tokens` (the last may be shorter), each whole,
//! and its generated tokens as decode rows. A preempted request recomputes the same prompt
//! chunks, then its generated tokens as short spans of at most
//! [`SMALL_BATCH`](crate::engine::kernels::SMALL_BATCH) rows, each row
//! bitwise its decode step; it keeps its sampler.

mod live;
mod prefix;
mod replay;

use live::Live;
pub use replay::{Replay, ReqState, ReqView};

use super::kv_cache::{BlockTable, BlockUsage, KvPool, PrefixStats, BLOCK_TOKENS};
use super::model::{Forward, Model};
use super::sampling::{Sampler, SamplingParams};
use super::step::Seq;
use crate::protocol::{FinishReason, SchedEvent, SchedPolicy};
use candle_core::DType;
use std::collections::VecDeque;

/// How the scheduler batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedConfig {
    pub policy: SchedPolicy,
    /// Most requests running at once.
    pub max_batch: usize,
    /// KV blocks of [`BLOCK_TOKENS`] tokens over all running requests.
    pub kv_blocks: usize,
    /// Tokens one step runs, decode rows and prefill chunks together: every running request gets
    /// its decode row even past it, and the step's first prefill piece too. Prompts are
    /// prefilled in chunks ending at its multiples.
    pub step_tokens: usize,
    /// Keep computed prompt blocks for later requests that start the same way (automatic
    /// prefix caching; off by default, on in `labtui serve`). Not with sliding-window layers.
    pub prefix_cache: bool,
}

impl Default for SchedConfig {
    fn default() -> Self {
        Self {
            policy: SchedPolicy::Continuous,
            max_batch: 16,
            kv_blocks: 1024,
            step_tokens: 256,
            prefix_cache: false,
        }
    }
}

/// A request to serve.
#[derive(Debug, Clone, PartialEq)]
pub struct SeqRequest {
    /// The caller's id; the scheduler's events name it.
    pub id: u64,
    pub prompt: Vec<u32>,
    /// Most tokens to generate (at least one).
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Keep going past end-of-generation tokens.
    pub ignore_eos: bool,
}

/// Why a request cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedError {
    #[error("request {0}: empty prompt")]
    EmptyPrompt(u64),
    #[error("request {id}: a prompt of {tokens} tokens exceeds the context of {context}")]
    PromptTooLong {
        id: u64,
        tokens: usize,
        context: usize,
    },
    #[error(
        "request {id}: {tokens} tokens need {blocks} KV blocks, more than the budget of {budget} \
         (raise --kv-blocks or lower max_tokens)"
    )]
    OverBudget {
        id: u64,
        tokens: usize,
        blocks: usize,
        budget: usize,
    },
    #[error("request {0} is already queued or running")]
    Duplicate(u64),
}

/// Batches requests over one model's paged KV pool.
#[derive(Debug)]
pub struct Scheduler {
    cfg: SchedConfig,
    pool: KvPool,
    waiting: VecDeque<Live>,
    /// In submission order.
    running: Vec<Live>,
    step: u64,
    submitted: u64,
    context: usize,
    /// End-of-generation tokens.
    eog: Vec<u32>,
    events: Vec<SchedEvent>,
    /// Prompt tokens looked up in the prefix cache at admissions, and found.
    prefix: PrefixStats,
}

impl Scheduler {
    /// A scheduler for `model`, stopping requests at the `eog` tokens (unless they ignore EOS).
    pub fn new(model: &Model, cfg: SchedConfig, eog: Vec<u32>) -> Self {
        let cfg = SchedConfig {
            max_batch: cfg.max_batch.max(1),
            kv_blocks: cfg.kv_blocks.max(1),
            step_tokens: cfg.step_tokens.max(1),
            ..cfg
        };
        let mut pool = model.new_pool(DType::F32, cfg.kv_blocks);
        let prefix_cache = cfg.prefix_cache && pool.enable_prefix_cache();
        let cfg = SchedConfig {
            prefix_cache,
            ..cfg
        };
        let started = SchedEvent::Started {
            policy: cfg.policy,
            max_batch: cfg.max_batch,
            kv_blocks: cfg.kv_blocks,
            step_tokens: cfg.step_tokens,
            prefix_cache,
        };
        Self {
            pool,
            cfg,
            waiting: VecDeque::new(),
            running: Vec::new(),
            step: 0,
            submitted: 0,
            context: model.cfg.context_length,
            eog,
            events: vec![started],
            prefix: PrefixStats::default(),
        }
    }

    pub fn config(&self) -> &SchedConfig {
        &self.cfg
    }

    /// Steps run so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    pub fn running(&self) -> usize {
        self.running.len()
    }

    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Bytes one token's keys and values take in the pool.
    pub fn kv_bytes_per_token(&self) -> u64 {
        self.pool.bytes_per_token()
    }

    /// Nothing running or waiting.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    /// Blocks held by the running requests (waiting ones hold none; a shared prefix block
    /// counts once; idle cached blocks are free).
    pub fn blocks_held(&self) -> usize {
        self.pool.held_blocks()
    }

    /// The pool's blocks held and free, and the slack of the running requests' last blocks.
    pub fn usage(&self) -> BlockUsage {
        self.pool.usage(self.running.iter().map(|l| &l.table))
    }

    /// Most tokens a request's KV ever holds: its prompt and all but the last generated token,
    /// within the context.
    fn peak_tokens(&self, r: &SeqRequest) -> usize {
        (r.prompt.len() + r.max_tokens.max(1) - 1).min(self.context)
    }

    fn has(&self, id: u64) -> bool {
        self.running
            .iter()
            .chain(&self.waiting)
            .any(|l| l.req.id == id)
    }

    /// Queue `req`; refused if it could never fit the context or the block budget alone.
    pub fn submit(&mut self, req: SeqRequest) -> Result<(), SchedError> {
        let id = req.id;
        if req.prompt.is_empty() {
            return Err(SchedError::EmptyPrompt(id));
        }
        if req.prompt.len() > self.context {
            return Err(SchedError::PromptTooLong {
                id,
                tokens: req.prompt.len(),
                context: self.context,
            });
        }
        let tokens = self.peak_tokens(&req);
        let blocks = tokens.div_ceil(BLOCK_TOKENS);
        if blocks > self.cfg.kv_blocks {
            return Err(SchedError::OverBudget {
                id,
                tokens,
                blocks,
                budget: self.cfg.kv_blocks,
            });
        }
        if self.has(id) {
            return Err(SchedError::Duplicate(id));
        }
        self.events.push(SchedEvent::Arrived {
            req: id,
            step: self.step,
            prompt_tokens: req.prompt.len(),
            max_tokens: req.max_tokens,
        });
        let sampler = Sampler::new(req.sampling.clone());
        let keys = match self.cfg.prefix_cache {
            true => super::kv_cache::prefix::prompt_keys(&req.prompt, self.cfg.step_tokens),
            false => Vec::new(),
        };
        self.waiting.push_back(Live {
            keys,
            indexed: 0,
            req,
            table: BlockTable::default(),
            generated: Vec::new(),
            sampler,
            order: self.submitted,
            started: false,
        });
        self.submitted += 1;
        Ok(())
    }

    /// Drop request `id`, queued or running (its client went away); `false` if it is neither.
    pub fn cancel(&mut self, id: u64) -> bool {
        let live = if let Some(i) = self.waiting.iter().position(|l| l.req.id == id) {
            self.waiting.remove(i)
        } else if let Some(i) = self.running.iter().position(|l| l.req.id == id) {
            Some(self.running.remove(i))
        } else {
            None
        };
        let Some(mut live) = live else {
            return false;
        };
        self.finish(&mut live, FinishReason::Stopped);
        true
    }

    /// Events since the last call that were not returned by a step (arrivals, cancellations).
    pub fn take_events(&mut self) -> Vec<SchedEvent> {
        std::mem::take(&mut self.events)
    }

    fn finish(&mut self, live: &mut Live, reason: FinishReason) {
        self.pool.release(&mut live.table);
        self.events.push(SchedEvent::Finished {
            req: live.req.id,
            step: self.step,
            reason,
            generated: live.generated.len(),
        });
    }

    fn free_blocks(&self) -> usize {
        self.cfg.kv_blocks - self.blocks_held()
    }

    /// Preempt the newest running request: its blocks go back, it waits at the head of the queue.
    fn preempt_newest(&mut self) {
        let mut live = self.running.pop().expect("a running request to preempt");
        let blocks = live.table.blocks().len();
        self.pool.release(&mut live.table);
        live.indexed = 0;
        self.events.push(SchedEvent::Preempted {
            req: live.req.id,
            step: self.step,
            blocks,
        });
        // Older preempted requests stay ahead of it.
        let at = self
            .waiting
            .iter()
            .position(|w| w.order > live.order)
            .unwrap_or(self.waiting.len());
        self.waiting.insert(at, live);
    }

    /// Move the head of the queue into the batch, sharing `hit`, its cached prompt prefix.
    fn admit_front(&mut self, hit: &[u32]) {
        let mut live = self.waiting.pop_front().expect("a waiting request");
        let cached = self.take_prefix(&mut live, hit);
        let (req, step) = (live.req.id, self.step);
        self.events.push(match live.started {
            true => SchedEvent::Resumed { req, step, cached },
            false => SchedEvent::Admitted { req, step, cached },
        });
        live.started = true;
        let at = self
            .running
            .iter()
            .position(|r| r.order > live.order)
            .unwrap_or(self.running.len());
        self.running.insert(at, live);
    }

    /// Static batching: when the batch is empty, admit up to `max_batch` requests whose prompts
    /// fit the free blocks together.
    fn admit_batch(&mut self) {
        let mut free = self.free_blocks();
        while self.running.len() < self.cfg.max_batch {
            let Some(front) = self.waiting.front() else {
                break;
            };
            let hit = self.prefix_hit(front);
            let blocks = self.blocks_to_admit(&hit, front.pending());
            // The first always goes in: it fits the budget alone (checked at submission).
            if blocks > free && !self.running.is_empty() {
                break;
            }
            free = free.saturating_sub(blocks);
            self.admit_front(&hit);
        }
    }

    /// What each running request runs this step, oldest first: `(request id, tokens)`. Reserves
    /// their blocks, preempting the newest requests when blocks run out. Decode rows always run;
    /// a prefill piece runs whole when it fits what is left of the budget, and the first one of the
    /// step even past it (so that every request makes progress).
    fn plan(
        &mut self,
        budget: &mut usize,
        prefill_planned: &mut bool,
    ) -> candle_core::Result<Vec<(u64, usize)>> {
        let mut plan = Vec::new();
        let chunk = self.cfg.step_tokens;
        let mut i = 0;
        while i < self.running.len() {
            let want = self.running[i].next_piece(chunk);
            let decode = self.running[i].pending() == 1;
            if want == 0 || (!decode && want > *budget && *prefill_planned) {
                i += 1;
                continue;
            }
            while self.running[i].room(self.free_blocks()) < want {
                self.preempt_newest();
                if i >= self.running.len() {
                    return Ok(plan); // it was the newest itself
                }
            }
            *prefill_planned |= !decode;
            let live = &mut self.running[i];
            let to = live.table.len() + want;
            self.pool.reserve(&mut live.table, to)?;
            plan.push((live.req.id, want));
            *budget = budget.saturating_sub(want);
            i += 1;
        }
        Ok(plan)
    }

    /// Continuous batching: admit waiting requests while the batch, the step's token budget and
    /// the free blocks allow a whole first chunk for each; while decodes run, only while the
    /// step has no prompt piece yet.
    fn admit_more(
        &mut self,
        plan: &mut Vec<(u64, usize)>,
        budget: &mut usize,
        prefill_planned: &mut bool,
    ) -> candle_core::Result<()> {
        // While decode rows run, one prompt piece a step: on a CPU a prompt of a few dozen tokens
        // is past the compute balance point, so prefilling several arrivals together saves
        // nothing and makes each first token wait for all of them.
        let decoding = self
            .running
            .iter()
            .any(|l| !l.generated.is_empty() && l.pending() == 1);
        while self.running.len() < self.cfg.max_batch {
            let Some(front) = self.waiting.front() else {
                break;
            };
            if decoding && *prefill_planned {
                break;
            }
            let hit = self.prefix_hit(front);
            let len = self.first_piece(front, &hit);
            // Its whole first piece, within the budget unless the step has nothing yet; and room
            // for all it has to run and its first token, leaving a block for each running
            // request's next decode (else it would be preempted again at once, and thrash).
            let need = (front.pending() + 1).min(self.peak_tokens(&front.req));
            let spare = self.free_blocks().saturating_sub(self.running.len());
            if (len > *budget && *prefill_planned) || self.blocks_to_admit(&hit, need) > spare {
                break;
            }
            let id = front.req.id;
            self.admit_front(&hit);
            let live = self
                .running
                .iter_mut()
                .find(|l| l.req.id == id)
                .expect("just admitted");
            let to = live.table.len() + len;
            self.pool.reserve(&mut live.table, to)?;
            plan.push((id, len));
            *budget = budget.saturating_sub(len);
            *prefill_planned |= len > 1;
        }
        Ok(())
    }

    /// Run one step: admit, plan, one forward pass over every planned piece, sample the requests
    /// whose pending tokens all ran, finish those that are done. Returns the events of the step
    /// (and of submissions and cancellations before it); nothing when idle.
    pub fn step(&mut self, model: &Model) -> candle_core::Result<Vec<SchedEvent>> {
        if self.is_idle() {
            return Ok(self.take_events());
        }
        let plan = self.admit_and_plan()?;
        let step = self.step;
        let (inputs, prefill_tokens, decode_rows) = self.gather_inputs(&plan, step);
        if inputs.is_empty() {
            return Ok(self.take_events()); // nothing fits yet (cannot happen: see `submit`)
        }
        let logits = self.forward_inputs(model, &inputs)?;
        self.index_prompt_blocks();
        let done = self.sample_finished(&inputs, logits, step)?;
        for &(i, reason) in done.iter().rev() {
            let mut live = self.running.remove(i);
            self.finish(&mut live, reason);
        }
        self.events.push(SchedEvent::Step {
            step,
            prefill_tokens,
            decode_rows,
            running: self.running.len(),
            waiting: self.waiting.len(),
            blocks_held: self.blocks_held(),
            blocks_total: self.cfg.kv_blocks,
        });
        self.step += 1;
        Ok(self.take_events())
    }

    /// Admit what the policy lets in and plan this step's pieces within the token budget.
    fn admit_and_plan(&mut self) -> candle_core::Result<Vec<(u64, usize)>> {
        let mut budget = self.cfg.step_tokens;
        if self.cfg.policy == SchedPolicy::Static && self.running.is_empty() {
            self.admit_batch();
        }
        let mut prefill_planned = false;
        let mut plan = self.plan(&mut budget, &mut prefill_planned)?;
        if self.cfg.policy == SchedPolicy::Continuous {
            self.admit_more(&mut plan, &mut budget, &mut prefill_planned)?;
        }
        Ok(plan)
    }

    /// The planned requests in running order, each with its input, and the step's prefill tokens
    /// and decode rows; a `Prefill` event for each piece that is not a single decode row.
    fn gather_inputs(
        &mut self,
        plan: &[(u64, usize)],
        step: u64,
    ) -> (Vec<(usize, Vec<u32>)>, usize, usize) {
        let mut inputs: Vec<(usize, Vec<u32>)> = Vec::with_capacity(plan.len());
        let (mut prefill_tokens, mut decode_rows) = (0, 0);
        for (i, live) in self.running.iter().enumerate() {
            let Some(&(_, len)) = plan.iter().find(|(id, _)| *id == live.req.id) else {
                continue;
            };
            let start = live.table.len();
            if !live.generated.is_empty() && live.pending() == 1 {
                decode_rows += 1;
            } else {
                prefill_tokens += len;
                self.events.push(SchedEvent::Prefill {
                    req: live.req.id,
                    step,
                    start,
                    len,
                });
            }
            inputs.push((i, live.tokens(start, len)));
        }
        (inputs, prefill_tokens, decode_rows)
    }

    /// One forward pass over every input, each through its own request's block table.
    fn forward_inputs(
        &mut self,
        model: &Model,
        inputs: &[(usize, Vec<u32>)],
    ) -> candle_core::Result<Vec<candle_core::Tensor>> {
        let mut tables: Vec<Option<&mut BlockTable>> = self
            .running
            .iter_mut()
            .map(|l| Some(&mut l.table))
            .collect();
        let mut seqs: Vec<Seq> = inputs
            .iter()
            .map(|(i, tokens)| Seq {
                tokens,
                table: tables[*i].take().expect("each request once"),
            })
            .collect();
        model.forward_batch(&mut self.pool, &mut seqs, Forward::LAST)
    }

    /// Sample a token for each request whose pending tokens all ran; the running indices of
    /// those that are done, in order, with why.
    fn sample_finished(
        &mut self,
        inputs: &[(usize, Vec<u32>)],
        logits: Vec<candle_core::Tensor>,
        step: u64,
    ) -> candle_core::Result<Vec<(usize, FinishReason)>> {
        let mut done = Vec::new();
        for ((i, _), l) in inputs.iter().zip(logits) {
            let live = &mut self.running[*i];
            if live.pending() > 0 {
                continue; // a prompt chunk before the last
            }
            let id = live.sampler.sample(&Model::last_logits(&l)?).id;
            live.generated.push(id);
            self.events.push(SchedEvent::Token {
                req: live.req.id,
                step,
                index: live.generated.len() - 1,
                id,
            });
            let reason = if self.eog.contains(&id) && !live.req.ignore_eos {
                Some(FinishReason::Eos)
            } else if live.generated.len() >= live.req.max_tokens {
                Some(FinishReason::MaxTokens)
            } else if live.total() > self.context {
                Some(FinishReason::ContextFull)
            } else {
                None
            };
            if let Some(r) = reason {
                done.push((*i, r));
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
