//! Headless commands: `generate` and `tokenize`, the same work as the dashboard without a terminal UI.

use crate::engine::{self, config, config::Meta, loader, source, synthetic, Tokenizer};
use crate::protocol::{
    Command, DraftMode, Event, GenParams, KPolicy, KvDtype, Quant, RunSummary, Settings,
};
use crate::stats::{fmt_ms, human_bytes};
use crate::worker::{Options, Worker};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::time::Duration;

/// The one-line summary printed to stderr.
pub fn summary_line(s: &RunSummary) -> String {
    let line = format!(
        "ttft {} ms | prefill {} tok {:.1} tok/s | decode {} tok {:.1} tok/s | itl p50 {} ms p99 {} ms | kv {} | {:?}",
        fmt_ms(s.ttft, 1),
        s.prompt_tokens,
        s.prefill_tok_s,
        s.generated_tokens.saturating_sub(1),
        s.decode_tok_s,
        fmt_ms(s.itl_p50, 1),
        fmt_ms(s.itl_p99, 1),
        human_bytes(s.kv_bytes),
        s.reason
    );
    match &s.spec {
        Some(p) => format!(
            "{line} | {} K {}: accepted {}/{} ({:.0}%) mean length {:.2} speedup {:.2}× (theory {:.2}×)",
            p.mode,
            p.k,
            p.accepted,
            p.drafted,
            p.acceptance_rate * 100.0,
            p.mean_accepted_len,
            p.speedup,
            p.predicted_speedup
        ),
        None => line,
    }
}

/// A variant as one line: type, bytes, fallbacks, KV dtype and the switch's time.
pub fn variant_line(v: &crate::protocol::Variant) -> String {
    let fallbacks = if v.fallbacks.is_empty() {
        String::new()
    } else {
        format!(
            " (fell back: {})",
            v.fallbacks
                .iter()
                .map(|f| format!("{}→{} ×{}, {}", f.wanted, f.used, f.tensors, f.why))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    format!(
        "weights {} {}{fallbacks} · KV {} · switched in {:.1} s",
        crate::report::demo::type_label(&crate::protocol::Variant {
            kv_dtype: crate::protocol::KvDtype::F32,
            ..v.clone()
        }),
        human_bytes(v.weight_bytes),
        v.kv_dtype,
        v.took.as_secs_f64()
    )
}

pub fn generate(
    model: &str,
    args: &GenerateArgs,
    record: Option<&std::path::Path>,
    preset: Option<&crate::preset::Preset>,
) -> Result<()> {
    // Memory samples go to the event stream and to a recording (its memory pane replays them).
    let sample_every =
        (args.format != Format::Text || record.is_some()).then_some(Duration::from_millis(250));
    let worker = Worker::spawn(Options {
        sample_every,
        ..Options::default()
    });
    let mut params = match preset {
        Some(p) => p.params.clone(),
        None => GenParams {
            max_tokens: 128,
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
            raw: args.raw,
            ignore_eos: false,
        },
    };
    if let Some(n) = args.max_tokens {
        params.max_tokens = n;
    }
    let prompts: std::collections::VecDeque<String> = match (&args.prompt, preset) {
        (Some(p), _) => [p.clone()].into(),
        (None, Some(p)) => p.prompts.iter().cloned().collect(),
        (None, None) => bail!("give a prompt (--prompt) or a preset (--preset)"),
    };
    // The command line overrides the preset.
    let settings = preset
        .map(|p| p.settings())
        .unwrap_or_default()
        .overlaid(&args.settings.settings()?);
    worker.send_all(settings.commands());
    worker.send(Command::LoadModel {
        spec: model.to_string(),
    });
    let recorder = match record {
        Some(p) => Some(crate::record::Recorder::create(
            p,
            crate::record::Header::new(
                None,
                settings.quant.unwrap_or_default(),
                settings.draft_mode.unwrap_or_default(),
                settings.k.unwrap_or_default(),
            ),
        )?),
        None => None,
    };
    Session {
        args,
        recorder,
        worker,
        params,
        prompts,
        generating: false,
        printed: String::new(),
    }
    .run()
}

/// A headless run after its model is asked for: the worker's events written out until the last
/// prompt finishes.
struct Session<'a> {
    args: &'a GenerateArgs,
    // Fields drop in order: the recording is closed before the worker stops.
    recorder: Option<crate::record::Recorder>,
    worker: Worker,
    params: GenParams,
    prompts: std::collections::VecDeque<String>,
    generating: bool,
    /// The text printed token by token for the current prompt.
    printed: String,
}

impl Session<'_> {
    fn run(mut self) -> Result<()> {
        let args = self.args;
        let mut out = std::io::stdout().lock();
        while let Some(stamped) = self.worker.events.blocking_recv() {
            if let Some(r) = self.recorder.as_mut() {
                r.event(&stamped)?;
            }
            match args.format {
                Format::Ron => writeln!(out, "{}", ron::to_string(&stamped)?)?,
                Format::Json => writeln!(out, "{}", serde_json::to_string(&stamped)?)?,
                Format::Text => {}
            }
            if self.on_event(&stamped.event, &mut out)? {
                return Ok(());
            }
        }
        bail!("the worker stopped without finishing the run")
    }

    /// Act on one event; true once the last prompt has finished.
    fn on_event(&mut self, event: &Event, out: &mut impl Write) -> Result<bool> {
        let text = self.args.format == Format::Text;
        match event {
            Event::ModelLoaded(info) if !self.generating => {
                self.generating = true;
                // A run stops when the context is full: no more tokens than it holds are asked for.
                if self.params.max_tokens > info.context_length {
                    if text {
                        eprintln!(
                            "note: --max-tokens {} is more than {}'s context holds ({} tokens): \
                             the run stops when the context is full",
                            self.params.max_tokens, info.name, info.context_length
                        );
                    }
                    self.params.max_tokens = info.context_length;
                }
                let prompt = self.prompts.pop_front().expect("at least one prompt");
                self.worker.send(Command::Generate {
                    prompt,
                    params: self.params.clone(),
                });
            }
            Event::Notice { message } if text => eprintln!("note: {message}"),
            Event::Note(n) if text => {
                eprintln!("note: {}", crate::tui::panes::status::notice(n))
            }
            Event::VariantReady(v) if text => eprintln!("note: {}", variant_line(v)),
            Event::Token(t) if text => {
                write!(out, "{}", t.text)?;
                self.printed.push_str(&t.text);
                out.flush()?;
            }
            Event::RunFinished { summary, .. } => return self.finished(summary, out),
            Event::Error { message } => bail!("{message}"),
            _ => {}
        }
        Ok(false)
    }

    /// The end of a prompt's run: its summary, then the next prompt; true when none is left.
    fn finished(&mut self, summary: &RunSummary, out: &mut impl Write) -> Result<bool> {
        if self.args.format == Format::Text {
            // Bytes that never completed a character show as the full decode shows them.
            if let Some(rest) = summary.text.strip_prefix(self.printed.as_str()) {
                write!(out, "{rest}")?;
            }
            writeln!(out)?;
        }
        out.flush()?;
        eprintln!("{}", summary_line(summary));
        match self.prompts.pop_front() {
            Some(prompt) => {
                self.printed.clear();
                self.worker.send(Command::Generate {
                    prompt,
                    params: self.params.clone(),
                });
                Ok(false)
            }
            None => Ok(true),
        }
    }
}

/// The tokenizer of a model, read from its metadata only (no weights).
pub fn load_tokenizer(spec: &str) -> Result<Tokenizer> {
    let (bytes, path) = match source::fetch(&source::resolve(spec)?, |_, _| {})? {
        None => (
            synthetic::gguf_bytes(&synthetic::SyntheticSpec::default())?,
            "synthetic".to_string(),
        ),
        Some(p) if engine::hf::is_checkpoint(&p) => return Ok(engine::hf::load_tokenizer(&p)?),
        Some(p) => (Vec::new(), p.display().to_string()),
    };
    let content = if bytes.is_empty() {
        let f = std::fs::File::open(&path).with_context(|| format!("cannot open {path}"))?;
        loader::read_content(&mut std::io::BufReader::new(f), &path)?
    } else {
        loader::read_content(&mut std::io::Cursor::new(bytes), &path)?
    };
    let meta = Meta {
        content: &content,
        path: &path,
    };
    // No weights are read, but a file no model could load from is refused here too.
    config::check_limits(&meta)?;
    Ok(Tokenizer::from_gguf(&meta)?)
}

pub fn tokenize(model: &str, args: &TokenizeArgs) -> Result<()> {
    let tok = load_tokenizer(model)?;
    let ids = tok.encode(&args.text)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let rows: Vec<serde_json::Value> = ids
            .iter()
            .map(|&id| serde_json::json!({ "id": id, "piece": tok.piece(id) }))
            .collect();
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
    } else {
        for id in &ids {
            writeln!(out, "{id:>8}  {:?}", tok.piece(*id))?;
        }
        writeln!(out, "{} tokens", ids.len())?;
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The prompt (with --preset, the preset's prompts run instead when this is absent).
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Most tokens to generate (default 128, or the preset's).
    #[arg(short = 'n', long = "max-tokens",
          value_parser = super::args::count(1, crate::protocol::params::MAX_TOKENS as u64))]
    pub max_tokens: Option<usize>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.0, value_parser = super::args::temperature)]
    pub temperature: f32,
    /// Sample among the k likeliest tokens only.
    #[arg(long, value_parser = super::args::count(1, crate::protocol::params::MAX_TOP_K as u64))]
    pub top_k: Option<usize>,
    /// Sample among the likeliest tokens whose probabilities add up to p (0 < p ≤ 1).
    #[arg(long, value_parser = super::args::top_p)]
    pub top_p: Option<f32>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Send the prompt untemplated (no chat template).
    #[arg(long)]
    pub raw: bool,
    /// text: the generated text; ron / json: the event stream, one event per line.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

/// The engine settings on the command line.
#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// Where speculative drafts come from.
    #[arg(long, value_parser = super::args::setting::<DraftMode>())]
    pub draft: Option<DraftMode>,
    /// The draft model for --draft draft-model (default: the largest smaller GGUF beside the
    /// target with the same tokenizer).
    #[arg(long)]
    pub draft_model: Option<String>,
    /// The trained heads for --draft medusa or eagle (default: MODEL.medusa.safetensors or
    /// MODEL.eagle.safetensors beside the model; `labtui train-draft` makes them).
    #[arg(long, value_name = "FILE")]
    pub draft_heads: Option<String>,
    /// Drafted tokens per step: 1–16, `auto` (adaptive: labtui's cost model), or
    /// `target=P:MIN-MAX` (the acceptance-target controller, as --target-acceptance).
    #[arg(short = 'k', long = "k", value_parser = KPolicy::parse)]
    pub k: Option<KPolicy>,
    /// The acceptance-target controller: K grows by one while the share of drafts accepted
    /// stays at or above P (0–1) and shrinks by one below it, within --min-k..--max-k.
    #[arg(long, value_name = "P", conflicts_with = "k", value_parser = share)]
    pub target_acceptance: Option<f64>,
    /// The target controller's smallest K (default 1).
    #[arg(long, requires = "target_acceptance", value_parser = super::args::count(1, crate::protocol::K_MAX as u64))]
    pub min_k: Option<usize>,
    /// The target controller's largest K (default 8).
    #[arg(long, requires = "target_acceptance", value_parser = super::args::count(1, crate::protocol::K_MAX as u64))]
    pub max_k: Option<usize>,
    /// Layers the layer-skip draft runs before the head (default: half the model's).
    #[arg(long, value_parser = super::args::count(1, crate::engine::config::MAX_LAYERS))]
    pub draft_layers: Option<usize>,
    /// Weight type to requantise to.
    #[arg(long, value_parser = super::args::setting::<Quant>())]
    pub quant: Option<Quant>,
    /// KV cache dtype.
    #[arg(long, value_parser = super::args::setting::<KvDtype>())]
    pub kv_dtype: Option<KvDtype>,
    /// The acceptance policy speculation verifies by: lossless (the default), or the lossy
    /// tau=P (keep a draft the target gives at least P), topk=K (among its K likeliest) or
    /// typical=E (Medusa's typical acceptance).
    #[arg(long, value_parser = crate::protocol::AcceptPolicy::parse)]
    pub policy: Option<crate::protocol::AcceptPolicy>,
}

/// A share strictly between 0 and 1.
fn share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 && p < 1.0 => Ok(p),
        _ => Err(format!("`{s}` is not a share between 0 and 1")),
    }
}

impl SettingsArgs {
    /// The settings asked for; an acceptance target with a K range that cannot be is an error.
    pub fn settings(&self) -> anyhow::Result<Settings> {
        let k = match self.target_acceptance {
            Some(p) => Some(
                KPolicy::target(
                    self.min_k.unwrap_or(1),
                    self.max_k.unwrap_or(8),
                    (p * 100.0).round() as u8,
                )
                .map_err(anyhow::Error::msg)?,
            ),
            None => self.k,
        };
        Ok(Settings {
            quant: self.quant,
            mix: None,
            kv_dtype: self.kv_dtype,
            draft_mode: self.draft,
            k,
            draft_model: self.draft_model.clone(),
            draft_heads: self.draft_heads.clone(),
            draft_layers: self.draft_layers,
            policy: self.policy,
        })
    }
}

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Ron,
    Json,
}
