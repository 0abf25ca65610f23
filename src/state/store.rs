//! The data store: what the worker has reported, and nothing a person only looked at. Only
//! [`Store::apply`] changes it and it returns nothing, so a live session and a replayed recording
//! build the same store from the same events.

use super::{Ring, RunView, SchedView, ServeView};
use crate::engine::sched::ReqState;
use crate::protocol::{
    DemoRun, Event, KvDtype, ModelInfo, Quality, Quant, Rates, RunSummary, SchedEvent,
    ServerSample, Stamped, SystemSample, Variant, MAX_SPEC_POSITIONS,
};
use std::time::Duration;

/// A weight variant tried in this session, with what its runs and its quality measurement gave.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantRow {
    pub quant: Quant,
    /// A mixed-precision variant's label (its `quant` is then "as loaded").
    pub mix: Option<String>,
    pub kv_dtype: KvDtype,
    pub weight_bytes: u64,
    pub kv_bytes_per_token: u64,
    /// Matrices that took a fallback type.
    pub fallbacks: usize,
    /// The last plain run's speeds with this variant.
    pub prefill_tok_s: Option<f64>,
    pub decode_tok_s: Option<f64>,
    pub quality: Option<Quality>,
}

impl VariantRow {
    fn new(quant: Quant, kv_dtype: KvDtype, mix: Option<String>) -> Self {
        Self {
            quant,
            mix,
            kv_dtype,
            weight_bytes: 0,
            kv_bytes_per_token: 0,
            fallbacks: 0,
            prefill_tok_s: None,
            decode_tok_s: None,
            quality: None,
        }
    }
}

/// Server samples kept: two minutes at the scraper's 2 Hz.
pub const SERVER_SAMPLES: usize = 240;
/// The span the server's current throughput is measured over.
pub const SERVER_RECENT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    pub model: Option<ModelInfo>,
    /// Spec being loaded and bytes done / total when known.
    pub loading: Option<(String, u64, u64)>,
    /// The last load failed (its error is [`Store::error`]).
    pub load_failed: bool,
    pub current: Option<RunView>,
    /// Finished runs, newest last (the last few).
    pub history: Ring<RunSummary>,
    /// Memory samples with the session time they were taken at.
    pub system: Ring<(Duration, SystemSample)>,
    pub last_system: Option<SystemSample>,
    /// A served model's metrics, scraped a few times a second (the last two minutes at 2 Hz),
    /// and the latest one.
    pub server: Ring<ServerSample>,
    pub last_server: Option<ServerSample>,
    /// The latest error, until a load or a run succeeds; `errors` counts them all.
    pub error: Option<String>,
    pub errors: u64,
    /// What the engine runs with now, once a switch was reported.
    pub variant: Option<Variant>,
    /// Variants tried this session, first tried first.
    pub variants: Vec<VariantRow>,
    /// Requantising: type, matrices done, matrices.
    pub requantizing: Option<(Quant, usize, usize)>,
    /// The demos measured, oldest first.
    pub demos: Vec<DemoRun>,
    /// The last sensitivity sweep, cells filling in as they are measured.
    pub sensitivity: Option<crate::protocol::sensitivity::SensMap>,
    /// A serving benchmark's levels and progress.
    pub serve: ServeView,
    /// The batching scheduler's queues, requests and blocks.
    pub sched: SchedView,
    /// Schedulers started so far (a batch run, a stream, a server): the dashboard hides the
    /// scheduler's view until the next one once the user has dismissed it.
    pub sched_runs: u64,
    /// The last A/B race, and how many started so far (the view hides until the next one once
    /// dismissed).
    pub race: Option<super::RaceView>,
    pub races: u64,
    pub now: Duration,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        Self {
            model: None,
            loading: None,
            load_failed: false,
            current: None,
            history: Ring::new(4),
            system: Ring::new(240),
            last_system: None,
            server: Ring::new(SERVER_SAMPLES),
            last_server: None,
            error: None,
            errors: 0,
            variant: None,
            variants: Vec::new(),
            requantizing: None,
            demos: Vec::new(),
            sensitivity: None,
            serve: ServeView::default(),
            sched: SchedView::default(),
            sched_runs: 0,
            race: None,
            races: 0,
            now: Duration::ZERO,
        }
    }

    /// A scheduler of this store's has requests queued or running (a batch run or a stream).
    pub fn scheduling(&self) -> bool {
        !self
            .sched
            .ids(|s| s == ReqState::Running || s == ReqState::Waiting)
            .is_empty()
    }

    /// A run or a race is under way.
    pub fn running(&self) -> bool {
        self.current.as_ref().is_some_and(|r| !r.finished()) || self.racing()
    }

    /// A race is under way.
    pub fn racing(&self) -> bool {
        self.race.as_ref().is_some_and(|r| r.running())
    }

    /// The mixed-precision variant runs use now, if one is.
    pub fn running_mix(&self) -> Option<String> {
        self.variant.as_ref().and_then(|v| v.mix.clone())
    }

    /// The weights and KV dtype runs use now.
    pub fn running_variant(&self) -> (Quant, KvDtype) {
        match &self.variant {
            Some(v) => (v.quant, v.kv_dtype),
            None => (
                Quant::AsLoaded,
                self.model.as_ref().map_or(KvDtype::F32, |m| m.kv_dtype),
            ),
        }
    }

    /// Take one worker event.
    pub fn apply(&mut self, s: &Stamped) {
        self.now = self.now.max(s.at);
        match &s.event {
            Event::ModelLoading { .. }
            | Event::LoadProgress { .. }
            | Event::ModelLoaded(_)
            | Event::Requantizing { .. }
            | Event::VariantReady(_)
            | Event::Quality(_) => self.apply_model(&s.event),
            Event::RunStarted { .. }
            | Event::PrefillDone { .. }
            | Event::Token(_)
            | Event::KvBlocks { .. }
            | Event::SpecStep(_)
            | Event::RunFinished { .. } => self.apply_run(&s.event),
            Event::System(_) | Event::Server(_) => self.apply_sample(s),
            // The status line tells these (see `follow`).
            Event::Note(_) | Event::Notice { .. } | Event::StreamDone(_) | Event::BatchDone(_) => {}
            Event::Demo(run) => self.demos.push(run.clone()),
            Event::Serve(e) => self.serve.apply(s.at, e),
            Event::Sched(e) => {
                if let SchedEvent::Started { .. } = e {
                    self.sched_runs += 1;
                }
                self.sched.apply(s.at, e)
            }
            Event::Error { message } => self.apply_error(message),
            Event::Race(e) => {
                if let crate::protocol::race::RaceEvent::Started { .. } = e {
                    self.races += 1;
                }
                super::RaceView::apply(&mut self.race, e)
            }
            Event::Sensitivity(e) => {
                crate::protocol::sensitivity::SensMap::apply(&mut self.sensitivity, e)
            }
        }
    }

    /// The model's loading, its variants and their quality.
    fn apply_model(&mut self, event: &Event) {
        match event {
            Event::ModelLoading { spec } => {
                self.loading = Some((spec.clone(), 0, 0));
                self.load_failed = false;
                self.model = None;
            }
            Event::LoadProgress { done, total } => {
                if let Some(l) = self.loading.as_mut() {
                    (l.1, l.2) = (*done, *total);
                }
            }
            Event::ModelLoaded(info) => {
                self.loading = None;
                self.error = None;
                self.model = Some(info.clone());
                self.variant = None;
                self.variants.clear();
                let row = self.variant_row(Quant::AsLoaded, info.kv_dtype, None);
                row.weight_bytes = info.weight_bytes;
                row.kv_bytes_per_token = info.kv_bytes_per_token;
            }
            Event::Requantizing { quant, done, total } => {
                self.requantizing = Some((*quant, *done, *total));
            }
            Event::VariantReady(v) => self.variant_ready(v),
            Event::Quality(q) => {
                self.variant_row(q.quant, q.kv_dtype, q.mix.clone()).quality = Some(q.clone());
            }
            _ => {}
        }
    }

    /// The current run's start, progress and end.
    fn apply_run(&mut self, event: &Event) {
        match event {
            Event::RunStarted { .. } => {
                self.current = RunView::started(event);
                self.error = None;
            }
            Event::PrefillDone { .. }
            | Event::Token(_)
            | Event::KvBlocks { .. }
            | Event::SpecStep(_) => {
                if let Some(r) = self.current.as_mut() {
                    r.apply(event);
                }
            }
            Event::RunFinished { summary, .. } => {
                if let Some(r) = self.current.as_mut() {
                    r.apply(event);
                }
                self.history.push(summary.clone());
                if summary.spec.is_none() {
                    let (quant, kv) = self.running_variant();
                    let mix = self.running_mix();
                    let row = self.variant_row(quant, kv, mix);
                    row.prefill_tok_s = Some(summary.prefill_tok_s);
                    row.decode_tok_s = Some(summary.decode_tok_s);
                }
            }
            _ => {}
        }
    }

    /// The system's and the server's samples.
    fn apply_sample(&mut self, s: &Stamped) {
        match &s.event {
            Event::System(sample) => {
                self.system.push((s.at, sample.clone()));
                self.last_system = Some(sample.clone());
            }
            Event::Server(sample) => {
                // A recording may hold any number of positions; a scrape keeps this many.
                let mut sample = sample.clone();
                sample.spec_accepted_per_pos.truncate(MAX_SPEC_POSITIONS);
                self.server.push(sample.clone());
                self.last_server = Some(sample);
            }
            _ => {}
        }
    }

    /// A worker's error: ends the run it cut short and a load under way.
    fn apply_error(&mut self, message: &str) {
        // A run the error cut short is over: nothing more comes for it.
        if let Some(r) = self.current.as_mut().filter(|r| !r.finished()) {
            r.failed = Some(message.to_string());
        }
        if let Some(r) = self.race.as_mut().filter(|r| r.running()) {
            r.failed = Some(message.to_string());
        }
        self.load_failed = self.loading.take().is_some();
        self.error = Some(message.to_string());
        self.errors += 1;
    }

    /// The server's rates now: over its samples of the last [`SERVER_RECENT`] (at least the last
    /// two), which smooths the steps of counters that grow per engine step or per request.
    pub fn server_rates(&self) -> Option<Rates> {
        let latest = self.server.last()?.at;
        let n = self
            .server
            .iter()
            .rev()
            .take_while(|s| latest.saturating_sub(s.at) <= SERVER_RECENT)
            .count()
            .max(2);
        Rates::over(self.server.iter().skip(self.server.len().saturating_sub(n)))
    }

    /// The server's rates over every sample kept: steadier shares (hit rate, acceptance by
    /// position) than two samples half a second apart give.
    pub fn server_window(&self) -> Option<Rates> {
        Rates::over(self.server.iter())
    }

    /// The session's row for a variant, added when first seen.
    fn variant_row(
        &mut self,
        quant: Quant,
        kv_dtype: KvDtype,
        mix: Option<String>,
    ) -> &mut VariantRow {
        let i = match self
            .variants
            .iter()
            .position(|r| r.quant == quant && r.kv_dtype == kv_dtype && r.mix == mix)
        {
            Some(i) => i,
            None => {
                self.variants.push(VariantRow::new(quant, kv_dtype, mix));
                self.variants.len() - 1
            }
        };
        &mut self.variants[i]
    }

    fn variant_ready(&mut self, v: &Variant) {
        self.requantizing = None;
        if let Some(m) = self.model.as_mut() {
            m.weight_bytes = v.weight_bytes;
            m.weight_types = v.weight_types.clone();
            m.kv_dtype = v.kv_dtype;
            m.kv_bytes_per_token = v.kv_bytes_per_token;
        }
        let row = self.variant_row(v.quant, v.kv_dtype, v.mix.clone());
        row.weight_bytes = v.weight_bytes;
        row.kv_bytes_per_token = v.kv_bytes_per_token;
        row.fallbacks = v.fallbacks.iter().map(|f| f.tensors).sum();
        self.variant = Some(v.clone());
    }
}
