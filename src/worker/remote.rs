//! The remote backend: the same worker protocol, answered by an OpenAI-compatible server instead
//! of the local engine. A thread of its own runs a tokio runtime that streams each `Generate` with
//! the serving lab's client and turns what arrives into the events a local run emits (timings
//! measured here, at the client), scrapes the server's `/metrics` into the same channel, and
//! answers the engine's settings with a notice that they do not apply.

use super::route::{route, Inbox, Route};
use super::{Flags, Outbox, Worker, THREAD_NAME};
use crate::protocol::race::{Lane, RaceEvent};
use crate::protocol::{
    Command, Event, FinishReason, GenParams, KvDtype, ModelInfo, Notice, Phase, Quant, RunSettings,
    RunSummary, TokenEvent, Unserved, DEFAULT_K,
};
use crate::serve::client::{Cancel, Client, Piece};
use crate::serve::scrape::{self, ScrapeConfig};
use crate::serve::{Endpoint, FailureKind, Outcome, Request, STALL_TIMEOUT};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::unbounded_channel;

/// The longest the start waits for the server to name its model before showing the URL instead.
const MODEL_WAIT: Duration = Duration::from_secs(5);

impl Worker {
    /// A worker whose backend is the server at `endpoint`. `opts.sample_every` runs the system
    /// sampler as for a local worker; `opts.device` is not used.
    pub fn spawn_remote(endpoint: Endpoint, opts: super::Options) -> Self {
        let (cmd_tx, cmd_rx) = unbounded_channel();
        let (ev_tx, ev_rx) = unbounded_channel();
        let clock = Instant::now();
        if let Some(every) = opts.sample_every {
            crate::sysmon::spawn(ev_tx.clone(), clock, every, None);
        }
        let flags = Flags::default();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let out = Outbox(crate::protocol::Stamper { tx: ev_tx, clock });
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        return out.send(Event::Error {
                            message: format!("the remote worker's runtime did not start: {e}"),
                        })
                    }
                };
                let remote = Remote {
                    client: Client::new(STALL_TIMEOUT),
                    endpoint,
                    out: out.clone(),
                    inbox: Inbox::new(cmd_rx),
                    next_run: 1,
                };
                let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    rt.block_on(remote.run())
                }));
                if let Err(p) = caught {
                    out.send(Event::Error {
                        message: format!(
                            "the remote worker crashed: {}",
                            crate::protocol::panic_message(&*p)
                        ),
                    });
                }
                // Whatever still runs (a scrape, a request) is dropped, not waited for.
                rt.shutdown_background();
            })
            .expect("spawn the worker thread");
        Self {
            commands: cmd_tx,
            events: ev_rx,
            thread: Some(thread),
            flags,
        }
    }
}

/// What the remote worker's loop owns.
struct Remote {
    client: Client,
    endpoint: Endpoint,
    out: Outbox,
    /// Commands that arrived during a run wait here for its end.
    inbox: Inbox,
    next_run: u64,
}

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Go,
    Shutdown,
}

impl Remote {
    async fn run(mut self) {
        let scraper = scrape::spawn(
            ScrapeConfig::for_endpoint(&self.endpoint),
            self.out.clock,
            self.out.tx.clone(),
        );
        self.describe().await;
        loop {
            let cmd = match self.inbox.next_later() {
                Some(c) => c,
                None => match self.inbox.recv().await {
                    Some(c) => c,
                    None => break,
                },
            };
            let control = match cmd {
                Command::Generate { prompt, params } => self.generate(prompt, &params).await,
                Command::Shutdown => Control::Shutdown,
                other => self.answer(&other),
            };
            if control == Control::Shutdown {
                break;
            }
        }
        scraper.stop().await;
    }

    /// Emits the `ModelLoaded` that shows the server in the panes.
    async fn describe(&mut self) {
        let ep = &self.endpoint;
        let started = Instant::now();
        let name = match tokio::time::timeout(MODEL_WAIT, self.client.model(ep)).await {
            Ok(Ok(name)) => name,
            Ok(Err(f)) => {
                self.out.send(Event::Note(Notice::ServerUnnamed {
                    why: Some(f.message),
                    waited: MODEL_WAIT,
                }));
                ep.url.clone()
            }
            Err(_) => {
                self.out.send(Event::Note(Notice::ServerUnnamed {
                    why: None,
                    waited: MODEL_WAIT,
                }));
                ep.url.clone()
            }
        };
        let said = self.client.server_info(ep).await;
        self.out.send(Event::ModelLoaded(endpoint_info(
            ep,
            name,
            &said,
            started.elapsed(),
        )));
    }

    /// Answers a command that is not a run: a notice (`Stop` with no run needs none).
    fn answer(&self, cmd: &Command) -> Control {
        let url = self.endpoint.url.clone();
        let asked = match cmd {
            Command::Stop | Command::Generate { .. } => return Control::Go,
            Command::Shutdown => return Control::Shutdown,
            Command::LoadModel { spec } => {
                let spec = spec.clone();
                self.out
                    .send(Event::Note(Notice::RemoteModel { url, spec }));
                return Control::Go;
            }
            Command::Set(change) => Unserved::Setting(change.clone()),
            Command::MeasureQuality { .. } => Unserved::Quality,
            Command::RunDemo { .. } => Unserved::Demos,
            Command::RunStream { .. } => Unserved::Streams,
            Command::RunBatch { .. } => Unserved::Batches,
            Command::Race { .. } => Unserved::Races,
        };
        self.out.send(Event::Note(Notice::NotRemote { asked, url }));
        Control::Go
    }

    /// Streams one run, answering commands while it streams.
    async fn generate(&mut self, prompt: String, params: &GenParams) -> Control {
        let run = self.next_run;
        self.next_run += 1;
        let settings = RunSettings {
            params: params.clone(),
            quantization: Quant::default(),
            draft_mode: Default::default(),
            k: DEFAULT_K,
            policy: Default::default(),
        };
        let req = Request {
            context: Vec::new(),
            prompt: prompt.clone(),
            max_tokens: params.max_tokens,
            ignore_eos: params.ignore_eos,
            temperature: params.temperature,
        };
        self.out.send(Event::RunStarted {
            run,
            prompt_tokens: 0,
            settings,
            prompt,
        });
        let cancel = Cancel::new();
        let mut tokens = Tokens::new(run, self.out.clone(), None);
        let stream = self.client.stream(
            &self.endpoint,
            &req,
            self.out.clock,
            Some(&cancel),
            |p: &Piece<'_>| tokens.piece(p),
        );
        tokio::pin!(stream);
        let mut control = Control::Go;
        let mut stopped = false;
        let outcome = loop {
            tokio::select! {
                out = &mut stream => break out,
                cmd = self.inbox.recv() => match cmd.as_ref().map(route) {
                    Some(Route::Stop) => {
                        stopped = true;
                        cancel.cancel();
                    }
                    Some(Route::Shutdown) | None => {
                        control = Control::Shutdown;
                        stopped = true;
                        cancel.cancel();
                    }
                    // A run or a load waits for this run's end (the rest is answered then).
                    Some(Route::Engine) => self.inbox.later(cmd.expect("routed")),
                    Some(Route::Setting | Route::AfterRun) => {
                        self.answer(&cmd.expect("routed"));
                    }
                },
            }
        };
        match &outcome.failure {
            Some(f) if !(stopped && f.kind == FailureKind::Cancelled) => {
                self.out.send(Event::Error {
                    message: f.message.clone(),
                })
            }
            _ => self.out.send(Event::RunFinished {
                run,
                summary: summary(&outcome, stopped),
            }),
        }
        control
    }
}

/// Turns the client's pieces into token events: a chunk of n tokens gives n events, the first
/// with the chunk's text, spread over the gap since the last chunk (as the outcome's `token_at`).
pub(super) struct Tokens {
    run: u64,
    out: Outbox,
    /// A race's side sends its events in its lane.
    lane: Option<Lane>,
    index: usize,
    last: Option<Duration>,
    /// Text that came before the tokens it belongs to were counted.
    text: String,
    /// Each token's text and each decode token's gap, as sent.
    pub tape: crate::engine::race::Tape,
}

impl Tokens {
    pub(super) fn new(run: u64, out: Outbox, lane: Option<Lane>) -> Self {
        Self {
            run,
            out,
            lane,
            index: 0,
            last: None,
            text: String::new(),
            tape: Default::default(),
        }
    }

    /// Send `event`, in the race's lane when this is a race's side.
    pub(super) fn send(&self, event: Event) {
        match self.lane {
            Some(lane) => self.out.send(Event::Race(RaceEvent::Lane {
                lane,
                event: Box::new(event),
            })),
            None => self.out.send(event),
        }
    }

    pub(super) fn piece(&mut self, p: &Piece<'_>) {
        self.text.push_str(p.text);
        let n = p.tokens;
        if n == 0 {
            return;
        }
        if self.index == 0 {
            // The server's usage names the prompt's tokens on the first chunk when it counts
            // per chunk (vLLM's continuous usage); a server that counts only at the end leaves
            // them unknown (0) here, and the run's summary carries them.
            self.send(Event::PrefillDone {
                run: self.run,
                tokens: p.prompt_tokens.unwrap_or(0),
                duration: p.at,
            });
        }
        let prev = self.last;
        for k in 1..=n {
            let at = match prev {
                Some(prev) if n > 1 => {
                    prev + p.at.saturating_sub(prev).mul_f64(k as f64 / n as f64)
                }
                _ => p.at,
            };
            let step = at.saturating_sub(self.last.unwrap_or(Duration::ZERO));
            let token = Event::Token(TokenEvent {
                index: self.index,
                id: 0,
                text: std::mem::take(&mut self.text),
                phase: if self.index == 0 {
                    Phase::Prefill
                } else {
                    Phase::Decode
                },
                prob: 1.0,
                elapsed: at,
                step,
                kv_tokens: 0,
                kv_bytes: 0,
            });
            self.tape.take(&token);
            self.send(token);
            self.index += 1;
            self.last = Some(at);
        }
    }
}

/// The `ModelInfo` the panes show for a server: its name and URL, and what the server said of
/// its model; the shape it does not say (layers, heads) stays 0, which the panes read as not
/// known.
pub fn endpoint_info(
    ep: &Endpoint,
    name: String,
    said: &crate::serve::info::ServerInfo,
    load_time: Duration,
) -> ModelInfo {
    ModelInfo {
        name,
        source: ep.url.clone(),
        arch: crate::protocol::REMOTE_ARCH.into(),
        parameters: said.parameters.unwrap_or(0),
        file_bytes: said.bytes.unwrap_or(0),
        weight_bytes: said.bytes.unwrap_or(0),
        weight_types: Default::default(),
        layers: 0,
        heads: 0,
        kv_heads: 0,
        head_dim: 0,
        hidden: said.hidden.unwrap_or(0),
        vocab: said.vocab.unwrap_or(0),
        context_length: said.context.unwrap_or(0),
        kv_dtype: KvDtype::default(),
        kv_bytes_per_token: 0,
        device: format!("remote: {}", ep.url),
        threads: 0,
        load_time,
        sliding: None,
    }
}

/// A run's summary from what the client measured.
pub(super) fn summary(o: &Outcome, stopped: bool) -> RunSummary {
    let reason = if stopped {
        FinishReason::Stopped
    } else {
        match o.finish.as_deref() {
            Some("length") => FinishReason::MaxTokens,
            _ => FinishReason::Eos,
        }
    };
    let ttft = o.ttft.unwrap_or(o.e2e);
    let prompt_tokens = o.prompt_tokens.unwrap_or(0);
    let decode = o.e2e.saturating_sub(ttft);
    let [itl_p50, itl_p90, itl_p99] = crate::stats::itl_percentiles(&o.itl());
    RunSummary {
        reason,
        prompt_tokens,
        generated_tokens: o.output_tokens,
        ttft,
        prefill: ttft,
        prefill_tok_s: crate::stats::tok_per_s(prompt_tokens, ttft),
        decode,
        decode_tok_s: crate::stats::tok_per_s(o.output_tokens.saturating_sub(1), decode),
        itl_p50,
        itl_p90,
        itl_p99,
        end_to_end: o.e2e,
        kv_tokens: 0,
        kv_bytes: 0,
        text: o.text.clone(),
        spec: None,
    }
}
