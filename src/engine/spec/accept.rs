//! Deciding how many drafted tokens the target keeps, and the target's own token after them.
//!
//! Greedy decoding accepts a draft while it equals the target's argmax, so the output is the
//! target's greedy output. With sampling, speculative sampling (Leviathan et al., Chen et al.)
//! accepts draft `x` with probability min(1, p(x)/q(x)) and on rejection draws from the
//! normalised max(0, p − q), which leaves the target's distribution p exactly unchanged.
//!
//! The lossy rules keep more: a draft the target finds likely enough, though not its choice —
//! by a confidence threshold, top-k agreement, or Medusa's typical acceptance. They are faster
//! and change the output; they are named lossy wherever they show.

use super::super::sampling::{argmax, softmax, Sampler, SamplingParams};
use super::draft::Draft;

/// The rule a verification step keeps drafts by. `Greedy` and `Sampled` are lossless: the run's
/// output is distributed as the target's own; the others are lossy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Acceptance {
    /// Keep drafts while they equal the target's argmax ([`greedy`]).
    Greedy,
    /// Speculative sampling ([`sampled`]).
    Sampled,
    /// Lossy: also keep a draft the target gives at least `tau` of its probability.
    Threshold { tau: f32 },
    /// Lossy: also keep a draft among the target's `k` likeliest tokens.
    TopK { k: usize },
    /// Lossy: Medusa's typical acceptance, also keeping a draft whose probability reaches
    /// min(ε, √ε · e^(−H)), H the entropy of the target's distribution (a flat distribution
    /// accepts more).
    Typical { epsilon: f32 },
}

impl std::fmt::Display for Acceptance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Greedy => f.write_str("greedy match"),
            Self::Sampled => f.write_str("speculative sampling"),
            Self::Threshold { tau } => write!(f, "threshold τ={tau} (lossy)"),
            Self::TopK { k } => write!(f, "top-{k} agreement (lossy)"),
            Self::Typical { epsilon } => write!(f, "typical ε={epsilon} (lossy)"),
        }
    }
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

    /// The engine's rule for a policy: `None` for lossless (the run's own lossless rule).
    pub fn of_policy(p: crate::protocol::AcceptPolicy) -> Option<Self> {
        use crate::protocol::AcceptPolicy as P;
        let share = |t: u16| t as f32 / 1000.0;
        match p {
            P::Lossless => None,
            P::Threshold(t) => Some(Self::Threshold { tau: share(t) }),
            P::TopK(k) => Some(Self::TopK { k: k as usize }),
            P::Typical(e) => Some(Self::Typical { epsilon: share(e) }),
        }
    }

    /// Whether the rule changes the output from the target's own.
    pub fn is_lossy(self) -> bool {
        !matches!(self, Self::Greedy | Self::Sampled)
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
            lossy => lossy.relaxed(&draft.tokens, rows, sampler),
        }
    }

    /// Whether a run without sampling keeps draft `x` given the target's logits `row`: it is
    /// the target's argmax, or a lossy rule keeps it.
    pub fn keeps_greedy(self, row: &[f32], x: u32) -> bool {
        argmax(row) == x as usize || (self.is_lossy() && self.keeps(row, x))
    }

    /// A lossy rule: keep drafts while each is the target's choice or passes the rule; the
    /// token after them is the target's own (its argmax, or drawn when sampling).
    fn relaxed(self, drafted: &[u32], rows: &[Vec<f32>], sampler: &mut Sampler) -> Verdict {
        let accepted = drafted
            .iter()
            .zip(rows)
            .take_while(|(&x, row)| argmax(row) == x as usize || self.keeps(row, x))
            .count();
        let row = &rows[accepted];
        let token = if sampler.params().is_greedy() {
            argmax(row) as u32
        } else {
            let d = sampler.distribution(row);
            sampler.draw(&d)
        };
        Verdict { accepted, token }
    }

    /// Whether a lossy rule keeps draft `x` given the target's logits `row` (probabilities at
    /// temperature 1: the model's own confidence).
    /// Top-k compares logits (no exponentials); the others need the distribution, once per
    /// draft that is not the target's own choice.
    fn keeps(self, row: &[f32], x: u32) -> bool {
        let lx = row[x as usize];
        if let Self::TopK { k } = self {
            return row.iter().filter(|&&l| l > lx).count() < k;
        }
        let p = softmax(row, 1.0);
        let px = p[x as usize];
        match self {
            Self::Threshold { tau } => px >= tau,
            Self::Typical { epsilon } => {
                let entropy: f32 = p.iter().filter(|&&q| q > 0.0).map(|&q| -q * q.ln()).sum();
                px >= epsilon.min(epsilon.sqrt() * (-entropy).exp())
            }
            Self::TopK { .. } | Self::Greedy | Self::Sampled => false,
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

    fn draft(tokens: &[u32]) -> Draft {
        Draft {
            tokens: tokens.to_vec(),
            q: vec![None; tokens.len()],
        }
    }

    /// Logits whose softmax is `p` (log-probabilities).
    fn logits(p: &[f32]) -> Vec<f32> {
        p.iter().map(|x| x.ln()).collect()
    }

    #[test]
    fn lossy_rules_keep_likely_drafts_the_target_would_not_choose() {
        // The target's choice is token 0 (0.5); token 1 has 0.3, token 2 has 0.15.
        let row = logits(&[0.5, 0.3, 0.15, 0.05]);
        let rows = vec![row.clone(), row.clone(), row];
        let mut s = Sampler::new(SamplingParams {
            temperature: 0.0,
            ..sampler(0).params().clone()
        });
        let kept = |a: Acceptance, d: &[u32], s: &mut Sampler| a.judge(&draft(d), &rows, s);
        // Greedy keeps only the target's choice; the correction is its argmax.
        assert_eq!(
            kept(Acceptance::Greedy, &[0, 1], &mut s),
            Verdict {
                accepted: 1,
                token: 0
            }
        );
        let tau = Acceptance::Threshold { tau: 0.25 };
        assert_eq!(
            kept(tau, &[0, 1], &mut s),
            Verdict {
                accepted: 2,
                token: 0
            }
        );
        assert_eq!(kept(tau, &[2, 1], &mut s).accepted, 0);
        let top2 = Acceptance::TopK { k: 2 };
        assert_eq!(kept(top2, &[1, 0], &mut s).accepted, 2);
        assert_eq!(kept(top2, &[2], &mut s).accepted, 0);
        // Entropy of (0.5, 0.3, 0.15, 0.05) is 1.14 nats: ε = 0.2 gives min(0.2, 0.447·0.32)
        // = 0.143, so 0.15 passes and 0.05 does not.
        let typical = Acceptance::Typical { epsilon: 0.2 };
        assert_eq!(kept(typical, &[2], &mut s).accepted, 1);
        assert_eq!(kept(typical, &[3], &mut s).accepted, 0);
        assert!(tau.is_lossy() && !Acceptance::Sampled.is_lossy());
        assert_eq!(tau.to_string(), "threshold τ=0.25 (lossy)");
    }

    #[test]
    fn each_policy_has_its_rule() {
        use crate::protocol::AcceptPolicy as P;
        assert_eq!(Acceptance::of_policy(P::Lossless), None);
        assert_eq!(
            Acceptance::of_policy(P::Threshold(300)),
            Some(Acceptance::Threshold { tau: 0.3 })
        );
        assert_eq!(
            Acceptance::of_policy(P::TopK(3)),
            Some(Acceptance::TopK { k: 3 })
        );
        assert_eq!(
            Acceptance::of_policy(P::Typical(90)),
            Some(Acceptance::Typical { epsilon: 0.09 })
        );
    }
}
