//! `labtui bench spec`: speculative decoding against plain decoding on the same target, prompts
//! and machine, in one run — tok/s, acceptance, mean accepted length, the measured speedup and
//! the one theory predicts, and whether the text equals plain greedy decoding.

use super::MAX_TOKENS;
use crate::app::args;
use crate::engine::heads::HeadKind;
use crate::engine::spec::accept::Acceptance;
use crate::engine::spec::{pick, theory, Controller, Drafter, Speculator};
use crate::engine::{generate, Engine, Prompt, RunRequest, StepControl};
use crate::protocol::{DraftMode, GenParams, KPolicy, Quant, RunSettings, RunSummary};
use anyhow::Result;
use candle_core::Device;
use clap::Args;
use std::collections::HashMap;

mod tables;
use tables::{controllers_table, fidelity_chart, table};

/// The prompts: code completion of several kinds, a question, rewrites whose answer repeats
/// the input, and prose.
pub const PROMPTS: [(&str, &str); 6] = [
    ("complete-fn", "Write a Python function that returns the n-th Fibonacci number iteratively, with a docstring."),
    ("complete-struct", "Write a Rust struct `Stack<T>` backed by a Vec with push, pop, peek, len and is_empty, each with a doc comment."),
    ("explain", "Explain in three sentences what a KV cache is in transformer inference."),
    ("rewrite-rename", "Rewrite this code, renaming the variable `n` to `count` everywhere and changing nothing else:\n\n```python\ndef total(items):\n    n = 0\n    for item in items:\n        if item.price > 0:\n            n = n + item.price * item.quantity\n        else:\n            n = n - item.discount\n    return n\n\ndef average(items):\n    n = total(items)\n    if len(items) == 0:\n        return 0\n    return n / len(items)\n```"),
    ("prose", "Write a short paragraph about the history of the printing press, for a general reader."),
    ("rewrite-types", "Add type hints to this code and change nothing else:\n\n```python\ndef merge(a, b):\n    result = []\n    i = 0\n    j = 0\n    while i < len(a) and j < len(b):\n        if a[i] <= b[j]:\n            result.append(a[i])\n            i += 1\n        else:\n            result.append(b[j])\n            j += 1\n    result.extend(a[i:])\n    result.extend(b[j:])\n    return result\n```"),
];

fn settings(params: &GenParams, mode: DraftMode, k: KPolicy) -> RunSettings {
    RunSettings {
        params: params.clone(),
        quantization: Quant::AsLoaded,
        draft_mode: mode,
        k,
        policy: Default::default(),
    }
}

fn run_plain(e: &mut Engine, prompt: &str, params: &GenParams) -> Result<RunSummary> {
    speculative(e, &mut Speculator::none(), prompt, params)
}

fn speculative(
    e: &mut Engine,
    spec: &mut Speculator,
    prompt: &str,
    params: &GenParams,
) -> Result<RunSummary> {
    let mode = spec.drafter.mode();
    let k = if spec.is_on() {
        spec.controller.policy()
    } else {
        KPolicy::Adaptive
    };
    let request = RunRequest::new(0, Prompt::Text(prompt.into()), settings(params, mode, k));
    Ok(generate(e, spec, &request, &mut |_| {}, &mut || {
        StepControl::Continue
    })?)
}

/// One row of the table.
struct Row {
    prompt: &'static str,
    mode: DraftMode,
    /// `None` for the plain row.
    k: Option<KPolicy>,
    tok_s: f64,
    acceptance: Option<f64>,
    mean_len: Option<f64>,
    speedup: f64,
    predicted: Option<f64>,
    same: bool,
    /// For the theory against the prompt's final plain speed: expected tokens, speculative
    /// seconds, plain steps and their seconds.
    costs: Option<(f64, f64, usize, f64)>,
    /// With `--pairs` above 1: the tok/s of the plain run paired with this one.
    paired_plain: Option<f64>,
    /// A lossy acceptance rule (`None`: the lossless one).
    policy: Option<Acceptance>,
    /// Against plain greedy decoding's tokens: how many lead the text equal, and the share of
    /// positions that agree.
    agreement: Option<(usize, f64)>,
    /// The output's perplexity under the target (after the prompt): plain decoding's is the
    /// floor a lossy rule's is read against.
    perplexity: Option<f64>,
    /// A lossy rule's mean log-prob gap at the drafts it kept (see `SpecSummary::logp_gap`).
    gap: Option<f64>,
}

impl Row {
    fn plain(prompt: &'static str, plain: &RunSummary) -> Self {
        Self {
            prompt,
            mode: DraftMode::None,
            k: None,
            tok_s: plain.decode_tok_s,
            acceptance: None,
            mean_len: None,
            speedup: 1.0,
            predicted: None,
            same: true,
            costs: None,
            paired_plain: None,
            policy: None,
            agreement: None,
            perplexity: None,
            gap: None,
        }
    }

    /// A speculative run `s` (and its paired plain tok/s) against the prompt's `plain` run.
    fn speculative(
        prompt: &'static str,
        (mode, k): (DraftMode, KPolicy),
        (s, partner): (&RunSummary, Option<f64>),
        plain: &RunSummary,
    ) -> Self {
        let p = s
            .spec
            .as_ref()
            .unwrap_or_else(|| unreachable!("a speculative run"));
        let spec_s = (p.draft_time + p.verify_time).as_secs_f64();
        let costs = (
            p.expected_tokens,
            spec_s,
            p.plain_steps,
            p.plain_time.as_secs_f64(),
        );
        // Theory against the plain run's step time (the run's own plain steps are few).
        let plain_step = 1.0 / plain.decode_tok_s.max(1e-9);
        let predicted = theory::run_speedup(costs.0, costs.1, costs.2, costs.3, plain_step);
        Self {
            prompt,
            mode,
            k: Some(k),
            tok_s: s.decode_tok_s,
            acceptance: Some(p.acceptance_rate),
            mean_len: Some(p.mean_accepted_len),
            speedup: s.decode_tok_s / plain.decode_tok_s.max(1e-9),
            predicted: Some(predicted),
            same: s.text == plain.text,
            costs: Some(costs),
            paired_plain: partner,
            policy: None,
            agreement: None,
            perplexity: None,
            gap: p.logp_gap,
        }
    }

    fn policy_text(&self) -> String {
        match (self.k, self.policy) {
            (None, _) => "-".into(),
            (Some(_), None) => "lossless".into(),
            (Some(_), Some(p)) => p.to_string(),
        }
    }

    /// Whether the text is plain greedy decoding's, or for a lossy rule how far it agrees.
    fn fidelity(&self) -> String {
        match (self.policy, self.agreement) {
            (Some(_), Some((lead, share))) => {
                format!(
                    "first {lead} tokens equal, {:.0}% of positions",
                    share * 100.0
                )
            }
            _ => (if self.same { "yes" } else { "NO" }).into(),
        }
    }

    fn k_text(&self) -> String {
        self.k.map_or("-".into(), |k| k.to_string())
    }

    fn say(&self) {
        eprintln!(
            "  {} K {} {}: {:.2} tok/s {:.2}× (theory {}) acceptance {:.0}% same {}",
            self.mode,
            self.k_text(),
            self.policy_text(),
            self.tok_s,
            self.speedup,
            self.predicted.map_or("-".into(), |p| format!("{p:.2}×")),
            self.acceptance.unwrap_or(0.0) * 100.0,
            self.same
        );
    }
}

/// The target, the draft model between its runs, and what adaptive K learnt per mode.
struct Bench<'a> {
    args: &'a BenchSpecArgs,
    target: Engine,
    draft_model: Option<Engine>,
    learnt: HashMap<DraftMode, Controller>,
    params: GenParams,
}

pub fn run(spec: &str, args: &BenchSpecArgs) -> Result<()> {
    super::print_stamp(None, false);
    let mut bench = Bench::open(spec, args)?;
    let mut rows = Vec::new();
    for &(name, prompt) in PROMPTS.iter().take(args.prompts.min(PROMPTS.len())) {
        bench.prompt(name, prompt, &mut rows)?;
    }
    print!("{}", table(&rows).markdown());
    if let Some(t) = controllers_table(&rows) {
        println!(
            "\nK controllers against the best fixed K and plain decoding, per prompt and mode:\n"
        );
        print!("{}", t.markdown());
    }
    if let Some(dir) = &args.charts {
        for f in fidelity_chart(dir, &rows)? {
            eprintln!("wrote {}", f.display());
        }
    }
    if rows.iter().any(|r| !r.same && r.policy.is_none()) {
        anyhow::bail!("a lossless speculative run's text differs from plain greedy decoding");
    }
    Ok(())
}

impl<'a> Bench<'a> {
    /// The target, the draft model when a mode needs it, and a warm-up run.
    fn open(spec: &str, args: &'a BenchSpecArgs) -> Result<Self> {
        let device = Device::Cpu;
        let mut target = Engine::open(spec, &device, |_, _| {})?;
        let draft_model = if args.modes.contains(&DraftMode::DraftModel) {
            let d = pick::open_draft(&target, args.draft_model.as_deref(), &device)?;
            eprintln!("draft model: {}", d.info.name);
            Some(d)
        } else {
            None
        };
        let params = GenParams {
            max_tokens: args.tokens,
            ignore_eos: true,
            ..GenParams::default()
        };
        eprintln!(
            "target {} · {} tokens per run · greedy · {} threads",
            target.info.name,
            args.tokens,
            crate::engine::threads()
        );
        // Warm-up: page the weights in and settle the thread pool.
        let warm = GenParams {
            max_tokens: 8,
            ..params.clone()
        };
        run_plain(&mut target, PROMPTS[0].1, &warm)?;
        Ok(Self {
            args,
            target,
            draft_model,
            learnt: HashMap::new(),
            params,
        })
    }

    /// The rows of one prompt: plain, then each mode at each K.
    fn prompt(&mut self, name: &'static str, prompt: &str, rows: &mut Vec<Row>) -> Result<()> {
        let plain = run_plain(&mut self.target, prompt, &self.params)?;
        eprintln!("{name}: plain {:.2} tok/s", plain.decode_tok_s);
        let first_row = rows.len();
        let mut first = Row::plain(name, &plain);
        first.perplexity = self.perplexity(prompt, &plain.text).ok();
        rows.push(first);
        for &mode in &self.args.modes {
            if mode == DraftMode::None {
                continue;
            }
            for &k in &self.args.ks {
                for policy in self.args.policies.iter().map(|p| Acceptance::of_policy(*p)) {
                    let run = self.median_pair((mode, k, policy), prompt, &plain)?;
                    let mut row = Row::speculative(name, (mode, k), (&run.0, run.1), &plain);
                    row.policy = policy;
                    row.agreement = policy.map(|_| self.agreement(&plain.text, &run.0.text));
                    if policy.is_some() || self.args.eval_perplexity {
                        row.perplexity = self.perplexity(prompt, &run.0.text).ok();
                    }
                    row.say();
                    rows.push(row);
                }
            }
        }
        // This machine drifts by several percent over minutes: the baseline is the mean of a
        // plain run before and one after the prompt's speculative runs.
        let after = run_plain(&mut self.target, prompt, &self.params)?;
        let base = (plain.decode_tok_s + after.decode_tok_s) / 2.0;
        eprintln!(
            "{name}: plain again {:.2} tok/s, baseline {base:.2}",
            after.decode_tok_s
        );
        rebase(&mut rows[first_row..], base);
        Ok(())
    }

    /// How far `text` agrees with `plain`, token by token (by the target's tokenizer): the
    /// tokens equal before the first difference, and the share of positions equal.
    fn agreement(&self, plain: &str, text: &str) -> (usize, f64) {
        let ids = |t: &str| self.target.tokenizer.encode(t).unwrap_or_default();
        let (a, b) = (ids(plain), ids(text));
        let lead = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let equal = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        (lead, equal as f64 / a.len().max(b.len()).max(1) as f64)
    }

    /// The perplexity of `text` under the target after `prompt` (as the run saw it): exp of the
    /// mean negative log-likelihood of its tokens, by the target's tokenizer.
    fn perplexity(&self, prompt: &str, text: &str) -> Result<f64> {
        let mut ids = self.target.prompt_ids(prompt, self.params.raw)?;
        let first = ids.len();
        ids.extend(self.target.tokenizer.encode(text)?);
        let mut cache = self.target.model.new_cache(candle_core::DType::F32);
        let rows: Vec<Vec<f32>> = self
            .target
            .model
            .forward(&ids, &mut cache, crate::engine::Forward::ALL)?
            .to_vec2()?;
        let nll: f64 = (first.max(1) - 1..ids.len() - 1)
            .map(|i| -crate::engine::quality::log_softmax(&rows[i])[ids[i + 1] as usize] as f64)
            .sum();
        Ok((nll / (ids.len() - first).max(1) as f64).exp())
    }

    fn drafter(&mut self, mode: DraftMode) -> Result<Drafter> {
        let layers = self.args.draft_layers;
        let kind = match mode {
            DraftMode::Medusa => Some(HeadKind::Medusa),
            DraftMode::Eagle => Some(HeadKind::Eagle),
            _ => None,
        };
        if let Some(kind) = kind {
            let path = self.args.draft_heads.as_deref().map(|p| {
                let p = std::path::Path::new(p);
                match p.is_dir() {
                    true => p.join(heads_file(&self.target.info.source, kind)),
                    false => p.to_path_buf(),
                }
            });
            let path = path.map(|p| p.display().to_string());
            return Ok(pick::open_heads(
                &self.target,
                kind,
                path.as_deref(),
                &Device::Cpu,
            )?);
        }
        Ok(match Drafter::for_mode(mode, &self.target.model, layers) {
            Some(drafter) => drafter,
            None => {
                let d = self.draft_model.take().expect("the draft model");
                Drafter::draft_model(&self.target, d)?
            }
        })
    }

    /// Each run of `mode` at `k`, and with pairs its plain partner right after it; the median
    /// pair.
    fn median_pair(
        &mut self,
        (mode, k, policy): (DraftMode, KPolicy, Option<Acceptance>),
        prompt: &str,
        plain: &RunSummary,
    ) -> Result<(RunSummary, Option<f64>)> {
        let mut speculator = Speculator::new(self.drafter(mode)?, k);
        speculator.policy = policy;
        speculator.tree = self.args.medusa_tree;
        // Adaptive K keeps what it learnt from prompt to prompt, as in a dashboard
        // session; fixed K starts afresh.
        if let (KPolicy::Adaptive, Some(c)) = (k, self.learnt.get(&mode)) {
            speculator.controller = c.clone();
        }
        let (target, params) = (&mut self.target, &self.params);
        let mut runs = Vec::new();
        for _ in 0..self.args.pairs {
            let s = speculative(target, &mut speculator, prompt, params)?;
            let partner = if self.args.pairs > 1 {
                Some(run_plain(target, prompt, params)?.decode_tok_s)
            } else {
                None
            };
            runs.push((s, partner));
        }
        let ratio = |r: &(RunSummary, Option<f64>)| {
            r.0.decode_tok_s / r.1.unwrap_or(plain.decode_tok_s).max(1e-9)
        };
        runs.sort_by(|a, b| ratio(a).total_cmp(&ratio(b)));
        if k == KPolicy::Adaptive {
            self.learnt.insert(mode, speculator.controller.clone());
        }
        if let Drafter::DraftModel { engine, .. } = speculator.drafter {
            self.draft_model = Some(*engine);
        }
        Ok(runs.swap_remove(runs.len() / 2))
    }
}

/// The file name trained heads of `kind` for the model at `source` go by.
fn heads_file(source: &str, kind: HeadKind) -> std::ffi::OsString {
    let p = crate::engine::heads::file::default_path(source, kind);
    p.file_name().map(|n| n.to_os_string()).unwrap_or_default()
}

/// Speedups and theory against the prompt's baseline `base` tok/s (or each row's pair).
fn rebase(rows: &mut [Row], base: f64) {
    for r in rows.iter_mut() {
        let base = r.paired_plain.unwrap_or(base);
        r.speedup = r.tok_s / base.max(1e-9);
        r.predicted = r
            .costs
            .map(|(e, spec_s, n, plain_s)| theory::run_speedup(e, spec_s, n, plain_s, 1.0 / base));
    }
    rows[0].tok_s = base;
}

#[derive(Debug, Args)]
pub struct BenchSpecArgs {
    /// Tokens each run generates.
    #[arg(long, default_value_t = 96, value_parser = args::count(1, MAX_TOKENS))]
    pub tokens: usize,
    /// Draft modes to measure.
    #[arg(long, value_delimiter = ',', value_parser = crate::app::args::setting::<DraftMode>(),
          default_values = ["draft-model", "prompt-lookup", "layer-skip"])]
    pub modes: Vec<DraftMode>,
    /// Ks to measure (`auto` for adaptive).
    #[arg(long, value_delimiter = ',', value_parser = KPolicy::parse,
          default_values = ["2", "4", "8", "auto"])]
    pub ks: Vec<KPolicy>,
    /// How many of the built-in prompts to run (at most 6).
    #[arg(long, default_value_t = PROMPTS.len(), value_parser = args::count(1, PROMPTS.len() as u64))]
    pub prompts: usize,
    /// The draft model (default: the largest smaller GGUF beside the target with its tokenizer).
    #[arg(long)]
    pub draft_model: Option<String>,
    /// The trained heads for the medusa and eagle modes: a file (with one of those modes), or a
    /// folder holding MODEL.medusa.safetensors and MODEL.eagle.safetensors (default: beside the
    /// model).
    #[arg(long, value_name = "FILE|DIR")]
    pub draft_heads: Option<String>,
    /// Layers of the layer-skip draft (default: half).
    #[arg(long, value_parser = args::count(1, crate::engine::config::MAX_LAYERS))]
    pub draft_layers: Option<usize>,
    /// Runs of each mode and K, each paired with a plain run of the prompt right after it; the
    /// row is the run with the median speedup over its pair (robust to a machine whose speed
    /// drifts). With 1, each speedup is against a plain run before and after the prompt's runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub pairs: u32,
    /// Acceptance rules to measure: `lossless` (greedy match), and the lossy `tau=P` (keep a
    /// draft the target gives at least P), `topk=K` (among its K likeliest) and `typical=E`
    /// (Medusa's typical acceptance). A lossy rule's text is compared with plain decoding's.
    #[arg(long, value_delimiter = ',', value_parser = crate::protocol::AcceptPolicy::parse,
          default_values = ["lossless"])]
    pub policies: Vec<crate::protocol::AcceptPolicy>,
    /// The perplexity of every row's output under the target (without it, of plain decoding's
    /// and of lossy rules' outputs only: a lossless rule's output is plain decoding's).
    #[arg(long)]
    pub eval_perplexity: bool,
    /// Medusa verifies its static tree of candidates (15 nodes, each head's three likeliest)
    /// in one pass instead of one chain.
    #[arg(long)]
    pub medusa_tree: bool,
    /// Write the policies' speed-against-fidelity chart (PNG and SVG) into this folder.
    #[arg(long)]
    pub charts: Option<std::path::PathBuf>,
}
