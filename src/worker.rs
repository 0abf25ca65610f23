//! The worker: a dedicated OS thread that owns the engine. Commands come in and stamped events go
//! out over unbounded tokio channels, so it never waits on the UI. It never touches the terminal,
//! and a panic inside it becomes an error event.
//!
//! Stopping: a run stops between tokens when `Stop` arrives. A job (a load, a weight switch, a
//! quality measurement, a demo) is interrupted through a flag the handle sets at once, which the
//! engine checks before every layer and every requantised matrix. Dropping the handle interrupts
//! whatever runs and waits at most [`SHUTDOWN_WAIT`] for the thread.
//!
//! For tests of those paths, `LABTUI_FAULT` injects a fault into every run: `worker-panic`
//! (a panic on the worker thread), `pool-panic` (a panic on one of candle's pool threads, where
//! our kernels run) or `sampler-panic` (a panic on the system sampler's thread).

use crate::engine::quality::Probe;
use crate::engine::spec::{pick, Controller, Drafter, Speculator};
use crate::engine::{self, Control, Engine};
use crate::protocol::{
    Command, DraftMode, Event, KPolicy, KvDtype, Quant, RunSettings, Stamped, DEFAULT_K,
};
use candle_core::Device;
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

/// Name of the worker's thread.
pub const THREAD_NAME: &str = "labtui-worker";

/// The longest a dropped handle waits for the worker thread before leaving it to the process's end.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// What the handle and the thread share to stop work without a message.
#[derive(Clone, Default)]
struct Flags {
    /// Stop the job in progress (the engine checks it; see [`engine::interrupt`]).
    interrupt: Arc<AtomicBool>,
    /// A job that `Stop` interrupts is in progress (a run stops between tokens instead).
    in_job: Arc<AtomicBool>,
    /// The handle is gone: take no more commands.
    shutdown: Arc<AtomicBool>,
}

/// Marks a job in progress for as long as it lives (a panic included).
struct Job<'a>(&'a AtomicBool);

impl<'a> Job<'a> {
    fn start(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Self(flag)
    }
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A panic injected for tests (`LABTUI_FAULT`), by the thread it happens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Worker,
    Pool,
    Sampler,
}

impl Fault {
    fn from_env() -> Option<Self> {
        match std::env::var("LABTUI_FAULT").ok()?.as_str() {
            "worker-panic" => Some(Self::Worker),
            "pool-panic" => Some(Self::Pool),
            "sampler-panic" => Some(Self::Sampler),
            _ => None,
        }
    }
}

/// The UI's (or a headless command's) end of the worker.
pub struct Worker {
    pub commands: UnboundedSender<Command>,
    pub events: UnboundedReceiver<Stamped>,
    thread: Option<std::thread::JoinHandle<()>>,
    flags: Flags,
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
        let fault = Fault::from_env();
        if let Some(every) = opts.sample_every {
            let panic_after = (fault == Some(Fault::Sampler)).then_some(2);
            crate::metrics::spawn(ev_tx.clone(), clock, every, panic_after);
        }
        let flags = Flags::default();
        let thread_flags = flags.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                engine::interrupt::install(thread_flags.interrupt.clone());
                let out = Outbox { tx: ev_tx, clock };
                let mut state = State::new(opts.device, out, cmd_rx, thread_flags);
                state.fault = fault;
                state.run()
            })
            .expect("spawn the worker thread");
        Self {
            commands: cmd_tx,
            events: ev_rx,
            thread: Some(thread),
            flags,
        }
    }

    pub fn send(&self, c: Command) {
        // A job only hears Stop through the flag: it reads no commands while it works.
        if c == Command::Stop && self.flags.in_job.load(Ordering::SeqCst) {
            self.flags.interrupt.store(true, Ordering::SeqCst);
        }
        // The worker only goes away after Shutdown; a send after that has nobody to tell.
        let _ = self.commands.send(c);
    }

    pub fn send_all(&self, cs: impl IntoIterator<Item = Command>) {
        cs.into_iter().for_each(|c| self.send(c));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.flags.shutdown.store(true, Ordering::SeqCst);
        self.flags.interrupt.store(true, Ordering::SeqCst);
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            // The engine stops within a layer; a step that still runs past the wait (a huge
            // matrix, a read from a slow disk) is left to end with the process.
            let deadline = Instant::now() + SHUTDOWN_WAIT;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
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
    flags: Flags,
    fault: Option<Fault>,
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

/// Panic on one of candle's pool threads, as a bug in a kernel would (`LABTUI_FAULT=pool-panic`).
fn pool_panic() {
    let pool_thread = || {
        std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("candle-bp-"))
    };
    candle_core::utils::barrier_pool().execute(|_| {
        if pool_thread() {
            panic!("injected fault: a panic on a pool thread");
        }
    });
    // A pool of one thread runs everything on the caller.
    panic!("injected fault: a panic in the pool's work");
}

impl State {
    fn new(
        device: Device,
        out: Outbox,
        commands: UnboundedReceiver<Command>,
        flags: Flags,
    ) -> Self {
        Self {
            device,
            out,
            flags,
            fault: None,
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

    /// Report a job's failure: a notice when it was asked to stop, else an error.
    fn failed(&self, job: &str, message: String) {
        if self.flags.interrupt.load(Ordering::SeqCst) {
            self.emit(Event::Notice {
                message: format!("{job} stopped"),
            });
        } else {
            self.emit(Event::Error { message });
        }
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
            if cmd == Command::Shutdown || self.flags.shutdown.load(Ordering::SeqCst) {
                return;
            }
            // A Stop that came after the last job ended is for no one (a Shutdown that came
            // meanwhile is seen below, after the flag is cleared).
            self.flags.interrupt.store(false, Ordering::SeqCst);
            if self.flags.shutdown.load(Ordering::SeqCst) {
                return;
            }
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| self.handle(cmd))) {
                self.engine = None;
                self.emit(Event::Error {
                    message: format!(
                        "internal error in the worker: {}; the model was unloaded, load it again",
                        crate::protocol::panic_message(&*p)
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
        let in_job = self.flags.in_job.clone();
        let _job = Job::start(&in_job);
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
                self.failed(
                    "requantising (the loaded weights run)",
                    format!("{e}; the loaded weights run"),
                );
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
        let in_job = self.flags.in_job.clone();
        let _job = Job::start(&in_job);
        let tokens = tokens.max(16);
        if self.probe.as_ref().map(|p| p.0) != Some(tokens) {
            match Probe::new(engine, tokens, crate::engine::quality::CHUNK) {
                Ok(p) => self.probe = Some((tokens, p)),
                Err(e) => return self.failed("the quality measurement", e.to_string()),
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
            Err(e) => self.failed("the quality measurement", e.to_string()),
        }
    }

    fn load(&mut self, spec: &str) {
        let in_job = self.flags.in_job.clone();
        let _job = Job::start(&in_job);
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
                drop(_job);
                // Switches asked for before the load apply to the new weights.
                self.switch_variant();
            }
            Err(e) => self.failed("loading (no model is loaded)", e.to_string()),
        }
    }

    fn generate(&mut self, prompt: &str, params: &crate::protocol::GenParams) {
        let Some(mut engine) = self.engine.take() else {
            self.emit(Event::Error {
                message: "no model is loaded: load one first".into(),
            });
            return;
        };
        match self.fault {
            Some(Fault::Worker) => panic!("injected fault: a panic on the worker thread"),
            Some(Fault::Pool) => pool_panic(),
            _ => {}
        }
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
        let in_job = self.flags.in_job.clone();
        let _job = Job::start(&in_job);
        let out = self.out.clone();
        let mut progress = |message: String| out.send(Event::Notice { message });
        let before = engine.quant;
        let result = crate::lab::run(engine, demo, prompt, &mut progress);
        match result {
            Ok(run) => self.emit(Event::Demo(run)),
            Err(e) => {
                let stopped = self.flags.interrupt.swap(false, Ordering::SeqCst);
                // A tour of weight types stopped half way runs the weights it started with.
                let engine = self.engine.as_mut().expect("the demo ran on it");
                if engine.quant != before {
                    if let Err(e) = engine.set_quant(before, &mut |_, _| {}) {
                        self.emit(Event::Error {
                            message: format!("{e}; the loaded weights run"),
                        });
                    }
                }
                self.flags.interrupt.store(stopped, Ordering::SeqCst);
                self.failed(
                    &format!("demo {}", demo.kind),
                    format!("demo {}: {e:#}", demo.kind),
                );
            }
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
