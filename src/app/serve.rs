//! `labtui serve`: the engine behind an OpenAI-compatible server with continuous batching
//! ([`crate::serve::server`]), on loopback unless `--host` says otherwise, until Ctrl-C.

use crate::app::args;
use crate::engine::sched::SchedConfig;
use crate::engine::{self, Engine};
use crate::protocol::SchedPolicy;
use crate::serve::server::{ServeConfig, Server};
use anyhow::{Context, Result};
use clap::Args;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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
            },
        }
    }
}

pub fn run(spec: &str, a: &ServeArgs) -> Result<()> {
    let device = engine::default_device();
    let eng = Engine::open(spec, &device, |_, _| {})?;
    let cfg = a.config();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let server = Server::start(eng, &cfg).with_context(|| format!("binding {}", cfg.addr))?;
        eprintln!(
            "labtui serve: {} at {}/v1 ({} batching, batch ≤ {}, {} KV blocks, {} tokens a step); Ctrl-C stops",
            server.model(),
            server.url(),
            cfg.sched.policy,
            cfg.sched.max_batch,
            cfg.sched.kv_blocks,
            cfg.sched.step_tokens,
        );
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = server.stopped() => {}
        }
        Ok::<(), anyhow::Error>(())
    })
}
