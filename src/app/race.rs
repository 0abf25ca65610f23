//! `labtui race`: one prompt under two configurations, one step of each in turn on this machine,
//! then the summary row; `--alone` also runs each side by itself, to check that racing did not
//! change its speed.

use super::headless::Format;
use crate::preset::Preset;
use crate::protocol::race::{RaceConfig, RaceEvent, RaceSummary};
use crate::protocol::{Command, Event, GenParams, KvDtype, Quant, SettingChange, DEFAULT_K};
use crate::worker::{Options, Worker};
use anyhow::{bail, Result};
use clap::Args;

#[derive(Debug, Args)]
pub struct RaceArgs {
    /// Side A's settings as key=value pairs: quant, kv, draft, k, policy, draft-model, heads,
    /// layers, model; `baseline` is the model as loaded, decoding plainly; `endpoint=URL` races
    /// an OpenAI-compatible server (both sides then run at once).
    /// (Default: the preset's side A, else `baseline`.)
    #[arg(long, value_parser = RaceConfig::parse)]
    pub a: Option<RaceConfig>,
    /// Side B's settings (as for --a), e.g. `quant=q4_0` or `draft=prompt-lookup,k=4`; or the
    /// `--preset`'s race.
    #[arg(long, value_parser = RaceConfig::parse)]
    pub b: Option<RaceConfig>,
    /// The prompt (default: the preset's first).
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Most tokens each side generates (default 128, or the preset's).
    #[arg(short = 'n', long = "max-tokens",
          value_parser = super::args::count(1, crate::protocol::params::MAX_TOKENS as u64))]
    pub max_tokens: Option<usize>,
    /// Sampling temperature (0: greedy).
    #[arg(long = "temp", default_value_t = 0.0, value_parser = super::args::temperature)]
    pub temperature: f32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Keep generating past an end-of-text token (both sides run max tokens).
    #[arg(long)]
    pub ignore_eos: bool,
    /// Use the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Then run each side alone and print its decode speed in the race over alone.
    #[arg(long)]
    pub alone: bool,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// A side's decode speed in the race and alone.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AloneCheck {
    pub side: String,
    pub raced_tok_s: f64,
    pub alone_tok_s: f64,
}

/// What a race runs: its sides, prompt and parameters, from the flags, else the preset.
struct Plan {
    a: RaceConfig,
    b: RaceConfig,
    prompt: String,
    params: GenParams,
}

impl Plan {
    fn of(args: &RaceArgs, preset: Option<&Preset>) -> Result<Plan> {
        let sides = match preset.and_then(|p| p.race.as_ref()) {
            Some(r) => Some(r.sides().map_err(anyhow::Error::msg)?),
            None => None,
        };
        let [pa, pb] = sides.map_or([None, None], |[a, b]| [Some(a), Some(b)]);
        let Some(b) = args.b.clone().or(pb) else {
            bail!("name side B: --b SETTINGS, or a --preset with a race");
        };
        let Some(prompt) = args
            .prompt
            .clone()
            .or_else(|| preset.map(|p| p.prompts[0].clone()))
        else {
            bail!("give the prompt: --prompt P, or a --preset");
        };
        let base = preset.map_or_else(GenParams::default, |p| p.params.clone());
        let params = GenParams {
            max_tokens: args.max_tokens.unwrap_or(if preset.is_some() {
                base.max_tokens
            } else {
                128
            }),
            temperature: args.temperature,
            seed: args.seed,
            raw: args.raw || base.raw,
            ignore_eos: args.ignore_eos || base.ignore_eos,
            ..GenParams::default()
        };
        Ok(Plan {
            a: args.a.clone().or(pa).unwrap_or_default(),
            b,
            prompt,
            params,
        })
    }
}

/// `labtui race`.
pub fn run(
    model: &str,
    args: &RaceArgs,
    record: Option<&std::path::Path>,
    preset: Option<&Preset>,
) -> Result<()> {
    let plan = Plan::of(args, preset)?;
    let mut worker = Worker::spawn(Options::default());
    worker.send(Command::LoadModel {
        spec: model.to_string(),
    });
    let mut recorder = match record {
        Some(p) => Some(crate::record::Recorder::create(
            p,
            crate::record::Header::new(None, Quant::AsLoaded, Default::default(), DEFAULT_K),
        )?),
        None => None,
    };
    let params = plan.params.clone();
    let mut summary: Option<RaceSummary> = None;
    let mut alone: Vec<AloneCheck> = Vec::new();
    let mut waiting: Vec<(String, RaceConfig, f64)> = Vec::new();
    while let Some(stamped) = worker.events.blocking_recv() {
        if let Some(r) = recorder.as_mut() {
            r.event(&stamped)?;
        }
        match &stamped.event {
            Event::ModelLoaded(_) if summary.is_none() => worker.send(Command::Race {
                prompt: plan.prompt.clone(),
                params: params.clone(),
                a: plan.a.clone(),
                b: plan.b.clone(),
            }),
            Event::Race(RaceEvent::Started { a, b, .. }) if args.format == Format::Text => {
                eprintln!("racing A {} against B {} on {}", a.label, b.label, a.model)
            }
            Event::Race(RaceEvent::Finished(s)) => {
                summary = Some((**s).clone());
                if args.alone {
                    waiting = alone_plan(&plan, s);
                }
                if !next_alone(&worker, &waiting, &plan.prompt, &params) {
                    break;
                }
            }
            Event::RunFinished { summary: run, .. } if !waiting.is_empty() => {
                let (side, _, raced) = waiting.remove(0);
                alone.push(AloneCheck {
                    side,
                    raced_tok_s: raced,
                    alone_tok_s: run.decode_tok_s,
                });
                if !next_alone(&worker, &waiting, &plan.prompt, &params) {
                    break;
                }
            }
            Event::Notice { message } if args.format == Format::Text => {
                eprintln!("note: {message}")
            }
            Event::Error { message } => bail!("{message}"),
            _ => {}
        }
    }
    drop(recorder);
    let Some(s) = summary else {
        bail!("the worker stopped before the race ended")
    };
    print(args.format, &s, &alone)
}

/// The sides to run alone (one naming another model is left out: it would reload the model; so
/// is a server's: the local engine does not run it).
fn alone_plan(plan: &Plan, s: &RaceSummary) -> Vec<(String, RaceConfig, f64)> {
    [(&plan.a, &s.a), (&plan.b, &s.b)]
        .into_iter()
        .filter(|(c, _)| {
            let why = match (&c.model, &c.endpoint) {
                (_, Some(_)) => Some("is a server's"),
                (Some(_), None) => Some("names another model"),
                (None, None) => None,
            };
            if let Some(why) = why {
                eprintln!("note: side {} {why}: not run alone", c.label());
            }
            why.is_none()
        })
        .map(|(c, side)| (side.label.clone(), c.clone(), side.run.decode_tok_s))
        .collect()
}

/// Ask for the next side's run alone: every setting it leaves out back at the baseline. False
/// when none is left.
fn next_alone(
    worker: &Worker,
    waiting: &[(String, RaceConfig, f64)],
    prompt: &str,
    params: &GenParams,
) -> bool {
    let Some((_, config, _)) = waiting.first() else {
        return false;
    };
    let s = config.settings();
    worker.send_all(
        [
            SettingChange::Quant(s.quant.unwrap_or(Quant::AsLoaded)),
            SettingChange::KvDtype(s.kv_dtype.unwrap_or(KvDtype::F32)),
            SettingChange::DraftMode(s.draft_mode.unwrap_or_default()),
            SettingChange::K(s.k.unwrap_or(DEFAULT_K)),
            SettingChange::Policy(s.policy.unwrap_or_default()),
        ]
        .into_iter()
        .chain(s.draft_model.map(SettingChange::DraftModel))
        .chain(s.draft_heads.map(SettingChange::DraftHeads))
        .chain(s.draft_layers.map(SettingChange::DraftLayers))
        .map(Command::Set),
    );
    worker.send(Command::Generate {
        prompt: prompt.to_string(),
        params: params.clone(),
    });
    true
}

fn print(format: Format, s: &RaceSummary, alone: &[AloneCheck]) -> Result<()> {
    match format {
        Format::Json => {
            let v = serde_json::json!({ "race": s, "alone": alone });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        Format::Ron => println!("{}", ron::to_string(s)?),
        Format::Text => {
            // The machine, its roofs, the build and the date, as every report starts.
            let stamp = crate::worker::stamp::measure(None, crate::engine::threads())?;
            println!("{}", crate::report::stamp::markdown(&stamp));
            print!("{}", crate::report::race::markdown(s));
            for c in alone {
                println!(
                    "{}: {:.1} tok/s in the race, {:.1} alone ({:.2}×)",
                    c.side,
                    c.raced_tok_s,
                    c.alone_tok_s,
                    c.raced_tok_s / c.alone_tok_s
                );
            }
        }
    }
    Ok(())
}
