//! `labtui train-draft`: train Medusa-lite or EAGLE-lite heads on a model, with a progress bar,
//! a held-out estimate of acceptance, checkpoints, and resuming.

use crate::engine::heads::corpus::{self, Doc};
use crate::engine::heads::features::Features;
use crate::engine::heads::file;
use crate::engine::heads::train::{self, Progress, Target, TrainOptions};
use crate::engine::heads::HeadKind;
use crate::engine::{default_device, Engine};
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What `train-draft` was asked.
#[derive(Debug, Clone, clap::Args)]
pub struct TrainDraftArgs {
    /// medusa (N heads on the last hidden state) or eagle (a one-layer draft of the next hidden
    /// state, drafting autoregressively).
    #[arg(long, value_parser = kind)]
    pub kind: HeadKind,
    /// A file or folder of text to train on (default: labtui's engine source, built in).
    #[arg(long, value_name = "DIR|FILE")]
    pub corpus: Option<PathBuf>,
    /// Where to save (default: MODEL.KIND.safetensors beside the model, with its .ron header).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Continue the heads saved at --out from where they stopped.
    #[arg(long, conflicts_with = "force")]
    pub resume: bool,
    /// Start over though heads are saved at --out.
    #[arg(long)]
    pub force: bool,
    /// Medusa heads (tokens drafted from one state); for eagle, the places its held-out
    /// acceptance is estimated at.
    #[arg(long, default_value_t = 4, value_parser = super::args::count(1, 8))]
    pub heads: usize,
    /// Corpus tokens to take (a tenth held out).
    #[arg(long, default_value_t = 16_384, value_parser = super::args::count(64, 10_000_000))]
    pub tokens: usize,
    /// Tokens per chunk the target reads at once.
    #[arg(long, default_value_t = 256, value_parser = super::args::count(16, 8192))]
    pub seq_len: usize,
    /// Passes over the training positions.
    #[arg(long, default_value_t = 2.0)]
    pub epochs: f64,
    /// Positions per optimiser step.
    #[arg(long, default_value_t = 32, value_parser = super::args::count(1, 4096))]
    pub batch: usize,
    /// AdamW's learning rate.
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    /// Stop after this many minutes (resumable with --resume).
    #[arg(long)]
    pub minutes: Option<f64>,
    /// Tokens in the draft vocabulary: drafts are scored over the ones the target says most in
    /// the corpus (0: the whole vocabulary, which costs the head's full product per draft).
    #[arg(long, default_value_t = 16_384)]
    pub draft_vocab: usize,
    /// EAGLE: places each step trains; after the first, the head starts from its own predicted
    /// state, as when it drafts (each place costs another product with the output head).
    #[arg(long, default_value_t = 1, value_parser = super::args::count(1, 4))]
    pub unroll: usize,
    /// Seed of the order positions are visited in.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl TrainDraftArgs {
    pub fn options(&self) -> TrainOptions {
        TrainOptions {
            kind: self.kind,
            heads: self.heads,
            seq_len: self.seq_len,
            max_tokens: self.tokens,
            epochs: self.epochs,
            batch: self.batch,
            lr: self.lr,
            seed: self.seed,
            time_limit: self.minutes.map(|m| Duration::from_secs_f64(m * 60.0)),
            draft_vocab: self.draft_vocab,
            unroll: self.unroll,
            ..TrainOptions::default()
        }
    }
}

pub fn run(model: &str, a: &TrainDraftArgs) -> anyhow::Result<()> {
    super::bench::print_stamp(None, false);
    let device = default_device();
    let engine = Engine::open(model, &device, |_, _| {})?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| file::default_path(&engine.info.source, a.kind));
    let resume = if out.exists() && a.resume {
        let (heads, header, _) = file::load(&out, &engine, &device)?;
        if header.kind != a.kind {
            bail!(
                "{} holds {} heads, not {}",
                out.display(),
                header.kind.name(),
                a.kind.name()
            );
        }
        Some((heads, header))
    } else if out.exists() && !a.force {
        bail!(
            "{} already holds trained heads: --resume continues them, --force starts over",
            out.display()
        );
    } else {
        None
    };
    let (docs, corpus_name) = match &a.corpus {
        Some(p) => (corpus::read(p)?, p.display().to_string()),
        None => (corpus::default_docs(), corpus::DEFAULT_NAME.to_string()),
    };
    let docs = corpus::shuffled(docs, a.seed);
    let flag = Arc::new(AtomicBool::new(false));
    crate::engine::interrupt::install(flag.clone());
    stop_on_ctrl_c(flag.clone());
    let outcome = train_with_bar(&engine, &docs, &corpus_name, &out, a, resume)?;
    let t = &outcome.header.training;
    let acc: Vec<String> = t
        .held_out_acceptance
        .iter()
        .map(|a| format!("{:.0}%", a * 100.0))
        .collect();
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    let top1: Vec<String> = t
        .held_out_top1
        .iter()
        .map(|a| format!("{:.0}%", a * 100.0))
        .collect();
    println!(
        "{} heads for {}: {} of {} steps in {:.0} s, {} positions; train loss {:.3}, held-out loss {:.3}  ",
        a.kind.name(),
        engine.info.name,
        t.steps_done,
        t.steps_total,
        t.seconds,
        t.positions_seen,
        t.train_loss,
        t.held_out_loss,
    );
    println!(
        "held-out acceptance by place {} → {:.2} tokens kept per step (estimate); top-1 agreement by place {}  ",
        acc.join(" "),
        t.held_out_accepted_len,
        top1.join(" "),
    );
    println!(
        "corpus: {} ({} tokens); saved {} ({:.1} MiB)",
        t.corpus,
        t.corpus_tokens,
        out.display(),
        size as f64 / (1 << 20) as f64
    );
    if outcome.stopped_early {
        println!(
            "stopped early: `--resume` continues from step {}",
            t.steps_done
        );
    }
    Ok(())
}

fn train_with_bar(
    engine: &Engine,
    docs: &[Doc],
    corpus_name: &str,
    out: &Path,
    a: &TrainDraftArgs,
    resume: Option<(crate::engine::heads::Heads, file::Header)>,
) -> anyhow::Result<train::Outcome> {
    let bar = Bar::new();
    let features = Features::extract(
        &engine.model,
        &engine.tokenizer,
        docs,
        a.seq_len,
        a.tokens,
        &mut |done, total| bar.show("target prefill", done, total, String::new()),
    )
    .context("running the target over the corpus")?;
    let target = Target {
        model: &engine.model,
        name: engine.info.name.clone(),
        hash: file::fingerprint(engine)?,
        out: out.to_path_buf(),
    };
    let outcome = train::train(
        &target,
        &features,
        corpus_name,
        &a.options(),
        resume,
        &mut |p| match p {
            Progress::Features { done, total } => {
                bar.show("target prefill", done, total, String::new())
            }
            Progress::Train {
                done,
                total,
                loss,
                positions_per_s,
            } => bar.show(
                "training",
                done,
                total,
                format!("loss {loss:.3} · {positions_per_s:.0} tok/s"),
            ),
            Progress::Evaluate => bar.message("held-out estimate"),
        },
    )?;
    bar.finish();
    Ok(outcome)
}

/// A progress bar on a terminal; elsewhere (logs, CI) a line every few seconds.
struct Bar {
    bar: Option<ProgressBar>,
    phase: std::cell::RefCell<(String, Instant)>,
}

impl Bar {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(1);
            b.set_style(
                ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({eta})")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            b
        });
        Self {
            bar,
            phase: std::cell::RefCell::new((
                String::new(),
                Instant::now() - Duration::from_secs(60),
            )),
        }
    }

    fn show(&self, phase: &str, done: usize, total: usize, msg: String) {
        let mut last = self.phase.borrow_mut();
        match &self.bar {
            Some(b) => {
                if last.0 != phase {
                    b.set_prefix(phase.to_string());
                    b.set_length(total as u64);
                    b.reset_eta();
                    last.0 = phase.to_string();
                }
                b.set_position(done as u64);
                b.set_message(msg);
            }
            None => {
                if last.0 != phase || last.1.elapsed() >= Duration::from_secs(5) || done == total {
                    eprintln!("{phase}: {done}/{total} {msg}");
                    *last = (phase.to_string(), Instant::now());
                }
            }
        }
    }

    fn message(&self, m: &str) {
        match &self.bar {
            Some(b) => b.set_message(m.to_string()),
            None => eprintln!("{m}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Ctrl-C stops training at the next step; the heads are saved and `--resume` continues.
pub(crate) fn stop_on_ctrl_c(flag: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                flag.store(true, Ordering::Relaxed);
            }
        });
    });
}

/// The kind named on the command line.
pub fn kind(s: &str) -> Result<HeadKind, String> {
    match s {
        "medusa" => Ok(HeadKind::Medusa),
        "eagle" => Ok(HeadKind::Eagle),
        _ => Err(format!("{s}: the kinds are medusa and eagle")),
    }
}
