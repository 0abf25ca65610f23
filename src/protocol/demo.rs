//! A teaching demo on the wire: the preset's `demo` section that asks for one, and the
//! measurements it answers with ([`DemoRun`], carried by [`super::Event::Demo`], recorded, drawn
//! by the demo pane and written out as a report). Plain serde data; the demos themselves run in
//! `lab`.

pub use super::costs::ModelCosts;
pub use super::quant_row::QuantRow;
use super::sched::{Arrivals, SchedPolicy};
use super::settings::Quant;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The demos labtui knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoKind {
    PrefillVsDecode,
    KvCache,
    Roofline,
    Quantization,
    Speculation,
    Batching,
    PagedKv,
    Sensitivity,
    FlashAttention,
    DecodeRoofline,
    ServingMetrics,
}

impl DemoKind {
    pub const ALL: [DemoKind; 11] = [
        DemoKind::PrefillVsDecode,
        DemoKind::KvCache,
        DemoKind::Roofline,
        DemoKind::Quantization,
        DemoKind::Speculation,
        DemoKind::Batching,
        DemoKind::PagedKv,
        DemoKind::Sensitivity,
        DemoKind::FlashAttention,
        DemoKind::DecodeRoofline,
        DemoKind::ServingMetrics,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DemoKind::PrefillVsDecode => "prefill-vs-decode",
            DemoKind::KvCache => "kv-cache",
            DemoKind::Roofline => "roofline",
            DemoKind::Quantization => "quantization",
            DemoKind::Speculation => "speculation",
            DemoKind::Batching => "batching",
            DemoKind::PagedKv => "paged-kv",
            DemoKind::Sensitivity => "sensitivity",
            DemoKind::FlashAttention => "flash-attention",
            DemoKind::DecodeRoofline => "decode-roofline",
            DemoKind::ServingMetrics => "serving-metrics",
        }
    }

    /// Parse a demo name; the error lists the valid ones.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "demo {s:?} is not one of {}",
                    Self::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// A preset's `demo` section: which demo and its sweep; absent fields take the defaults in code.
/// The narration steps are the preset's `notes`, one per step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSection {
    /// prefill-vs-decode, kv-cache, roofline, speculation (quantization: not yet).
    pub kind: String,
    /// prefill-vs-decode: the prompt lengths to prefill (default 16, 64, 256, 1024).
    #[serde(default)]
    pub prompt_lengths: Vec<usize>,
    /// prefill-vs-decode: decode steps timed after each prompt length (default 16).
    #[serde(default)]
    pub decode_tokens: Option<usize>,
    /// Tokens generated: prefill-vs-decode's output-length run (default 256), kv-cache's
    /// generation (default 256), roofline's decode measurement (default 64), batching's decode
    /// steps per batch size (default 16).
    #[serde(default)]
    pub output_tokens: Option<usize>,
    /// kv-cache: recompute without the cache at every context length divisible by this
    /// (default 1: every step), and at the last step.
    #[serde(default)]
    pub no_cache_every: Option<usize>,
    /// roofline: the buffer streamed to measure memory bandwidth, in MiB (default 256).
    #[serde(default)]
    pub buffer_mib: Option<usize>,
    /// roofline: the prompt length of the prefill measurement and of the matmul shape (default
    /// 256); batching: each sequence's prompt in the batch sweep (default 32).
    #[serde(default)]
    pub prefill_tokens: Option<usize>,
    /// speculation: the Ks to run each draft mode at (default 2, 4, 8).
    #[serde(default)]
    pub ks: Vec<usize>,
    /// quantization: the weight types to visit, in order (default as loaded, F16, Q8_0, Q4_K,
    /// Q4_0, Q2_K).
    #[serde(default)]
    pub types: Vec<Quant>,
    /// quantization: tokens of the reference text each quality measurement runs (default 512).
    #[serde(default)]
    pub quality_tokens: Option<usize>,
    /// batching: the batch sizes of the sweep (default 1, 2, 4, 8, 16, 32).
    #[serde(default)]
    pub batches: Vec<usize>,
    /// batching and paged-kv: the request stream both sides run (default [`Arrivals::default`]).
    #[serde(default)]
    pub arrivals: Option<Arrivals>,
    /// batching and paged-kv: most requests running at once (default 8).
    #[serde(default)]
    pub max_batch: Option<usize>,
    /// paged-kv: the scarce KV-block budget of the preemption run (default: half the blocks the
    /// stream's peak held with enough of them).
    #[serde(default)]
    pub kv_blocks: Option<usize>,
    /// paged-kv: the server context limit the pre-paging baseline reserves per sequence
    /// (default 2048, as `--max-model-len`).
    #[serde(default)]
    pub max_model_len: Option<usize>,
    /// serving-metrics: the levels, shapes, policies, SLO and prices (defaults in
    /// [`super::serving::ServingPlan`]).
    #[serde(default)]
    pub serving: Option<super::serving::ServingPlan>,
}

impl DemoSection {
    pub fn new(kind: DemoKind) -> Self {
        Self {
            kind: kind.name().into(),
            ..Self::default()
        }
    }

    pub fn kind(&self) -> std::result::Result<DemoKind, String> {
        DemoKind::parse(&self.kind)
    }

    /// Check the values a person wrote; errors say which field and what is allowed.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.kind()?;
        if let Some(&bad) = self
            .prompt_lengths
            .iter()
            .find(|&&n| !(1..=32_768).contains(&n))
        {
            return Err(format!(
                "demo prompt_lengths: {bad} is out of range (1 to 32768)"
            ));
        }
        if let Some(&bad) = self.ks.iter().find(|&&k| !(1..=16).contains(&k)) {
            return Err(format!("demo ks: {bad} is out of range (1 to 16)"));
        }
        for (name, v, lo, hi) in [
            ("decode_tokens", self.decode_tokens, 1, 4096),
            ("output_tokens", self.output_tokens, 1, 32_768),
            ("no_cache_every", self.no_cache_every, 1, 4096),
            ("buffer_mib", self.buffer_mib, 16, 16_384),
            ("prefill_tokens", self.prefill_tokens, 1, 32_768),
            ("quality_tokens", self.quality_tokens, 16, 65_536),
            ("max_batch", self.max_batch, 1, 256),
            ("kv_blocks", self.kv_blocks, 1, 1 << 20),
            ("max_model_len", self.max_model_len, 1, 1 << 20),
        ] {
            if let Some(v) = v.filter(|v| !(lo..=hi).contains(v)) {
                return Err(format!("demo {name} = {v} is out of range ({lo} to {hi})"));
            }
        }
        if let Some(&bad) = self.batches.iter().find(|&&b| !(1..=256).contains(&b)) {
            return Err(format!("demo batches: {bad} is out of range (1 to 256)"));
        }
        if let Some(a) = &self.arrivals {
            a.validate().map_err(|e| format!("demo {e}"))?;
        }
        if let Some(s) = &self.serving {
            s.validate()?;
        }
        Ok(())
    }

    pub fn batches(&self) -> Vec<usize> {
        if self.batches.is_empty() {
            vec![1, 2, 4, 8, 16, 32]
        } else {
            self.batches.clone()
        }
    }

    pub fn arrivals(&self) -> Arrivals {
        self.arrivals.clone().unwrap_or_default()
    }

    pub fn max_model_len(&self) -> usize {
        self.max_model_len.unwrap_or(2048)
    }

    pub fn max_batch(&self) -> usize {
        self.max_batch.unwrap_or(8)
    }

    /// flash-attention: the prompt lengths (default 512, 2048, 8192, 16384).
    pub fn flash_lengths(&self) -> Vec<usize> {
        match self.prompt_lengths.is_empty() {
            true => vec![512, 2048, 8192, 16384],
            false => self.prompt_lengths.clone(),
        }
    }

    pub fn prompt_lengths(&self) -> Vec<usize> {
        if self.prompt_lengths.is_empty() {
            vec![16, 64, 256, 1024]
        } else {
            self.prompt_lengths.clone()
        }
    }

    pub fn output_tokens(&self, kind: DemoKind) -> usize {
        self.output_tokens.unwrap_or(match kind {
            DemoKind::Roofline => 64,
            DemoKind::Speculation => 96,
            DemoKind::Quantization | DemoKind::Sensitivity => 32,
            DemoKind::Batching => 16,
            _ => 256,
        })
    }
}

/// What a demo measured, by demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DemoResult {
    PrefillVsDecode(Sweep),
    KvCache(Comparison),
    Roofline(Roofline),
    Speculation(SpecSweep),
    Quantization(QuantSweep),
    Batching(Batching),
    PagedKv(PagedKv),
    Sensitivity(Box<super::sensitivity::SensDemo>),
    FlashAttention(super::flash::FlashAttention),
    DecodeRoofline(super::decode_roofline::DecodeRoofline),
    ServingMetrics(Box<super::serving::ServingMetrics>),
}

/// A finished demo: what ran, on what, and its numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoRun {
    pub demo: String,
    pub model: String,
    pub threads: usize,
    pub result: DemoResult,
    /// The machine, its roofs, the build and the date (absent in recordings made before stamps).
    #[serde(default)]
    pub stamp: Option<Box<super::Stamp>>,
    /// The model's shape and per-token costs (absent in recordings made before them).
    #[serde(default)]
    pub costs: Option<Box<ModelCosts>>,
}

/// One timed step: the tokens the pass attended to (its context) and how long it took.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepPoint {
    pub context: usize,
    pub step: Duration,
}

/// One prompt length: its prefill and the decode steps right after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptPoint {
    pub prompt_tokens: usize,
    pub prefill: Duration,
    pub prefill_tok_s: f64,
    /// Median decode step at this context.
    pub decode_step: Duration,
    pub decode_tok_s: f64,
}

/// One output length of the long run: where its time went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputPoint {
    pub output_tokens: usize,
    pub prefill: Duration,
    pub decode: Duration,
    /// decode ÷ (prefill + decode).
    pub decode_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub prompts: Vec<PromptPoint>,
    /// Every decode step of the long run: step time by context length.
    pub decode_curve: Vec<StepPoint>,
    pub outputs: Vec<OutputPoint>,
    /// Prompt lengths left out because they do not fit the model's context.
    pub skipped: Vec<usize>,
}

/// Cached against uncached at one context length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gap {
    pub context: usize,
    pub cached: Duration,
    pub no_cache: Duration,
    /// no_cache ÷ cached.
    pub ratio: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill: Duration,
    /// Every decode step with the cache.
    pub cached: Vec<StepPoint>,
    /// The steps recomputed without the cache (every `no_cache_every` context lengths, and the last).
    pub no_cache: Vec<StepPoint>,
    pub no_cache_every: usize,
    pub gaps: Vec<Gap>,
    /// Steps whose uncached pick was compared with the cached run's token, and the contexts
    /// where they differed.
    pub compared: usize,
    pub mismatches: Vec<usize>,
    /// Contexts where the picks differed on a near tie: the uncached logits of the two tokens
    /// within `lab::kv_cache::TIE` of the largest logit. Prefill and decode multiply in different orders
    /// (prefill as the reference engine does, decode batch-invariant), so their last bits
    /// differ and a tie can fall either way; that is rounding, not the cache.
    #[serde(default)]
    pub ties: Vec<usize>,
    pub kv_bytes_per_token: u64,
    /// Cache held at the end of the generation, and allocated for it.
    pub kv_bytes: u64,
    pub kv_reserved_bytes: u64,
    pub weight_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Roofline {
    pub threads: usize,
    /// The buffer streamed and the best read bandwidth over the passes (GB/s, 10⁹ bytes).
    pub buffer_bytes: u64,
    pub bandwidth_gb_s: f64,
    /// What a decode step streams (weights and KV) and the read bandwidth at that size: above
    /// when it fits in a cache, else the same as `bandwidth_gb_s`. The decode roof uses it.
    /// (Recordings from before it was measured read 0.)
    #[serde(default)]
    pub working_set_bytes: u64,
    #[serde(default)]
    pub working_set_gb_s: f64,
    /// `(m, k, n)` of the products timed: an f32 matmul and the model's own quantized FFN gate.
    pub matmul_shape: (usize, usize, usize),
    pub matmul_f32_gflop_s: f64,
    pub matmul_q_gflop_s: f64,
    /// The faster of the two: the compute roof.
    pub peak_gflop_s: f64,
    /// Weight bytes a decode step streams (a head tied to the embeddings counted once; untied
    /// embeddings are only looked up, not streamed).
    pub weight_bytes_read: u64,
    pub kv_bytes_per_token: u64,
    pub decode_context: usize,
    pub decode_bytes_per_token: f64,
    pub decode_flops_per_token: f64,
    pub decode_ceiling_tok_s: f64,
    pub decode_tok_s: f64,
    pub decode_ratio: f64,
    pub prefill_tokens: usize,
    pub prefill_flops_per_token: f64,
    pub prefill_ceiling_tok_s: f64,
    pub prefill_tok_s: f64,
    pub prefill_ratio: f64,
    /// FLOPs per byte read: the machine's balance point, decode's and prefill's.
    pub machine_balance: f64,
    pub decode_intensity: f64,
    pub prefill_intensity: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecPoint {
    pub mode: super::DraftMode,
    pub k: usize,
    pub decode_tok_s: f64,
    /// accepted ÷ drafted.
    pub acceptance: f64,
    /// Tokens per speculative step: 1 + accepted ÷ steps.
    pub mean_accepted_len: f64,
    /// decode tok/s over plain decode tok/s.
    pub speedup: f64,
    /// The generated text is plain greedy decoding's.
    pub same_text: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecSweep {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    /// Plain decode tok/s: the mean of a run before the sweep and one after.
    pub plain_tok_s: f64,
    pub points: Vec<SpecPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantSweep {
    pub prefill_tokens: usize,
    pub decode_tokens: usize,
    /// Positions of the reference text scored for quality.
    pub scored: usize,
    pub rows: Vec<QuantRow>,
    /// Types this backend cannot run, with the reason.
    pub refused: Vec<(String, String)>,
    /// Parameters in the matmuls a decode step runs (layers and head): bits per weight are
    /// 8 × bytes read ÷ this (0 in recordings made before it).
    #[serde(default)]
    pub matmul_params: u64,
}

/// One batch size of the batching sweep: B sequences decoding together, one row each per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchPoint {
    pub batch: usize,
    /// Mean decode step: each sequence's time between tokens.
    pub step: Duration,
    /// B × steps ÷ their time.
    pub decode_tok_s: f64,
    pub prefill_tok_s: f64,
}

/// One scheduling policy on the demo's request stream. Times run on the stream's clock: arrivals
/// as drawn, each step as long as it measured (idle gaps skipped, not slept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyPoint {
    pub policy: SchedPolicy,
    pub requests: usize,
    pub generated_tokens: usize,
    pub steps: u64,
    /// First arrival to last finish.
    pub makespan: Duration,
    /// generated tokens ÷ makespan.
    pub tok_s: f64,
    pub ttft_mean: Duration,
    pub ttft_p99: Duration,
    pub e2e_mean: Duration,
    pub e2e_p99: Duration,
    /// Requests a step ran, on average (decode rows and prefill chunks).
    pub mean_batch: f64,
    pub preemptions: usize,
}

/// The batching demo: the batch sweep, then static against continuous on one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batching {
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    pub sweep: Vec<BatchPoint>,
    pub arrivals: Arrivals,
    pub max_batch: usize,
    pub policies: Vec<PolicyPoint>,
    /// Every request generated the same tokens under both policies.
    pub same_tokens: bool,
}

/// KV memory after one step, in tokens (× `kv_bytes_per_token` for bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvPoint {
    pub step: u64,
    pub running: usize,
    /// Tokens the running sequences hold.
    pub used: usize,
    /// Held in 16-token blocks (used + each sequence's last block's slack).
    pub paged: usize,
    /// Reserved if each running sequence had its exact final length (prompt + the tokens it
    /// generates) allocated contiguously at admission: the kindest contiguous baseline, which
    /// needs the answer's length in advance.
    pub contiguous: usize,
    /// The running sequences' prompt tokens: with `running`, what the other contiguous
    /// baselines reserve (the client's `max_tokens` cap, the server's context limit).
    #[serde(default)]
    pub prompts: usize,
}

/// One run of the stream under a KV-block budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BudgetRun {
    pub kv_blocks: usize,
    pub steps: u64,
    pub makespan: Duration,
    pub tok_s: f64,
    pub preemptions: usize,
    /// Tokens computed again after preemptions.
    pub recomputed_tokens: usize,
    pub mean_running: f64,
    pub peak_blocks: usize,
    /// The steps' own time (the makespan less idle gaps), and the part of it spent recomputing
    /// preempted tokens (each step's time shared by its rows).
    #[serde(default)]
    pub busy: Duration,
    #[serde(default)]
    pub recompute: Duration,
}

impl BudgetRun {
    /// Mean time of a step.
    pub fn step_mean(&self) -> Duration {
        self.busy / (self.steps.max(1) as u32)
    }
}

/// The paged-KV demo: contiguous against paged reservation on one stream, then the same stream
/// with too few blocks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagedKv {
    pub arrivals: Arrivals,
    pub max_batch: usize,
    pub block_tokens: usize,
    pub kv_bytes_per_token: u64,
    /// Every step of the run with enough blocks.
    pub points: Vec<KvPoint>,
    pub ample: BudgetRun,
    pub scarce: BudgetRun,
    /// The sequences contiguous allocation of each one's maximum length fits in the scarce budget
    /// at once (at the stream's mean maximum length).
    pub contiguous_fit: f64,
    /// The scarce run generated the same tokens as the ample one (preemption recomputes exactly).
    pub same_tokens: bool,
    /// The server's context limit the pre-paging baseline reserves for every sequence
    /// (`max_model_len`), and the `max_tokens` each request's client sent (each stops earlier,
    /// at its own length, as at an end-of-sequence token).
    #[serde(default)]
    pub max_model_len: usize,
    #[serde(default)]
    pub max_tokens_cap: usize,
}

/// 1 − used ÷ reserved (0 when nothing was reserved).
fn waste(used: u64, reserved: u64) -> f64 {
    if reserved == 0 {
        0.0
    } else {
        1.0 - used as f64 / reserved as f64
    }
}

impl PagedKv {
    /// Sums over the steps: (used, paged, contiguous) token-steps.
    pub fn totals(&self) -> (u64, u64, u64) {
        self.points.iter().fold((0, 0, 0), |(u, p, c), k| {
            (
                u + k.used as u64,
                p + k.paged as u64,
                c + k.contiguous as u64,
            )
        })
    }

    /// The share of reserved memory no token uses, over all steps: (paged, contiguous).
    pub fn waste(&self) -> (f64, f64) {
        let (u, p, c) = self.totals();
        (waste(u, p), waste(u, c))
    }

    /// Token-steps reserved by the two coarser contiguous baselines: (each request's
    /// `max_tokens` cap, the server's context limit per sequence).
    pub fn coarse_totals(&self) -> (u64, u64) {
        self.points.iter().fold((0, 0), |(cap, ctx), k| {
            (
                cap + (k.prompts + k.running * self.max_tokens_cap) as u64,
                ctx + (k.running * self.max_model_len) as u64,
            )
        })
    }

    /// The share of reserved memory no token uses under the coarse baselines: (cap, context).
    pub fn coarse_waste(&self) -> (f64, f64) {
        let (u, _, _) = self.totals();
        let (cap, ctx) = self.coarse_totals();
        (waste(u, cap), waste(u, ctx))
    }

    /// The most tokens held and reserved at any step: (used, paged, contiguous).
    pub fn peaks(&self) -> (usize, usize, usize) {
        self.points.iter().fold((0, 0, 0), |(u, p, c), k| {
            (u.max(k.used), p.max(k.paged), c.max(k.contiguous))
        })
    }
}
