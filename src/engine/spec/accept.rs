//! Deciding how many drafted tokens the target keeps, and the target's own token after them.
//!
//! Greedy decoding accepts a draft while it equals the target's argmax, so the output is the
//! target's greedy output. With sampling, speculative sampling (Leviathan et al., Chen et al.)
//! accepts draft `x` with probability min(1, p(x)/q(x)) and on rejection draws from the
//! normalised max(0, p − q), which leaves the target's distribution p exactly unchanged.

use super::super::sampling::{argmax, Sampler, SamplingParams};
use super::draft::Draft;

/// The rule a verification step keeps drafts by. Both rules here are lossless: the run's output
/// is distributed as the target's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Keep drafts while they equal the target's argmax ([`greedy`]).
    Greedy,
    /// Speculative sampling ([`sampled`]).
    Sampled,
}

impl Acceptance {
    /// The lossless rule for a run sampled with `params`.
    pub fn lossless(params: &SamplingParams) -> Self {
        if params.is_greedy() {
            Self::Greedy
        } else {
            Self::Sampled
        }
    }

    /// What the target keeps of `draft`, given its logits `rows` after each drafted token
    /// (`draft.tokens.len() + 1` rows).
    pub fn judge(self, draft: &Draft, rows: &[Vec<f32>], sampler: &mut Sampler) -> Verdict {
        match self {
            Self::Greedy => {
                let target: Vec<u32> = rows.iter().map(|r| argmax(r) as u32).collect();
                greedy(&draft.tokens, &target)
            }
            Self::Sampled => {
                let p: Vec<Vec<f32>> = rows.iter().map(|r| sampler.distribution(r)).collect();
                sampled(&draft.tokens, &draft.q, &p, sampler)
            }
        }
    }
}

/// How a verification step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Drafted tokens kept, from the front.
    pub accepted: usize,
    /// The target's token after them: a correction when a draft was rejected, else a bonus.
    pub token: u32,
}

/// Greedy acceptance: `target[i]` is the target's choice after `i` drafted tokens
/// (`drafted.len() + 1` entries).
pub fn greedy(drafted: &[u32], target: &[u32]) -> Verdict {
    debug_assert_eq!(target.len(), drafted.len() + 1);
    let accepted = drafted
        .iter()
        .zip(target)
        .take_while(|(d, t)| d == t)
        .count();
    Verdict {
        accepted,
        token: target[accepted],
    }
}

/// Speculative sampling. `p[i]` is the target's distribution after `i` drafted tokens
/// (`drafted.len() + 1` rows); `q[i]` the draft's distribution for drafted token `i`, or `None`
/// when the draft was deterministic (a point mass on the drafted token, as prompt lookup is).
pub fn sampled(
    drafted: &[u32],
    q: &[Option<Vec<f32>>],
    p: &[Vec<f32>],
    sampler: &mut Sampler,
) -> Verdict {
    debug_assert_eq!(p.len(), drafted.len() + 1);
    for (i, &x) in drafted.iter().enumerate() {
        let px = p[i][x as usize];
        let qx = q
            .get(i)
            .and_then(|q| q.as_ref())
            .map_or(1.0, |q| q[x as usize]);
        let u = sampler.uniform();
        if qx > 0.0 && u < (px / qx).min(1.0) {
            continue;
        }
        let residual: Vec<f32> = match q.get(i).and_then(|q| q.as_ref()) {
            Some(q) => p[i].iter().zip(q).map(|(p, q)| (p - q).max(0.0)).collect(),
            None => {
                let mut r = p[i].clone();
                r[x as usize] = 0.0;
                r
            }
        };
        let token = if residual.iter().any(|&r| r > 0.0) {
            sampler.draw(&residual)
        } else {
            sampler.draw(&p[i])
        };
        return Verdict { accepted: i, token };
    }
    Verdict {
        accepted: drafted.len(),
        token: sampler.draw(&p[drafted.len()]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::sampling::SamplingParams;

    #[test]
    fn greedy_keeps_the_matching_prefix_then_corrects_or_adds_a_bonus() {
        assert_eq!(
            greedy(&[5, 6, 7], &[5, 6, 9, 1]),
            Verdict {
                accepted: 2,
                token: 9
            }
        );
        assert_eq!(
            greedy(&[5, 6], &[5, 6, 8]),
            Verdict {
                accepted: 2,
                token: 8
            }
        );
        assert_eq!(
            greedy(&[4], &[3, 0]),
            Verdict {
                accepted: 0,
                token: 3
            }
        );
        assert_eq!(
            greedy(&[], &[3]),
            Verdict {
                accepted: 0,
                token: 3
            }
        );
    }

    fn sampler(seed: u64) -> Sampler {
        Sampler::new(SamplingParams {
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed,
        })
    }

    /// The first token out of a speculative step is distributed as p, whatever q proposed.
    #[test]
    fn speculative_sampling_keeps_the_target_distribution() {
        let p = vec![0.5f32, 0.3, 0.15, 0.05];
        let q = vec![0.1f32, 0.2, 0.3, 0.4];
        let mut draft = sampler(1);
        let mut s = sampler(2);
        let n = 40_000;
        let mut counts = [0usize; 4];
        for _ in 0..n {
            let x = draft.draw(&q);
            let v = sampled(&[x], &[Some(q.clone())], &[p.clone(), p.clone()], &mut s);
            let first = if v.accepted == 1 { x } else { v.token };
            counts[first as usize] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            let f = *c as f64 / n as f64;
            assert!((f - p[i] as f64).abs() < 0.01, "token {i}: {f} vs {}", p[i]);
        }
    }

    #[test]
    fn a_point_mass_draft_is_accepted_with_the_targets_probability() {
        let p = vec![0.2f32, 0.8];
        let mut s = sampler(9);
        let n = 20_000;
        let (mut accepted, mut zero) = (0, 0);
        for _ in 0..n {
            let v = sampled(&[1], &[None], &[p.clone(), p.clone()], &mut s);
            accepted += v.accepted;
            let first = if v.accepted == 1 { 1 } else { v.token };
            zero += (first == 0) as usize;
        }
        let rate = accepted as f64 / n as f64;
        assert!((rate - 0.8).abs() < 0.015, "acceptance {rate}");
        assert!((zero as f64 / n as f64 - 0.2).abs() < 0.015);
    }
}
