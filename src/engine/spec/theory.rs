//! The arithmetic of speculative decoding, in small functions people can check.

/// Accepted ÷ drafted; 0 when nothing was drafted.
pub fn acceptance_rate(accepted: usize, drafted: usize) -> f64 {
    if drafted == 0 {
        0.0
    } else {
        accepted as f64 / drafted as f64
    }
}

/// Tokens each verification step yields on average: 1 + accepted ÷ steps.
pub fn mean_accepted_length(accepted: usize, steps: usize) -> f64 {
    if steps == 0 {
        0.0
    } else {
        1.0 + accepted as f64 / steps as f64
    }
}

/// Expected tokens per step with K = `alpha.len()`, where `alpha[i]` is the probability that
/// draft position i + 1 is accepted once every earlier one was: 1 + Σᵢ Πⱼ≤ᵢ alphaⱼ.
pub fn expected_tokens(alpha: &[f64]) -> f64 {
    let mut reach = 1.0;
    let mut total = 1.0;
    for a in alpha {
        reach *= a.clamp(0.0, 1.0);
        total += reach;
    }
    total
}

/// Speedup over plain decoding that theory predicts: expected tokens per step times the time of
/// one plain decode step, over the time of a step (K drafts plus one verification).
pub fn predicted_speedup(alpha: &[f64], plain_step: f64, draft_per_token: f64, verify: f64) -> f64 {
    let step = alpha.len() as f64 * draft_per_token + verify;
    if step <= 0.0 || plain_step <= 0.0 {
        return 0.0;
    }
    expected_tokens(alpha) * plain_step / step
}

/// A whole run's speedup: speculative steps expected to yield `spec_tokens` tokens in
/// `spec_seconds`, plus `plain_steps` plain steps (one token each) in `plain_seconds`, against
/// decoding every token plainly at `plain_step` seconds.
pub fn run_speedup(
    spec_tokens: f64,
    spec_seconds: f64,
    plain_steps: usize,
    plain_seconds: f64,
    plain_step: f64,
) -> f64 {
    let time = spec_seconds + plain_seconds;
    if time <= 0.0 {
        return 0.0;
    }
    (spec_tokens + plain_steps as f64) * plain_step / time
}

/// Conditional acceptance by draft position from counts: `reached[i]` steps drafted position
/// i + 1 with every earlier draft accepted, `accepted[i]` of them accepted it.
pub fn per_position(reached: &[usize], accepted: &[usize]) -> Vec<f64> {
    reached
        .iter()
        .zip(accepted)
        .map(|(&r, &a)| if r == 0 { 0.0 } else { a as f64 / r as f64 })
        .collect()
}

/// Acceptance counts of a run's speculative steps: overall, by draft position, and as a
/// histogram of accepted lengths.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Acceptance {
    pub steps: usize,
    pub drafted: usize,
    pub accepted: usize,
    /// Per draft position: steps that reached it (every earlier draft accepted), and that
    /// accepted it.
    pub reached: Vec<usize>,
    pub accepted_at: Vec<usize>,
    /// Steps that accepted 0, 1, 2, … drafts.
    pub hist: Vec<usize>,
}

impl Acceptance {
    /// Record a step; `accepted` past `drafted` (impossible, but a recording can say so) counts as
    /// `drafted`, so the histogram is never sized by a number from a file.
    pub fn record(&mut self, drafted: usize, accepted: usize) {
        let accepted = accepted.min(drafted);
        if self.reached.len() < drafted {
            self.reached.resize(drafted, 0);
            self.accepted_at.resize(drafted, 0);
        }
        for i in 0..drafted.min(accepted + 1) {
            self.reached[i] += 1;
            self.accepted_at[i] += (i < accepted) as usize;
        }
        if self.hist.len() <= accepted {
            self.hist.resize(accepted + 1, 0);
        }
        self.hist[accepted] += 1;
        self.steps += 1;
        self.drafted = self.drafted.saturating_add(drafted);
        self.accepted = self.accepted.saturating_add(accepted);
    }

    pub fn rate(&self) -> f64 {
        acceptance_rate(self.accepted, self.drafted)
    }

    pub fn mean_len(&self) -> f64 {
        mean_accepted_length(self.accepted, self.steps)
    }

    pub fn per_position(&self) -> Vec<f64> {
        per_position(&self.reached, &self.accepted_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_accepted_than_drafted_counts_as_all_accepted() {
        let mut a = Acceptance::default();
        a.record(2, usize::MAX);
        assert_eq!(
            (a.hist.clone(), a.accepted, a.reached.clone()),
            (vec![0, 0, 1], 2, vec![1, 1])
        );
    }

    #[test]
    fn rates_and_lengths() {
        assert_eq!(acceptance_rate(3, 4), 0.75);
        assert_eq!(acceptance_rate(0, 0), 0.0);
        assert_eq!(mean_accepted_length(6, 4), 2.5);
    }

    #[test]
    fn expected_tokens_follows_the_geometric_series() {
        assert_eq!(expected_tokens(&[]), 1.0);
        assert_eq!(expected_tokens(&[1.0, 1.0, 1.0]), 4.0);
        // alpha = 0.5 everywhere, K = 2: 1 + 0.5 + 0.25.
        assert!((expected_tokens(&[0.5, 0.5]) - 1.75).abs() < 1e-12);
    }

    #[test]
    fn speedup_weighs_tokens_against_cost() {
        // Free drafts, verification as dear as a plain step: the speedup is the tokens per step.
        assert!((predicted_speedup(&[0.5, 0.5], 1.0, 0.0, 1.0) - 1.75).abs() < 1e-12);
        // Nothing accepted, costly drafts: slower than plain.
        assert!(predicted_speedup(&[0.0, 0.0], 1.0, 0.5, 1.2) < 0.5);
        assert_eq!(per_position(&[4, 2, 0], &[2, 1, 0]), vec![0.5, 0.5, 0.0]);
        // 3 tokens in 2 s of speculation plus 2 plain steps in 2 s, plain 1 s/token: 5 in 4 s.
        assert!((run_speedup(3.0, 2.0, 2, 2.0, 1.0) - 1.25).abs() < 1e-12);
    }
}
