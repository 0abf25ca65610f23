//! A speculative step that verifies Medusa's tree of candidates in one pass and keeps the
//! longest branch the target agrees with (see [`crate::engine::spec::tree`]).

use super::produced::{Produced, Step};
use super::run::Generation;
use crate::engine::error::Result;
use crate::engine::heads::HeadKind;
use crate::engine::model::{Forward, Logits};
use crate::engine::spec::Drafter;
use crate::protocol::{Event, Phase, SpecStep};
use candle_core::DType;
use std::time::Instant;

impl Generation<'_> {
    /// Whether this step verifies a tree: Medusa heads with the tree on, a run without
    /// sampling (speculative sampling verifies one chain), and the paged CPU attention.
    pub(super) fn verifies_a_tree(&self) -> bool {
        matches!(&self.spec.drafter, Drafter::Heads(h) if h.kind() == HeadKind::Medusa)
            && self.spec.tree
            && self.sampler.params().is_greedy()
            && self.hidden.is_some()
            && self.ctx - self.cache.len() > crate::engine::spec::tree::NODES.len() + 1
            && self.cache.dtype() == DType::F32
            && self.model.device().is_cpu()
    }

    /// Draft the tree to depth `k`, verify it in one pass, keep the accepted branch in the
    /// cache and report the step.
    pub(super) fn verify_tree(
        &mut self,
        pending: u32,
        k: usize,
        emit: &mut dyn FnMut(Event),
    ) -> Result<Step> {
        let t = Instant::now();
        let (Drafter::Heads(heads), Some(hidden)) = (&self.spec.drafter, &self.hidden) else {
            unreachable!("checked by verifies_a_tree")
        };
        let cands = heads.candidates(self.model, hidden, k)?;
        let draft_time = t.elapsed();
        let t = Instant::now();
        let before = self.cache.len();
        let mut input = vec![pending];
        input.extend_from_slice(&cands.tokens);
        let opts = Forward {
            logits: Logits::Hidden,
            layers: None,
        };
        let h = self
            .model
            .forward_tree(&input, self.cache, &cands.mask(), opts)?;
        let rows: Vec<Vec<f32>> = self.model.head_logits(&h)?.to_vec2()?;
        let (path, token) = cands.walk(&rows, self.acceptance);
        self.cache.keep_path(before, &path)?;
        let last = path.last().copied().unwrap_or(0);
        self.hidden = Some(h.narrow(0, last, 1)?);
        let verify = t.elapsed();
        let shown = cands.shown(&path);
        let n = path.len();
        self.stats.spec_step(shown.len(), n, draft_time, verify);
        let (draft_s, verify_s) = (draft_time.as_secs_f64(), verify.as_secs_f64());
        self.spec
            .controller
            .observe(shown.len(), n, n + 1, draft_s, verify_s);
        emit(Event::SpecStep(SpecStep {
            run: self.request.run,
            k,
            drafted_text: shown.iter().map(|&t| self.tokenizer.piece(t)).collect(),
            drafted: shown.clone(),
            accepted: n,
            token,
            draft: draft_time,
            verify,
            live_speedup: self.stats.live_speedup(),
            predicted_speedup: self.stats.predicted_speedup(),
            plain_steps: self.stats.plain().0,
            plain_time: self.stats.plain().1,
        }));
        let mut step = Step::empty(draft_time + verify);
        let mut above = 0;
        for &r in &path {
            let id = cands.tokens[r - 1];
            if self.acceptance.is_lossy() {
                self.stats
                    .kept_lossy(super::step::logp_gap(&rows[above], id));
            }
            step.push(Produced {
                id,
                prob: self.sampler.prob_of(&rows[above], id),
                phase: Phase::Draft,
            });
            above = r;
        }
        let phase = if n == shown.len() {
            Phase::Bonus
        } else {
            Phase::Correction
        };
        step.push(Produced {
            id: token,
            prob: self.sampler.prob_of(&rows[above], token),
            phase,
        });
        Ok(step)
    }
}
