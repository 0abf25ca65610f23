//! `labtui bench client`: how fast the serving client streams, and what latency it adds, against
//! the mock server on loopback — so that a measurement of a real server is the server's, not the
//! client's.

use super::MAX_TOKENS;
use crate::app::args;
use crate::report::table::{Align, Table};
use crate::serve::client::{Cancel, Client, Piece};
use crate::serve::mock::{self, Mock, Script};
use crate::serve::{Api, FailureKind, Request};
use crate::stats::{fmt_ms, itl_percentiles, tok_per_s};
use anyhow::{Context, Result};
use clap::Args;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
pub struct BenchClientArgs {
    /// Concurrent streams.
    #[arg(long, default_value_t = 64, value_parser = args::count(1, 4096))]
    pub streams: usize,
    /// Output tokens of each request (each stream sends its requests back to back).
    #[arg(long, default_value_t = 256, value_parser = args::count(1, MAX_TOKENS))]
    pub tokens_per_stream: usize,
    /// Seconds each phase is measured (after a half-second warm-up).
    #[arg(long, default_value_t = 5, value_parser = args::count(1, 3600))]
    pub seconds: usize,
    /// The paced phase's offered load, tokens/s over all streams.
    #[arg(long, default_value_t = 20_000, value_parser = args::count(1, 10_000_000))]
    pub rate: usize,
    /// Worker threads of the client's runtime (1: a current-thread runtime); default: the cores.
    #[arg(long, value_parser = args::count(1, 1024))]
    pub client_threads: Option<usize>,
}

/// Not measured: connections open and code warms up.
const WARMUP: Duration = Duration::from_millis(500);

/// The target: streamed tok/s over 64 streams on 2 cores, and the added latency's p99.
const TARGET_TOK_S: f64 = 20_000.0;
const TARGET_P99: Duration = Duration::from_millis(1);

/// What one phase measured.
struct Phase {
    tokens: usize,
    window: Duration,
    requests: usize,
    /// Send stamp to delivery, per chunk.
    lags: Vec<Duration>,
    failures: Vec<String>,
    /// CPU seconds of the client's and the mock's threads.
    cpu: (f64, f64),
    /// How late a thread sleeping 1 ms woke, meanwhile: the machine's own scheduling noise.
    wakeups: Vec<Duration>,
}

/// What one stream's task saw.
#[derive(Default)]
struct Seen {
    tokens: usize,
    requests: usize,
    lags: Vec<Duration>,
    failures: Vec<String>,
}

pub fn run(a: &BenchClientArgs) -> Result<()> {
    super::print_stamp(None, false);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Two runtimes, their threads named, so that each side's CPU time can be read apart.
    let mock_rt = runtime("mock", cores)?;
    let client_threads = a.client_threads.unwrap_or(cores);
    let client_rt = runtime("client", client_threads)?;
    let stamped = Script {
        stamp: true,
        ..Script::instant(a.tokens_per_stream)
    };
    let mock = {
        let _inside = mock_rt.enter();
        Mock::start(stamped.clone()).context("starting the mock server")?
    };
    println!(
        "labtui bench client: {} streams of {} tokens against the mock on {} ({} cores, one process; \
         client runtime: {}), {} s per phase after a {:.1} s warm-up; load average before: {}",
        a.streams,
        a.tokens_per_stream,
        mock.addr(),
        cores,
        match client_threads {
            1 => "current-thread".to_string(),
            n => format!("{n} workers"),
        },
        a.seconds,
        WARMUP.as_secs_f64(),
        load_average()
    );
    let client = Client::default();
    let window = Duration::from_secs(a.seconds as u64);

    let (saturated, paced) = measure(a, &client_rt, &client, &mock, stamped, window)?;
    drop(mock);
    print_table(a, &saturated, &paced);
    print_notes();
    print_verdict(a, &saturated, &paced);
    Ok(())
}

/// A runtime whose threads are named `name`; `threads == 1` gives a current-thread runtime.
fn runtime(name: &str, threads: usize) -> Result<tokio::runtime::Runtime> {
    let mut b = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    b.thread_name(name)
        .enable_all()
        .build()
        .with_context(|| format!("starting the {name} runtime"))
}

/// The saturated phase, then the paced one (the mock re-scripted to `--rate`).
fn measure(
    a: &BenchClientArgs,
    client_rt: &tokio::runtime::Runtime,
    client: &Client,
    mock: &Mock,
    stamped: Script,
    window: Duration,
) -> Result<(Phase, Phase)> {
    // The client's side runs on a thread named as its runtime's workers are (a current-thread
    // runtime runs its tasks on the thread that blocks on it).
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("client".into())
            .spawn_scoped(scope, || {
                let saturated = client_rt.block_on(phase(client, mock, a, window));
                let interval = Duration::from_secs_f64(a.streams as f64 / a.rate as f64);
                mock.set_script(Script {
                    ttft: interval,
                    chunk_delays: vec![interval],
                    ..stamped
                });
                let paced = client_rt.block_on(phase(client, mock, a, window));
                (saturated, paced)
            })
            .map(|h| h.join())
    })
    .context("starting the client's thread")?
    .map_err(|_| anyhow::anyhow!("the client's thread panicked"))
}

/// Both phases' table, then each phase's first failure.
fn print_table(a: &BenchClientArgs, saturated: &Phase, paced: &Phase) {
    let mut t = Table::new([
        ("phase", Align::Left),
        ("offered", Align::Left),
        ("streamed tok/s", Align::Right),
        ("requests", Align::Right),
        ("added p50", Align::Right),
        ("added p90", Align::Right),
        ("added p99", Align::Right),
        ("added max", Align::Right),
        ("client CPU", Align::Right),
        ("mock CPU", Align::Right),
        ("client µs/token", Align::Right),
        ("wake-up p99", Align::Right),
    ]);
    for (name, offered, p) in [
        ("saturate", "no delay".to_string(), saturated),
        ("paced", format!("{} tok/s", a.rate), paced),
    ] {
        let [p50, p90, p99] = itl_percentiles(&p.lags);
        let max = p.lags.iter().max().copied().unwrap_or_default();
        let secs = p.window.as_secs_f64();
        t.row([
            name.to_string(),
            offered,
            format!("{:.0}", tok_per_s(p.tokens, p.window)),
            p.requests.to_string(),
            fmt_ms(p50, 3) + " ms",
            fmt_ms(p90, 3) + " ms",
            fmt_ms(p99, 3) + " ms",
            fmt_ms(max, 3) + " ms",
            format!("{:.2} cores", p.cpu.0 / secs),
            format!("{:.2} cores", p.cpu.1 / secs),
            format!("{:.1}", p.cpu.0 * 1e6 / p.tokens.max(1) as f64),
            fmt_ms(itl_percentiles(&p.wakeups)[2], 3) + " ms",
        ]);
    }
    print!("{}", t.markdown());
    for (name, p) in [("saturate", saturated), ("paced", paced)] {
        if let Some(first) = p.failures.first() {
            println!(
                "{name}: {} failed requests, the first: {first}",
                p.failures.len()
            );
        }
    }
}

/// What the table's columns measure.
fn print_notes() {
    println!(
        "\nstreamed tok/s: output tokens the client delivered (per the server's per-chunk usage) in the window.\n\
         added latency: each chunk carries the mock's send time on this process's clock, stamped just \
         before the mock's HTTP layer writes it; the latency runs to the moment the client hands the \
         parsed chunk to its caller — the mock's write, loopback TCP, hyper, SSE framing, JSON parsing, \
         token counting and the task's wake-up. Saturated, it is mostly queueing (the mock writes as \
         fast as the socket takes it); paced at --rate, all streams' chunks fall due together, as a \
         batching server's do, and it is what the client adds at that load.\n\
         wake-up p99: how late a bare thread sleeping 1 ms woke meanwhile — the machine's own \
         scheduling noise from other work on these cores, which the tail of the added latency suffers too.\n\
         CPU: the threads of each runtime (the mock's share the same cores, so the client alone would \
         stream faster); µs/token is the client's CPU per streamed token."
    );
}

/// Whether the target was met.
fn print_verdict(a: &BenchClientArgs, saturated: &Phase, paced: &Phase) {
    let [_, _, p99] = itl_percentiles(&paced.lags);
    let rate = tok_per_s(saturated.tokens, saturated.window);
    let met = rate >= TARGET_TOK_S && p99 < TARGET_P99;
    println!(
        "\ntarget (≥ {TARGET_TOK_S:.0} tok/s over 64 streams, added p99 < {} at {TARGET_TOK_S:.0} tok/s): {}",
        fmt_ms(TARGET_P99, 3) + " ms",
        if met { "met" } else { "NOT met" }
    );
    if a.streams != 64 || a.rate as f64 != TARGET_TOK_S {
        println!("(the target is stated for 64 streams and --rate 20000)");
    }
}

/// All streams, back to back, for the warm-up and `window`.
async fn phase(client: &Client, mock: &Mock, a: &BenchClientArgs, window: Duration) -> Phase {
    let cancel = Cancel::new();
    let start = Instant::now();
    let (warm, end) = (start + WARMUP, start + WARMUP + window);
    let ep = mock.endpoint(Api::Chat);
    let req = Request {
        context: Vec::new(),
        prompt: "Count".into(),
        max_tokens: a.tokens_per_stream,
        ignore_eos: true,
        temperature: 0.0,
    };
    let sent_origin = mock.origin();
    let mut tasks = Vec::with_capacity(a.streams);
    for _ in 0..a.streams {
        let (client, ep, req, cancel) = (client.clone(), ep.clone(), req.clone(), cancel.clone());
        tasks.push(tokio::spawn(async move {
            let mut seen = Seen::default();
            while Instant::now() < end {
                let out = client
                    .stream(&ep, &req, start, Some(&cancel), |p: &Piece| {
                        let now = Instant::now();
                        if now < warm || now >= end {
                            return;
                        }
                        seen.tokens += p.tokens;
                        if let Some(sent) = mock::stamp_of(p.text) {
                            seen.lags
                                .push(now.saturating_duration_since(sent_origin + sent));
                        }
                    })
                    .await;
                match out.failure {
                    Some(f) if f.kind == FailureKind::Cancelled => break,
                    Some(f) => seen.failures.push(f.message),
                    None if Instant::now() >= warm => seen.requests += 1,
                    None => {}
                }
            }
            seen
        }));
    }
    tokio::time::sleep_until(warm.into()).await;
    let probe = std::thread::spawn(move || wakeups(end));
    let cpu_warm = cpu_seconds();
    tokio::time::sleep_until(end.into()).await;
    let cpu_end = cpu_seconds();
    cancel.cancel();
    let mut phase = Phase {
        tokens: 0,
        window,
        requests: 0,
        lags: Vec::new(),
        failures: Vec::new(),
        cpu: (
            cpu_of(&cpu_end, "client") - cpu_of(&cpu_warm, "client"),
            cpu_of(&cpu_end, "mock") - cpu_of(&cpu_warm, "mock"),
        ),
        wakeups: probe.join().unwrap_or_default(),
    };
    for t in tasks {
        if let Ok(seen) = t.await {
            phase.tokens += seen.tokens;
            phase.requests += seen.requests;
            phase.lags.extend(seen.lags);
            phase.failures.extend(seen.failures);
        }
    }
    phase
}

/// How late a thread that sleeps 1 ms at a time wakes, until `end`.
fn wakeups(end: Instant) -> Vec<Duration> {
    const NAP: Duration = Duration::from_millis(1);
    let mut late = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        std::thread::sleep(NAP);
        late.push(t.elapsed().saturating_sub(NAP));
    }
    late
}

/// CPU seconds by thread name, from `/proc/self/task` (empty where there is none).
fn cpu_seconds() -> HashMap<String, f64> {
    // Linux reports in USER_HZ, 100 a second on every architecture it runs on.
    const TICKS: f64 = 100.0;
    let mut by_name = HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ...`: the name may hold spaces, the fields after `)` do not.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after the name.
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
            .sum();
        *by_name.entry(name).or_insert(0.0) += ticks / TICKS;
    }
    by_name
}

/// The 1-minute load average (other work on these cores skews latency), or "n/a".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "n/a".into())
}

fn cpu_of(by_name: &HashMap<String, f64>, name: &str) -> f64 {
    by_name.get(name).copied().unwrap_or(0.0)
}
