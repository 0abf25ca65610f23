//! Speculation as the dashboard sees one run: counts gathered from `SpecStep` events, and the
//! numbers derived from them with the engine's own formulas.

use crate::engine::spec::theory::Acceptance;
use crate::protocol::SpecStep;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecView {
    pub counts: Acceptance,
    pub last_k: usize,
    pub live_speedup: Option<f64>,
    pub predicted_speedup: Option<f64>,
    /// Rejected draft text, shown struck out just before the token at this index.
    pub rejected: BTreeMap<usize, String>,
    /// Time spent drafting and verifying over the run's speculative steps, and the positions
    /// verified (each step verifies its drafts and one more).
    pub draft_time: std::time::Duration,
    pub verify_time: std::time::Duration,
    pub verified: usize,
    /// Speculative steps by how many tokens they drafted (theory's expected tokens need each
    /// step's K).
    pub by_drafted: BTreeMap<usize, usize>,
    /// The run's plain steps so far and their time, as the newest step reported them.
    pub plain_steps: usize,
    pub plain_time: std::time::Duration,
}

impl SpecView {
    /// Take a step; `next_index` is the index the step's first token will have.
    /// A step claiming more accepted drafts than it drafted counts as accepting them all.
    pub fn apply(&mut self, s: &SpecStep, next_index: usize) {
        let drafted = s.drafted.len();
        let accepted = s.accepted.min(drafted);
        self.counts.record(drafted, accepted);
        self.last_k = s.k;
        self.draft_time += s.draft;
        self.verify_time += s.verify;
        self.verified += drafted + 1;
        *self.by_drafted.entry(drafted).or_default() += 1;
        self.plain_steps = s.plain_steps;
        self.plain_time = s.plain_time;
        self.live_speedup = s.live_speedup.or(self.live_speedup);
        self.predicted_speedup = s.predicted_speedup.or(self.predicted_speedup);
        if accepted < drafted {
            let text: String = s.drafted_text.get(accepted..).unwrap_or_default().concat();
            self.rejected
                .insert(next_index.saturating_add(accepted), text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn step(drafted: &[u32], accepted: usize) -> SpecStep {
        SpecStep {
            run: 1,
            k: drafted.len(),
            drafted: drafted.to_vec(),
            drafted_text: drafted.iter().map(|d| format!("<{d}>")).collect(),
            accepted,
            token: 0,
            draft: Duration::from_millis(1),
            verify: Duration::from_millis(5),
            live_speedup: Some(1.5),
            predicted_speedup: Some(1.4),
            plain_steps: 3,
            plain_time: Duration::from_millis(12),
        }
    }

    #[test]
    fn gathers_acceptance_by_position_and_rejected_text() {
        let mut v = SpecView::default();
        v.apply(&step(&[1, 2, 3], 1), 10);
        v.apply(&step(&[4, 5, 6], 3), 12);
        assert_eq!(v.counts.per_position(), vec![1.0, 0.5, 1.0]);
        assert_eq!(v.counts.hist, vec![0, 1, 0, 1]);
        assert_eq!(v.counts.mean_len(), 3.0);
        assert_eq!(v.rejected.get(&11).map(String::as_str), Some("<2><3>"));
        assert_eq!(v.live_speedup, Some(1.5));
    }

    #[test]
    fn a_step_with_impossible_counts_is_clamped_not_a_panic() {
        let mut v = SpecView::default();
        v.apply(&step(&[1, 2], usize::MAX), usize::MAX);
        assert_eq!(v.counts.hist, vec![0, 0, 1]);
        // Fewer texts than drafts: the missing rejected text is empty.
        let mut short = step(&[1, 2, 3], 2);
        short.drafted_text.truncate(1);
        v.apply(&short, 0);
        assert_eq!(v.rejected.get(&2).map(String::as_str), Some(""));
    }
}
