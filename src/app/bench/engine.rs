//! `bench engine`: prefill and decode tok/s of our engine against candle-transformers' reference
//! model (and llama.cpp's llama-bench, when asked) on the same GGUF.

use super::{llama_cpp_bin, time, MAX_TOKENS};
use crate::app::args;
use crate::engine::{self, Engine};
use crate::lab::measure::{bench_tokens, ours};
use crate::lab::reference::Reference;
use crate::report::table::{Align, Table};
use crate::stats::{median, tok_per_s};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;
use std::time::Instant;

/// Decode tok/s of the reference: greedy steps after a prompt, only the steps timed.
fn reference_decode(r: &mut Reference, prompt: &[u32], tg: usize, device: &Device) -> Result<f64> {
    r.clear();
    let mut logits = r.forward(prompt, 0, device)?;
    let t = Instant::now();
    for i in 0..tg {
        let next = engine::sampling::argmax(&logits) as u32;
        logits = r.forward(&[next], prompt.len() + i, device)?;
    }
    Ok(tok_per_s(tg, t.elapsed()))
}

/// llama-bench's tok/s for each test name (pp128, tg128, …) on `file` with `threads`.
pub fn llama_bench(
    file: &str,
    threads: usize,
    pp: &[usize],
    tg: usize,
    repeats: usize,
) -> Result<std::collections::BTreeMap<String, f64>> {
    let bin = llama_cpp_bin()?.join("llama-bench");
    let pp_list = pp
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let run = |extra: &[&str]| {
        std::process::Command::new(&bin)
            .args([
                "-m",
                file,
                "-t",
                &threads.to_string(),
                "-p",
                &pp_list,
                "-n",
                &tg.to_string(),
                "-r",
                &repeats.max(1).to_string(),
                "-o",
                "json",
            ])
            .args(extra)
            .output()
            .with_context(|| format!("running {}", bin.display()))
    };
    let mut out = run(&[])?;
    if !out.status.success() || out.stdout.is_empty() {
        // Its repacked CPU weights crash on some files here (Gemma 3): without them it runs,
        // somewhat slower.
        eprintln!("llama-bench failed with repacked weights; running it again with --repack 0");
        out = run(&["--repack", "0"])?;
    }
    anyhow::ensure!(
        out.status.success(),
        "llama-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).context("reading llama-bench's JSON")?;
    let mut got = std::collections::BTreeMap::new();
    for r in rows {
        let (p, g, ts) = (
            r["n_prompt"].as_u64().unwrap_or(0),
            r["n_gen"].as_u64().unwrap_or(0),
            r["avg_ts"].as_f64().unwrap_or(0.0),
        );
        let name = if g > 0 {
            format!("tg{g}")
        } else {
            format!("pp{p}")
        };
        got.insert(name, ts);
    }
    Ok(got)
}

pub fn engine(spec: &str, args: &BenchEngineArgs) -> Result<()> {
    let device = engine::default_device();
    let mut eng = Engine::open(spec, &device, |_, _| {})?;
    let mut reference = if args.no_reference {
        None
    } else {
        Some(Reference::from_gguf_bytes_or_file(spec, &device)?)
    };
    let stamp = super::print_stamp(Some(&eng.model), args.vs_llama_cpp);
    println!(
        "model {} ({}), {} threads, median of {} after a warm-up",
        eng.info.name,
        eng.info.arch,
        engine::threads(),
        args.repeats
    );
    let llama = llama_rates(spec, args)?;
    let mut table = Table::new([
        ("test", Align::Left),
        ("labtui tok/s", Align::Right),
        ("reference tok/s", Align::Right),
        ("ratio", Align::Right),
        ("llama.cpp tok/s", Align::Right),
        ("ratio", Align::Right),
    ]);
    print!("{}", table.head());
    let mut row = |name: String, ours: f64, theirs: Option<f64>| {
        let l = llama.as_ref().and_then(|m| m.get(&name).copied());
        // Their tok/s and ours ÷ theirs, or dashes.
        let vs = |t: Option<f64>| match t {
            Some(t) => [format!("{t:.1}"), format!("{:.2}x", ours / t)],
            None => ["-".into(), "-".into()],
        };
        let ([r, rr], [c, cr]) = (vs(theirs), vs(l));
        table.row([name, format!("{ours:.1}"), r, rr, c, cr]);
        print!("{}", table.last_row());
    };
    for &pp in &args.pp {
        let (ours, theirs) = prefill_rates(&mut eng, reference.as_mut(), pp, args, &device)?;
        row(format!("pp{pp}"), ours, theirs);
    }
    let (ours, theirs) = decode_rates(&mut eng, reference.as_mut(), args, &device)?;
    row(format!("tg{}", args.tg), ours, theirs);
    if args.profile {
        let pp = args.pp.iter().copied().max().unwrap_or(128);
        super::profile::print(&eng, pp, args.tg, stamp.as_ref())?;
    }
    Ok(())
}

/// llama.cpp's tok/s by test name (`pp512`, `tg128`) when asked for.
fn llama_rates(
    spec: &str,
    args: &BenchEngineArgs,
) -> Result<Option<std::collections::BTreeMap<String, f64>>> {
    if !args.vs_llama_cpp {
        return Ok(None);
    }
    let file = match engine::source::resolve(spec)? {
        engine::source::ModelSource::File(p) => p.display().to_string(),
        _ => bail!("--vs-llama-cpp needs a local GGUF file"),
    };
    Ok(Some(llama_bench(
        &file,
        engine::threads(),
        &args.pp,
        args.tg,
        args.repeats,
    )?))
}

/// Prefill tok/s of a `pp`-token prompt: ours (median, after a warm-up) and the reference's.
fn prefill_rates(
    eng: &mut Engine,
    reference: Option<&mut Reference>,
    pp: usize,
    args: &BenchEngineArgs,
    device: &Device,
) -> Result<(f64, Option<f64>)> {
    let ids = bench_tokens(pp, eng.info.vocab);
    let mut rates = Vec::new();
    for _ in 0..=args.repeats {
        rates.push(ours(eng, ids.clone(), 0)?.0);
    }
    rates.remove(0);
    let theirs = match reference {
        Some(r) => {
            let secs = time(args.repeats, || {
                r.clear();
                r.forward(&ids, 0, device)?;
                Ok(())
            })?;
            Some(pp as f64 / median(&secs).unwrap_or(f64::NAN))
        }
        None => None,
    };
    Ok((median(&rates).unwrap_or(0.0), theirs))
}

/// Decode tok/s of `args.tg` greedy steps after a short prompt: ours and the reference's.
fn decode_rates(
    eng: &mut Engine,
    reference: Option<&mut Reference>,
    args: &BenchEngineArgs,
    device: &Device,
) -> Result<(f64, Option<f64>)> {
    let prompt = bench_tokens(16, eng.info.vocab);
    let mut rates = Vec::new();
    for _ in 0..=args.repeats {
        rates.push(ours(eng, prompt.clone(), args.tg)?.1);
    }
    rates.remove(0);
    let theirs = match reference {
        Some(r) => {
            let mut decode_rates = Vec::new();
            for _ in 0..=args.repeats {
                decode_rates.push(reference_decode(r, &prompt, args.tg, device)?);
            }
            decode_rates.remove(0); // warm-up
            median(&decode_rates)
        }
        None => None,
    };
    Ok((median(&rates).unwrap_or(0.0), theirs))
}

#[derive(Debug, Args)]
pub struct BenchEngineArgs {
    /// Timed repeats of each measurement (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = args::count(1, args::MAX_REPEATS))]
    pub repeats: usize,
    /// Prompt lengths to measure prefill at.
    #[arg(long, value_delimiter = ',', default_values_t = vec![128usize, 512],
          value_parser = args::count(1, MAX_TOKENS))]
    pub pp: Vec<usize>,
    /// Tokens to decode.
    #[arg(long, default_value_t = 128, value_parser = args::count(1, MAX_TOKENS))]
    pub tg: usize,
    /// Skip candle-transformers' reference model.
    #[arg(long)]
    pub no_reference: bool,
    /// Also run llama.cpp's llama-bench on the same file and threads, and print the ratios. Its
    /// folder comes from $LLAMA_CPP_BIN, else from ../shared/tools/llama-cpp (which builds it).
    #[arg(long)]
    pub vs_llama_cpp: bool,
    /// Then break a prefill (of the longest --pp) and a decode step into their operations:
    /// time, share, and GB/s and GFLOP/s against the measured roofs.
    #[arg(long)]
    pub profile: bool,
}
