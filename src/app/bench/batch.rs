//! `labtui bench batch`: prefill and decode latency and throughput at each batch size, B
//! sequences at once over one paged KV cache, optionally beside llama.cpp's
//! `llama-batched-bench` on the same file and threads.

use super::serve::ReportFormat;
use super::MAX_TOKENS;
use crate::app::args;
use crate::engine::{self, Engine};
use crate::lab::batch::{measure, BatchRow};
use crate::report::table::{Align, Table};
use anyhow::{bail, Context, Result};
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Debug, Args)]
pub struct BenchBatchArgs {
    /// Batch sizes to measure, in order.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 2, 4, 8, 16, 32],
          value_parser = args::count(1, 1024))]
    pub batch: Vec<usize>,
    /// Prompt tokens of each sequence.
    #[arg(long, default_value_t = 128, value_parser = args::count(1, MAX_TOKENS))]
    pub prompt_tokens: usize,
    /// Tokens each sequence decodes.
    #[arg(long, default_value_t = 64, value_parser = args::count(1, MAX_TOKENS))]
    pub tokens: usize,
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Also run llama.cpp's llama-batched-bench on the same file, threads and sizes. Its folder
    /// comes from $LLAMA_CPP_BIN, else from ../shared/tools/llama-cpp (which builds it).
    #[arg(long)]
    pub vs_llama_cpp: bool,
    /// Write the throughput-latency chart (PNG and SVG, one point per batch size, llama.cpp's
    /// beside ours with --vs-llama-cpp) into this folder.
    #[arg(long, value_name = "DIR")]
    pub charts: Option<std::path::PathBuf>,
}

/// A row with llama.cpp's numbers beside ours.
#[derive(Debug, Clone, Serialize)]
struct Row {
    #[serde(flatten)]
    ours: BatchRow,
    llama_prefill_tok_s: Option<f64>,
    llama_decode_tok_s: Option<f64>,
}

pub fn run(spec: &str, a: &BenchBatchArgs) -> Result<()> {
    let device = engine::default_device();
    let eng = Engine::open(spec, &device, |_, _| {})?;
    if matches!(a.format, ReportFormat::Md) {
        super::print_stamp(Some(&eng.model), a.vs_llama_cpp);
    }
    let threads = engine::threads();
    eprintln!(
        "{}: {threads} threads, {} prompt tokens and {} decode tokens per sequence",
        eng.info.name, a.prompt_tokens, a.tokens
    );
    let llama = match a.vs_llama_cpp {
        true => Some(llama_batched_bench(
            &local_file(spec)?,
            threads,
            &a.batch,
            a.prompt_tokens,
            a.tokens,
        )?),
        false => None,
    };
    let mut rows = Vec::new();
    // A warm-up: the first pass pays for page faults and thread start-up.
    measure(&eng.model, 1, a.prompt_tokens.min(16), 2)?;
    for &b in &a.batch {
        let ours = measure(&eng.model, b, a.prompt_tokens, a.tokens)?.row();
        let theirs = llama.as_ref().and_then(|m| m.get(&b));
        eprintln!(
            "batch {b}: prefill {:.1} tok/s, decode {:.1} tok/s",
            ours.prefill_tok_s, ours.decode_tok_s
        );
        rows.push(Row {
            ours,
            llama_prefill_tok_s: theirs.map(|t| t.0),
            llama_decode_tok_s: theirs.map(|t| t.1),
        });
    }
    let out = match a.format {
        ReportFormat::Md => markdown(&rows),
        ReportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            for r in &rows {
                w.serialize(Flat::of(r))?;
            }
            String::from_utf8(w.into_inner()?)?
        }
        ReportFormat::Json => serde_json::to_string_pretty(&rows)? + "\n",
    };
    print!("{out}");
    if let Some(dir) = &a.charts {
        for f in crate::report::batch::chart_files(dir, &eng.info.name, &points(&rows))? {
            eprintln!("wrote {}", f.display());
        }
    }
    Ok(())
}

/// Each row as chart points: ours, and llama.cpp's where it ran.
fn points(rows: &[Row]) -> Vec<crate::report::batch::Point> {
    use crate::report::batch::Point;
    let mut out = Vec::new();
    for r in rows {
        out.push(Point::ours(&r.ours));
        if let Some(tok_s) = r.llama_decode_tok_s {
            out.push(Point::llama_cpp(r.ours.batch, tok_s));
        }
    }
    out
}

/// A row as CSV columns (the csv crate does not flatten).
#[derive(Serialize)]
struct Flat {
    batch: usize,
    prefill_ms: f64,
    prefill_tok_s: f64,
    decode_ms_mean: f64,
    decode_ms_p50: f64,
    decode_ms_p90: f64,
    decode_ms_p99: f64,
    decode_tok_s: f64,
    llama_prefill_tok_s: Option<f64>,
    llama_decode_tok_s: Option<f64>,
}

impl Flat {
    fn of(r: &Row) -> Self {
        let o = &r.ours;
        Flat {
            batch: o.batch,
            prefill_ms: o.prefill_ms,
            prefill_tok_s: o.prefill_tok_s,
            decode_ms_mean: o.decode_ms_mean,
            decode_ms_p50: o.decode_ms_p50,
            decode_ms_p90: o.decode_ms_p90,
            decode_ms_p99: o.decode_ms_p99,
            decode_tok_s: o.decode_tok_s,
            llama_prefill_tok_s: r.llama_prefill_tok_s,
            llama_decode_tok_s: r.llama_decode_tok_s,
        }
    }
}

fn markdown(rows: &[Row]) -> String {
    let mut t = Table::new([
        ("batch", Align::Right),
        ("prefill ms", Align::Right),
        ("prefill tok/s", Align::Right),
        ("decode ms mean", Align::Right),
        ("p50", Align::Right),
        ("p90", Align::Right),
        ("p99", Align::Right),
        ("decode tok/s", Align::Right),
        ("llama.cpp decode tok/s", Align::Right),
        ("ratio", Align::Right),
    ]);
    for r in rows {
        let o = &r.ours;
        let (l, ratio) = match r.llama_decode_tok_s {
            Some(l) => (format!("{l:.1}"), format!("{:.2}x", o.decode_tok_s / l)),
            None => ("-".into(), "-".into()),
        };
        t.row([
            o.batch.to_string(),
            format!("{:.1}", o.prefill_ms),
            format!("{:.1}", o.prefill_tok_s),
            format!("{:.2}", o.decode_ms_mean),
            format!("{:.2}", o.decode_ms_p50),
            format!("{:.2}", o.decode_ms_p90),
            format!("{:.2}", o.decode_ms_p99),
            format!("{:.1}", o.decode_tok_s),
            l,
            ratio,
        ]);
    }
    t.markdown()
}

fn local_file(spec: &str) -> Result<String> {
    match engine::source::resolve(spec)? {
        engine::source::ModelSource::File(p) => Ok(p.display().to_string()),
        _ => bail!("--vs-llama-cpp needs a local GGUF file"),
    }
}

/// llama-batched-bench's (prefill tok/s, decode tok/s) per batch size on `file`.
fn llama_batched_bench(
    file: &str,
    threads: usize,
    batch: &[usize],
    pp: usize,
    tg: usize,
) -> Result<BTreeMap<usize, (f64, f64)>> {
    let bin = super::llama_cpp_bin()?.join("llama-batched-bench");
    let most = batch.iter().copied().max().unwrap_or(1);
    let list = |xs: &[usize]| {
        xs.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let run = |extra: &[&str]| {
        std::process::Command::new(&bin)
            .args(["-m", file, "-t", &threads.to_string()])
            .args(["-c", &(most * (pp + tg) + 16).to_string()])
            .args(["-npp", &pp.to_string(), "-ntg", &tg.to_string()])
            .args(["-npl", &list(batch), "--output-format", "jsonl"])
            .args(extra)
            .output()
            .with_context(|| format!("running {}", bin.display()))
    };
    let mut out = run(&[])?;
    if !out.status.success() {
        // Its repacked CPU weights crash where its build does not match the CPU (an AMX build on
        // a VM that does not run AMX): without them it runs, slower.
        eprintln!(
            "llama-batched-bench failed with repacked weights; running it again with --no-repack"
        );
        out = run(&["--no-repack"])?;
    }
    anyhow::ensure!(
        out.status.success(),
        "llama-batched-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_batched_bench(&String::from_utf8_lossy(&out.stdout))
}

/// The JSON lines llama-batched-bench prints: `pl` (batch), `speed_pp` and `speed_tg` (tok/s).
fn parse_batched_bench(text: &str) -> Result<BTreeMap<usize, (f64, f64)>> {
    let mut got = BTreeMap::new();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        let v: serde_json::Value =
            serde_json::from_str(line).context("reading llama-batched-bench's JSON")?;
        let (Some(pl), Some(pp), Some(tg)) = (
            v["pl"].as_u64(),
            v["speed_pp"].as_f64(),
            v["speed_tg"].as_f64(),
        ) else {
            continue;
        };
        got.insert(pl as usize, (pp, tg));
    }
    anyhow::ensure!(!got.is_empty(), "llama-batched-bench printed no results");
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_llama_batched_benchs_json_lines() {
        let text = r#"main: n_kv_max = 2048
{"n_kv_max": 2048, "pp": 128, "tg": 64, "pl": 1, "n_kv": 192, "t_pp": 0.5, "speed_pp": 256.0, "t_tg": 2.0, "speed_tg": 32.0, "t": 2.5, "speed": 76.8}
{"n_kv_max": 2048, "pp": 128, "tg": 64, "pl": 4, "n_kv": 768, "t_pp": 2.0, "speed_pp": 256.0, "t_tg": 4.0, "speed_tg": 64.0, "t": 6.0, "speed": 128.0}
"#;
        let got = parse_batched_bench(text).unwrap();
        assert_eq!(got[&1], (256.0, 32.0));
        assert_eq!(got[&4], (256.0, 64.0));
        assert!(parse_batched_bench("nothing").is_err());
    }
}
