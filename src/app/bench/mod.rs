//! Headless speed measurements: our engine against candle-transformers' reference model on the
//! same GGUF, in the same run, as medians of repeats after a warm-up.

pub mod batch;
pub mod client;
pub mod quant;
pub mod serve;
pub mod serve_tui;
pub mod soak;
pub mod spec;

pub use batch::BenchBatchArgs;
pub use client::BenchClientArgs;
pub use quant::BenchQuantArgs;
pub use serve::BenchServeArgs;
pub use soak::BenchSoakArgs;
pub use spec::BenchSpecArgs;

use crate::app::args;
use crate::engine::{self, Engine};
use crate::lab::measure::{bench_tokens, ours};
use crate::lab::reference::Reference;
use crate::protocol::GenParams;
use crate::report::table::{Align, Table};
use crate::stats::{median, tok_per_s};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use clap::Args;

/// Most tokens a benchmark flag may ask for (the longest context a model may have).
pub(crate) const MAX_TOKENS: u64 = crate::protocol::params::MAX_TOKENS as u64;
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

/// One run through the worker; with `ui`, every event goes through `AppState::apply` and a frame is
/// drawn at most every [`crate::tui::FRAME`] into an off-screen 160×50 buffer, as the dashboard does.
/// Returns the decode tok/s the worker measured.
fn worker_run(
    worker: &mut crate::worker::Worker,
    prompt: &str,
    tokens: usize,
    ui: bool,
) -> Result<f64> {
    use crate::protocol::{Command, Event};
    use ratatui::{backend::TestBackend, Terminal};
    let mut state = crate::state::AppState::new("bench", prompt);
    let mut term = Terminal::new(TestBackend::new(160, 50))?;
    let params = GenParams {
        max_tokens: tokens + 1,
        ignore_eos: true,
        ..GenParams::default()
    };
    worker.send(Command::Generate {
        prompt: prompt.into(),
        params,
    });
    let mut last_frame = Instant::now();
    while let Some(ev) = worker.events.blocking_recv() {
        if ui {
            state.apply(&ev);
            if last_frame.elapsed() >= crate::tui::FRAME {
                term.draw(|f| crate::tui::view::render(&state, f.area(), f.buffer_mut()))?;
                last_frame = Instant::now();
            }
        }
        match ev.event {
            Event::RunFinished { summary, .. } => return Ok(summary.decode_tok_s),
            Event::Error { message } => bail!("{message}"),
            _ => {}
        }
    }
    bail!("the worker stopped")
}

pub fn ui(spec: &str, args: &BenchUiArgs) -> Result<()> {
    use crate::protocol::{Command, Event};
    use crate::worker::{Options, Worker};
    let mut worker = Worker::spawn(Options::default());
    worker.send(Command::LoadModel { spec: spec.into() });
    let info = loop {
        match worker.events.blocking_recv().map(|e| e.event) {
            Some(Event::ModelLoaded(i)) => break i,
            Some(Event::Error { message }) => bail!("{message}"),
            Some(_) => {}
            None => bail!("the worker stopped"),
        }
    };
    let prompt = "Write a Rust function that reverses the words of a sentence.";
    worker_run(&mut worker, prompt, 8, true)?; // warm-up
    let (mut headless, mut dashboard) = (Vec::new(), Vec::new());
    for _ in 0..args.repeats {
        headless.push(worker_run(&mut worker, prompt, args.tokens, false)?);
        dashboard.push(worker_run(&mut worker, prompt, args.tokens, true)?);
    }
    let (h, d) = (
        median(&headless).unwrap_or(0.0),
        median(&dashboard).unwrap_or(0.0),
    );
    println!(
        "model {} · {} threads · {} decode tokens · median of {}",
        info.name,
        engine::threads(),
        args.tokens,
        args.repeats
    );
    println!(
        "decode tok/s headless {h:.2} · with dashboard {d:.2} · overhead {:.2}%",
        (1.0 - d / h) * 100.0
    );

    // Frame time: a finished run's screen drawn at 160×50.
    let mut state = crate::state::AppState::new("bench", prompt);
    worker.send(Command::Generate {
        prompt: prompt.into(),
        params: GenParams {
            max_tokens: 64,
            ..GenParams::default()
        },
    });
    while let Some(ev) = worker.events.blocking_recv() {
        state.apply(&ev);
        if matches!(ev.event, Event::RunFinished { .. } | Event::Error { .. }) {
            break;
        }
    }
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 50))?;
    let secs = time(200, || {
        term.draw(|f| crate::tui::view::render(&state, f.area(), f.buffer_mut()))?;
        Ok(())
    })?;
    println!(
        "frame at 160x50: median {:.3} ms over {} draws",
        median(&secs).unwrap_or(0.0) * 1e3,
        secs.len()
    );
    Ok(())
}

/// Seconds to write `events` token events to a recording (one flushed line each) and to load it.
pub fn record(args: &BenchRecordArgs) -> Result<()> {
    use crate::protocol::{Event, Phase, Stamped, TokenEvent};
    use std::time::Duration;
    let dir = std::env::temp_dir().join(format!("labtui-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.ron");
    let t = Instant::now();
    let mut r = crate::record::Recorder::create(
        &path,
        crate::record::Header::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        ),
    )?;
    for i in 0..args.events {
        let token = TokenEvent {
            index: i,
            id: (i * 7919 % 151_936) as u32,
            text: " token".into(),
            phase: Phase::Decode,
            prob: 0.5,
            elapsed: Duration::from_micros(i as u64 * 30_000),
            step: Duration::from_micros(30_000),
            kv_tokens: i,
            kv_bytes: i as u64 * 24_576,
        };
        r.event(&Stamped {
            at: Duration::from_micros(i as u64 * 30_000),
            event: Event::Token(token),
        })?;
    }
    drop(r);
    let write = t.elapsed();
    let bytes = std::fs::metadata(&path)?.len();
    let t = Instant::now();
    let rec = crate::record::load(&path)?;
    let read = t.elapsed();
    anyhow::ensure!(
        rec.events.len() == args.events,
        "read back {} of {} events",
        rec.events.len(),
        args.events
    );
    println!(
        "{} events, {}: write {:.3} s, read {:.3} s",
        args.events,
        crate::stats::human_bytes(bytes),
        write.as_secs_f64(),
        read.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchRecordArgs {
    #[arg(long, default_value_t = 100_000, value_parser = args::count(1, args::MAX_EVENTS))]
    pub events: usize,
}

#[derive(Debug, Args)]
pub struct BenchUiArgs {
    /// Alternating runs of each kind (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = args::count(1, args::MAX_REPEATS))]
    pub repeats: usize,
    /// Tokens each run decodes.
    #[arg(long, default_value_t = 128, value_parser = args::count(1, MAX_TOKENS))]
    pub tokens: usize,
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
}
