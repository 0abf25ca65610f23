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

/// Conditional acceptance by draft position from counts: `reached[i]` steps drafted position
/// i + 1 with every earlier draft accepted, `accepted[i]` of them accepted it.
pub fn per_position(reached: &[usize], accepted: &[usize]) -> Vec<f64> {
    reached
        .iter()
        .zip(accepted)
        .map(|(&r, &a)| if r == 0 { 0.0 } else { a as f64 / r as f64 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
