//! `labtui bench serve`: load levels against OpenAI-compatible servers — closed loop at each
//! concurrency, open loop at each rate, or a sweep — and one table of what each level measured,
//! endpoints side by side on the same workload. Every request is recorded when `--record` is
//! given; charts go to `--charts DIR`.

use super::serve_follow::{create_recorder, follow, stop_on_ctrl_c};
use super::serve_parse::{
    header, json_object, non_negative, percent, positive, prefix, rate, share, slo,
};
use crate::app::args;
use crate::protocol::serve::{Api, Endpoint, LevelSummary, Load, Outcome, Slo};
use crate::protocol::Stamper;
use crate::report::serve as table;
use crate::serve::client::{Cancel, Client, CountTokens, Extra};
use crate::serve::load::drive::{drive, Bench};
use crate::serve::load::workload::{self, Prompts, Workload};
use crate::serve::load::{LoadPlan, Sweep, Target};
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::unbounded_channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Md,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CapacityArg {
    Rate,
    Concurrency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiArg {
    Chat,
    Completions,
}

impl From<ApiArg> for Api {
    fn from(a: ApiArg) -> Api {
        match a {
            ApiArg::Chat => Api::Chat,
            ApiArg::Completions => Api::Completions,
        }
    }
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    /// Base URL of an OpenAI-compatible server (e.g. http://127.0.0.1:8080); repeat it to measure
    /// several side by side on the same workload.
    #[arg(long, required = true)]
    pub endpoint: Vec<String>,
    /// Bearer token for the servers (or LABTUI_API_KEY).
    #[arg(long, env = "LABTUI_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    #[arg(long, value_enum, default_value_t = ApiArg::Chat)]
    pub api: ApiArg,
    /// Closed-loop levels: requests in flight, e.g. 1,2,4,8.
    #[arg(long, value_delimiter = ',', value_parser = args::count(1, 100_000))]
    pub concurrency: Vec<usize>,
    /// Open-loop levels: arrivals per second, e.g. 0.5,1,2 (`inf` sends all at once). Gaps are
    /// drawn from --seed and the level's place (every endpoint gets the same schedule at the same
    /// level), then scaled so the last arrival falls at (requests − 1) ÷ rate, as vLLM's
    /// benchmark normalises them: the offered rate is exactly the rate asked for.
    #[arg(long, value_delimiter = ',', value_parser = rate)]
    pub rate: Vec<f64>,
    /// Shape of the gamma-distributed gaps between open-loop arrivals: 1 is Poisson, below 1
    /// burstier, above 1 more regular.
    #[arg(long, default_value_t = 1.0, value_parser = positive)]
    pub burstiness: f64,
    /// Most open-loop requests in flight; arrivals beyond it wait their turn.
    #[arg(long, value_parser = args::count(1, 100_000))]
    pub max_concurrency: Option<usize>,
    /// Find the saturation throughput with a closed-loop probe (at --concurrency, one value,
    /// else 8), then measure open-loop rates at 25, 50, 75 and 90% of it.
    #[arg(long)]
    pub sweep: bool,
    /// Requests per level (default 32; with --duration, as many as the duration allows).
    #[arg(long, value_parser = args::count(1, 1_000_000))]
    pub requests: Option<usize>,
    /// Longest a level sends for, in seconds (requests in flight then finish); a level also
    /// ends at --requests when that is given.
    #[arg(long, value_parser = positive)]
    pub duration: Option<f64>,
    /// Requests sent one at a time before each endpoint's first level, not measured.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Raise each level's load linearly over this many seconds (a closed loop's requests in
    /// flight from 1, an open loop's rate from 0); the ramp is cut from the measured window.
    #[arg(long, value_parser = positive)]
    pub ramp_up: Option<f64>,
    /// Seconds after the full load is reached that are cut from the measured window too.
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub warmup_secs: f64,
    /// Seconds before a level's last send that are cut from the measured window (the drain
    /// after the last send is always cut).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub cooldown_secs: f64,
    /// Percentiles to report beside p50/p90/p99, e.g. 50,90,95,99,99.9 (nearest rank; each
    /// with the number of samples behind it).
    #[arg(long, value_delimiter = ',', value_parser = percent)]
    pub percentiles: Vec<f64>,
    /// Prompts from a file: one per line; JSON Lines with `prompt` or `messages` (a
    /// conversation: the system message and earlier turns are sent with the last user message)
    /// and an output length where a line gives `max_tokens`, `output_tokens` or
    /// `output_tokens_count`; or a ShareGPT JSON array (each entry's turns up to its last answered
    /// human turn; the answer's length, by --tokenizer or 4 characters a token, as max_tokens).
    #[arg(long, conflicts_with = "input_tokens")]
    pub prompts: Option<PathBuf>,
    /// Synthetic prompts of MEAN:STDDEV tokens (e.g. 512:128): words that are one token each
    /// in common BPE vocabularies; the table's prompt tokens are the server's count, to check.
    #[arg(long)]
    pub input_tokens: Option<String>,
    /// Each request's output length drawn from MEAN:STDDEV tokens (its max_tokens; with
    /// --ignore-eos, its length). Overrides --max-tokens.
    #[arg(long)]
    pub output_tokens: Option<String>,
    /// Put a shared prefix of TOKENS:COUNT before every prompt: COUNT distinct prefixes of about
    /// TOKENS tokens, request i taking prefix i mod COUNT (a system prompt or a long document
    /// many requests share; a server's prefix cache should serve it).
    #[arg(long)]
    pub shared_prefix: Option<String>,
    /// Put each request's unique tag at the very start, before any shared prefix, so no prefix
    /// cache can serve any of it (a cache-busted baseline).
    #[arg(long)]
    pub cache_bust: bool,
    #[arg(long, default_value_t = 128, value_parser = args::count(1, 1 << 20))]
    pub max_tokens: usize,
    /// Ask the server to go on past end-of-sequence, so every request makes --max-tokens.
    #[arg(long)]
    pub ignore_eos: bool,
    #[arg(long, default_value_t = 0.0, value_parser = args::temperature)]
    pub temperature: f32,
    /// Conversations of this many turns: after each reply the user thinks (--think-time) and
    /// asks a follow-up with the whole conversation so far; each turn is a request of the
    /// level, and a thinking user keeps their place under the concurrency cap.
    #[arg(long, default_value_t = 1, value_parser = args::count(1, 1000))]
    pub turns: usize,
    /// Mean seconds a user thinks between a reply and the next turn (exponentially drawn).
    #[arg(long, default_value_t = 0.0, value_parser = non_negative)]
    pub think_time: f64,
    /// Send requests without streaming (`stream: false`): TTFT is then the whole answer's time.
    #[arg(long)]
    pub no_stream: bool,
    /// A JSON object merged into every request body (e.g. '{"top_k": 1}').
    #[arg(long, value_parser = json_object)]
    pub extra_body: Option<serde_json::Map<String, serde_json::Value>>,
    /// An HTTP header sent with every request, NAME:VALUE (repeat it for more).
    #[arg(long, value_parser = header)]
    pub header: Vec<(String, String)>,
    /// Find the highest load that meets the --slo for --slo-attain of requests, by doubling
    /// then bisection: over open-loop rates or closed-loop concurrency. A level also fails when
    /// it stops early (saturated, errors) or its TTFT grows more than 2× from its first quarter
    /// to its last (a queue building up). Give each probe a --duration long enough for a queue
    /// to show (tens of seconds): a handful of requests can all meet the SLO at any rate.
    #[arg(long, value_enum, requires = "slo")]
    pub capacity: Option<CapacityArg>,
    /// Share of requests that must meet the SLO for a level to pass the capacity search.
    #[arg(long, default_value_t = 0.9, value_parser = share)]
    pub slo_attain: f64,
    /// Seed of the arrivals and the synthetic prompts.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Goodput counts requests that met every target: ttft=MS,tpot=MS,e2e=MS (any of them).
    #[arg(long, value_parser = slo)]
    pub slo: Option<Slo>,
    /// What the servers cost an hour, for the price of a million output tokens.
    #[arg(long, value_parser = positive)]
    pub usd_per_hour: Option<f64>,
    /// A level stops sending once more than this share of its requests failed (after 10).
    #[arg(long, default_value_t = 0.5, value_parser = share)]
    pub max_error_rate: f64,
    /// Seconds without a byte from the server before a request counts as stalled.
    #[arg(long, default_value_t = 30.0, value_parser = positive)]
    pub stall_timeout: f64,
    /// Count output tokens with this model's tokenizer when a server gives no usage (a GGUF).
    #[arg(long)]
    pub tokenizer: Option<String>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Write every request to this file, one JSON line each: its level, send time, TTFT, each
    /// chunk's and token's arrival, E2E, tokens in and out, finish reason and error.
    #[arg(long)]
    pub save_detailed: Option<PathBuf>,
    /// Write throughput-latency and timeline charts (PNG and SVG) into this folder.
    #[arg(long)]
    pub charts: Option<PathBuf>,
    /// Watch the benchmark in the dashboard as it runs: each level's progress and numbers, the
    /// throughput-latency curve and the server's metrics (q quits and stops the load). The table
    /// still goes to stdout once the dashboard closes.
    #[arg(long)]
    pub tui: bool,
}

/// The tokenizer of a local model, counting tokens the server did not.
struct Local(crate::engine::tokenizer::Tokenizer);

impl CountTokens for Local {
    fn count(&self, text: &str) -> usize {
        self.0.encode(text).map_or(0, |ids| ids.len())
    }
}

impl BenchServeArgs {
    fn workload(&self, tokenizer: Option<&Local>) -> Result<Workload> {
        // A ShareGPT reply's length: the model's tokenizer when named, else an estimate.
        let count = |text: &str| match tokenizer {
            Some(t) => t.count(text),
            None => crate::serve::load::dataset::estimate(text),
        };
        let prompts = match (&self.prompts, &self.input_tokens) {
            (Some(p), _) => Prompts::List(crate::serve::load::dataset::read_prompts(p, &count)?),
            (None, Some(lengths)) => {
                let (mean, stddev) = workload::parse_lengths(lengths)?;
                Prompts::Synthetic { mean, stddev }
            }
            (None, None) => Prompts::Builtin,
        };
        Ok(Workload {
            prompts,
            max_tokens: self.max_tokens,
            ignore_eos: self.ignore_eos,
            temperature: self.temperature,
            seed: self.seed,
            shape: workload::Shape {
                output: self
                    .output_tokens
                    .as_deref()
                    .map(workload::parse_lengths)
                    .transpose()
                    .context("--output-tokens")?,
                shared_prefix: self.shared_prefix.as_deref().map(prefix).transpose()?,
                cache_bust: self.cache_bust,
            },
        })
    }

    /// The capacity search `--capacity` asks for, from the first --rate or --concurrency.
    fn search(&self, requests: usize) -> Option<crate::serve::load::capacity::Search> {
        self.capacity.map(|over| {
            use crate::serve::load::capacity::{Over, Search};
            let over = match over {
                CapacityArg::Rate => Over::Rate,
                CapacityArg::Concurrency => Over::Concurrency,
            };
            let start = match over {
                Over::Rate => self.rate.first().copied(),
                Over::Concurrency => self.concurrency.first().map(|c| *c as f64),
            };
            Search {
                over,
                attain: self.slo_attain,
                start: start.unwrap_or(1.0),
                steps: 4,
                burstiness: self.burstiness,
                most: (over == Over::Concurrency).then_some(requests as f64),
            }
        })
    }

    fn plan(&self) -> Result<(LoadPlan, Option<Sweep>)> {
        let mut loads: Vec<Load> = self
            .concurrency
            .iter()
            .map(|c| Load::Concurrency(*c))
            .collect();
        loads.extend(self.rate.iter().map(|r| Load::Rate {
            rate: *r,
            burstiness: self.burstiness,
            max_concurrency: self.max_concurrency,
        }));
        let sweep = self.sweep.then(|| Sweep {
            probe: self.concurrency.iter().copied().max().unwrap_or(8),
            fractions: Sweep::FRACTIONS.to_vec(),
            burstiness: self.burstiness,
            max_concurrency: self.max_concurrency,
        });
        let requests = match (self.requests, self.duration) {
            (Some(n), _) => n,
            // Duration-driven: the level ends when its time is up.
            (None, Some(_)) => crate::serve::load::DURATION_REQUESTS,
            (None, None) => 32,
        };
        let search = self.search(requests);
        if search.is_some() {
            if sweep.is_some() {
                bail!("--capacity and --sweep each choose the levels: give one of them");
            }
            if self.rate.len() + self.concurrency.len() > 1 {
                bail!("--capacity searches from one starting load: give at most one --rate or --concurrency value");
            }
            loads.clear();
        }
        if loads.is_empty() && sweep.is_none() && search.is_none() {
            bail!("give the load: --concurrency 1,2,4, --rate 0.5,1,2, --sweep or --capacity");
        }
        if sweep.is_some() && !self.rate.is_empty() {
            bail!("--sweep chooses the rates itself: leave out --rate");
        }
        if sweep.is_some() && self.concurrency.len() > 1 {
            bail!(
                "--sweep probes at one concurrency: give one --concurrency value, not {} (the \
                 sweep's levels are rates)",
                self.concurrency.len()
            );
        }
        Ok((
            LoadPlan {
                loads,
                requests,
                duration: self.duration.map(Duration::from_secs_f64),
                warmup: self.warmup,
                max_error_rate: self.max_error_rate,
                slo: self.slo,
                usd_per_hour: self.usd_per_hour,
                cut: crate::serve::load::Cut {
                    ramp_up: self.ramp_up.map(Duration::from_secs_f64),
                    warm_up: Duration::from_secs_f64(self.warmup_secs),
                    cool_down: Duration::from_secs_f64(self.cooldown_secs),
                },
                percentiles: self.percentiles.clone(),
                search,
                turns: crate::serve::load::turns::Turns {
                    turns: self.turns,
                    think: Duration::from_secs_f64(self.think_time),
                },
            },
            sweep,
        ))
    }
}

/// The servers to measure, each with the shared client and cancel switch.
fn targets(
    model: Option<&str>,
    a: &BenchServeArgs,
    cancel: &Cancel,
    tokenizer: Option<Arc<Local>>,
) -> Result<Vec<Arc<dyn Target>>> {
    let mut client = Client::new(Duration::from_secs_f64(a.stall_timeout)).with_extra(Extra {
        body: a.extra_body.clone().unwrap_or_default(),
        headers: a.header.clone(),
        no_stream: a.no_stream,
    });
    if let Some(t) = tokenizer {
        client = client.with_tokenizer(t);
    }
    let metrics = reqwest::Client::builder().no_proxy().build()?;
    Ok(a.endpoint
        .iter()
        .map(|url| {
            Arc::new(crate::serve::target::Http {
                client: client.clone(),
                metrics: metrics.clone(),
                endpoint: Endpoint {
                    url: url.clone(),
                    api_key: a.api_key.clone(),
                    model: model.map(str::to_string),
                    api: a.api.into(),
                },
                cancel: cancel.clone(),
            }) as Arc<dyn Target>
        })
        .collect())
}

/// The table to stdout, the charts to `--charts`.
fn report(
    a: &BenchServeArgs,
    levels: &[LevelSummary],
    requests: &[(usize, Outcome)],
) -> Result<()> {
    let out = match a.format {
        ReportFormat::Md => {
            let mut md = table::markdown(levels);
            if let (Some(slo), Some(_)) = (&a.slo, a.capacity) {
                md.push_str(&crate::report::serve_tables::capacity(
                    levels,
                    slo,
                    a.slo_attain,
                ));
            }
            if let Some(asked) = a.input_tokens.as_deref() {
                let (mean, _) = workload::parse_lengths(asked)?;
                md.push_str(&crate::report::serve_tables::prompt_check(levels, mean));
            }
            md
        }
        ReportFormat::Csv => table::csv(levels)?,
        ReportFormat::Json => table::json(levels, &metadata(a))?,
    };
    print!("{out}");
    if let Some(path) = &a.save_detailed {
        std::fs::write(path, table::detailed_jsonl(levels, requests)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote {} requests to {}", requests.len(), path.display());
    }
    if let Some(dir) = &a.charts {
        for f in crate::report::serve::charts(dir, levels, requests)? {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

/// What a JSON result says of its own run: labtui's build, the endpoints, the workload, the
/// percentiles and the machine that measured (the client's; a server's is its own).
fn metadata(a: &BenchServeArgs) -> serde_json::Value {
    let stamp = crate::worker::stamp::measure(None, crate::engine::threads()).ok();
    let percentiles: Vec<f64> = [50.0, 90.0, 99.0]
        .iter()
        .chain(&a.percentiles)
        .copied()
        .collect();
    serde_json::json!({
        "labtui": env!("CARGO_PKG_VERSION"),
        "commit": crate::lab::machine::commit(),
        "date": crate::worker::stamp::now(),
        "endpoints": a.endpoint,
        "api": format!("{:?}", a.api).to_lowercase(),
        "workload": {
            "prompts": a.prompts.as_ref().map(|p| p.display().to_string()),
            "input_tokens": a.input_tokens,
            "max_tokens": a.max_tokens,
            "ignore_eos": a.ignore_eos,
            "temperature": a.temperature,
            "seed": a.seed,
            "output_tokens": a.output_tokens,
            "shared_prefix": a.shared_prefix,
            "cache_bust": a.cache_bust,
            "turns": a.turns,
            "think_time_s": a.think_time,
            "stream": !a.no_stream,
            "extra_body": a.extra_body,
            // Names only: a header's value can be a secret.
            "headers": a.header.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        },
        "load": {
            "concurrency": a.concurrency,
            "rate": a.rate.iter().map(|r| if r.is_finite() { Some(*r) } else { None }).collect::<Vec<_>>(),
            "burstiness": a.burstiness,
            "max_concurrency": a.max_concurrency,
            "sweep": a.sweep,
            "requests": a.requests,
            "duration_s": a.duration,
            "warmup": a.warmup,
            "ramp_up_s": a.ramp_up,
            "warmup_s": a.warmup_secs,
            "cooldown_s": a.cooldown_secs,
            "capacity": a.capacity.map(|c| format!("{c:?}").to_lowercase()),
            "slo_attain": a.slo_attain,
        },
        "percentiles": percentiles,
        "machine": stamp,
    })
}

/// Run the benchmark: progress to stderr (or the dashboard with `--tui`), the table to stdout.
pub fn run(
    model: Option<&str>,
    record: Option<&std::path::Path>,
    a: &BenchServeArgs,
) -> Result<()> {
    let tokenizer = match &a.tokenizer {
        Some(spec) => Some(Arc::new(Local(
            crate::app::headless::load_tokenizer(spec)
                .with_context(|| format!("loading the tokenizer of {spec}"))?,
        ))),
        None => None,
    };
    let workload = a.workload(tokenizer.as_deref())?;
    let (plan, sweep) = a.plan()?;
    let cancel = Cancel::new();
    let bench = Bench {
        targets: targets(model, a, &cancel, tokenizer)?,
        workload,
        plan,
        sweep,
        api_key: a.api_key.clone(),
    };
    if a.tui {
        return super::serve_tui::run(bench, cancel, record).and_then(
            |((levels, requests), stopped)| {
                report(a, &levels, &requests)?;
                if stopped {
                    bail!("stopped before the end: the table holds the levels measured");
                }
                Ok(())
            },
        );
    }
    if a.format == ReportFormat::Md {
        // The measuring machine's stamp (the servers' are their own, unless on this machine).
        super::print_stamp(None, false);
    }
    let mut recorder = record.map(create_recorder).transpose()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let stop = Arc::new(AtomicBool::new(false));
    stop_on_ctrl_c(&rt, &stop, &cancel);
    // The same events the dashboard's serve view gets (the load's and the scraped server
    // metrics'), printed as progress and recorded, so a replay shows the same view.
    let (tx, mut rx) = unbounded_channel();
    let out = Stamper::new(tx, Instant::now());
    let load = rt.spawn(drive(bench, out, stop.clone()));
    let record_error = rt.block_on(follow(&mut rx, recorder.as_mut()));
    let (levels, requests) = rt
        .block_on(load)
        .map_err(|e| anyhow::anyhow!("the load crashed: {e}"))??;
    if let Some(e) = record_error {
        return Err(e.context("writing the recording"));
    }
    if let Some(r) = &recorder {
        eprintln!("recorded every request to {}", r.path().display());
    }
    report(a, &levels, &requests)?;
    if stop.load(Ordering::SeqCst) {
        bail!("stopped before the end: the table holds the levels measured");
    }
    Ok(())
}
