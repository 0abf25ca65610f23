//! Choosing the next token from logits: greedy, temperature, top-k, top-p, seeded.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 (or less) means greedy.
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub seed: u64,
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0 || self.top_k == Some(1)
    }
}

/// A chosen token and the probability the sampler gave it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampled {
    pub id: u32,
    pub prob: f32,
}

#[derive(Debug)]
pub struct Sampler {
    params: SamplingParams,
    rng: StdRng,
}

/// Index of the largest value; the first one on ties.
pub fn argmax(xs: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in xs.iter().enumerate() {
        if x > xs[best] {
            best = i;
        }
    }
    best
}

/// Softmax of `logits / temperature`, in place into a new vector.
pub fn softmax(logits: &[f32], temperature: f32) -> Vec<f32> {
    let t = if temperature > 0.0 { temperature } else { 1.0 };
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p: Vec<f32> = logits.iter().map(|&l| ((l - max) / t).exp()).collect();
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= sum);
    p
}

/// The candidates kept by top-k then top-p, with their renormalised probabilities.
pub fn truncated(probs: &[f32], top_k: Option<usize>, top_p: Option<f32>) -> Vec<(u32, f32)> {
    let mut c: Vec<(u32, f32)> = probs
        .iter()
        .enumerate()
        .map(|(i, &p)| (i as u32, p))
        .collect();
    let by_prob = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if let Some(k) = top_k.filter(|&k| k > 0 && k < c.len()) {
        c.select_nth_unstable_by(k - 1, by_prob);
        c.truncate(k);
    }
    c.sort_unstable_by(by_prob);
    if let Some(p) = top_p.filter(|&p| p > 0.0 && p < 1.0) {
        let mut acc = 0.0;
        let mut keep = c.len();
        for (i, (_, q)) in c.iter().enumerate() {
            acc += q;
            if acc >= p {
                keep = i + 1;
                break;
            }
        }
        c.truncate(keep);
    }
    let sum: f32 = c.iter().map(|x| x.1).sum();
    c.iter_mut().for_each(|x| x.1 /= sum);
    c
}

impl Sampler {
    pub fn new(params: SamplingParams) -> Self {
        let rng = StdRng::seed_from_u64(params.seed);
        Self { params, rng }
    }

    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// The distribution [`Self::sample`] draws from, over the whole vocabulary: one-hot on the
    /// argmax when greedy, else softmax with temperature, cut by top-k / top-p and renormalised.
    pub fn distribution(&self, logits: &[f32]) -> Vec<f32> {
        let mut d = vec![0f32; logits.len()];
        if self.params.is_greedy() {
            d[argmax(logits)] = 1.0;
            return d;
        }
        let probs = softmax(logits, self.params.temperature);
        for (id, p) in truncated(&probs, self.params.top_k, self.params.top_p) {
            d[id as usize] = p;
        }
        d
    }

    /// Draw a token from `dist` (non-negative weights; they need not sum to one).
    pub fn draw(&mut self, dist: &[f32]) -> u32 {
        let total: f32 = dist.iter().sum();
        let r = self.uniform() * total;
        let mut acc = 0.0;
        let mut last = 0;
        for (i, &p) in dist.iter().enumerate() {
            if p > 0.0 {
                acc += p;
                last = i;
                if r < acc {
                    return i as u32;
                }
            }
        }
        last as u32
    }

    /// A uniform draw in [0, 1) from this sampler's seeded generator.
    pub fn uniform(&mut self) -> f32 {
        self.rng.random()
    }

    /// The probability `sample` would give `id` (for tokens chosen elsewhere, e.g. accepted drafts).
    pub fn prob_of(&self, logits: &[f32], id: u32) -> f32 {
        let t = if self.params.is_greedy() {
            1.0
        } else {
            self.params.temperature
        };
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = logits.iter().map(|&l| ((l - max) / t).exp()).sum();
        ((logits[id as usize] - max) / t).exp() / sum
    }

    pub fn sample(&mut self, logits: &[f32]) -> Sampled {
        if self.params.is_greedy() {
            let id = argmax(logits);
            let max = logits[id];
            let sum: f32 = logits.iter().map(|&l| (l - max).exp()).sum();
            return Sampled {
                id: id as u32,
                prob: 1.0 / sum,
            };
        }
        let probs = softmax(logits, self.params.temperature);
        let cands = truncated(&probs, self.params.top_k, self.params.top_p);
        let r: f32 = self.rng.random();
        let mut acc = 0.0;
        for &(id, p) in &cands {
            acc += p;
            if r < acc {
                return Sampled {
                    id,
                    prob: probs[id as usize],
                };
            }
        }
        let (id, _) = *cands.last().expect("at least one candidate");
        Sampled {
            id,
            prob: probs[id as usize],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(t: f32, k: Option<usize>, p: Option<f32>, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature: t,
            top_k: k,
            top_p: p,
            seed,
        }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut s = Sampler::new(SamplingParams::greedy());
        let got = s.sample(&[0.1, 3.0, 3.0, -1.0]);
        assert_eq!(got.id, 1);
        assert!(got.prob > 0.45 && got.prob < 0.5);
    }

    #[test]
    fn same_seed_same_tokens_other_seed_differs() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(params(1.0, None, None, seed));
            (0..64).map(|_| s.sample(&logits).id).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_and_top_p_restrict_the_candidates() {
        let logits = [5.0, 4.0, 3.0, -10.0, -10.0];
        let mut s = Sampler::new(params(1.0, Some(2), None, 1));
        for _ in 0..200 {
            assert!(s.sample(&logits).id < 2);
        }
        // p(0) ≈ 0.665, so top-p 0.5 keeps token 0 only.
        let mut s = Sampler::new(params(1.0, None, Some(0.5), 1));
        for _ in 0..200 {
            assert_eq!(s.sample(&logits).id, 0);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        let logits = [0.0f32, (3.0f32).ln()]; // p = 0.25, 0.75
        let mut s = Sampler::new(params(1.0, None, None, 3));
        let ones = (0..20_000).filter(|_| s.sample(&logits).id == 1).count();
        let freq = ones as f64 / 20_000.0;
        assert!((freq - 0.75).abs() < 0.02, "freq {freq}");
    }
}
