//! `labtui serve`: the engine behind an OpenAI-compatible server with continuous batching
//! ([`crate::serve::server`]), on loopback unless `--host` says otherwise, until Ctrl-C (or `q`
//! in the dashboard). With `--tui` the dashboard shows the scheduler as requests come in: its
//! queues, each request's timeline and the KV blocks; `--record` keeps its decisions in a RON
//! recording that `labtui replay` plays back, with or without the dashboard.

use crate::app::args;
use crate::engine::sched::SchedConfig;
use crate::engine::{self, Engine};
use crate::protocol::SchedPolicy;
use crate::protocol::{DraftMode, KPolicy, Quant, Stamped};
use crate::record::{Header, Recorder};
use crate::serve::server::engine::Tap;
use crate::serve::server::{ServeConfig, Server};
use anyhow::{Context, Result};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Instant;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Port to listen on (0: a free one, printed).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// Address to bind; 0.0.0.0 exposes the server to the network.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub host: IpAddr,
    /// Most requests running at once.
    #[arg(long, default_value_t = 16, value_parser = args::count(1, 1024))]
    pub max_batch: usize,
    /// KV blocks of 16 tokens over all running requests.
    #[arg(long, default_value_t = 2048, value_parser = args::count(1, 1 << 20))]
    pub kv_blocks: usize,
    /// Most tokens one step runs (decode rows and prefill chunks together).
    #[arg(long, default_value_t = 256, value_parser = args::count(1, 1 << 16))]
    pub step_tokens: usize,
    /// Admit a new batch only when the last one has finished (for comparison).
    #[arg(long)]
    pub static_batching: bool,
    /// Compute every prompt in full: no automatic prefix caching (requests that start the same
    /// way otherwise share the KV blocks of what they have in common).
    #[arg(long)]
    pub no_prefix_cache: bool,
    /// Watch the scheduler in the dashboard while serving (`q` stops the server).
    #[arg(long)]
    pub tui: bool,
}

impl ServeArgs {
    pub fn config(&self) -> ServeConfig {
        ServeConfig {
            addr: SocketAddr::new(self.host, self.port),
            sched: SchedConfig {
                policy: match self.static_batching {
                    true => SchedPolicy::Static,
                    false => SchedPolicy::Continuous,
                },
                max_batch: self.max_batch,
                kv_blocks: self.kv_blocks,
                step_tokens: self.step_tokens,
                prefix_cache: !self.no_prefix_cache,
            },
        }
    }
}

pub fn run(spec: &str, a: &ServeArgs, record: Option<&Path>) -> Result<()> {
    let device = engine::default_device();
    let eng = Engine::open(spec, &device, |_, _| {})?;
    let info = eng.info.clone();
    let cfg = a.config();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let _in_rt = rt.enter();
    let clock = Instant::now();
    let (tx, rx) = unbounded_channel();
    let tap = (a.tui || record.is_some()).then(|| Tap {
        clock,
        tx: tx.clone(),
    });
    drop(tx);
    let server =
        Server::start_tapped(eng, &cfg, tap).with_context(|| format!("binding {}", cfg.addr))?;
    let what = format!(
        "{} at {}/v1 ({} batching, batch ≤ {}, {} KV blocks, {} tokens a step, prefix cache {})",
        server.model(),
        server.url(),
        cfg.sched.policy,
        cfg.sched.max_batch,
        cfg.sched.kv_blocks,
        cfg.sched.step_tokens,
        match cfg.sched.prefix_cache {
            true => "on",
            false => "off",
        },
    );
    if a.tui {
        let feed = crate::tui::Feed {
            events: rx,
            status: format!("labtui serve: {what} · q stops the server"),
        };
        return crate::tui::run(crate::tui::Start::watching(
            feed,
            record.map(Path::to_path_buf),
        ));
    }
    eprintln!("labtui serve: {what}; Ctrl-C stops");
    let recording = match record {
        Some(path) => {
            let header = Header::new(
                Some(info),
                Quant::AsLoaded,
                DraftMode::None,
                KPolicy::Adaptive,
            );
            let rec = Recorder::create(path, header)?;
            eprintln!("recording the scheduler's decisions to {}", path.display());
            Some(rt.spawn(write_recording(rec, rx)))
        }
        None => None,
    };
    rt.block_on(async {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = server.stopped() => {}
        }
    });
    // The model thread stops with the server; the recording ends with its last event.
    drop(server);
    if let Some(r) = recording {
        let written =
            rt.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(5), r).await });
        match written {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => return Err(e),
            Ok(Err(e)) => anyhow::bail!("the recording's writer crashed: {e}"),
            Err(_) => anyhow::bail!("the recording did not finish within 5 s"),
        }
    }
    Ok(())
}

/// Append every event to the recording until the model thread is gone.
async fn write_recording(mut rec: Recorder, mut rx: UnboundedReceiver<Stamped>) -> Result<()> {
    while let Some(e) = rx.recv().await {
        rec.event(&e)?;
    }
    Ok(())
}
