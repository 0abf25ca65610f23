//! The local backend: the worker thread's engine, the settings in effect, and the jobs it runs.

use super::drafter::DrafterKey;
use super::route::{route, Coalesce, Inbox, Route};
use super::{admit, Fault, Flags, Job, Outbox};
use crate::engine::quality::Probe;
use crate::engine::spec::{Controller, Drafter, Speculator};
use crate::engine::{self, Engine, StepControl};
use crate::protocol::{
    race::RaceConfig, BatchDone, Command, DraftMode, Event, GenParams, Job as Stoppable, KPolicy,
    Notice, Quant, RunSettings, Settings, StreamDone, DEFAULT_K,
};
use candle_core::Device;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tokio::sync::mpsc::UnboundedReceiver;

pub(super) struct Local {
    device: Device,
    out: Outbox,
    flags: Flags,
    pub(super) fault: Option<Fault>,
    inbox: Inbox,
    engine: Option<Engine>,
    next_run: u64,
    /// The settings asked for; a weight or KV switch stays here until it is made.
    settings: Settings,
    spec: Speculator,
    built: Option<DrafterKey>,
    /// The quality probe of the loaded model and the tokens it runs (its baseline is kept).
    probe: Option<(usize, Probe)>,
    /// The stamp measured for the loaded model's demos, by model name.
    stamp: Option<(String, crate::protocol::Stamp)>,
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

impl Local {
    pub(super) fn new(
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
            inbox: Inbox::new(commands),
            engine: None,
            next_run: 1,
            settings: Settings::default(),
            spec: Speculator::none(),
            built: None,
            probe: None,
            stamp: None,
        }
    }

    fn emit(&self, event: Event) {
        self.out.send(event);
    }

    /// Report a job's failure: that it stopped when it was asked to, else an error.
    fn failed(&self, job: Stoppable, message: String) {
        if self.flags.interrupt.load(Ordering::SeqCst) {
            self.emit(Event::Note(Notice::Stopped(job)));
        } else {
            self.emit(Event::Error { message });
        }
    }

    pub(super) fn run(mut self) {
        loop {
            let Some(cmd) = self.inbox.next_blocking() else {
                return;
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
            Command::RunStream { stream } => self.stream(&stream),
            Command::RunBatch {
                prompt,
                params,
                batch,
            } => self.batch(&prompt, &params, batch),
            Command::Race {
                prompt,
                params,
                a,
                b,
            } => self.race(&prompt, &params, [&a, &b]),
            Command::Stop => {} // nothing is running
            Command::Shutdown => {}
            Command::MeasureQuality { tokens } => self.measure_quality(tokens),
            Command::Set(change) => {
                // Settings sent in a burst (a key held down) are taken together, so only the
                // newest weight and KV switches are made.
                let mut settings = Coalesce::new(&mut self.inbox, &mut self.settings, &self.out);
                settings.take(change);
                if let Some(other) = settings.drain() {
                    self.inbox.later(other);
                }
                self.switch_variant();
            }
        }
    }

    /// Build the mixed-precision variant `spec` names (no run is in progress).
    fn switch_mix(&mut self, engine: &mut Engine, spec: &crate::protocol::sensitivity::MixSpec) {
        let out = self.out.clone();
        if let Err(e) = engine.set_mix(spec, &mut out.requantizing(Quant::AsLoaded)) {
            self.failed(
                Stoppable::Requantizing,
                format!("{e}; the loaded weights run"),
            );
        }
        // Drafts and adaptive K learnt on the old weights start afresh.
        self.built = None;
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
        if let Some(q) = quant.filter(|&q| {
            if q == Quant::AsLoaded {
                return true; // going back frees memory
            }
            // A variant running now is freed before the new one is made.
            let freed = engine
                .original
                .as_ref()
                .map_or(0, |_| engine.model.weight_bytes());
            let what = format!("requantising to {q}");
            match admit::available_or_unknown(&what, admit::switch_bytes(&engine, q), freed) {
                Ok(()) => true,
                Err(message) => {
                    self.emit(Event::Error { message });
                    false
                }
            }
        }) {
            let out = self.out.clone();
            changed = true;
            if let Err(e) = engine.set_quant(q, &mut out.requantizing(q)) {
                self.failed(
                    Stoppable::Requantizing,
                    format!("{e}; the loaded weights run"),
                );
            }
            // Drafts and adaptive K learnt on the old weights start afresh.
            self.built = None;
        }
        if let Some(spec) = self.settings.mix.take() {
            changed = true;
            self.switch_mix(&mut engine, &spec);
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
                Err(e) => return self.failed(Stoppable::Quality, e.to_string()),
            }
        }
        let (tokens, mut probe) = self.probe.take().expect("made above");
        self.emit(Event::Note(Notice::QualityStarted {
            quant: engine.quant,
            tokens: probe.tokens(),
        }));
        let out = self.out.clone();
        let mut progress =
            |done: usize, total: usize| out.send(Event::Note(Notice::QualityPass { done, total }));
        let result = probe.measure(engine, &mut progress);
        self.probe = Some((tokens, probe));
        match result {
            Ok(q) => self.emit(Event::Quality(q)),
            Err(e) => self.failed(Stoppable::Quality, e.to_string()),
        }
    }

    fn load(&mut self, spec: &str) {
        let in_job = self.flags.in_job.clone();
        let _job = Job::start(&in_job);
        // Refused before anything is freed: the model that runs keeps running.
        if let Ok(engine::source::ModelSource::File(path)) = engine::source::resolve(spec) {
            let need = std::fs::metadata(&path).map_or(0, |m| m.len());
            let freed = self.engine.as_ref().map_or(0, engine_bytes);
            let what = format!("loading {}", path.display());
            if let Err(message) = admit::available_or_unknown(&what, admit::load_bytes(need), freed)
            {
                return self.emit(Event::Error { message });
            }
        }
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
            Err(e) => self.failed(Stoppable::Loading, e.to_string()),
        }
    }

    fn generate(&mut self, prompt: &str, params: &GenParams) {
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
        if let Err(message) = self.prepare_run(&engine, prompt, params) {
            self.engine = Some(engine);
            return self.emit(Event::Error { message });
        }
        let run = self.next_run;
        self.next_run += 1;
        let settings = RunSettings {
            params: params.clone(),
            quantization: engine.quant,
            draft_mode: self.draft_mode(),
            k: self.k(),
            policy: self.settings.policy.unwrap_or_default(),
        };
        let out = self.out.clone();
        let mut emit = |event| out.send(event);
        // (`self.spec` is borrowed by the run below, beside these.)
        let (inbox, asked, notices) = (&mut self.inbox, &mut self.settings, &self.out);
        let mut control = || between_steps(&mut Coalesce::new(inbox, asked, notices));
        let request = engine::RunRequest::new(run, engine::Prompt::Text(prompt.into()), settings);
        let result = engine::generate(
            &mut engine,
            &mut self.spec,
            &request,
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

    /// Race `prompt` under two configurations; a stop between steps ends both sides (and
    /// still sends the summary), one during the set-up interrupts it.
    fn race(&mut self, prompt: &str, params: &GenParams, configs: [&RaceConfig; 2]) {
        let Some(engine) = self.engine.as_ref() else {
            return self.emit(Event::Error {
                message: "no model is loaded: load one before a race".into(),
            });
        };
        let runs = [self.next_run, self.next_run + 1];
        self.next_run += 2;
        let job = super::race::RaceJob {
            prompt,
            params,
            configs,
            runs,
        };
        let (inbox, asked, notices) = (&mut self.inbox, &mut self.settings, &self.out);
        let mut stop =
            || between_steps(&mut Coalesce::new(inbox, asked, notices)) == StepControl::Stop;
        let in_job = self.flags.in_job.clone();
        let (device, out) = (&self.device, &self.out);
        let result = match super::race::server_lane(&job) {
            Ok(Some(lane)) => {
                super::race_remote::run(engine, job, lane, device, out, &in_job, &mut stop)
            }
            Ok(None) => super::race::run(engine, job, device, out, &in_job, &mut stop),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.failed(Stoppable::Race, format!("race: {e:#}"));
        }
    }

    /// Admit a run of `params` and build the drafter and K controller it runs with; the error
    /// says why it cannot run.
    fn prepare_run(
        &mut self,
        engine: &Engine,
        prompt: &str,
        params: &GenParams,
    ) -> Result<(), String> {
        // The prompt's tokens, or (where it cannot be tokenized: the run will say why) its bytes,
        // which bound them from above.
        let prompt_tokens = engine
            .prompt_ids(prompt, params.raw)
            .map_or(prompt.len(), |ids| ids.len());
        let need = admit::run_bytes(engine, prompt_tokens, params.max_tokens);
        let what = format!(
            "a run of {prompt_tokens} prompt tokens and up to {} more (its KV cache and prefill)",
            params.max_tokens
        );
        admit::available_or_unknown(&what, need, 0)?;
        let rebuilt = self
            .prepare_drafter(engine)
            .map_err(|e| format!("{e}; choose another draft mode or draft model"))?;
        // What adaptive K learnt stays while the drafter and the K setting stay.
        let policy = self.k();
        if rebuilt || self.spec.controller.policy() != policy {
            self.spec.controller = Controller::new(policy);
        }
        self.spec.policy = crate::engine::spec::accept::Acceptance::of_policy(
            self.settings.policy.unwrap_or_default(),
        );
        Ok(())
    }

    fn draft_mode(&self) -> DraftMode {
        self.settings.draft_mode.unwrap_or_default()
    }

    fn k(&self) -> KPolicy {
        self.settings.k.unwrap_or(DEFAULT_K)
    }
}

/// What a run does at its next step, after the commands that wait: settings are taken (a new K
/// from this step on), work that needs the engine stops the run and waits for its end.
fn between_steps(c: &mut Coalesce) -> StepControl {
    loop {
        let Some(cmd) = c.drain() else {
            return c.k.map_or(StepControl::Continue, StepControl::SetK);
        };
        match route(&cmd) {
            Route::Stop => return StepControl::Stop,
            // These need the engine: finish this run first, then do them.
            Route::Engine | Route::Shutdown => {
                c.inbox.later(cmd);
                return StepControl::Stop;
            }
            // Measured once the run ends, on the weights it ran with.
            Route::AfterRun => c.inbox.later(cmd),
            Route::Setting => unreachable!("drain takes the settings"),
        }
    }
}

impl Local {
    /// Run a simulated request stream on the batching scheduler in real time; each decision is
    /// an [`Event::Sched`], and an [`Event::StreamDone`] sums the stream up at its end.
    fn stream(&mut self, spec: &crate::protocol::StreamSpec) {
        use crate::lab::stream;
        let Some(engine) = self.engine.as_ref() else {
            self.emit(Event::Error {
                message: "no model is loaded: load one before running a request stream".into(),
            });
            return;
        };
        let in_job = self.flags.in_job.clone();
        let _job = Job::start(&in_job);
        let result = stream::requests(&spec.arrivals, engine.model.cfg.vocab).and_then(|reqs| {
            let cfg = crate::engine::sched::SchedConfig {
                policy: spec.policy,
                max_batch: spec.max_batch,
                kv_blocks: spec.kv_blocks,
                ..Default::default()
            };
            let out = self.out.clone();
            let pace = stream::Pace::Live {
                stop: &self.flags.interrupt,
            };
            stream::run(&engine.model, cfg, &reqs, &[], pace, &mut |_, e| {
                out.send(Event::Sched(e.clone()))
            })
        });
        match result {
            Ok(r) => self.emit(Event::StreamDone(StreamDone {
                requests: r.reqs.len(),
                tokens: r.generated(),
                took: r.makespan(),
                preemptions: r.preemptions,
            })),
            Err(e) => self.failed(Stoppable::Stream, format!("stream: {e:#}")),
        }
    }

    /// Run the prompt as `batch` sequences at once through the scheduler, live; the
    /// [`Event::BatchDone`] at the end gives the tokens, the time and how many continuations differ.
    fn batch(&mut self, prompt: &str, params: &GenParams, batch: usize) {
        use crate::lab::stream;
        let Some(engine) = self.engine.as_ref() else {
            self.emit(Event::Error {
                message: "no model is loaded: load one before a batch run".into(),
            });
            return;
        };
        let in_job = self.flags.in_job.clone();
        let _job = Job::start(&in_job);
        let batch = batch.max(1);
        let result = engine
            .prompt_ids(prompt, params.raw)
            .map_err(anyhow::Error::from)
            .and_then(|ids| {
                let context = engine.model.cfg.context_length;
                let cfg = crate::engine::sched::SchedConfig {
                    max_batch: batch,
                    kv_blocks: stream::blocks_for(ids.len(), params, batch, context),
                    ..Default::default()
                };
                let out = self.out.clone();
                let pace = stream::Pace::Live {
                    stop: &self.flags.interrupt,
                };
                let reqs = stream::copies(&ids, params, batch);
                stream::run(
                    &engine.model,
                    cfg,
                    &reqs,
                    &engine.tokenizer.eog,
                    pace,
                    &mut |_, e| out.send(Event::Sched(e.clone())),
                )
            });
        match result {
            Ok(r) => {
                let first = r.reqs.first().map(|q| q.tokens.as_slice()).unwrap_or(&[]);
                let text = engine.tokenizer.decode(first).unwrap_or_default();
                let distinct = r
                    .reqs
                    .iter()
                    .map(|q| &q.tokens)
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                self.emit(Event::BatchDone(BatchDone {
                    batch,
                    tokens: r.generated(),
                    took: r.makespan(),
                    distinct,
                    first: text,
                }))
            }
            Err(e) => self.failed(Stoppable::Batch, format!("batch run: {e:#}")),
        }
    }

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
        let stamp = match &self.stamp {
            Some((name, s)) if *name == engine.info.name => Some(s.clone()),
            _ => {
                progress("measuring this machine's roofs for the report's stamp".into());
                let s = super::stamp::measure(Some(&engine.model), crate::engine::threads()).ok();
                self.stamp = s.clone().map(|s| (engine.info.name.clone(), s));
                s
            }
        };
        let live_out = self.out.clone();
        let mut live = |e: Event| live_out.send(e);
        let result = crate::serve::lesson::run_demo(engine, demo, prompt, &mut progress, &mut live);
        match result {
            Ok(run) => self.emit(Event::Demo(crate::protocol::DemoRun {
                stamp: stamp.map(Box::new),
                ..run
            })),
            Err(e) => {
                let stopped = self.flags.interrupt.swap(false, Ordering::SeqCst);
                // A tour of weight types stopped half way runs the weights it started with.
                let engine = self.engine.as_mut().expect("the demo ran on it");
                if engine.quant != before || engine.mix.is_some() {
                    if let Err(e) = engine.set_quant(before, &mut |_, _| {}) {
                        self.emit(Event::Error {
                            message: format!("{e}; the loaded weights run"),
                        });
                    }
                }
                self.flags.interrupt.store(stopped, Ordering::SeqCst);
                self.failed(
                    Stoppable::Demo(demo.kind.clone()),
                    format!("demo {}: {e:#}", demo.kind),
                );
            }
        }
    }

    /// Build the drafter the settings ask for, unless the one built already is it; says whether
    /// it built one.
    fn prepare_drafter(&mut self, engine: &Engine) -> engine::Result<bool> {
        let s = &self.settings;
        let key = DrafterKey::of(s);
        if self.built.as_ref() == Some(&key) {
            return Ok(false);
        }
        self.spec.drafter = Drafter::None; // free a draft model before loading another
        self.built = None;
        self.spec.drafter = super::drafter::build(engine, &key, &self.device, &self.out)?;
        self.built = Some(key);
        Ok(true)
    }
}

/// Bytes of weights an engine holds (a variant and the loaded weights kept beside it).
fn engine_bytes(e: &Engine) -> u64 {
    e.model.weight_bytes() + e.original.as_ref().map_or(0, |m| m.weight_bytes())
}
