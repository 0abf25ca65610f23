//! Speculation statistics of one run, kept as steps happen: acceptance by position, accepted
//! lengths, draft and verify costs, the plain baseline, and the speedups measured and predicted.

use super::theory;
use crate::protocol::SpecSummary;
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct SpecStats {
    counts: theory::Acceptance,
    draft_time: Duration,
    verify_time: Duration,
    /// Σ over speculative steps of the expected tokens at that step's K (filled in at the end).
    step_ks: Vec<usize>,
    step_tokens: usize,
    plain_steps: usize,
    plain_time: Duration,
    /// Lossy rules: Σ over kept drafts of log p(target's choice) − log p(draft), and how many.
    gap_sum: f64,
    gap_n: usize,
}

impl SpecStats {
    pub fn plain_step(&mut self, time: Duration) {
        self.plain_steps += 1;
        self.plain_time += time;
    }

    pub fn spec_step(
        &mut self,
        drafted: usize,
        accepted: usize,
        draft: Duration,
        verify: Duration,
    ) {
        self.counts.record(drafted, accepted);
        self.draft_time += draft;
        self.verify_time += verify;
        self.step_ks.push(drafted);
        self.step_tokens += accepted + 1;
    }

    /// A draft a lossy rule kept, `gap` nats less likely under the target than its own choice
    /// (0 where they agree).
    pub fn kept_lossy(&mut self, gap: f64) {
        self.gap_sum += gap;
        self.gap_n += 1;
    }

    /// Plain steps so far and their time.
    pub fn plain(&self) -> (usize, Duration) {
        (self.plain_steps, self.plain_time)
    }

    pub fn plain_mean(&self) -> Option<f64> {
        (self.plain_steps > 0).then(|| self.plain_time.as_secs_f64() / self.plain_steps as f64)
    }

    fn spec_seconds(&self) -> f64 {
        (self.draft_time + self.verify_time).as_secs_f64()
    }

    /// Plain seconds per token over this run's seconds per token, plain steps included.
    pub fn live_speedup(&self) -> Option<f64> {
        let plain = self.plain_mean()?;
        (self.step_tokens > 0).then(|| {
            theory::run_speedup(
                self.step_tokens as f64,
                self.spec_seconds(),
                self.plain_steps,
                self.plain_time.as_secs_f64(),
                plain,
            )
        })
    }

    /// Tokens theory expects from the speculative steps so far: the expected tokens per step at
    /// each step's K, from the measured per-position acceptance.
    pub fn expected_tokens(&self) -> f64 {
        let alpha = self.counts.per_position();
        self.step_ks
            .iter()
            .map(|&k| theory::expected_tokens(&alpha[..k.min(alpha.len())]))
            .sum()
    }

    /// What theory predicts for the run so far: expected tokens over the measured draft,
    /// verification and plain-step costs, against plain decoding at the measured plain step.
    pub fn predicted_speedup(&self) -> Option<f64> {
        let plain = self.plain_mean()?;
        (self.counts.steps > 0).then(|| {
            theory::run_speedup(
                self.expected_tokens(),
                self.spec_seconds(),
                self.plain_steps,
                self.plain_time.as_secs_f64(),
                plain,
            )
        })
    }

    pub fn summary(
        &self,
        mode: crate::protocol::DraftMode,
        k: crate::protocol::KPolicy,
        decode: Duration,
        decoded: usize,
    ) -> SpecSummary {
        let plain = self.plain_mean().unwrap_or(0.0);
        let per_token = if decoded > 0 {
            decode.as_secs_f64() / decoded as f64
        } else {
            0.0
        };
        let c = &self.counts;
        SpecSummary {
            mode,
            k,
            steps: c.steps,
            plain_steps: self.plain_steps,
            drafted: c.drafted,
            accepted: c.accepted,
            acceptance_rate: c.rate(),
            mean_accepted_len: c.mean_len(),
            per_position: c.per_position(),
            accepted_hist: c.hist.clone(),
            draft_time: self.draft_time,
            verify_time: self.verify_time,
            plain_step: Duration::from_secs_f64(plain),
            plain_time: self.plain_time,
            expected_tokens: self.expected_tokens(),
            speedup: if per_token > 0.0 {
                plain / per_token
            } else {
                0.0
            },
            predicted_speedup: self.predicted_speedup().unwrap_or(0.0),
            logp_gap: (self.gap_n > 0).then(|| self.gap_sum / self.gap_n as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_reach_and_acceptance_by_position() {
        let mut s = SpecStats::default();
        let ms = Duration::from_millis;
        s.spec_step(3, 1, ms(3), ms(10)); // positions 1 ✓, 2 ✗ (3 not reached)
        s.spec_step(3, 3, ms(3), ms(10)); // all three
        let sum = s.summary(
            crate::protocol::DraftMode::PromptLookup,
            crate::protocol::KPolicy::Fixed(3),
            ms(26),
            6,
        );
        assert_eq!(sum.per_position, vec![1.0, 0.5, 1.0]);
        assert_eq!(sum.accepted_hist, vec![0, 1, 0, 1]);
        assert_eq!(sum.acceptance_rate, 4.0 / 6.0);
        assert_eq!(sum.mean_accepted_len, 3.0);
        assert!(sum.predicted_speedup == 0.0, "no plain baseline yet");
        s.plain_step(ms(10));
        // Expected tokens: (1 + 1 + 0.5 + 0.5) per step, two steps, over 26 ms, plus one plain
        // token in 10 ms, at 10 ms a plain token.
        let p = s.predicted_speedup().unwrap();
        assert!((p - 7.0 * 10.0 / 36.0).abs() < 1e-9, "{p}");
        assert!((s.live_speedup().unwrap() - 7.0 * 10.0 / 36.0).abs() < 1e-9);
    }
}
