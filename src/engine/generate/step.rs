//! One decode step: plan K, draft (nothing for plain decoding), verify, keep what acceptance
//! keeps and roll the caches back to it.

use super::produced::{Produced, Step};
use super::run::Generation;
use crate::engine::error::Result;
use crate::engine::kernels::SMALL_BATCH;
use crate::engine::model::{Logits, Model};
use crate::engine::spec::draft::Draft;
use crate::engine::spec::SpecPlan;
use crate::protocol::{Event, Phase, SpecStep};
use std::time::{Duration, Instant};

/// log p(argmax) − log p(`x`) under logits `row`: the logits' difference (the normaliser
/// cancels).
pub(super) fn logp_gap(row: &[f32], x: u32) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    (max - row[x as usize]) as f64
}

impl Generation<'_> {
    /// Draft up to the K the controller plans (none when not speculating) and verify the draft;
    /// an empty draft is verified by the target's one-position step, which is plain decoding.
    pub fn step(&mut self, emit: &mut dyn FnMut(Event)) -> Result<Step> {
        let pending = *self.generated.last().expect("a token before each step");
        let k = self.plan_k();
        if k > 0 && self.verifies_a_tree() {
            return self.verify_tree(pending, k, emit);
        }
        let t = Instant::now();
        let draft = if k > 0 {
            let (text, hidden) = (&self.text_ids, self.hidden.as_ref());
            let sampler = &mut self.sampler;
            (self.spec.drafter).draft(self.model, self.cache, text, hidden, k, sampler)?
        } else {
            Draft::default()
        };
        let draft_time = t.elapsed();
        if draft.tokens.is_empty() {
            self.decode_one(pending, draft_time)
        } else {
            self.verify(pending, k, &draft, draft_time, emit)
        }
    }

    /// K for this step: what the controller plans, kept inside the context and the batch size
    /// our products are batch-invariant for (verification appends K + 1 positions).
    fn plan_k(&mut self) -> usize {
        let plan = if self.spec.is_on() {
            let unseen = self.spec.drafter.unseen(self.text_ids.len());
            let left = self.max_tokens - self.generated.len();
            self.spec.controller.plan(unseen, left)
        } else {
            SpecPlan::Plain
        };
        let room = self.ctx - self.cache.len() - 1;
        match plan {
            SpecPlan::Speculate(k) => k.min(room).min(SMALL_BATCH - 1),
            SpecPlan::Plain => 0,
        }
    }

    /// The target's next token after `pending` alone.
    fn decode_one(&mut self, pending: u32, draft_time: Duration) -> Result<Step> {
        let t = Instant::now();
        let logits = self.forward_kept(&[pending], Logits::Last)?;
        self.keep_hidden(0)?;
        let next = self.sampler.sample(&Model::last_logits(&logits)?);
        let time = t.elapsed();
        if self.spec.is_on() {
            self.spec.drafter.rollback(self.text_ids.len());
            self.stats.plain_step(time);
            self.spec
                .controller
                .observe(0, 0, 1, 0.0, time.as_secs_f64());
        }
        let token = Produced {
            id: next.id,
            prob: next.prob,
            phase: Phase::Decode,
        };
        Ok(Step::one(token, time + draft_time))
    }

    /// Score `pending` and the draft in one pass, keep what the acceptance rule keeps and the
    /// target's token after it, roll both caches back to that, and report the step.
    fn verify(
        &mut self,
        pending: u32,
        k: usize,
        draft: &Draft,
        draft_time: Duration,
        emit: &mut dyn FnMut(Event),
    ) -> Result<Step> {
        let t = Instant::now();
        let before = self.cache.len();
        let mut input = Vec::with_capacity(draft.tokens.len() + 1);
        input.push(pending);
        input.extend_from_slice(&draft.tokens);
        let rows: Vec<Vec<f32>> = self.forward_kept(&input, Logits::All)?.to_vec2()?;
        let verdict = self.acceptance.judge(draft, &rows, &mut self.sampler);
        self.keep_hidden(verdict.accepted)?;
        if self.acceptance.is_lossy() {
            for (row, &x) in rows.iter().zip(&draft.tokens[..verdict.accepted]) {
                self.stats.kept_lossy(logp_gap(row, x));
            }
        }
        let verify = t.elapsed();
        let n = verdict.accepted;
        self.cache.truncate(before + 1 + n);
        self.spec.drafter.rollback(self.text_ids.len() + n);
        let drafted = draft.tokens.len();
        self.stats.spec_step(drafted, n, draft_time, verify);
        let (draft_s, verify_s) = (draft_time.as_secs_f64(), verify.as_secs_f64());
        self.spec
            .controller
            .observe(drafted, n, n + 1, draft_s, verify_s);
        emit(Event::SpecStep(SpecStep {
            run: self.request.run,
            k,
            drafted: draft.tokens.clone(),
            drafted_text: draft
                .tokens
                .iter()
                .map(|&t| self.tokenizer.piece(t))
                .collect(),
            accepted: n,
            token: verdict.token,
            draft: draft_time,
            verify,
            live_speedup: self.stats.live_speedup(),
            predicted_speedup: self.stats.predicted_speedup(),
            plain_steps: self.stats.plain().0,
            plain_time: self.stats.plain().1,
        }));
        Ok(self.kept(
            draft,
            &rows,
            verdict.accepted,
            verdict.token,
            draft_time + verify,
        ))
    }

    /// Keep the state of row `row` of the last pass: where the target chose the next pending
    /// token.
    pub(super) fn keep_hidden(&mut self, row: usize) -> Result<()> {
        if let Some(h) = self.hidden_rows.take() {
            self.hidden = Some(h.narrow(0, row, 1)?);
        }
        Ok(())
    }

    /// The accepted drafts and the target's token after them, each with the target's probability.
    fn kept(&self, draft: &Draft, rows: &[Vec<f32>], n: usize, token: u32, time: Duration) -> Step {
        let mut step = Step::empty(time);
        for (i, &id) in draft.tokens[..n].iter().enumerate() {
            let prob = self.sampler.prob_of(&rows[i], id);
            step.push(Produced {
                id,
                prob,
                phase: Phase::Draft,
            });
        }
        let phase = if n == draft.tokens.len() {
            Phase::Bonus
        } else {
            Phase::Correction
        };
        let prob = self.sampler.prob_of(&rows[n], token);
        step.push(Produced {
            id: token,
            prob,
            phase,
        });
        step
    }
}
