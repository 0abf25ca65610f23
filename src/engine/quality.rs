//! What a weight variant costs in quality, measured as llama.cpp's perplexity tool does: the text
//! is cut into chunks of `ctx` tokens, each chunk runs in one pass from an empty cache, and the
//! second half of each chunk's positions are scored (each has at least `ctx / 2` tokens of
//! context). Against the loaded weights' distributions at the same positions: the mean KL
//! divergence and how often the most likely token agrees.

use super::model::{Forward, Model};
use super::sampling::argmax;
use candle_core::{DType, Result};

/// The reference text: a fixed snapshot of labtui's own Rust sources (a natural corpus for a code
/// model, and one that does not change when the code does).
pub const CORPUS: &str = include_str!("../../assets/quality/corpus.rs.txt");

/// Tokens of the reference text a quality measurement runs when nobody says otherwise.
pub const DEFAULT_TOKENS: usize = 512;
/// Tokens per chunk of a quality measurement (each chunk's second half is scored).
pub const CHUNK: usize = 256;

/// Natural-log probabilities of a logits row, computed in f64.
pub fn log_softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let lse = max
        + row
            .iter()
            .map(|&x| (x as f64 - max).exp())
            .sum::<f64>()
            .ln();
    row.iter().map(|&x| (x as f64 - lse) as f32).collect()
}

/// KL(P ‖ Q) in nats from log-probabilities: Σ p (log p − log q).
pub fn kl_divergence(log_p: &[f32], log_q: &[f32]) -> f64 {
    log_p
        .iter()
        .zip(log_q)
        .map(|(&lp, &lq)| {
            let p = (lp as f64).exp();
            if p > 0.0 {
                p * (lp as f64 - lq as f64)
            } else {
                0.0
            }
        })
        .sum::<f64>()
        .max(0.0)
}

/// The loaded weights' log-probabilities at every scored position, to compare variants against.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    rows: Vec<Vec<f32>>,
}

impl Baseline {
    pub fn positions(&self) -> usize {
        self.rows.len()
    }
}

/// The sums a scoring pass gathers; [`Totals::perplexity`] and friends turn them into numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub scored: usize,
    pub nll: f64,
    pub kl: f64,
    pub top1_agree: usize,
}

impl Totals {
    /// exp(mean negative log-likelihood of the next token).
    pub fn perplexity(&self) -> f64 {
        (self.nll / self.scored.max(1) as f64).exp()
    }

    pub fn mean_kl(&self) -> f64 {
        self.kl / self.scored.max(1) as f64
    }

    pub fn top1(&self) -> f64 {
        self.top1_agree as f64 / self.scored.max(1) as f64
    }
}

/// The chunks of `tokens` a measurement of at most `max_tokens` tokens scores: whole chunks of
/// `ctx` tokens only.
pub fn chunks(tokens: &[u32], ctx: usize, max_tokens: usize) -> Vec<&[u32]> {
    let ctx = ctx.max(2);
    tokens
        .chunks_exact(ctx)
        .take((max_tokens / ctx).max(1))
        .collect()
}

/// Score `model` on `chunks`, with a cache of `kv_dtype`. With `baseline`, also compare its
/// distributions to the baseline's; with `keep`, return this model's own as a new baseline.
/// `progress` hears (chunks done, chunks).
pub fn score(
    model: &Model,
    kv_dtype: DType,
    chunks: &[&[u32]],
    baseline: Option<&Baseline>,
    keep: bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Totals, Option<Baseline>)> {
    let mut totals = Totals::default();
    let mut kept = keep.then(Baseline::default);
    let mut position = 0;
    for (c, chunk) in chunks.iter().enumerate() {
        let mut cache = model.new_cache(kv_dtype);
        let rows: Vec<Vec<f32>> = model.forward(chunk, &mut cache, Forward::ALL)?.to_vec2()?;
        let first = chunk.len() / 2;
        for i in first..chunk.len() - 1 {
            let lp = log_softmax(&rows[i]);
            totals.nll -= lp[chunk[i + 1] as usize] as f64;
            if let Some(b) = baseline {
                let base = b.rows.get(position).ok_or_else(|| {
                    candle_core::Error::Msg("the baseline covers fewer positions".into())
                })?;
                totals.kl += kl_divergence(base, &lp);
                totals.top1_agree += usize::from(argmax(base) == argmax(&lp));
            }
            totals.scored += 1;
            position += 1;
            if let Some(k) = kept.as_mut() {
                k.rows.push(lp);
            }
        }
        progress(c + 1, chunks.len());
    }
    Ok((totals, kept))
}

/// A quality measurement that remembers the loaded weights' distributions, so each variant
/// costs one pass over the text.
pub struct Probe {
    chunks: Vec<Vec<u32>>,
    baseline: Option<(Baseline, Totals)>,
}

impl Probe {
    /// Up to `max_tokens` tokens of [`CORPUS`] in chunks of `ctx`, for `engine`'s tokenizer.
    pub fn new(engine: &super::Engine, max_tokens: usize, ctx: usize) -> super::Result<Self> {
        let tokens = engine.tokenizer.encode(CORPUS)?;
        let ctx = ctx.min(engine.model.cfg.context_length).min(tokens.len());
        Ok(Self {
            chunks: chunks(&tokens, ctx, max_tokens)
                .into_iter()
                .map(<[u32]>::to_vec)
                .collect(),
            baseline: None,
        })
    }

    /// Tokens the probe runs each time.
    pub fn tokens(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// The loaded weights' own totals on the text (KL 0, top-1 agreement 1), computing their
    /// distributions the first time. `progress` hears (chunks done, chunks).
    pub fn baseline(
        &mut self,
        loaded: &Model,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Totals> {
        if self.baseline.is_none() {
            let chunks: Vec<&[u32]> = self.chunks.iter().map(Vec::as_slice).collect();
            let (mut t, b) = score(loaded, DType::F32, &chunks, None, true, progress)?;
            (t.kl, t.top1_agree) = (0.0, t.scored);
            self.baseline = Some((b.expect("kept"), t));
        }
        Ok(self.baseline.as_ref().expect("computed above").1)
    }

    /// `model` (with a cache of `kv`) against the baseline, which [`Self::baseline`] must have
    /// computed. `progress` hears (chunks done, chunks).
    pub fn compare(
        &self,
        model: &Model,
        kv: DType,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Totals> {
        let (base, _) = self.baseline.as_ref().ok_or_else(|| {
            candle_core::Error::Msg("the baseline is measured before a comparison".into())
        })?;
        let chunks: Vec<&[u32]> = self.chunks.iter().map(Vec::as_slice).collect();
        Ok(score(model, kv, &chunks, Some(base), false, progress)?.0)
    }

    /// Measure what `engine` runs now against its loaded weights (with an f32 cache), computing
    /// those once. `progress` hears (passes done, passes).
    pub fn measure(
        &mut self,
        engine: &super::Engine,
        progress: &mut dyn FnMut(usize, usize),
    ) -> super::Result<crate::protocol::Quality> {
        let start = std::time::Instant::now();
        let n = self.chunks.len();
        let first = self.baseline.is_none();
        let passes = n * (1 + usize::from(first));
        let base_totals = self.baseline(engine.loaded_model(), &mut |d, _| progress(d, passes))?;
        let kv = engine.cache.dtype();
        let totals = if engine.original.is_none() && kv == DType::F32 {
            base_totals // the loaded weights are their own baseline
        } else {
            let done = passes - n;
            self.compare(&engine.model, kv, &mut |d, _| progress(done + d, passes))?
        };
        Ok(crate::protocol::Quality {
            quant: engine.quant,
            kv_dtype: super::quant::kv_dtype_of(kv),
            scored: totals.scored,
            perplexity: totals.perplexity(),
            mean_kl: totals.mean_kl(),
            top1: totals.top1(),
            took: start.elapsed(),
            mix: engine.mix.as_ref().map(|m| m.label.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_softmax_normalises_and_keeps_order() {
        let lp = log_softmax(&[1.0, 2.0, 3.0, 1000.0]);
        let total: f64 = lp.iter().map(|&x| (x as f64).exp()).sum();
        assert!((total - 1.0).abs() < 1e-6);
        assert!(lp[3] > lp[2] && lp[2] > lp[1]);
        assert!(lp[3].abs() < 1e-6);
    }

    #[test]
    fn kl_is_zero_for_equal_and_positive_for_different_distributions() {
        let p = log_softmax(&[0.5, 1.5, -1.0]);
        assert!(kl_divergence(&p, &p).abs() < 1e-9);
        // Two-outcome case by hand: p = (0.5, 0.5), q = (0.9, 0.1).
        let lp = [0.5f32.ln(), 0.5f32.ln()];
        let lq = [0.9f32.ln(), 0.1f32.ln()];
        let expected = 0.5 * (0.5f64 / 0.9).ln() + 0.5 * (0.5f64 / 0.1).ln();
        assert!((kl_divergence(&lp, &lq) - expected).abs() < 1e-6);
    }

    #[test]
    fn perplexity_of_a_uniform_guess_is_the_vocabulary_size() {
        let t = Totals {
            scored: 4,
            nll: 4.0 * (50f64).ln(),
            kl: 0.2,
            top1_agree: 3,
        };
        assert!((t.perplexity() - 50.0).abs() < 1e-9);
        assert!((t.mean_kl() - 0.05).abs() < 1e-12);
        assert_eq!(t.top1(), 0.75);
    }

    #[test]
    fn chunks_are_whole_and_bounded() {
        let toks: Vec<u32> = (0..1000).collect();
        let c = chunks(&toks, 256, 600);
        assert_eq!(c.len(), 2);
        assert!(c.iter().all(|c| c.len() == 256));
        assert_eq!(c[1][0], 256);
        assert_eq!(chunks(&toks, 256, 10).len(), 1);
    }
}
