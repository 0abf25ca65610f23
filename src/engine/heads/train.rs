//! Training draft heads by self-distillation: the target's prefill over a corpus gives states and
//! labels ([`Features`]); the heads learn, with AdamW through candle's autograd, to predict the
//! target's own later choices. The target and its output head stay frozen.
//!
//! The output head is the big product (vocabulary × hidden). Its gradient with respect to the
//! head's own weights is never needed, so the cross-entropy's gradient is put in by hand (softmax
//! minus one-hot, times the head) and autograd carries it back through the small blocks alone:
//! one forward and one backward product with the head per position, not three.

use super::features::Features;
use super::file::{self, Header, Training};
use super::{HeadKind, Heads};
use crate::engine::error::{EngineError, Result};
use crate::engine::model::Model;
use crate::engine::sampling::argmax;
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How to train.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub kind: HeadKind,
    /// Medusa's heads; for EAGLE, the places its held-out acceptance is estimated at.
    pub heads: usize,
    pub seq_len: usize,
    /// Corpus tokens to take (training and held-out).
    pub max_tokens: usize,
    pub epochs: f64,
    /// Positions per optimiser step.
    pub batch: usize,
    pub lr: f64,
    /// Share of the chunks held out (the last ones).
    pub held_out: f64,
    pub seed: u64,
    /// Stop (resumably) after this long.
    pub time_limit: Option<Duration>,
    /// Save a checkpoint this often.
    pub checkpoint_every: Duration,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            kind: HeadKind::Medusa,
            heads: 4,
            seq_len: 256,
            max_tokens: 16_384,
            epochs: 2.0,
            batch: 32,
            lr: 1e-3,
            held_out: 0.1,
            seed: 0,
            time_limit: None,
            checkpoint_every: Duration::from_secs(60),
        }
    }
}

/// Where training is, for a progress bar.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// The target's prefill over the corpus: tokens done of all.
    Features {
        done: usize,
        total: usize,
    },
    /// Optimiser steps done of all, the recent training loss, and positions a second.
    Train {
        done: usize,
        total: usize,
        loss: f32,
        positions_per_s: f64,
    },
    Evaluate,
}

/// How a training run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub heads: Heads,
    pub header: Header,
    /// Stopped early (time limit or interrupt); resuming continues it.
    pub stopped_early: bool,
}

/// What training needs besides options: the target, where to save, and what it was named.
pub struct Target<'a> {
    pub model: &'a Model,
    pub name: String,
    pub hash: String,
    pub out: PathBuf,
}

/// Train heads on `features` (held-out chunks last) and save them to `target.out`, resuming
/// from `resume` (heads and their header) when given.
pub fn train(
    target: &Target,
    features: &Features,
    corpus: &str,
    opts: &TrainOptions,
    resume: Option<(Heads, Header)>,
    progress: &mut dyn FnMut(Progress),
) -> Result<Outcome> {
    let model = target.model;
    let device = model.device().clone();
    let w = model.dense_head()?;
    let n_chunks = features.chunks.len();
    let held = ((n_chunks as f64 * opts.held_out).round() as usize).min(n_chunks.saturating_sub(1));
    let split = n_chunks - held;
    let reach = match opts.kind {
        HeadKind::Medusa => opts.heads,
        HeadKind::Eagle => 1,
    };
    let train_pos = features.positions(0..split, reach);
    let held_pos = features.positions(split..n_chunks, opts.heads.max(1));
    if train_pos.is_empty() {
        return Err(EngineError::Setting(
            "the corpus is too short to train on: no chunk has room for a prediction".into(),
        ));
    }
    let batch = opts.batch.clamp(1, train_pos.len());
    let per_epoch = (train_pos.len() / batch).max(1);
    let total = ((opts.epochs * per_epoch as f64).ceil() as usize).max(1);
    let (init, mut training) = match resume {
        Some((heads, header)) => (heads, header.training),
        None => (
            Heads::init(opts.kind, opts.heads, model.cfg.hidden, &device)?,
            Training {
                corpus: corpus.to_string(),
                corpus_tokens: features.tokens.len(),
                ..Training::default()
            },
        ),
    };
    training.steps_total = total;
    let vars: Vec<(String, Var)> = init
        .tensors()
        .into_iter()
        .map(|(k, t)| Ok((k, Var::from_tensor(&t)?)))
        .collect::<Result<_>>()?;
    let heads_of = |vars: &[(String, Var)]| {
        let m = vars
            .iter()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        Heads::from_tensors(opts.kind, opts.heads, m)
    };
    let heads = heads_of(&vars)?;
    let mut opt = AdamW::new(
        vars.iter().map(|(_, v)| v.clone()).collect(),
        ParamsAdamW {
            lr: opts.lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
    let header = |training: &Training| Header {
        format: file::FORMAT,
        kind: opts.kind,
        heads: match opts.kind {
            HeadKind::Medusa => opts.heads,
            HeadKind::Eagle => 1,
        },
        hidden: model.cfg.hidden,
        vocab: model.cfg.vocab,
        target: target.name.clone(),
        target_hash: target.hash.clone(),
        training: training.clone(),
    };
    let ms = features.mean_square().max(1e-6);
    let start = Instant::now();
    let spent_before = training.seconds;
    let mut last_save = Instant::now();
    let mut order: Vec<usize> = Vec::new();
    let mut epoch_of_order = usize::MAX;
    let mut recent = Vec::new();
    let mut stopped_early = false;
    while training.steps_done < total {
        let step = training.steps_done;
        let epoch = step / per_epoch;
        if epoch != epoch_of_order {
            order = train_pos.clone();
            let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed ^ (epoch as u64 + 1));
            order.shuffle(&mut rng);
            epoch_of_order = epoch;
        }
        let i = (step % per_epoch) * batch;
        let at = &order[i..i + batch];
        let t = Instant::now();
        let loss = match opts.kind {
            HeadKind::Medusa => medusa_step(&heads, features, at, &w, &mut opt, opts.heads)?,
            HeadKind::Eagle => eagle_step(&heads, model, features, at, &w, &mut opt, ms)?,
        };
        recent.push((loss, at.len(), t.elapsed().as_secs_f64()));
        if recent.len() > 20 {
            recent.remove(0);
        }
        training.steps_done += 1;
        training.positions_seen += at.len() as u64;
        training.train_loss = loss;
        training.seconds = spent_before + start.elapsed().as_secs_f64();
        let (n, s): (usize, f64) = recent.iter().fold((0, 0.0), |a, r| (a.0 + r.1, a.1 + r.2));
        let mean = recent.iter().map(|r| r.0).sum::<f32>() / recent.len() as f32;
        progress(Progress::Train {
            done: training.steps_done,
            total,
            loss: mean,
            positions_per_s: n as f64 / s.max(1e-9),
        });
        let out_of_time = opts.time_limit.is_some_and(|l| start.elapsed() >= l);
        if out_of_time || crate::engine::interrupt::requested() {
            stopped_early = true;
            break;
        }
        if last_save.elapsed() >= opts.checkpoint_every {
            file::save(&target.out, &heads_of(&vars)?, &header(&training))?;
            last_save = Instant::now();
        }
    }
    progress(Progress::Evaluate);
    let heads = heads_of(&vars)?;
    let eval = evaluate(&heads, model, features, &held_pos, &w, opts.heads.max(1))?;
    training.held_out_loss = eval.loss;
    training.held_out_acceptance = eval.acceptance;
    training.held_out_accepted_len = eval.accepted_len;
    training.held_out_top1 = eval.top1;
    training.seconds = spent_before + start.elapsed().as_secs_f64();
    let header = header(&training);
    file::save(&target.out, &heads, &header)?;
    Ok(Outcome {
        heads,
        header,
        stopped_early,
    })
}

/// The cross-entropy of `z`'s logits (`z` times the frozen head `w`ᵀ) against `labels`, and a
/// surrogate scalar whose gradient in `z` is that cross-entropy's: `Σ z · ∂CE/∂z`.
pub fn ce_surrogate(z: &Tensor, w: &Tensor, labels: &[u32]) -> Result<(Tensor, f32)> {
    let logits = z.detach().matmul(&w.t()?)?;
    let p = candle_nn::ops::softmax_last_dim(&logits)?;
    let (n, v) = p.dims2()?;
    let mut g: Vec<f32> = p.flatten_all()?.to_vec1()?;
    let mut loss = 0.0f64;
    let scale = 1.0 / n as f32;
    for (i, &y) in labels.iter().enumerate() {
        let j = i * v + y as usize;
        loss -= (g[j].max(1e-30) as f64).ln();
        g[j] -= 1.0;
    }
    g.iter_mut().for_each(|x| *x *= scale);
    let gz = Tensor::from_vec(g, (n, v), z.device())?.matmul(w)?;
    Ok(((z * gz)?.sum_all()?, (loss / n as f64) as f32))
}

fn medusa_step(
    heads: &Heads,
    f: &Features,
    at: &[usize],
    w: &Tensor,
    opt: &mut AdamW,
    n: usize,
) -> Result<f32> {
    let x = f.rows(at, w.device())?;
    let zs = heads.medusa_states(&x)?;
    let labels: Vec<u32> = (0..n)
        .flat_map(|k| at.iter().map(move |&g| f.labels[g + 1 + k]))
        .collect();
    let (sur, loss) = ce_surrogate(&zs, w, &labels)?;
    opt.backward_step(&sur)?;
    Ok(loss)
}

fn eagle_step(
    heads: &Heads,
    model: &Model,
    f: &Features,
    at: &[usize],
    w: &Tensor,
    opt: &mut AdamW,
    ms: f32,
) -> Result<f32> {
    let device = w.device();
    let h = f.rows(at, device)?;
    let next: Vec<usize> = at.iter().map(|&g| g + 1).collect();
    let e = model.embed_tokens(&next.iter().map(|&g| f.tokens[g]).collect::<Vec<_>>())?;
    let want = f.rows(&next, device)?;
    let pred = heads.eagle_state(&h, &e)?;
    let labels: Vec<u32> = next.iter().map(|&g| f.labels[g]).collect();
    let (sur, loss) = ce_surrogate(&pred, w, &labels)?;
    let mse = ((&pred - &want)?.sqr()?.mean_all()? / ms as f64)?;
    opt.backward_step(&(sur + mse)?)?;
    Ok(loss)
}

/// Held-out results.
#[derive(Debug, Clone, Default)]
pub struct Eval {
    pub loss: f32,
    pub acceptance: Vec<f32>,
    pub accepted_len: f32,
    /// Per place, the share of all held-out positions where the draft equals the target's own
    /// choice there (given the corpus before it): each head's accuracy, unconditioned.
    pub top1: Vec<f32>,
}

/// Estimate what verification would keep on held-out positions. A place counts only where the
/// corpus follows the target's own choices that far (so the target's label there is what it
/// would say after the drafts): the share kept at each place given the ones before were kept,
/// and the tokens kept per step with `places` drafted.
pub fn evaluate(
    heads: &Heads,
    model: &Model,
    f: &Features,
    held: &[usize],
    w: &Tensor,
    places: usize,
) -> Result<Eval> {
    let places = heads.reach().map_or(places, |r| r.min(places));
    let mut tried = vec![0usize; places];
    let mut kept = vec![0usize; places];
    let mut right = vec![0usize; places];
    let (mut loss, mut loss_n) = (0.0f64, 0usize);
    let device = w.device();
    let sample: Vec<usize> = held
        .iter()
        .copied()
        .step_by((held.len() / 1024).max(1))
        .collect();
    for at in sample.chunks(64) {
        let preds = draft_rows(heads, model, f, at, places, device)?;
        for (i, &g) in at.iter().enumerate() {
            // Cross-entropy of the first place.
            let row = &preds.logits[i];
            let y = f.labels[g + 1] as usize;
            let m = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let lse = m + row.iter().map(|&x| (x - m).exp()).sum::<f32>().ln();
            loss += (lse - row[y]) as f64;
            loss_n += 1;
            for (k, r) in right.iter_mut().enumerate() {
                *r += (preds.tokens[i][k] == f.labels[g + 1 + k]) as usize;
            }
            for k in 0..places {
                // The target's own continuation through place k matches the corpus.
                if f.tokens[g + 1 + k] != f.labels[g + k] {
                    break;
                }
                tried[k] += 1;
                if preds.tokens[i][k] != f.labels[g + 1 + k] {
                    break;
                }
                kept[k] += 1;
            }
        }
    }
    let acceptance: Vec<f32> = tried
        .iter()
        .zip(&kept)
        .map(|(&t, &k)| if t == 0 { 0.0 } else { k as f32 / t as f32 })
        .collect();
    let mut run = 1.0;
    let accepted_len = acceptance
        .iter()
        .map(|a| {
            run *= a;
            run
        })
        .sum();
    let top1 = right
        .iter()
        .map(|&r| r as f32 / loss_n.max(1) as f32)
        .collect();
    Ok(Eval {
        loss: (loss / loss_n.max(1) as f64) as f32,
        acceptance,
        accepted_len,
        top1,
    })
}

/// Each position's drafted tokens at `places` places, and the first place's logits.
struct Drafted {
    tokens: Vec<Vec<u32>>,
    logits: Vec<Vec<f32>>,
}

fn draft_rows(
    heads: &Heads,
    model: &Model,
    f: &Features,
    at: &[usize],
    places: usize,
    device: &Device,
) -> Result<Drafted> {
    let n = at.len();
    let mut tokens = vec![Vec::with_capacity(places); n];
    let mut first = Vec::new();
    let w_logits = |z: &Tensor| -> Result<Vec<Vec<f32>>> { Ok(model.head_logits(z)?.to_vec2()?) };
    match heads {
        Heads::Medusa(_) => {
            let rows = w_logits(&heads.medusa_states(&f.rows(at, device)?)?)?;
            for (r, row) in rows.into_iter().enumerate() {
                let (k, i) = (r / n, r % n);
                if k < places {
                    tokens[i].push(argmax(&row) as u32);
                }
                if k == 0 {
                    first.push(row);
                }
            }
        }
        Heads::Eagle { .. } => {
            let mut h = f.rows(at, device)?;
            let mut next: Vec<u32> = at.iter().map(|&g| f.tokens[g + 1]).collect();
            for k in 0..places {
                h = heads.eagle_state(&h, &model.embed_tokens(&next)?)?;
                let rows = w_logits(&h)?;
                for (i, row) in rows.into_iter().enumerate() {
                    next[i] = argmax(&row) as u32;
                    tokens[i].push(next[i]);
                    if k == 0 {
                        first.push(row);
                    }
                }
            }
        }
    }
    Ok(Drafted {
        tokens,
        logits: first,
    })
}
