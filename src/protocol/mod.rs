//! The only types that cross threads: [`Command`] to the worker and [`Event`] from it.
//!
//! Plain serde data (integers, `Duration`, `String`), never a tensor, an `Instant` or a channel, so
//! the same stream is drawn live, written to RON and replayed.

pub mod costs;
pub mod decode_roofline;
pub mod demo;
pub mod flash;
pub mod machine;
pub mod notice;
pub mod params;
pub mod policy;
pub mod quant_row;
pub mod race;
pub mod sched;
pub mod scraped;
pub mod sensitivity;
pub mod serve;
pub mod serving;
pub mod settings;
mod stamp;

pub use demo::{DemoKind, DemoResult, DemoRun, DemoSection};
pub use machine::{Machine, Stamp};
pub use notice::{Job, Notice, Unserved};
pub use policy::AcceptPolicy;
pub use sched::{Arrivals, SchedEvent, SchedPolicy, StreamSpec};
pub use scraped::{Rates, ServerEngine, ServerSample, MAX_SPEC_POSITIONS};
pub use settings::{
    Applies, DraftMode, KPolicy, KvDtype, Quant, Setting, SettingChange, Settings, DEFAULT_K, K_MAX,
};
pub use stamp::Stamper;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Sampling and stopping parameters of one generation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenParams {
    /// Most tokens to generate (the first one, produced by prefill, included).
    pub max_tokens: usize,
    /// 0 means greedy (argmax).
    pub temperature: f32,
    pub top_k: Option<usize>,
    pub top_p: Option<f32>,
    pub seed: u64,
    /// Send the prompt as is, without the model's chat template.
    pub raw: bool,
    /// Keep going past end-of-sequence tokens (fixed-length benchmarks).
    pub ignore_eos: bool,
}

impl Default for GenParams {
    fn default() -> Self {
        Self {
            max_tokens: 128,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 42,
            raw: false,
            ignore_eos: false,
        }
    }
}

/// Messages to the worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    /// Load a model: a path, a file name in the models directory, `hf:owner/repo/file.gguf`, or `synthetic`.
    LoadModel {
        spec: String,
    },
    Generate {
        prompt: String,
        params: GenParams,
    },
    /// Stop the current generation; it takes effect before the next token.
    Stop,
    /// Change a setting; the worker answers with a notice saying when it takes effect.
    Set(SettingChange),
    /// Measure the active variant's quality: perplexity on the reference text, and KL divergence
    /// and top-1 agreement against the loaded weights, over `tokens` tokens of the text.
    MeasureQuality {
        tokens: usize,
    },
    /// Run a teaching demo on the loaded model; `prompt` is the text its generation starts from.
    RunDemo {
        demo: Box<DemoSection>,
        prompt: String,
    },
    /// Run a simulated request stream on the batching scheduler, paced in real time; each
    /// decision comes back as an [`Event::Sched`]. `Stop` cancels what is left.
    RunStream {
        stream: Box<StreamSpec>,
    },
    /// Run `prompt` as `batch` sequences at once on the batching scheduler (copy `i` sampled
    /// with seed `params.seed + i`), paced live; each decision comes back as an
    /// [`Event::Sched`], and an [`Event::BatchDone`] sums the run up. `Stop` cancels it.
    RunBatch {
        prompt: String,
        params: GenParams,
        batch: usize,
    },
    /// Race `prompt` under two configurations, one step of each in turn (see
    /// [`race::RaceEvent`]). `Stop` ends both.
    Race {
        prompt: String,
        params: GenParams,
        a: race::RaceConfig,
        b: race::RaceConfig,
    },
    /// End the worker thread.
    Shutdown,
}

/// One event and the time since the session started, stamped by the worker where it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamped {
    pub at: Duration,
    pub event: Event,
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Phase {
    /// Sampled from the logits of the prefill pass.
    Prefill,
    /// Sampled from a one-token decode step.
    Decode,
    /// A drafted token the target accepted in a speculative step.
    Draft,
    /// The target's own token after a rejected draft.
    Correction,
    /// The target's extra token after every draft of a step was accepted.
    Bonus,
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FinishReason {
    /// The model produced an end-of-sequence token.
    Eos,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The context window is full.
    ContextFull,
    /// The user asked to stop.
    Stopped,
}

/// Bytes and count of the weights of one GGML type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightTypeStat {
    pub tensors: usize,
    pub bytes: u64,
}

/// What the worker knows of a loaded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub name: String,
    pub source: String,
    pub arch: String,
    pub parameters: u64,
    pub file_bytes: u64,
    /// Bytes of weights held in memory.
    pub weight_bytes: u64,
    /// GGML type name → count and bytes.
    pub weight_types: BTreeMap<String, WeightTypeStat>,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub vocab: usize,
    pub context_length: usize,
    pub kv_dtype: KvDtype,
    pub kv_bytes_per_token: u64,
    pub device: String,
    pub threads: usize,
    pub load_time: Duration,
    /// Layers that attend within a sliding window, and the window: they keep only its last
    /// positions in the KV cache (absent in recordings made before they did).
    #[serde(default)]
    pub sliding: Option<SlidingLayers>,
}

/// A model's sliding-window layers, for the KV pane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlidingLayers {
    /// How many of the model's layers slide.
    pub layers: usize,
    /// Positions each sees.
    pub window: usize,
    /// Positions each keeps at most beyond the window (the slack for rollbacks, block
    /// rounding, and one prefill chunk while a prompt runs).
    pub kept_beyond: usize,
}

/// The architecture a server's model is shown under: its shape is the server's, not known here.
pub const REMOTE_ARCH: &str = "remote";

impl ModelInfo {
    /// A model served elsewhere (`--endpoint`): what the server did not say is 0.
    pub fn is_remote(&self) -> bool {
        self.arch == REMOTE_ARCH
    }
}

/// The settings a run started with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    pub params: GenParams,
    pub quantization: Quant,
    pub draft_mode: DraftMode,
    pub k: KPolicy,
    /// The acceptance policy the run verified by (lossless in recordings made before it was
    /// kept).
    #[serde(default)]
    pub policy: AcceptPolicy,
}

/// The paged KV cache's blocks (each `block_tokens` token slots) after a step: held by the run's
/// sequence, and free in its pool. Sent when either count changes, so once per block, not per token;
/// the held slots past the tokens held are the last block's slack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvBlocks {
    pub block_tokens: usize,
    pub held: usize,
    pub free: usize,
}

impl KvBlocks {
    /// Slots held but empty when the cache holds `tokens` tokens.
    pub fn slack(&self, tokens: usize) -> usize {
        self.held
            .saturating_mul(self.block_tokens)
            .saturating_sub(tokens)
    }
}

/// One generated token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenEvent {
    /// 0 for the first generated token.
    pub index: usize,
    pub id: u32,
    /// The text this token adds (may be empty while a UTF-8 character is incomplete).
    pub text: String,
    pub phase: Phase,
    /// Probability the sampler gave this token.
    pub prob: f32,
    /// Time since the run started.
    pub elapsed: Duration,
    /// Wall time of the forward pass and sampling that produced this token.
    pub step: Duration,
    pub kv_tokens: usize,
    pub kv_bytes: u64,
}

/// Process and machine memory, sampled beside the worker a few times a second.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemSample {
    pub process_rss: u64,
    /// Live heap bytes (allocated, not yet freed) as counted by labtui's allocator; 0 in
    /// recordings made before it was counted, and from remote servers.
    #[serde(default)]
    pub heap_live: u64,
    pub system_used: u64,
    pub system_total: u64,
    pub cpu_percent: f32,
    /// Present only when an NVIDIA GPU answers through NVML.
    pub gpu: Option<GpuSample>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuSample {
    pub name: String,
    pub used: u64,
    pub total: u64,
    /// This process's share, when the driver reports it.
    pub process_used: Option<u64>,
}

/// The numbers of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub reason: FinishReason,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub ttft: Duration,
    pub prefill: Duration,
    pub prefill_tok_s: f64,
    pub decode: Duration,
    pub decode_tok_s: f64,
    pub itl_p50: Duration,
    pub itl_p90: Duration,
    pub itl_p99: Duration,
    pub end_to_end: Duration,
    pub kv_tokens: usize,
    pub kv_bytes: u64,
    pub text: String,
    /// Speculative decoding's numbers, when the run speculated.
    #[serde(default)]
    pub spec: Option<SpecSummary>,
}

/// One speculative step: what was drafted, what the target kept, and what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecStep {
    pub run: u64,
    /// K asked for this step (drafts may be fewer: lookup finds no match, the context ends).
    pub k: usize,
    pub drafted: Vec<u32>,
    /// The text of each drafted token (rejected ones are shown struck out).
    pub drafted_text: Vec<String>,
    pub accepted: usize,
    /// The target's token after the accepted drafts (correction or bonus).
    pub token: u32,
    /// Time spent drafting and verifying.
    pub draft: Duration,
    pub verify: Duration,
    /// Plain decode speed against speculative speed in this run so far, and what theory predicts
    /// from the measured per-position acceptance and costs.
    pub live_speedup: Option<f64>,
    pub predicted_speedup: Option<f64>,
    /// The run's plain steps so far and their time: the baseline both speedups are against
    /// (absent from recordings made before they were sent).
    #[serde(default)]
    pub plain_steps: usize,
    #[serde(default)]
    pub plain_time: Duration,
}

/// K as [`KPolicy`] writes it (a number, 0 for auto), or as text (`"4"`, `"auto"`), which some
/// recordings hold.
fn k_number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<KPolicy, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Number(KPolicy),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::Number(k) => Ok(k),
        Either::Text(s) => KPolicy::parse(&s).map_err(serde::de::Error::custom),
    }
}

/// Speculation over a whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpecSummary {
    pub mode: DraftMode,
    /// K as set.
    #[serde(deserialize_with = "k_number_or_text")]
    pub k: KPolicy,
    /// Speculative steps and plain steps (baseline probes, no draft found, or adaptive K off).
    pub steps: usize,
    pub plain_steps: usize,
    pub drafted: usize,
    pub accepted: usize,
    /// accepted ÷ drafted.
    pub acceptance_rate: f64,
    /// 1 + accepted ÷ steps.
    pub mean_accepted_len: f64,
    /// Acceptance of draft position i + 1 given every earlier one was accepted.
    pub per_position: Vec<f64>,
    /// Steps that accepted 0, 1, 2, … drafts.
    pub accepted_hist: Vec<usize>,
    pub draft_time: Duration,
    pub verify_time: Duration,
    /// Mean time of a plain decode step in this run, and all plain steps' time.
    pub plain_step: Duration,
    #[serde(default)]
    pub plain_time: Duration,
    /// Tokens theory expects from the speculative steps, at the measured per-position acceptance.
    #[serde(default)]
    pub expected_tokens: f64,
    /// Plain seconds per token over the run's seconds per decoded token.
    pub speedup: f64,
    pub predicted_speedup: f64,
    /// Under a lossy rule: the mean, over the drafts it kept, of log p(the target's own choice)
    /// − log p(the draft), in nats, under the target at that position: what the rule gives up
    /// per kept token (0 where the draft was the target's choice). `None` for lossless runs.
    #[serde(default)]
    pub logp_gap: Option<f64>,
}

/// A request stream's end: requests, tokens generated, the time from the first arrival to the
/// last token, preemptions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamDone {
    pub requests: usize,
    pub tokens: usize,
    pub took: Duration,
    pub preemptions: usize,
}

/// A batch run's end: `batch` copies of one prompt, tokens generated by all, how many of the
/// continuations differ, and the first copy's text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchDone {
    pub batch: usize,
    pub tokens: usize,
    pub took: Duration,
    pub distinct: usize,
    pub first: String,
}

impl BatchDone {
    /// Tokens per second over all copies.
    pub fn tok_s(&self) -> f64 {
        self.tokens as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// Tensors of one variant that could not take the type asked for, and what they took instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    pub wanted: String,
    pub used: String,
    pub tensors: usize,
    /// Why, e.g. "rows of 896 values are not a multiple of 256".
    pub why: String,
}

/// The weights and KV cache the engine runs with after a switch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    pub quant: Quant,
    pub kv_dtype: KvDtype,
    /// Bytes of the weights the model runs with, and by GGML type.
    pub weight_bytes: u64,
    pub weight_types: BTreeMap<String, WeightTypeStat>,
    pub fallbacks: Vec<Fallback>,
    /// Bytes of the loaded weights kept beside a variant to switch back to (0 when running them).
    pub kept_bytes: u64,
    pub kv_bytes_per_token: u64,
    /// Time the switch took (dequantize and quantize every matrix).
    pub took: Duration,
    /// A mixed-precision variant's label (`quant` is then "as loaded" for the matrices it
    /// leaves alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
}

/// A variant's quality on the reference text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quality {
    pub quant: Quant,
    pub kv_dtype: KvDtype,
    /// Positions scored (each predicts the next token of the text).
    pub scored: usize,
    pub perplexity: f64,
    /// Mean KL divergence of the next-token distribution from the loaded weights' (nats).
    pub mean_kl: f64,
    /// Share of positions whose most likely token is the loaded weights' one.
    pub top1: f64,
    pub took: Duration,
    /// A mixed-precision variant's label, when one was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<String>,
}

/// Messages from the worker (and the samplers beside it: system memory, a server's metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    ModelLoading {
        spec: String,
    },
    /// Download or read progress while loading, in bytes.
    LoadProgress {
        done: u64,
        total: u64,
    },
    ModelLoaded(ModelInfo),
    /// Requantising: `done` of `total` matrices.
    Requantizing {
        quant: Quant,
        done: usize,
        total: usize,
    },
    /// A quantization or KV dtype switch took effect.
    VariantReady(Variant),
    /// A quality measurement finished.
    Quality(Quality),
    RunStarted {
        run: u64,
        prompt_tokens: usize,
        settings: RunSettings,
        /// The prompt as the user wrote it (empty for token-id prompts).
        #[serde(default)]
        prompt: String,
    },
    PrefillDone {
        run: u64,
        tokens: usize,
        duration: Duration,
    },
    Token(TokenEvent),
    /// The run's KV blocks changed (after the token that changed them).
    KvBlocks {
        run: u64,
        blocks: KvBlocks,
    },
    /// Sent before the tokens of the speculative step it describes.
    SpecStep(SpecStep),
    System(SystemSample),
    RunFinished {
        run: u64,
        summary: RunSummary,
    },
    /// Something the worker did or decided (a setting taken, a job stopped, …).
    Note(Notice),
    /// A notice in words of its own: a demo's progress, the scraper's, older recordings'.
    Notice {
        message: String,
    },
    /// A simulated request stream ran to its end.
    StreamDone(StreamDone),
    /// A batch run ran to its end.
    BatchDone(BatchDone),
    /// Something went wrong; the message says what to do.
    Error {
        message: String,
    },
    /// A teaching demo finished: its measurements.
    Demo(DemoRun),
    /// A scrape of a served model's `/metrics` (the serving lab), stamped on the session's clock.
    Server(ServerSample),
    /// A serving benchmark's progress: levels, requests sent and ended, level results.
    Serve(serve::ServeEvent),
    /// A decision of the batching scheduler (a simulated request stream's, or a server's).
    Sched(SchedEvent),
    /// A layer-wise sensitivity sweep's plan, each cell as it is measured, its end.
    Sensitivity(sensitivity::SensEvent),
    /// An A/B race's start, its sides' run events and its summary.
    Race(race::RaceEvent),
}

/// `text` on one line (runs of whitespace become one space), at most `max` characters (an
/// ellipsis marks a cut).
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((i, _)) = out.char_indices().nth(max) {
        out.truncate(i);
        out.push('…');
    }
    out
}

/// The text of a panic's payload (what `panic!` was given).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
