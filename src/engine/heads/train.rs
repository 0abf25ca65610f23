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
use super::{vocab, Drafting, HeadKind, Heads};
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
    /// Tokens in the draft vocabulary (the ones the target says most in the corpus); 0 scores
    /// drafts over the whole vocabulary.
    pub draft_vocab: usize,
    /// EAGLE: places each step trains, each later one from the head's own predicted state.
    pub unroll: usize,
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
            lr: 3e-4,
            held_out: 0.1,
            seed: 0,
            time_limit: None,
            checkpoint_every: Duration::from_secs(60),
            draft_vocab: 16_384,
            unroll: 1,
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
    let mut t = Trainer::new(target, features, corpus, opts, resume)?;
    let stopped_early = t.run(progress)?;
    progress(Progress::Evaluate);
    t.finish(stopped_early)
}

/// Training positions and held-out ones: the last `held_out` share of the chunks is held out.
fn split(features: &Features, opts: &TrainOptions) -> Result<(Vec<usize>, Vec<usize>)> {
    let n = features.chunks.len();
    let held = ((n as f64 * opts.held_out).round() as usize).min(n.saturating_sub(1));
    let reach = match opts.kind {
        HeadKind::Medusa => opts.heads,
        HeadKind::Eagle => opts.unroll.max(1),
    };
    let train = features.positions(0..n - held, reach);
    if train.is_empty() {
        return Err(EngineError::Setting(
            "the corpus is too short to train on: no chunk has room for a prediction".into(),
        ));
    }
    Ok((train, features.positions(n - held..n, opts.heads.max(1))))
}

/// A training run in progress: the heads as variables, their optimiser, and the bookkeeping.
struct Trainer<'a> {
    target: &'a Target<'a>,
    features: &'a Features,
    opts: &'a TrainOptions,
    train_pos: Vec<usize>,
    held_pos: Vec<usize>,
    /// The output head, dense: what the cross-entropy's gradient is multiplied through.
    w: Tensor,
    vars: Vec<(String, Var)>,
    heads: Heads,
    opt: AdamW,
    training: Training,
    vocab_ids: Option<Vec<u32>>,
    batch: usize,
    per_epoch: usize,
    started: Instant,
    spent_before: f64,
    /// The states' mean square (EAGLE's state error is relative to it).
    ms: f32,
}

impl<'a> Trainer<'a> {
    fn new(
        target: &'a Target<'a>,
        features: &'a Features,
        corpus: &str,
        opts: &'a TrainOptions,
        resume: Option<(Heads, Header)>,
    ) -> Result<Self> {
        let model = target.model;
        let (train_pos, held_pos) = split(features, opts)?;
        let batch = opts.batch.clamp(1, train_pos.len());
        let per_epoch = (train_pos.len() / batch).max(1);
        let (init, mut training) = match resume {
            Some((heads, header)) => (heads, header.training),
            None => (
                Heads::init(opts.kind, opts.heads, model.cfg.hidden, model.device())?,
                Training {
                    corpus: corpus.to_string(),
                    corpus_tokens: features.tokens.len(),
                    ..Training::default()
                },
            ),
        };
        training.steps_total = ((opts.epochs * per_epoch as f64).ceil() as usize).max(1);
        let vars: Vec<(String, Var)> = init
            .tensors()
            .into_iter()
            .map(|(k, t)| Ok((k, Var::from_tensor(&t)?)))
            .collect::<Result<_>>()?;
        let params = ParamsAdamW {
            lr: opts.lr,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        };
        let opt = AdamW::new(vars.iter().map(|(_, v)| v.clone()).collect(), params)?;
        let vocab_ids = (opts.draft_vocab > 0 && opts.draft_vocab < model.cfg.vocab)
            .then(|| vocab::most_said(&features.labels, model.cfg.vocab, opts.draft_vocab));
        let spent_before = training.seconds;
        Ok(Self {
            heads: heads_of(&vars, opts)?,
            w: model.dense_head()?,
            target,
            features,
            opts,
            train_pos,
            held_pos,
            vars,
            opt,
            training,
            vocab_ids,
            batch,
            per_epoch,
            started: Instant::now(),
            spent_before,
            ms: features.mean_square().max(1e-6),
        })
    }

    /// Optimiser steps until done, out of time or interrupted (then `true`), checkpointing.
    fn run(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<bool> {
        let mut last_save = Instant::now();
        let mut order: Vec<usize> = Vec::new();
        let mut epoch_of_order = usize::MAX;
        let mut recent: Vec<(f32, usize, f64)> = Vec::new();
        while self.training.steps_done < self.training.steps_total {
            let step = self.training.steps_done;
            let epoch = step / self.per_epoch;
            if epoch != epoch_of_order {
                order = self.train_pos.clone();
                let seed = self.opts.seed ^ (epoch as u64 + 1);
                order.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
                epoch_of_order = epoch;
            }
            let i = (step % self.per_epoch) * self.batch;
            let t = Instant::now();
            let loss = self.step(&order[i..i + self.batch])?;
            recent.push((loss, self.batch, t.elapsed().as_secs_f64()));
            if recent.len() > 20 {
                recent.remove(0);
            }
            self.training.steps_done += 1;
            self.training.positions_seen += self.batch as u64;
            self.training.train_loss = loss;
            self.training.seconds = self.spent_before + self.started.elapsed().as_secs_f64();
            let (n, s) = recent.iter().fold((0, 0.0), |a, r| (a.0 + r.1, a.1 + r.2));
            progress(Progress::Train {
                done: self.training.steps_done,
                total: self.training.steps_total,
                loss: recent.iter().map(|r| r.0).sum::<f32>() / recent.len() as f32,
                positions_per_s: n as f64 / s.max(1e-9),
            });
            let out_of_time = self
                .opts
                .time_limit
                .is_some_and(|l| self.started.elapsed() >= l);
            if out_of_time || crate::engine::interrupt::requested() {
                return Ok(true);
            }
            if last_save.elapsed() >= self.opts.checkpoint_every {
                self.save()?;
                last_save = Instant::now();
            }
        }
        Ok(false)
    }

    /// One optimiser step on the positions `at`; the cross-entropy.
    fn step(&mut self, at: &[usize]) -> Result<f32> {
        let (f, w) = (self.features, &self.w);
        match self.opts.kind {
            HeadKind::Medusa => medusa_step(&self.heads, f, at, w, &mut self.opt, self.opts.heads),
            HeadKind::Eagle => {
                let model = self.target.model;
                let unroll = self.opts.unroll;
                eagle_step(&self.heads, model, f, at, w, &mut self.opt, self.ms, unroll)
            }
        }
    }

    fn header(&self) -> Header {
        Header {
            format: file::FORMAT,
            kind: self.opts.kind,
            heads: match self.opts.kind {
                HeadKind::Medusa => self.opts.heads,
                HeadKind::Eagle => 1,
            },
            hidden: self.target.model.cfg.hidden,
            vocab: self.target.model.cfg.vocab,
            target: self.target.name.clone(),
            target_hash: self.target.hash.clone(),
            training: self.training.clone(),
        }
    }

    fn save(&self) -> Result<()> {
        let heads = heads_of(&self.vars, self.opts)?;
        file::save(
            &self.target.out,
            &heads,
            self.vocab_ids.as_deref(),
            &self.header(),
        )
    }

    /// The held-out estimate, the last save, and what was trained.
    fn finish(mut self, stopped_early: bool) -> Result<Outcome> {
        let model = self.target.model;
        let heads = heads_of(&self.vars, self.opts)?;
        let vocab = match &self.vocab_ids {
            Some(ids) => Some(vocab::DraftVocab::new(model, ids.clone())?),
            None => None,
        };
        let drafting = Drafting {
            heads: heads.clone(),
            vocab,
        };
        let places = self.opts.heads.max(1);
        let eval = evaluate(&drafting, model, self.features, &self.held_pos, places)?;
        let t = &mut self.training;
        t.held_out_loss = eval.loss;
        t.held_out_acceptance = eval.acceptance;
        t.held_out_accepted_len = eval.accepted_len;
        t.held_out_top1 = eval.top1;
        t.seconds = self.spent_before + self.started.elapsed().as_secs_f64();
        self.save()?;
        Ok(Outcome {
            heads,
            header: self.header(),
            stopped_early,
        })
    }
}

/// The heads whose weights are `vars`.
fn heads_of(vars: &[(String, Var)], opts: &TrainOptions) -> Result<Heads> {
    let m = vars
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    Ok(Heads::from_tensors(opts.kind, opts.heads, m)?)
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

/// One EAGLE step, unrolled `unroll` places: each place after the first starts from the state
/// the head predicted at the place before (as drafting does), with the corpus's next token; later
/// places weigh half as much as the one before.
#[allow(clippy::too_many_arguments)]
fn eagle_step(
    heads: &Heads,
    model: &Model,
    f: &Features,
    at: &[usize],
    w: &Tensor,
    opt: &mut AdamW,
    ms: f32,
    unroll: usize,
) -> Result<f32> {
    let device = w.device();
    let mut state = f.rows(at, device)?;
    let mut total: Option<Tensor> = None;
    let mut first_loss = 0.0;
    for place in 1..=unroll.max(1) {
        let next: Vec<usize> = at.iter().map(|&g| g + place).collect();
        let e = model.embed_tokens(&next.iter().map(|&g| f.tokens[g]).collect::<Vec<_>>())?;
        let pred = heads.eagle_state(&state, &e)?;
        let labels: Vec<u32> = next.iter().map(|&g| f.labels[g]).collect();
        let (sur, loss) = ce_surrogate(&pred, w, &labels)?;
        let mse = ((&pred - &f.rows(&next, device)?)?.sqr()?.mean_all()? / ms as f64)?;
        let term = ((sur + mse)? * 0.5f64.powi(place as i32 - 1))?;
        total = Some(match total {
            Some(t) => (t + term)?,
            None => term,
        });
        if place == 1 {
            first_loss = loss;
        }
        state = pred;
    }
    opt.backward_step(&total.expect("at least one place"))?;
    Ok(first_loss)
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
    drafting: &Drafting,
    model: &Model,
    f: &Features,
    held: &[usize],
    places: usize,
) -> Result<Eval> {
    let heads = &drafting.heads;
    let places = heads.reach().map_or(places, |r| r.min(places));
    let mut tried = vec![0usize; places];
    let mut kept = vec![0usize; places];
    let mut right = vec![0usize; places];
    let (mut loss, mut loss_n) = (0.0f64, 0usize);
    let device = model.device();
    let sample: Vec<usize> = held
        .iter()
        .copied()
        .step_by((held.len() / 1024).max(1))
        .collect();
    for at in sample.chunks(64) {
        let preds = draft_rows(drafting, model, f, at, places, device)?;
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
    drafting: &Drafting,
    model: &Model,
    f: &Features,
    at: &[usize],
    places: usize,
    device: &Device,
) -> Result<Drafted> {
    let n = at.len();
    let mut tokens = vec![Vec::with_capacity(places); n];
    let mut first = Vec::new();
    let heads = &drafting.heads;
    let w_logits = |z: &Tensor| -> Result<Vec<Vec<f32>>> { Ok(drafting.score(model, z)?) };
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
