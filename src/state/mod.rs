//! The pure app model: [`AppState::apply`] takes worker events, [`AppState::update`] takes user
//! actions and may answer with a command for the worker. No IO; series are bounded.

mod demo;
mod ring;
mod spec;

pub use demo::DemoView;
pub use ring::Ring;
pub use spec::SpecView;

use crate::protocol::{
    Command, Event, GenParams, ModelInfo, RunSummary, Stamped, SystemSample, TokenEvent,
};
use std::time::Duration;

/// Which part of the screen takes keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Focus {
    Prompt,
    Tape,
}

/// What a person can do, whatever key they used for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    Run,
    Stop,
    /// Stop when running, else leave the prompt.
    Escape,
    FocusNext,
    Type(char),
    Backspace,
    ClearPrompt,
    SelectPrev,
    SelectNext,
    ScrollUp,
    ScrollDown,
    CycleDraftMode,
    KUp,
    KDown,
    CycleQuant,
    MaxTokensUp,
    MaxTokensDown,
    TempUp,
    TempDown,
    CycleKvDtype,
    /// Switch the engine's KV cache dtype (the what-if dtype is [`Action::CycleKvDtype`]).
    CycleLiveKv,
    /// Measure perplexity, KL and top-1 agreement of the weights that run now.
    MeasureQuality,
    /// Show or hide the table of the weight variants tried in this session.
    ToggleVariants,
    CycleContext,
    CycleBatch,
    ToggleRecord,
    ToggleHelp,
    /// Open the preset picker (the terminal loop reads the presets folder).
    OpenPresets,
    PickerUp,
    PickerDown,
    PickerChoose,
    PickerClose,
    /// The demo's next / previous narration step.
    DemoNext,
    DemoPrev,
}

/// The preset picker: the presets found and the one under the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Picker {
    pub presets: Vec<crate::preset::Preset>,
    pub selected: usize,
}

pub const DRAFT_MODES: [&str; 4] = ["none", "draft-model", "prompt-lookup", "layer-skip"];
pub const QUANTS: [&str; 11] = [
    "as loaded",
    "F32",
    "F16",
    "BF16",
    "Q8_0",
    "Q6_K",
    "Q5_K",
    "Q4_K",
    "Q4_0",
    "Q3_K",
    "Q2_K",
];
/// What-if KV dtypes: name and bytes per value.
pub const KV_DTYPES: [(&str, f64); 4] = [
    ("f32", 4.0),
    ("f16", 2.0),
    ("bf16", 2.0),
    ("q8_0", 34.0 / 32.0),
];
/// KV cache dtypes the engine runs with.
pub const LIVE_KV: [&str; 3] = ["f32", "f16", "bf16"];
/// Tokens of the reference text a dashboard quality measurement runs.
pub const QUALITY_TOKENS: usize = 512;

/// A weight variant tried in this session, with what its runs and its quality measurement gave.
#[derive(Debug, Clone, PartialEq)]
pub struct VariantRow {
    pub quant: String,
    pub kv_dtype: String,
    pub weight_bytes: u64,
    pub kv_bytes_per_token: u64,
    /// Matrices that took a fallback type.
    pub fallbacks: usize,
    /// The last plain run's speeds with this variant.
    pub prefill_tok_s: Option<f64>,
    pub decode_tok_s: Option<f64>,
    pub quality: Option<crate::protocol::Quality>,
}

pub const WHAT_IF_CONTEXTS: [usize; 5] = [0, 2048, 8192, 32768, 131072];
pub const WHAT_IF_BATCH: [usize; 4] = [1, 2, 4, 8];

/// One run as the panes see it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunView {
    pub run: u64,
    pub prompt_tokens: usize,
    pub prefill: Option<Duration>,
    pub tokens: Vec<TokenEvent>,
    pub summary: Option<RunSummary>,
    /// The run's speculative steps (empty when it decoded plainly).
    pub spec: SpecView,
    /// Draft mode and K the run started with.
    pub draft_mode: String,
    pub k: usize,
}

impl RunView {
    pub fn finished(&self) -> bool {
        self.summary.is_some()
    }

    /// Step times of decode tokens (the inter-token latencies).
    pub fn itl(&self) -> Vec<Duration> {
        self.tokens.iter().skip(1).map(|t| t.step).collect()
    }

    pub fn text(&self) -> String {
        self.tokens.iter().map(|t| t.text.as_str()).collect()
    }
}

/// The KV what-if predictor's toggles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WhatIf {
    pub dtype: usize,
    /// Index into [`WHAT_IF_CONTEXTS`]; 0 means the model's own context.
    pub context: usize,
    pub batch: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AppState {
    pub model_spec: String,
    pub model: Option<ModelInfo>,
    /// Spec being loaded and bytes done / total when known.
    pub loading: Option<(String, u64, u64)>,
    pub prompt: String,
    pub params: GenParams,
    pub focus: Focus,
    pub current: Option<RunView>,
    /// Finished runs, newest last (the last few).
    pub history: Ring<RunSummary>,
    pub system: Ring<SystemSample>,
    pub last_system: Option<SystemSample>,
    pub status: String,
    pub error: Option<String>,
    /// Shown while the built-in synthetic model stands in for a real one.
    pub banner: Option<String>,
    /// Load the synthetic model if this (default) model cannot be had.
    pub fallback_to_synthetic: bool,
    pub selected: Option<usize>,
    pub scroll: u16,
    pub draft_mode: usize,
    pub k: usize,
    pub quant: usize,
    /// Index into [`LIVE_KV`].
    pub kv_live: usize,
    /// What the engine runs with now, once a switch was reported.
    pub variant: Option<crate::protocol::Variant>,
    /// Variants tried this session, first tried first.
    pub variants: Vec<VariantRow>,
    pub show_variants: bool,
    /// Requantising: type, matrices done, matrices.
    pub requantizing: Option<(String, usize, usize)>,
    pub what_if: WhatIf,
    pub help: bool,
    /// The file being recorded to, if any.
    pub recording: Option<String>,
    pub picker: Option<Picker>,
    /// The teaching demo on screen, if any.
    pub demo: Option<DemoView>,
    /// Commands an action produced beyond the one `update` returns (a preset sets several).
    pub outbox: Vec<Command>,
    pub quit: bool,
    pub now: Duration,
}

impl AppState {
    pub fn new(model_spec: &str, prompt: &str) -> Self {
        Self {
            model_spec: model_spec.to_string(),
            model: None,
            loading: None,
            prompt: prompt.to_string(),
            params: GenParams::default(),
            focus: Focus::Prompt,
            current: None,
            history: Ring::new(4),
            system: Ring::new(240),
            last_system: None,
            status: "type a prompt, Enter runs it · ? help".into(),
            error: None,
            banner: None,
            fallback_to_synthetic: false,
            selected: None,
            scroll: 0,
            draft_mode: 0,
            k: 4,
            quant: 0,
            kv_live: 0,
            variant: None,
            variants: Vec::new(),
            show_variants: false,
            requantizing: None,
            what_if: WhatIf::default(),
            help: false,
            recording: None,
            picker: None,
            demo: None,
            outbox: Vec::new(),
            quit: false,
            now: Duration::ZERO,
        }
    }

    pub fn running(&self) -> bool {
        self.current.as_ref().is_some_and(|r| !r.finished())
    }

    /// Take one worker event; returns a command when the event calls for one (a fallback load).
    pub fn apply(&mut self, s: &Stamped) -> Option<Command> {
        self.now = self.now.max(s.at);
        match &s.event {
            Event::ModelLoading { spec } => {
                self.loading = Some((spec.clone(), 0, 0));
                self.model = None;
                self.status = format!("loading {spec} …");
            }
            Event::LoadProgress { done, total } => {
                if let Some(l) = self.loading.as_mut() {
                    (l.1, l.2) = (*done, *total);
                }
            }
            Event::ModelLoaded(info) => {
                self.loading = None;
                self.error = None;
                self.status = format!(
                    "{} loaded in {:.1} s · Enter runs the prompt",
                    info.name,
                    info.load_time.as_secs_f64()
                );
                self.model = Some(info.clone());
                self.variant = None;
                self.variants.clear();
                self.quant = 0;
                self.kv_live = LIVE_KV
                    .iter()
                    .position(|k| *k == info.kv_dtype)
                    .unwrap_or(0);
                let row = self.variant_row(QUANTS[0], &info.kv_dtype);
                row.weight_bytes = info.weight_bytes;
                row.kv_bytes_per_token = info.kv_bytes_per_token;
                // A demo picked before any model was loaded runs now.
                if let Some((demo, prompt)) = self.demo.as_mut().and_then(|d| d.waiting.take()) {
                    return Some(Command::RunDemo { demo, prompt });
                }
            }
            Event::Requantizing { quant, done, total } => {
                self.requantizing = Some((quant.clone(), *done, *total));
                self.status = format!("requantising to {quant}: {done} of {total} matrices …");
            }
            Event::VariantReady(v) => self.variant_ready(v),
            Event::Quality(q) => {
                self.status = format!(
                    "{} · KV {}: perplexity {:.3}, mean KL {:.4}, top-1 {:.1}% ({} positions)",
                    q.quant,
                    q.kv_dtype,
                    q.perplexity,
                    q.mean_kl,
                    q.top1 * 100.0,
                    q.scored
                );
                self.variant_row(&q.quant, &q.kv_dtype).quality = Some(q.clone());
                self.show_variants = true;
            }
            Event::RunStarted {
                run,
                prompt_tokens,
                prompt,
                settings,
            } => {
                if !prompt.is_empty() {
                    self.prompt = prompt.clone();
                }
                self.current = Some(RunView {
                    run: *run,
                    prompt_tokens: *prompt_tokens,
                    draft_mode: settings.draft_mode.clone(),
                    k: settings.k,
                    ..RunView::default()
                });
                self.selected = None;
                self.error = None;
                self.status = format!("run {run}: prefill of {prompt_tokens} tokens …");
            }
            Event::PrefillDone { run, duration, .. } => {
                if let Some(r) = self.current.as_mut() {
                    r.prefill = Some(*duration);
                }
                self.status = format!("run {run}: decoding …");
            }
            Event::Token(t) => {
                if let Some(r) = self.current.as_mut() {
                    r.tokens.push(t.clone());
                }
            }
            Event::SpecStep(step) => {
                if let Some(r) = self.current.as_mut() {
                    let next = r.tokens.len();
                    r.spec.apply(step, next);
                }
            }
            Event::System(sample) => {
                self.system.push(sample.clone());
                self.last_system = Some(sample.clone());
            }
            Event::RunFinished { run, summary } => {
                if let Some(r) = self.current.as_mut() {
                    r.summary = Some(summary.clone());
                }
                self.history.push(summary.clone());
                if summary.spec.is_none() {
                    let (quant, kv) = self.running_variant();
                    let row = self.variant_row(&quant, &kv);
                    row.prefill_tok_s = Some(summary.prefill_tok_s);
                    row.decode_tok_s = Some(summary.decode_tok_s);
                }
                self.status = format!(
                    "run {run} done ({:?}): {} tokens, decode {:.1} tok/s",
                    summary.reason, summary.generated_tokens, summary.decode_tok_s
                );
            }
            Event::Notice { message } => self.status = message.clone(),
            Event::Demo(run) => {
                let view = self.demo.get_or_insert_with(|| DemoView {
                    name: run.demo.clone(),
                    ..DemoView::default()
                });
                view.result = Some(run.clone());
                self.status = format!(
                    "demo {} measured on {}: n / N step through the narration",
                    run.demo, run.model
                );
            }
            Event::Error { message } => {
                let was_loading = self.loading.take().is_some();
                if was_loading && self.fallback_to_synthetic {
                    self.fallback_to_synthetic = false;
                    self.banner = Some(format!(
                        "no real model could be loaded ({message}). Running the built-in synthetic model (random weights): \
                         get real weights with ../shared/tools/fetch-models models, or start with --model PATH"
                    ));
                    self.model_spec = "synthetic".into();
                    return Some(Command::LoadModel {
                        spec: "synthetic".into(),
                    });
                }
                self.error = Some(message.clone());
                self.status = "error: see above · fix it and press Enter to try again".into();
            }
        }
        None
    }

    /// Take one user action; returns the command for the worker, if any.
    pub fn update(&mut self, action: Action) -> Option<Command> {
        match action {
            Action::Quit => {
                self.quit = true;
                None
            }
            Action::Run => self.run(),
            Action::Stop => self.stop(),
            Action::Escape if self.running() => self.stop(),
            Action::Escape if self.focus == Focus::Tape && self.demo.is_some() => {
                self.demo = None;
                None
            }
            Action::Escape => {
                self.focus = Focus::Tape;
                self.help = false;
                None
            }
            Action::FocusNext => {
                self.focus = if self.focus == Focus::Prompt {
                    Focus::Tape
                } else {
                    Focus::Prompt
                };
                None
            }
            Action::Type(c) => {
                self.prompt.push(c);
                None
            }
            Action::Backspace => {
                self.prompt.pop();
                None
            }
            Action::ClearPrompt => {
                self.prompt.clear();
                None
            }
            Action::SelectPrev | Action::SelectNext => {
                let n = self.current.as_ref().map_or(0, |r| r.tokens.len());
                if n > 0 {
                    let cur = self.selected.unwrap_or(n);
                    let next = if action == Action::SelectPrev {
                        cur.saturating_sub(1)
                    } else {
                        (cur + 1).min(n - 1)
                    };
                    self.selected = Some(next.min(n - 1));
                }
                None
            }
            Action::ScrollUp => {
                self.scroll = self.scroll.saturating_sub(1);
                None
            }
            Action::ScrollDown => {
                self.scroll = self.scroll.saturating_add(1);
                None
            }
            Action::CycleDraftMode => {
                self.draft_mode = (self.draft_mode + 1) % DRAFT_MODES.len();
                Some(Command::SetDraftMode {
                    mode: DRAFT_MODES[self.draft_mode].into(),
                })
            }
            Action::KUp | Action::KDown => {
                // Below 1 comes 0: adaptive K.
                self.k = if action == Action::KUp {
                    (self.k + 1).min(16)
                } else {
                    self.k.saturating_sub(1)
                };
                Some(Command::SetK { k: self.k })
            }
            Action::CycleQuant => {
                self.quant = (self.quant + 1) % QUANTS.len();
                Some(Command::SetQuantization {
                    quant: QUANTS[self.quant].into(),
                })
            }
            Action::MaxTokensUp | Action::MaxTokensDown => {
                let m = self.params.max_tokens;
                self.params.max_tokens = if action == Action::MaxTokensUp {
                    (m * 2).min(4096)
                } else {
                    (m / 2).max(1)
                };
                self.status = format!("max tokens {}", self.params.max_tokens);
                None
            }
            Action::TempUp | Action::TempDown => {
                let t = self.params.temperature + if action == Action::TempUp { 0.1 } else { -0.1 };
                self.params.temperature = (t.clamp(0.0, 2.0) * 10.0).round() / 10.0;
                self.status = if self.params.temperature == 0.0 {
                    "temperature 0 (greedy)".into()
                } else {
                    format!("temperature {:.1}", self.params.temperature)
                };
                None
            }
            Action::CycleKvDtype => {
                self.what_if.dtype = (self.what_if.dtype + 1) % KV_DTYPES.len();
                None
            }
            Action::CycleLiveKv => {
                self.kv_live = (self.kv_live + 1) % LIVE_KV.len();
                Some(Command::SetKvDtype {
                    dtype: LIVE_KV[self.kv_live].into(),
                })
            }
            Action::MeasureQuality => {
                if self.model.is_none() {
                    self.status = "no model loaded".into();
                    return None;
                }
                self.status = "quality measurement queued …".into();
                Some(Command::MeasureQuality {
                    tokens: QUALITY_TOKENS,
                })
            }
            Action::ToggleVariants => {
                self.show_variants = !self.show_variants;
                None
            }
            Action::CycleContext => {
                self.what_if.context = (self.what_if.context + 1) % WHAT_IF_CONTEXTS.len();
                None
            }
            Action::CycleBatch => {
                self.what_if.batch = (self.what_if.batch + 1) % WHAT_IF_BATCH.len();
                None
            }
            // The terminal loop owns the recorder and reads the presets (this model does no IO).
            Action::ToggleRecord | Action::OpenPresets => None,
            Action::PickerUp | Action::PickerDown => {
                if let Some(p) = self.picker.as_mut() {
                    let n = p.presets.len().max(1);
                    p.selected = if action == Action::PickerUp {
                        (p.selected + n - 1) % n
                    } else {
                        (p.selected + 1) % n
                    };
                }
                None
            }
            Action::PickerClose => {
                self.picker = None;
                None
            }
            Action::PickerChoose => {
                let picker = self.picker.take()?;
                let preset = picker.presets.get(picker.selected)?.clone();
                let mut cmds = self.apply_preset(&preset);
                self.prompt = preset.prompts[0].clone();
                // A demo's n / N keys work outside the prompt.
                self.focus = if preset.demo.is_some() {
                    Focus::Tape
                } else {
                    Focus::Prompt
                };
                if let Some(m) = preset.model.as_ref().filter(|m| **m != self.model_spec) {
                    self.model_spec = m.clone();
                    cmds.insert(0, Command::LoadModel { spec: m.clone() });
                }
                self.status = if preset.demo.is_some() {
                    format!(
                        "demo {}: measuring … n / N step through the narration",
                        preset.name
                    )
                } else {
                    format!("preset {} loaded: Enter runs its first prompt", preset.name)
                };
                self.outbox.extend(cmds);
                None
            }
            Action::ToggleHelp => {
                self.help = !self.help;
                None
            }
            Action::DemoNext | Action::DemoPrev => {
                if let Some(d) = self.demo.as_mut() {
                    if action == Action::DemoNext {
                        d.next()
                    } else {
                        d.prev()
                    }
                }
                None
            }
        }
    }

    /// The weights and KV dtype runs use now.
    pub fn running_variant(&self) -> (String, String) {
        match &self.variant {
            Some(v) => (v.quant.clone(), v.kv_dtype.clone()),
            None => (
                QUANTS[0].into(),
                self.model
                    .as_ref()
                    .map_or_else(|| "f32".into(), |m| m.kv_dtype.clone()),
            ),
        }
    }

    /// The session's row for a variant, added when first seen.
    fn variant_row(&mut self, quant: &str, kv_dtype: &str) -> &mut VariantRow {
        let i = match self
            .variants
            .iter()
            .position(|r| r.quant == quant && r.kv_dtype == kv_dtype)
        {
            Some(i) => i,
            None => {
                self.variants.push(VariantRow {
                    quant: quant.into(),
                    kv_dtype: kv_dtype.into(),
                    weight_bytes: 0,
                    kv_bytes_per_token: 0,
                    fallbacks: 0,
                    prefill_tok_s: None,
                    decode_tok_s: None,
                    quality: None,
                });
                self.variants.len() - 1
            }
        };
        &mut self.variants[i]
    }

    fn variant_ready(&mut self, v: &crate::protocol::Variant) {
        self.requantizing = None;
        if let Some(m) = self.model.as_mut() {
            m.weight_bytes = v.weight_bytes;
            m.weight_types = v.weight_types.clone();
            m.kv_dtype = v.kv_dtype.clone();
            m.kv_bytes_per_token = v.kv_bytes_per_token;
        }
        if let Some(i) = QUANTS.iter().position(|q| *q == v.quant) {
            self.quant = i;
        }
        if let Some(i) = LIVE_KV.iter().position(|k| *k == v.kv_dtype) {
            self.kv_live = i;
        }
        let row = self.variant_row(&v.quant, &v.kv_dtype);
        row.weight_bytes = v.weight_bytes;
        row.kv_bytes_per_token = v.kv_bytes_per_token;
        row.fallbacks = v.fallbacks.iter().map(|f| f.tensors).sum();
        self.status = format!(
            "weights {} ({}) · KV {}{} · Enter runs",
            v.quant,
            crate::stats::human_bytes(v.weight_bytes),
            v.kv_dtype,
            if v.took.is_zero() {
                String::new()
            } else {
                format!(" · switched in {:.1} s", v.took.as_secs_f64())
            }
        );
        self.variant = Some(v.clone());
    }

    /// Commands queued by the last actions, oldest first.
    pub fn take_outbox(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.outbox)
    }

    /// Take a preset's settings; returns the commands that tell the worker.
    pub fn apply_preset(&mut self, p: &crate::preset::Preset) -> Vec<Command> {
        // The worker hears the preset's settings as the headless commands do; the status bar's
        // indices follow them.
        let mut cmds = p.commands();
        self.params = p.params.clone();
        let index =
            |list: &[&str], v: Option<&str>| v.and_then(|v| list.iter().position(|x| *x == v));
        if let Some(i) = index(&DRAFT_MODES, p.draft_mode.as_deref()) {
            self.draft_mode = i;
        }
        if let Some(k) = p.k {
            self.k = k;
        }
        let quant = p
            .quantization
            .as_deref()
            .and_then(|q| crate::engine::quant::Quant::parse(q).ok());
        if let Some(i) = index(&QUANTS, quant.map(|q| q.name())) {
            self.quant = i;
        }
        let kv = p.kv_dtype.as_deref().map(str::to_lowercase);
        if let Some(i) = index(&LIVE_KV, kv.as_deref()) {
            self.kv_live = i;
        }
        if let Some(demo) = &p.demo {
            let mut view = DemoView::from_preset(p);
            let request = (demo.clone(), p.prompts[0].clone());
            // With no model yet (still loading, or about to fall back to the synthetic one) the
            // demo waits for the next ModelLoaded.
            if self.model.is_some() {
                cmds.push(Command::RunDemo {
                    demo: request.0,
                    prompt: request.1,
                });
            } else {
                view.waiting = Some(request);
            }
            self.demo = Some(view);
            self.focus = Focus::Tape;
            self.banner = Some(format!("demo {}: {}", p.name, p.description));
            return cmds;
        }
        self.demo = None;
        self.banner = Some(format!(
            "preset {}: {}{}",
            p.name,
            p.description,
            p.notes
                .first()
                .map(|n| format!(" — {n}"))
                .unwrap_or_default()
        ));
        cmds
    }

    fn run(&mut self) -> Option<Command> {
        if self.running() {
            self.status = "a run is in progress: Esc stops it".into();
            return None;
        }
        if self.model.is_none() {
            self.status = if self.loading.is_some() {
                "the model is still loading".into()
            } else {
                "no model loaded".into()
            };
            return None;
        }
        if self.prompt.trim().is_empty() {
            self.status = "the prompt is empty: type something first".into();
            return None;
        }
        self.status = "running …".into();
        Some(Command::Generate {
            prompt: self.prompt.clone(),
            params: self.params.clone(),
        })
    }

    fn stop(&mut self) -> Option<Command> {
        if self.running() {
            self.status = "stopping …".into();
            Some(Command::Stop)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{FinishReason, Phase};

    fn at(ms: u64, event: Event) -> Stamped {
        Stamped {
            at: Duration::from_millis(ms),
            event,
        }
    }

    fn token(i: usize) -> TokenEvent {
        TokenEvent {
            index: i,
            id: i as u32,
            text: format!("t{i}"),
            phase: if i == 0 {
                Phase::Prefill
            } else {
                Phase::Decode
            },
            prob: 0.5,
            elapsed: Duration::from_millis(10 * i as u64),
            step: Duration::from_millis(10),
            kv_tokens: 5 + i,
            kv_bytes: 100 * (5 + i) as u64,
        }
    }

    #[test]
    fn a_run_fills_the_view_and_history() {
        let mut s = AppState::new("synthetic", "hi");
        s.apply(&at(
            1,
            Event::RunStarted {
                run: 1,
                prompt_tokens: 5,
                settings: crate::protocol::RunSettings {
                    params: GenParams::default(),
                    quantization: "as loaded".into(),
                    draft_mode: "none".into(),
                    k: 4,
                },
                prompt: "hi".into(),
            },
        ));
        assert!(s.running());
        for i in 0..3 {
            s.apply(&at(2 + i as u64, Event::Token(token(i))));
        }
        assert_eq!(s.current.as_ref().unwrap().text(), "t0t1t2");
        assert_eq!(s.current.as_ref().unwrap().itl().len(), 2);
        assert_eq!(s.update(Action::Stop), Some(Command::Stop));
    }

    #[test]
    fn run_needs_a_model_and_a_prompt() {
        let mut s = AppState::new("synthetic", "");
        assert_eq!(s.update(Action::Run), None);
        assert!(s.status.contains("no model"));
        let _ = FinishReason::Eos;
    }

    #[test]
    fn a_failed_default_load_falls_back_to_synthetic_once() {
        let mut s = AppState::new("default", "");
        s.fallback_to_synthetic = true;
        s.apply(&at(
            0,
            Event::ModelLoading {
                spec: "default".into(),
            },
        ));
        let cmd = s.apply(&at(
            1,
            Event::Error {
                message: "not found".into(),
            },
        ));
        assert_eq!(
            cmd,
            Some(Command::LoadModel {
                spec: "synthetic".into()
            })
        );
        assert!(s.banner.as_ref().unwrap().contains("synthetic"));
        s.apply(&at(
            2,
            Event::ModelLoading {
                spec: "synthetic".into(),
            },
        ));
        assert_eq!(
            s.apply(&at(
                3,
                Event::Error {
                    message: "boom".into()
                }
            )),
            None
        );
        assert_eq!(s.error.as_deref(), Some("boom"));
    }

    #[test]
    fn k_stays_within_1_to_16_or_adaptive() {
        let mut s = AppState::new("synthetic", "");
        for _ in 0..20 {
            s.update(Action::KUp);
        }
        assert_eq!(s.k, 16);
        for _ in 0..20 {
            s.update(Action::KDown);
        }
        assert_eq!(s.update(Action::KDown), Some(Command::SetK { k: 0 }));
        assert_eq!(s.update(Action::KUp), Some(Command::SetK { k: 1 }));
    }
}
