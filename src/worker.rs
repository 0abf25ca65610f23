//! The worker: a dedicated OS thread that owns the engine. Commands come in and stamped events go
//! out over unbounded tokio channels, so it never waits on the UI. It never touches the terminal,
//! and a panic inside it becomes an error event.

use crate::engine::quality::Probe;
use crate::engine::spec::{pick, Controller, Drafter, Speculator};
use crate::engine::{self, Control, Engine};
use crate::protocol::{
    Command, DraftMode, Event, KPolicy, KvDtype, Quant, RunSettings, Stamped, DEFAULT_K,
};
use candle_core::Device;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Name of the worker's thread (the dashboard's panic hook recognises it).
pub const THREAD_NAME: &str = "labtui-worker";

/// The UI's (or a headless command's) end of the worker.
pub struct Worker {
    pub commands: UnboundedSender<Command>,
    pub events: UnboundedReceiver<Stamped>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub struct Options {
    pub device: Device,
    /// How often the system sampler reports; `None` runs no sampler.
    pub sample_every: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            device: engine::default_device(),
            sample_every: Some(Duration::from_millis(250)),
        }
    }
}

impl Worker {
    pub fn spawn(opts: Options) -> Self {
        let (cmd_tx, cmd_rx) = unbounded_channel();
        let (ev_tx, ev_rx) = unbounded_channel();
        let clock = Instant::now();
        if let Some(every) = opts.sample_every {
            crate::metrics::spawn(ev_tx.clone(), clock, every);
        }
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let out = Outbox { tx: ev_tx, clock };
                State::new(opts.device, out, cmd_rx).run()
            })
            .expect("spawn the worker thread");
        Self {
            commands: cmd_tx,
            events: ev_rx,
            thread: Some(thread),
        }
    }

    pub fn send(&self, c: Command) {
        // The worker only goes away after Shutdown; a send after that has nobody to tell.
        let _ = self.commands.send(c);
    }

    pub fn send_all(&self, cs: impl IntoIterator<Item = Command>) {
        cs.into_iter().for_each(|c| self.send(c));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The worker's end of the event channel: stamps each event with the session's clock.
#[derive(Clone)]
struct Outbox {
    tx: UnboundedSender<Stamped>,
    clock: Instant,
}

impl Outbox {
    fn send(&self, event: Event) {
        // The UI only goes away at the end of the session; an event after that has nobody to tell.
        let _ = self.tx.send(Stamped {
            at: self.clock.elapsed(),
            event,
        });
    }
}

struct State {
    device: Device,
    out: Outbox,
    commands: UnboundedReceiver<Command>,
    pending: VecDeque<Command>,
    engine: Option<Engine>,
    next_run: u64,
    settings: Settings,
    spec: Speculator,
    built: Option<DrafterKey>,
    /// The quality probe of the loaded model and the tokens it runs (its baseline is kept).
    probe: Option<(usize, Probe)>,
}

/// Settings the UI can change while the engine runs.
struct Settings {
    draft_mode: DraftMode,
    k: KPolicy,
    /// The draft model for `draft-model` mode; `None` picks one beside the target.
    draft_model: Option<String>,
    /// Layers of the `layer-skip` draft; `None` is half the target's.
    draft_layers: Option<usize>,
    /// A weight or KV switch asked for and not yet made (only the newest of each is kept).
    quant: Option<Quant>,
    kv_dtype: Option<KvDtype>,
}

impl Settings {
    /// Take a setting command; the answer says what happened to it.
    fn apply(&mut self, cmd: &Command) -> String {
        match cmd {
            Command::SetQuantization { quant } => {
                self.quant = Some(*quant);
                format!("quantization {quant}: requantising when no run is in progress")
            }
            Command::SetKvDtype { dtype } => {
                self.kv_dtype = Some(*dtype);
                format!("KV cache {dtype}: from the next run")
            }
            Command::SetDraftMode { mode } => {
                self.draft_mode = *mode;
                format!("draft mode {mode}: from the next run")
            }
            Command::SetK { k } => {
                self.k = *k;
                format!("K = {k}: from the next step")
            }
            Command::SetDraftModel { spec } => {
                self.draft_model = Some(spec.clone());
                format!("draft model {spec}: loaded when draft-model mode next runs")
            }
            Command::SetDraftLayers { layers } => {
                let layers = (*layers).max(1);
                self.draft_layers = Some(layers);
                format!("layer-skip drafts through {layers} layers: from the next run")
            }
            other => format!("{other:?} is not a setting"),
        }
    }
}

/// Which drafter is built, so a run reuses it when the settings have not changed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DrafterKey {
    mode: DraftMode,
    draft_model: Option<String>,
    layers: Option<usize>,
}

/// Commands that only change a setting.
fn is_setting(c: &Command) -> bool {
    matches!(
        c,
        Command::SetDraftModel { .. }
            | Command::SetDraftLayers { .. }
            | Command::SetQuantization { .. }
            | Command::SetKvDtype { .. }
            | Command::SetDraftMode { .. }
            | Command::SetK { .. }
    )
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

impl State {
    fn new(device: Device, out: Outbox, commands: UnboundedReceiver<Command>) -> Self {
        Self {
            device,
            out,
            commands,
            pending: VecDeque::new(),
            engine: None,
            next_run: 1,
            settings: Settings {
                draft_mode: DraftMode::None,
                k: DEFAULT_K,
                draft_model: None,
                draft_layers: None,
                quant: None,
                kv_dtype: None,
            },
            spec: Speculator::none(),
            built: None,
            probe: None,
        }
    }

    fn emit(&self, event: Event) {
        self.out.send(event);
    }

    fn run(mut self) {
        loop {
            let cmd = match self.pending.pop_front() {
                Some(c) => c,
                None => match self.commands.blocking_recv() {
                    Some(c) => c,
                    None => return,
                },
            };
            if cmd == Command::Shutdown {
                return;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.handle(cmd))) {
                self.engine = None;
                self.emit(Event::Error {
                    message: format!(
                        "internal error in the worker: {}; the model was unloaded, load it again",
                        panic_message(&*p)
                    ),
                });
            }
        }
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::LoadModel { spec } => self.load(&spec),
            Command::Generate { prompt, params } => self.generate(&prompt, &params),
            Command::RunDemo { demo, prompt } => self.demo(&demo, &prompt),
            Command::Stop => {} // nothing is running
            Command::Shutdown => {}
            Command::MeasureQuality { tokens } => self.measure_quality(tokens),
            setting => {
                let message = self.settings.apply(&setting);
                self.emit(Event::Notice { message });
                // Settings sent in a burst (a key held down) are taken together, so only the
                // newest weight and KV switches are made.
                loop {
                    match self.commands.try_recv() {
                        Ok(c) if is_setting(&c) => {
                            let message = self.settings.apply(&c);
                            self.emit(Event::Notice { message });
                        }
                        Ok(c) => {
                            self.pending.push_back(c);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                self.switch_variant();
            }
        }
    }

    /// Make the weight and KV switches asked for (no run is in progress).
    fn switch_variant(&mut self) {
        // Without a model the switches wait for the next load.
        let Some(mut engine) = self.engine.take() else {
            return;
        };
        let (quant, kv) = (self.settings.quant.take(), self.settings.kv_dtype.take());
        let start = Instant::now();
        let mut changed = false;
        if let Some(q) = quant {
            let out = self.out.clone();
            let mut progress = |done, total| {
                // Every eighth matrix is enough for a progress bar.
                if done % 8 == 0 || done == total {
                    out.send(Event::Requantizing {
                        quant: q,
                        done,
                        total,
                    });
                }
            };
            changed = true;
            if let Err(e) = engine.set_quant(q, &mut progress) {
                self.emit(Event::Error {
                    message: format!("{e}; the loaded weights run"),
                });
            }
            // Drafts and adaptive K learnt on the old weights start afresh.
            self.built = None;
        }
        if let Some(d) = kv {
            changed = true;
            if let Err(e) = engine.set_kv_dtype(d) {
                self.emit(Event::Error {
                    message: e.to_string(),
                });
            }
        }
        if changed {
            self.emit(Event::VariantReady(engine.variant(start.elapsed())));
        }
        self.engine = Some(engine);
    }

    /// Perplexity, KL and top-1 agreement of what runs now, over `tokens` of the reference text.
    fn measure_quality(&mut self, tokens: usize) {
        let Some(engine) = self.engine.as_ref() else {
            self.emit(Event::Error {
                message: "no model is loaded: load one first".into(),
            });
            return;
        };
        let tokens = tokens.max(16);
        if self.probe.as_ref().map(|p| p.0) != Some(tokens) {
            match Probe::new(engine, tokens, crate::engine::quality::CHUNK) {
                Ok(p) => self.probe = Some((tokens, p)),
                Err(e) => {
                    self.emit(Event::Error {
                        message: e.to_string(),
                    });
                    return;
                }
            }
        }
        let (tokens, mut probe) = self.probe.take().expect("made above");
        self.emit(Event::Notice {
            message: format!(
                "measuring {} on {} tokens of the reference text …",
                engine.quant,
                probe.tokens()
            ),
        });
        let out = self.out.clone();
        let mut progress = |done: usize, total: usize| {
            out.send(Event::Notice {
                message: format!("measuring quality: pass {done} of {total}"),
            })
        };
        let result = probe.measure(engine, &mut progress);
        self.probe = Some((tokens, probe));
        match result {
            Ok(q) => self.emit(Event::Quality(q)),
            Err(e) => self.emit(Event::Error {
                message: e.to_string(),
            }),
        }
    }

    fn load(&mut self, spec: &str) {
        self.engine = None; // free the old weights before reading new ones
        self.probe = None;
        self.spec = Speculator::none(); // a draft is checked against its target
        self.built = None;
        self.emit(Event::ModelLoading {
            spec: spec.to_string(),
        });
        let out = self.out.clone();
        let progress = move |done, total| out.send(Event::LoadProgress { done, total });
        match Engine::open(spec, &self.device, progress) {
            Ok(e) => {
                self.emit(Event::ModelLoaded(e.info.clone()));
                self.engine = Some(e);
                // Switches asked for before the load apply to the new weights.
                self.switch_variant();
            }
            Err(e) => self.emit(Event::Error {
                message: e.to_string(),
            }),
        }
    }

    fn generate(&mut self, prompt: &str, params: &crate::protocol::GenParams) {
        let Some(mut engine) = self.engine.take() else {
            self.emit(Event::Error {
                message: "no model is loaded: load one first".into(),
            });
            return;
        };
        let rebuilt = match self.prepare_drafter(&engine) {
            Ok(rebuilt) => rebuilt,
            Err(e) => {
                self.engine = Some(engine);
                self.emit(Event::Error {
                    message: format!("{e}; choose another draft mode or draft model"),
                });
                return;
            }
        };
        // What adaptive K learnt stays while the drafter and the K setting stay.
        let policy = self.settings.k;
        if rebuilt || self.spec.controller.policy() != policy {
            self.spec.controller = Controller::new(policy);
        }
        let run = self.next_run;
        self.next_run += 1;
        let settings = RunSettings {
            params: params.clone(),
            quantization: engine.quant,
            draft_mode: self.settings.draft_mode,
            k: self.settings.k,
        };
        let out = self.out.clone();
        let mut emit = |event| out.send(event);
        let commands = &mut self.commands;
        // (`self.spec` is borrowed by the run below, beside these.)
        let pending = &mut self.pending;
        let setting_state = &mut self.settings;
        let notices = self.out.clone();
        let mut control = || loop {
            match commands.try_recv() {
                Ok(Command::Stop) => return Control::Stop,
                Ok(c @ Command::Shutdown)
                | Ok(c @ Command::LoadModel { .. })
                | Ok(c @ Command::Generate { .. })
                | Ok(c @ Command::RunDemo { .. }) => {
                    // These need the engine: finish this run first, then do them.
                    pending.push_back(c);
                    return Control::Stop;
                }
                // Measured once the run ends, on the weights it ran with.
                Ok(c @ Command::MeasureQuality { .. }) => pending.push_back(c),
                Ok(c) => {
                    // Settings are answered between steps, when they take effect.
                    let message = setting_state.apply(&c);
                    notices.send(Event::Notice { message });
                    if let Command::SetK { .. } = c {
                        return Control::SetK(setting_state.k);
                    }
                }
                Err(_) => return Control::Continue,
            }
        };
        let result = engine::generate_with(
            &mut engine,
            &mut self.spec,
            run,
            engine::Prompt::Text(prompt),
            params,
            settings,
            &mut emit,
            &mut control,
        );
        self.engine = Some(engine);
        match result {
            Ok(summary) => self.emit(Event::RunFinished { run, summary }),
            Err(e) => self.emit(Event::Error {
                message: e.to_string(),
            }),
        }
        // Switches asked for during the run take effect now.
        self.switch_variant();
    }
}

impl State {
    /// Run a teaching demo on the engine; each measurement is announced as a notice.
    fn demo(&mut self, demo: &crate::protocol::DemoSection, prompt: &str) {
        let Some(engine) = self.engine.as_mut() else {
            self.emit(Event::Error {
                message: "no model is loaded: load one before running a demo".into(),
            });
            return;
        };
        let out = self.out.clone();
        let mut progress = |message: String| out.send(Event::Notice { message });
        let result = crate::lab::run(engine, demo, prompt, &mut progress);
        match result {
            Ok(run) => self.emit(Event::Demo(run)),
            Err(e) => self.emit(Event::Error {
                message: format!("demo {}: {e:#}", demo.kind),
            }),
        }
    }

    /// Build the drafter the settings ask for, unless the one built already is it; says whether
    /// it built one.
    fn prepare_drafter(&mut self, engine: &Engine) -> engine::Result<bool> {
        let s = &self.settings;
        let key = DrafterKey {
            mode: s.draft_mode,
            draft_model: s.draft_model.clone(),
            layers: s.draft_layers,
        };
        if self.built.as_ref() == Some(&key) {
            return Ok(false);
        }
        self.spec.drafter = Drafter::None; // free a draft model before loading another
        self.built = None;
        self.spec.drafter = match key.mode {
            DraftMode::None => Drafter::None,
            DraftMode::PromptLookup => Drafter::PromptLookup,
            DraftMode::LayerSkip => Drafter::layer_skip(
                &engine.model,
                key.layers.unwrap_or(engine.model.cfg.layers / 2),
            ),
            DraftMode::DraftModel => {
                self.emit(Event::Notice {
                    message: format!(
                        "loading the draft model {} …",
                        key.draft_model
                            .as_deref()
                            .unwrap_or("(picked beside the target)")
                    ),
                });
                let draft = pick::open_draft(engine, key.draft_model.as_deref(), &self.device)?;
                let name = draft.info.name.clone();
                let d = Drafter::draft_model(engine, draft)?;
                self.emit(Event::Notice {
                    message: format!("draft model {name} drafts for {}", engine.info.name),
                });
                d
            }
        };
        self.built = Some(key);
        Ok(true)
    }
}
