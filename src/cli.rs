//! Command-line interface.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "labtui",
    version,
    about = "An LLM inference lab in the terminal: see where the time and the memory go"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    /// Model: a .gguf path, a file name in the models directory, hf:OWNER/REPO/FILE.gguf, or `synthetic`.
    #[arg(long, short, global = true)]
    pub model: Option<String>,
    /// Prompt to open the dashboard with.
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// A preset: a name in presets/ ($LABTUI_PRESETS) or a path to a preset RON file.
    #[arg(long, global = true)]
    pub preset: Option<String>,
    /// Record the session to this RON file (in the dashboard, R starts and stops recording).
    #[arg(long, global = true)]
    pub record: Option<std::path::PathBuf>,
    /// CPU threads for the engine (default: physical cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Generate text headless: the text to stdout, a summary line to stderr.
    Generate(GenerateArgs),
    /// Show how text becomes tokens: ids and pieces (special tokens parsed, no BOS added).
    Tokenize(TokenizeArgs),
    /// Measure speed without a terminal UI.
    Bench(BenchArgs),
    /// Drive the dashboard from a recording: the same panes, no model needed.
    Replay(ReplayArgs),
    /// Compare the runs of recordings side by side; with two files, `--diff` compares their tokens.
    Report(ReportArgs),
    /// A teaching demo (prefill-vs-decode, kv-cache, roofline, speculation, quantization): in the dashboard, or headless.
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The demo: prefill-vs-decode, kv-cache, roofline, speculation or quantization (a `demo-NAME` preset), or a
    /// preset file.
    pub name: String,
    /// Run without the dashboard: write a recording, a report and charts, and print the report.
    #[arg(long)]
    pub headless: bool,
    /// Where --headless writes (default demo-NAME).
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Md,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Token-by-token diff of the first run of two recordings.
    #[arg(long)]
    pub diff: bool,
    /// Also write charts (inter-token latency, KV growth; PNG and SVG) into this folder.
    #[arg(long)]
    pub plot: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    pub file: std::path::PathBuf,
    /// Playback speed (2 = twice as fast as recorded).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Ron,
    Json,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The prompt (with --preset, the preset's prompts run instead when this is absent).
    #[arg(long, short)]
    pub prompt: Option<String>,
    /// Most tokens to generate (default 128, or the preset's).
    #[arg(short = 'n', long = "max-tokens", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: Option<u32>,
    /// Sampling temperature; 0 is greedy.
    #[arg(long = "temp", default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
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
    pub spec: SpecArgs,
    /// Weight type to requantise to: as-loaded, F32, F16, BF16, Q8_0, Q6_K, Q5_K, Q4_K, Q4_0, Q3_K, Q2_K.
    #[arg(long, value_parser = parse_quant)]
    pub quant: Option<crate::engine::quant::Quant>,
    /// KV cache dtype: f32, f16 or bf16.
    #[arg(long, value_parser = parse_kv_dtype)]
    pub kv_dtype: Option<String>,
}

fn parse_quant(s: &str) -> Result<crate::engine::quant::Quant, String> {
    crate::engine::quant::Quant::parse(s)
}

fn parse_kv_dtype(s: &str) -> Result<String, String> {
    crate::engine::quant::parse_kv_dtype(s).map(|d| crate::engine::quant::kv_dtype_name(d).into())
}

/// Speculative decoding settings.
#[derive(Debug, Clone, Args)]
pub struct SpecArgs {
    /// Where drafts come from: none, draft-model, prompt-lookup or layer-skip.
    #[arg(long, value_parser = parse_draft_mode)]
    pub draft: Option<crate::engine::spec::DraftMode>,
    /// The draft model for --draft draft-model (default: the largest smaller GGUF beside the
    /// target with the same tokenizer).
    #[arg(long)]
    pub draft_model: Option<String>,
    /// Drafted tokens per step: 1–16, or `auto` (adaptive).
    #[arg(short = 'k', long = "k", value_parser = parse_k)]
    pub k: Option<crate::engine::spec::KPolicy>,
    /// Layers the layer-skip draft runs before the head (default: half the model's).
    #[arg(long)]
    pub draft_layers: Option<usize>,
}

impl SpecArgs {
    /// The commands that set these in the worker.
    pub fn commands(&self) -> Vec<crate::protocol::Command> {
        use crate::protocol::Command;
        let mut c = Vec::new();
        if let Some(m) = self.draft {
            c.push(Command::SetDraftMode {
                mode: m.name().into(),
            });
        }
        if let Some(spec) = &self.draft_model {
            c.push(Command::SetDraftModel { spec: spec.clone() });
        }
        if let Some(k) = self.k {
            c.push(Command::SetK { k: k.as_number() });
        }
        if let Some(layers) = self.draft_layers {
            c.push(Command::SetDraftLayers { layers });
        }
        c
    }
}

fn parse_draft_mode(s: &str) -> Result<crate::engine::spec::DraftMode, String> {
    crate::engine::spec::DraftMode::parse(s)
}

fn parse_k(s: &str) -> Result<crate::engine::spec::KPolicy, String> {
    crate::engine::spec::KPolicy::parse(s)
}

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    pub text: String,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Prefill and decode tok/s of our engine against candle-transformers' reference model.
    Engine(BenchEngineArgs),
    /// Decode tok/s with the dashboard's state and rendering attached vs headless, and frame time.
    Ui(BenchUiArgs),
    /// Write and read back a recording of many events.
    Record(BenchRecordArgs),
    /// Speculative decoding against plain decoding: each draft mode at each K, over several prompts.
    Spec(BenchSpecArgs),
    /// Every weight type side by side: bytes, prefill and decode tok/s, perplexity, KL and top-1
    /// agreement against the loaded weights, requantise time.
    Quant(BenchQuantArgs),
}

#[derive(Debug, Args)]
pub struct BenchQuantArgs {
    /// Types to measure, in order (default: all, the loaded weights first).
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
    /// Prompt tokens of the prefill measurement.
    #[arg(long, default_value_t = 128)]
    pub pp: usize,
    /// Tokens of the decode measurement.
    #[arg(long, default_value_t = 64)]
    pub tg: usize,
    /// Timed repeats of prefill and decode (the median is reported).
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Tokens of the reference text the quality measurement runs.
    #[arg(long, default_value_t = 1024)]
    pub ppl_tokens: usize,
    /// Tokens per chunk of the quality measurement (each chunk's second half is scored).
    #[arg(long, default_value_t = 256)]
    pub ctx: usize,
    /// KV cache dtype: f32, f16 or bf16.
    #[arg(long, default_value = "f32")]
    pub kv_dtype: String,
}

#[derive(Debug, Args)]
pub struct BenchSpecArgs {
    /// Tokens each run generates.
    #[arg(long, default_value_t = 96)]
    pub tokens: usize,
    /// Draft modes to measure.
    #[arg(long, value_delimiter = ',', default_values_t = ["draft-model".to_string(), "prompt-lookup".into(), "layer-skip".into()])]
    pub modes: Vec<String>,
    /// Ks to measure (`auto` for adaptive).
    #[arg(long, value_delimiter = ',', default_values_t = ["2".to_string(), "4".into(), "8".into(), "auto".into()])]
    pub ks: Vec<String>,
    /// How many of the built-in prompts to run (at most 5).
    #[arg(long, default_value_t = 5)]
    pub prompts: usize,
    /// The draft model (default: the largest smaller GGUF beside the target with its tokenizer).
    #[arg(long)]
    pub draft_model: Option<String>,
    /// Layers of the layer-skip draft (default: half).
    #[arg(long)]
    pub draft_layers: Option<usize>,
    /// Runs of each mode and K, each paired with a plain run of the prompt right after it; the
    /// row is the run with the median speedup over its pair (robust to a machine whose speed
    /// drifts). With 1, each speedup is against a plain run before and after the prompt's runs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=9))]
    pub pairs: u32,
}

#[derive(Debug, Args)]
pub struct BenchRecordArgs {
    #[arg(long, default_value_t = 100_000)]
    pub events: usize,
}

#[derive(Debug, Args)]
pub struct BenchUiArgs {
    /// Alternating runs of each kind (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Tokens each run decodes.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
}

#[derive(Debug, Args)]
pub struct BenchEngineArgs {
    /// Timed repeats of each measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Prompt lengths to measure prefill at.
    #[arg(long, value_delimiter = ',', default_values_t = vec![128usize, 512])]
    pub pp: Vec<usize>,
    /// Tokens to decode.
    #[arg(long, default_value_t = 128)]
    pub tg: usize,
    /// Skip candle-transformers' reference model.
    #[arg(long)]
    pub no_reference: bool,
    /// Also run llama.cpp's llama-bench on the same file and threads, and print the ratios. Its
    /// folder comes from $LLAMA_CPP_BIN, else from ../shared/tools/llama-cpp (which builds it).
    #[arg(long)]
    pub vs_llama_cpp: bool,
}
