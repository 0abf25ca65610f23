//! Headless speed measurements: our engine against candle-transformers' reference model on the
//! same GGUF, in the same run, as medians of repeats after a warm-up.

pub mod batch;
pub mod client;
pub mod engine;
pub mod mixed;
pub mod mixed_llama;
mod profile;
pub mod quant;
pub mod record;
pub mod sensitivity;
pub mod serve;
mod serve_follow;
mod serve_parse;
pub mod serve_tui;
pub mod soak;
pub mod spec;
pub mod ui;

pub use self::engine::{engine, BenchEngineArgs};
pub use self::record::{record, BenchRecordArgs};
pub use self::ui::{ui, BenchUiArgs};
pub use batch::BenchBatchArgs;
pub use client::BenchClientArgs;
pub use quant::BenchQuantArgs;
pub use serve::BenchServeArgs;
pub use soak::BenchSoakArgs;
pub use spec::BenchSpecArgs;

use anyhow::{Context, Result};
use std::time::Instant;

/// Most tokens a benchmark flag may ask for (the longest context a model may have).
pub(crate) const MAX_TOKENS: u64 = crate::protocol::params::MAX_TOKENS as u64;

fn time<F: FnMut() -> Result<()>>(repeats: usize, mut f: F) -> Result<Vec<f64>> {
    f()?; // warm-up
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f()?;
            Ok(t.elapsed().as_secs_f64())
        })
        .collect()
}

/// The folder holding llama.cpp's tools: `$LLAMA_CPP_BIN`, else what `../shared/tools/llama-cpp` prints.
fn llama_cpp_bin() -> Result<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("LLAMA_CPP_BIN") {
        return Ok(p.into());
    }
    let tool = std::path::Path::new("../shared/tools/llama-cpp");
    anyhow::ensure!(
        tool.exists(),
        "set LLAMA_CPP_BIN to the folder holding llama-bench (../shared/tools/llama-cpp builds it)"
    );
    let out = std::process::Command::new(tool)
        .output()
        .context("running ../shared/tools/llama-cpp")?;
    anyhow::ensure!(
        out.status.success(),
        "../shared/tools/llama-cpp failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().into())
}

/// The stamp a benchmark's output starts with: this machine, its roofs measured now (with
/// `model`'s own quantized product when one is loaded), the build, the date and, with
/// `llama_cpp`, the llama.cpp build compared against. Printed to stdout, so it travels with the
/// tables into any file they are written to.
pub(crate) fn print_stamp(
    model: Option<&crate::engine::Model>,
    llama_cpp: bool,
) -> Option<crate::protocol::Stamp> {
    match crate::worker::stamp::measure(model, crate::engine::threads()) {
        Ok(mut s) => {
            if llama_cpp {
                s.llama_cpp = llama_cpp_version();
            }
            println!("{}", crate::report::stamp::markdown(&s));
            Some(s)
        }
        Err(e) => {
            eprintln!("could not measure this machine for the stamp: {e:#}");
            None
        }
    }
}

/// `llama-server --version`'s first line, without its "version: ".
fn llama_cpp_version() -> Option<String> {
    let bin = llama_cpp_bin().ok()?.join("llama-server");
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    text.lines()
        .find(|l| l.starts_with("version"))
        .map(|l| l.trim_start_matches("version:").trim().to_string())
}
