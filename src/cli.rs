//! Command-line interface: the global options and the subcommands, composed from the option
//! structs each command defines in `app`. Only `main` reads it.

use crate::app::args;
use crate::app::bench::{
    BenchBatchArgs, BenchClientArgs, BenchEngineArgs, BenchQuantArgs, BenchRecordArgs,
    BenchServeArgs, BenchSoakArgs, BenchSpecArgs, BenchUiArgs,
};
use crate::app::demo::DemoArgs;
use crate::app::headless::{GenerateArgs, TokenizeArgs};
use crate::app::report::ReportArgs;
use crate::app::serve::ServeArgs;
use clap::{Args, Parser, Subcommand};

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
    /// A preset: a name (`labtui presets` lists them) or a path to a preset RON file.
    #[arg(long, global = true)]
    pub preset: Option<String>,
    /// Record the session to this RON file (in the dashboard, R starts and stops recording).
    #[arg(long, global = true)]
    pub record: Option<std::path::PathBuf>,
    /// Open the dashboard on this OpenAI-compatible server (vLLM, TGI, SGLang, llama.cpp's
    /// `llama-server`) instead of a local model; `--model` then names the served model.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// The API key sent to `--endpoint` (as `Authorization: Bearer KEY`).
    #[arg(long, value_name = "KEY", requires = "endpoint")]
    pub api_key: Option<String>,
    /// The route `--endpoint` is asked on: chat (the server applies its chat template) or
    /// completions (the prompt as is).
    #[arg(long, value_enum, default_value_t = crate::app::bench::serve::ApiArg::Chat, requires = "endpoint")]
    pub api: crate::app::bench::serve::ApiArg,
    /// Where the dashboard's `S` writes its screenshots (SVG and text); default: this folder.
    #[arg(long, global = true, value_name = "DIR")]
    pub shots: Option<std::path::PathBuf>,
    /// CPU threads for the engine (default: physical cores).
    #[arg(long, global = true, value_parser = args::count(1, args::MAX_THREADS))]
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
    /// Race one prompt under two configurations (A and B), one step of each in turn on this
    /// machine (or at once against a server's `endpoint=URL`): each side's numbers, where the
    /// texts part, the speed ratio and its spread.
    Race(crate::app::race::RaceArgs),
    /// Drive the dashboard from a recording: the same panes, no model needed.
    Replay(ReplayArgs),
    /// Compare the runs of recordings side by side; with two files, `--diff` compares their tokens.
    Report(ReportArgs),
    /// A teaching demo (prefill-vs-decode, kv-cache, roofline, speculation, quantization,
    /// batching, paged-kv): in the dashboard, or headless.
    Demo(DemoArgs),
    /// Serve the model over an OpenAI-compatible API (chat, completions, /metrics) with
    /// continuous batching; loopback only unless --host says otherwise.
    Serve(ServeArgs),
    /// Train Medusa-lite or EAGLE-lite draft heads on the model by self-distillation over a
    /// corpus; saved beside the model for `--draft medusa` / `--draft eagle`.
    TrainDraft(crate::app::train::TrainDraftArgs),
    /// List the presets: built in, or from the presets folder ($LABTUI_PRESETS, else ./presets).
    Presets,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    pub file: std::path::PathBuf,
    /// Playback speed (2 = twice as fast as recorded).
    #[arg(long, default_value_t = 1.0, value_parser = args::speed)]
    pub speed: f64,
    /// Draw no dashboard: render the screen as it is this many seconds into the recording and
    /// write it to `--out` (SVG, or text for a `.txt` name).
    #[arg(long, value_name = "SECONDS", requires = "out", value_parser = args::seconds)]
    pub snapshot_at: Option<f64>,
    /// The snapshot's file.
    #[arg(long, value_name = "FILE", requires = "snapshot_at")]
    pub out: Option<std::path::PathBuf>,
    /// The snapshot's screen size, COLSxROWS.
    #[arg(long, default_value = "160x50", value_parser = args::size)]
    pub size: (u16, u16),
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
    /// A long generation with the whole dashboard attached: memory, frame time and event backlog
    /// at the start and the end.
    Soak(BenchSoakArgs),
    /// Speculative decoding against plain decoding: each draft mode at each K, over several prompts.
    Spec(BenchSpecArgs),
    /// Every weight type side by side: bytes, prefill and decode tok/s, perplexity, KL and top-1
    /// agreement against the loaded weights, requantise time.
    Quant(BenchQuantArgs),
    /// Layer-wise sensitivity: each weight matrix alone at a low type, KL, top-1 and perplexity
    /// against the loaded weights and the bytes saved; heat maps as PNG and SVG. Resumable.
    Sensitivity(crate::app::bench::sensitivity::BenchSensitivityArgs),
    /// Mixed precision from a sensitivity map: the least-KL types per matrix at a size, beside
    /// uniform types and other files of that size; saved as presets and exported as GGUF.
    Mixed(crate::app::bench::mixed::BenchMixedArgs),
    /// Load levels against OpenAI-compatible servers (vLLM, TGI, SGLang, llama.cpp): closed
    /// loop, open loop or a sweep; TTFT, TPOT, ITL, E2E, throughput, goodput and cost per level.
    Serve(Box<BenchServeArgs>),
    /// The serving client against a mock server on loopback: streamed tok/s over many concurrent
    /// streams, and the latency the client adds.
    Client(BenchClientArgs),
    /// Many sequences at once over the paged KV cache: prefill and decode latency (mean, p50,
    /// p90, p99) and throughput at each batch size, optionally beside llama-batched-bench.
    Batch(BenchBatchArgs),
}
