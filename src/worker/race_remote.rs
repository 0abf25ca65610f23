//! A race between the local engine and an OpenAI-compatible server: the server's side streams
//! on a thread of its own while the local side runs, so both run at once (a server is another
//! machine: taking turns would only slow it). Each side's times are its own: the engine's steps
//! for the local side, the client's clock for the server's.

use super::race::{prepare, request, Ready};
use super::remote::{summary, Tokens};
use super::{admit, Job, Outbox};
use crate::engine::race::Tape;
use crate::engine::{self, Engine, StepControl};
use crate::protocol::race::{summarize, Lane, RaceConfig, RaceEvent, RaceSide, RaceSideSummary};
use crate::protocol::{Event, GenParams, RunSummary};
use crate::serve::client::{Cancel, Client};
use crate::serve::{Api, Endpoint, FailureKind, Request, STALL_TIMEOUT};
use candle_core::Device;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// The longest the race waits for the server to name its model and describe itself.
const NAME_WAIT: Duration = Duration::from_secs(10);

/// What a side gave: its summary, its tokens' texts and its decode gaps.
type Gave = (RunSummary, Vec<String>, Vec<Duration>);

/// The server a side names, as the client reaches it.
fn endpoint(url: &str, params: &GenParams) -> Endpoint {
    Endpoint {
        url: url.to_string(),
        api_key: None,
        model: None,
        api: if params.raw {
            Api::Completions
        } else {
            Api::Chat
        },
    }
}

/// Race the local engine (the side without an endpoint) against the server the other names.
pub(super) fn run(
    base: &Engine,
    job: super::race::RaceJob,
    remote_lane: Lane,
    device: &Device,
    out: &Outbox,
    in_job: &AtomicBool,
    stop: &mut dyn FnMut() -> bool,
) -> anyhow::Result<()> {
    let local_lane = remote_lane.other();
    let remote_config: &RaceConfig = job.configs[remote_lane.index()];
    let url = remote_config.endpoint.clone().unwrap_or_default();
    let ep = endpoint(&url, job.params);
    let setup = Job::start(in_job);
    let mut local = prepare(base, job.configs[local_lane.index()], device, out)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = Client::new(STALL_TIMEOUT);
    let asked = rt.block_on(async {
        tokio::time::timeout(NAME_WAIT, async {
            (client.model(&ep).await, client.server_info(&ep).await)
        })
        .await
    });
    let (name, said) = asked.map_err(|_| {
        anyhow::anyhow!(
            "the server at {url} did not name its model within {} s",
            NAME_WAIT.as_secs()
        )
    })?;
    let name = name.map_err(|f| anyhow::anyhow!("the server at {url}: {}", f.message))?;
    drop(setup);
    let tokens = local
        .engine
        .prompt_ids(job.prompt, job.params.raw)
        .map_or(job.prompt.len(), |ids| ids.len());
    let need = admit::run_bytes(&local.engine, tokens, job.params.max_tokens);
    admit::available_or_unknown("the race's local KV cache", need, 0)
        .map_err(anyhow::Error::msg)?;
    let server = RaceSide {
        label: remote_config.label(),
        config: remote_config.clone(),
        model: name,
        weight_bytes: said.bytes.unwrap_or(0),
    };
    let mut sides = [local.side.clone(), server.clone()];
    if local_lane == Lane::B {
        sides.swap(0, 1);
    }
    let [a, b] = sides;
    out.send(Event::Race(RaceEvent::Started {
        a: Box::new(a.clone()),
        b: Box::new(b.clone()),
        turns: false,
    }));
    let server = Server {
        rt,
        client,
        ep: &ep,
        lane: remote_lane,
    };
    let gave = at_once(&mut local, &job, server, out, stop)?;
    let [(sa, ta, ia), (sb, tb, ib)] = gave;
    let side = |s: &RaceSide, run: RunSummary| RaceSideSummary {
        label: s.label.clone(),
        run,
        weight_bytes: s.weight_bytes,
    };
    let summary = summarize(side(&a, sa), side(&b, sb), [&ta, &tb], [&ia, &ib]);
    out.send(Event::Race(RaceEvent::Finished(Box::new(summary))));
    Ok(())
}

/// The server's side: the runtime and client that stream it, where, and in which lane.
struct Server<'a> {
    rt: tokio::runtime::Runtime,
    client: Client,
    ep: &'a Endpoint,
    lane: Lane,
}

/// Both sides at once: the server's on a thread of its own, the local one here. Their results
/// in lane order.
fn at_once(
    local: &mut Ready,
    job: &super::race::RaceJob,
    server: Server,
    out: &Outbox,
    stop: &mut dyn FnMut() -> bool,
) -> anyhow::Result<[Gave; 2]> {
    let cancel = Cancel::new();
    let Server {
        rt,
        client,
        ep,
        lane,
    } = server;
    let run = job.runs[lane.index()];
    let local_lane = lane.other();
    std::thread::scope(|scope| {
        let streamer = {
            let (out, cancel) = (out.clone(), &cancel);
            let (prompt, params) = (job.prompt, job.params);
            scope.spawn(move || {
                rt.block_on(stream(
                    &client,
                    ep,
                    (prompt, params),
                    (run, lane),
                    &out,
                    cancel,
                ))
            })
        };
        let mine = run_local(local, job, local_lane, out, &cancel, stop);
        if mine.is_err() {
            cancel.cancel();
        }
        // The server's side goes on after the local one ends; a stop still ends it.
        while !streamer.is_finished() {
            if stop() {
                cancel.cancel();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let theirs = streamer.join().map_err(|p| {
            anyhow::anyhow!(
                "the server's side crashed: {}",
                crate::protocol::panic_message(&*p)
            )
        })?;
        let (mine, theirs) = (mine?, theirs?);
        Ok(if local_lane == Lane::A {
            [mine, theirs]
        } else {
            [theirs, mine]
        })
    })
}

/// The local side, start to end, its events in its lane; a stop also cancels the server's.
fn run_local(
    local: &mut Ready,
    job: &super::race::RaceJob,
    lane: Lane,
    out: &Outbox,
    cancel: &Cancel,
    stop: &mut dyn FnMut() -> bool,
) -> anyhow::Result<Gave> {
    let run = job.runs[lane.index()];
    let req = request(local, job, run);
    let mut tape = Tape::default();
    let mut emit = |event: Event| {
        tape.take(&event);
        out.send(Event::Race(RaceEvent::Lane {
            lane,
            event: Box::new(event),
        }))
    };
    let mut control = || {
        if stop() {
            cancel.cancel();
            StepControl::Stop
        } else {
            StepControl::Continue
        }
    };
    let summary = engine::generate(
        &mut local.engine,
        &mut local.spec,
        &req,
        &mut emit,
        &mut control,
    )?;
    emit(Event::RunFinished {
        run,
        summary: summary.clone(),
    });
    Ok((summary, tape.texts, tape.itl))
}

/// Stream the prompt from the server, its events in `lane` as run `run`'s.
async fn stream(
    client: &Client,
    ep: &Endpoint,
    (prompt, params): (&str, &GenParams),
    (run, lane): (u64, Lane),
    out: &Outbox,
    cancel: &Cancel,
) -> anyhow::Result<Gave> {
    let req = Request {
        context: Vec::new(),
        prompt: prompt.to_string(),
        max_tokens: params.max_tokens,
        ignore_eos: params.ignore_eos,
        temperature: params.temperature,
    };
    let mut tokens = Tokens::new(run, out.clone(), Some(lane));
    tokens.send(Event::RunStarted {
        run,
        prompt_tokens: 0,
        settings: crate::protocol::RunSettings {
            params: params.clone(),
            quantization: Default::default(),
            draft_mode: Default::default(),
            k: crate::protocol::DEFAULT_K,
            policy: Default::default(),
        },
        prompt: prompt.to_string(),
    });
    let outcome = client
        .stream(ep, &req, out.0.clock, Some(cancel), |p| tokens.piece(p))
        .await;
    let stopped = cancel.is_cancelled();
    if let Some(f) = outcome
        .failure
        .as_ref()
        .filter(|f| !(stopped && f.kind == FailureKind::Cancelled))
    {
        anyhow::bail!("the server at {}: {}", ep.url, f.message);
    }
    let summary = summary(&outcome, stopped);
    tokens.send(Event::RunFinished {
        run,
        summary: summary.clone(),
    });
    let tape = std::mem::take(&mut tokens.tape);
    Ok((summary, tape.texts, tape.itl))
}
