//! The UI state: what a person asked for and is looking at — the prompt, focus, selection, the
//! settings they picked, overlays. [`Ui::update`] takes their actions and answers with the
//! commands for the worker; it reads the [`Store`] but never changes it.

use super::{
    Action, DemoView, Focus, ModelPicker, Overlay, Picker, Status, Store, UiNotice, ViewState,
    WhatIf, RECENT_MODELS, WHAT_IF_BATCH, WHAT_IF_CONTEXTS,
};
use crate::preset::Preset;
use crate::protocol::{
    Command, DraftMode, GenParams, KPolicy, KvDtype, Quant, Setting, SettingChange,
};

/// The engine's settings asked for; the worker's answers bring them in line with what runs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct AskedSettings {
    pub draft_mode: DraftMode,
    pub policy: crate::protocol::AcceptPolicy,
    pub k: KPolicy,
    pub quant: Quant,
    pub kv_live: KvDtype,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Ui {
    /// The model asked for.
    pub model_spec: String,
    pub prompt: String,
    pub params: GenParams,
    pub view: ViewState,
    pub asked: AskedSettings,
    pub what_if: WhatIf,
    /// The help, the variants table or a picker, over everything else.
    pub overlay: Option<Overlay>,
    /// The file being recorded to, if any.
    pub recording: Option<String>,
    /// Model specs picked in this session, newest first (the picker lists them first).
    pub recent_models: Vec<String>,
    /// The scheduler whose view was dismissed (Esc): [`crate::state::Store::sched_runs`] then.
    pub sched_dismissed: Option<u64>,
    /// The race whose view was dismissed (Esc): [`crate::state::Store::races`] then.
    pub race_dismissed: Option<u64>,
    /// The teaching demo on screen, if any.
    pub demo: Option<DemoView>,
    /// A preset's request stream picked before a model was loaded: it runs when one is.
    pub stream_waiting: Option<crate::protocol::StreamSpec>,
    /// A preset's race picked before a model was loaded: sent on the next `ModelLoaded`.
    pub race_waiting: Option<Command>,
    /// Shown while a preset, a demo or the synthetic stand-in is on.
    pub banner: Option<String>,
    /// Load the synthetic model if this (default) model cannot be had.
    pub fallback_to_synthetic: bool,
    /// Draw without colours (`NO_COLOR`, decided once when the dashboard starts): the marks
    /// beside each colour carry the meaning.
    pub no_color: bool,
    /// What the status line tells: the newest event's report or action's answer.
    pub status: Status,
    /// Errors up to this count are dealt with (the synthetic fallback) and not shown.
    pub errors_handled: u64,
    pub quit: bool,
}

impl Ui {
    pub fn new(model_spec: &str, prompt: &str) -> Self {
        Self {
            model_spec: model_spec.to_string(),
            prompt: prompt.to_string(),
            params: GenParams::default(),
            view: ViewState::default(),
            asked: AskedSettings::default(),
            what_if: WhatIf::default(),
            overlay: None,
            recording: None,
            recent_models: Vec::new(),
            sched_dismissed: None,
            race_dismissed: None,
            demo: None,
            stream_waiting: None,
            race_waiting: None,
            banner: None,
            fallback_to_synthetic: false,
            no_color: false,
            status: Status::Welcome,
            errors_handled: 0,
            quit: false,
        }
    }

    /// Open `overlay` over the one open now, unless that one outranks it ([`Overlay::rank`]):
    /// then the one on top stays and keeps the keys.
    pub fn open(&mut self, overlay: Overlay) {
        if self
            .overlay
            .as_ref()
            .is_none_or(|o| o.rank() <= overlay.rank())
        {
            self.overlay = Some(overlay);
        }
    }

    /// Open `overlay` (help or variants), or close it when it is the one open.
    fn toggle(&mut self, overlay: Overlay) {
        if self.overlay.as_ref() == Some(&overlay) {
            self.overlay = None;
        } else {
            self.open(overlay);
        }
    }

    /// Whether the help is open.
    pub fn help_open(&self) -> bool {
        self.overlay == Some(Overlay::Help)
    }

    /// Whether the variants table is open.
    pub fn variants_open(&self) -> bool {
        self.overlay == Some(Overlay::Variants)
    }

    /// Whether a picker (presets or models) is open.
    pub fn picker_open(&self) -> bool {
        matches!(self.overlay, Some(Overlay::Presets(_) | Overlay::Models(_)))
    }

    /// Tell `notice` on the status line.
    pub fn say(&mut self, notice: UiNotice) {
        self.status = Status::Ui(notice);
    }

    /// Take one user action; returns the commands for the worker.
    pub fn update(&mut self, store: &Store, action: Action) -> Vec<Command> {
        use Action as A;
        match action {
            A::Quit => self.quit = true,
            A::Run | A::RunBatch | A::Race | A::Stop | A::Escape | A::MeasureQuality => {
                return self.runs(store, action)
            }
            A::CycleDraftMode
            | A::CyclePolicy
            | A::KUp
            | A::KDown
            | A::CycleQuant
            | A::CycleLiveKv => return vec![self.engine_setting(action)],
            A::MaxTokensUp
            | A::MaxTokensDown
            | A::TempUp
            | A::TempDown
            | A::CycleKvDtype
            | A::CycleContext
            | A::CycleBatch => self.params_and_what_if(action),
            A::PickerUp | A::PickerDown | A::PickerClose | A::PickerChoose => {
                return self.pickers(store, action)
            }
            A::Type(c) => self.prompt.push(c),
            A::Backspace => {
                self.prompt.pop();
            }
            A::ClearPrompt => self.prompt.clear(),
            // The terminal loop has the screen, owns the recorder and reads the presets and
            // models (this model does no IO).
            A::Screenshot | A::ToggleRecord | A::OpenPresets | A::OpenModels { .. } => {}
            _ => self.look(store, action),
        }
        Vec::new()
    }

    /// Runs, stops, a quality measurement, and Esc, which stops or closes what is on top.
    fn runs(&mut self, store: &Store, action: Action) -> Vec<Command> {
        let one = |c: Command| vec![c];
        match action {
            Action::Run => return self.run(store).map_or_else(Vec::new, one),
            Action::RunBatch => return self.run_batch(store).map_or_else(Vec::new, one),
            Action::Race => return self.race(store).map_or_else(Vec::new, one),
            Action::Stop => return one(self.stop_anything(store)),
            Action::Escape if store.running() => {
                return self.stop(store).map_or_else(Vec::new, one)
            }
            Action::Escape if self.race_shown(store) => {
                self.race_dismissed = Some(store.races);
                self.say(UiNotice::RaceClosed);
            }
            Action::Escape if self.sched_shown(store) && store.scheduling() => {
                return one(self.stop_anything(store))
            }
            Action::Escape if self.sched_shown(store) && store.model.is_some() => {
                self.sched_dismissed = Some(store.sched_runs);
                self.say(UiNotice::SchedClosed);
            }
            Action::Escape if self.view.focus != Focus::Prompt && self.demo.is_some() => {
                self.demo = None
            }
            Action::Escape => {
                if self.view.focus == Focus::Prompt {
                    self.view.focus = Focus::Tape;
                }
                if self.help_open() || self.overlay == Some(Overlay::Explain) {
                    self.overlay = None;
                }
            }
            Action::MeasureQuality if store.model.is_none() => self.say(UiNotice::NoModel),
            Action::MeasureQuality => {
                self.say(UiNotice::QualityQueued);
                return one(Command::MeasureQuality {
                    tokens: crate::engine::quality::DEFAULT_TOKENS,
                });
            }
            _ => {}
        }
        Vec::new()
    }

    /// The engine's settings: asked of the worker, whose answers bring them in line.
    fn engine_setting(&mut self, action: Action) -> Command {
        let change = match action {
            Action::CycleDraftMode => {
                self.asked.draft_mode = self.asked.draft_mode.next();
                SettingChange::DraftMode(self.asked.draft_mode)
            }
            Action::CyclePolicy => {
                self.asked.policy = self.asked.policy.next();
                SettingChange::Policy(self.asked.policy)
            }
            Action::KUp => {
                self.asked.k = self.asked.k.up();
                SettingChange::K(self.asked.k)
            }
            Action::KDown => {
                self.asked.k = self.asked.k.down();
                SettingChange::K(self.asked.k)
            }
            Action::CycleQuant => {
                self.asked.quant = self.asked.quant.next();
                SettingChange::Quant(self.asked.quant)
            }
            _ => {
                self.asked.kv_live = self.asked.kv_live.next();
                SettingChange::KvDtype(self.asked.kv_live)
            }
        };
        Command::Set(change)
    }

    /// The next run's parameters and the KV what-if's toggles.
    fn params_and_what_if(&mut self, action: Action) {
        match action {
            Action::MaxTokensUp | Action::MaxTokensDown => {
                let m = self.params.max_tokens;
                self.params.max_tokens = if action == Action::MaxTokensUp {
                    (m * 2).min(4096)
                } else {
                    (m / 2).max(1)
                };
                self.say(UiNotice::MaxTokens(self.params.max_tokens));
            }
            Action::TempUp | Action::TempDown => {
                let t = self.params.temperature + if action == Action::TempUp { 0.1 } else { -0.1 };
                self.params.temperature = (t.clamp(0.0, 2.0) * 10.0).round() / 10.0;
                self.say(UiNotice::Temperature(self.params.temperature));
            }
            Action::CycleKvDtype => {
                self.what_if.dtype = self.what_if.dtype.next();
            }
            Action::CycleContext => {
                self.what_if.context = (self.what_if.context + 1) % WHAT_IF_CONTEXTS.len();
            }
            Action::CycleBatch => {
                self.what_if.batch = (self.what_if.batch + 1) % WHAT_IF_BATCH.len();
                self.say(UiNotice::BatchSize(WHAT_IF_BATCH[self.what_if.batch]));
            }
            _ => {}
        }
    }

    /// The preset and model pickers' cursor, choice and close.
    fn pickers(&mut self, store: &Store, action: Action) -> Vec<Command> {
        match action {
            Action::PickerUp | Action::PickerDown => {
                let (selected, n) = match self.overlay.as_mut() {
                    Some(Overlay::Models(m)) => (&mut m.selected, m.entries.len()),
                    Some(Overlay::Presets(p)) => (&mut p.selected, p.presets.len()),
                    _ => return Vec::new(),
                };
                let n = n.max(1);
                *selected = if action == Action::PickerUp {
                    (*selected + n - 1) % n
                } else {
                    (*selected + 1) % n
                };
            }
            Action::PickerClose if self.picker_open() => self.overlay = None,
            Action::PickerChoose => match self.overlay.take() {
                Some(Overlay::Models(picker)) => return self.choose_model(picker),
                Some(Overlay::Presets(picker)) => return self.choose_preset(store, picker),
                other => self.overlay = other,
            },
            _ => {}
        }
        Vec::new()
    }

    /// What is looked at: focus, zoom, the selected token, scrolling, overlays, the demo's step.
    fn look(&mut self, store: &Store, action: Action) {
        let tokens = store.current.as_ref().map_or(0, |r| r.tokens.len());
        match action {
            Action::FocusNext => self.view.focus = self.view.focus.next(),
            Action::FocusPrev => self.view.focus = self.view.focus.prev(),
            Action::Focus(f) => self.view.focus = f,
            Action::ToggleZoom if !self.view.zoom && self.view.focus == Focus::Prompt => {
                self.say(UiNotice::ZoomNeedsPane)
            }
            Action::ToggleZoom => {
                self.view.zoom = !self.view.zoom;
                self.say(if self.view.zoom {
                    UiNotice::Zoomed(self.view.focus)
                } else {
                    UiNotice::Unzoomed
                });
            }
            Action::SelectPrev | Action::SelectNext if tokens > 0 => {
                let cur = self.view.selected.unwrap_or(tokens);
                let next = if action == Action::SelectPrev {
                    cur.saturating_sub(1)
                } else {
                    (cur + 1).min(tokens - 1)
                };
                self.view.selected = Some(next.min(tokens - 1));
            }
            Action::Select(i) if i < tokens => self.view.selected = Some(i),
            // Over the explain overlay ↓ (ScrollUp, the tape's way back down) shows its later
            // figures and ↑ its earlier ones.
            Action::ScrollUp if self.overlay == Some(Overlay::Explain) => {
                self.view.explain_scroll = self.view.explain_scroll.saturating_add(1)
            }
            Action::ScrollDown if self.overlay == Some(Overlay::Explain) => {
                self.view.explain_scroll = self.view.explain_scroll.saturating_sub(1)
            }
            Action::ScrollUp => self.view.scroll = self.view.scroll.saturating_sub(1),
            Action::ScrollDown => self.view.scroll = self.view.scroll.saturating_add(1),
            Action::ToggleVariants => self.toggle(Overlay::Variants),
            Action::ToggleHelp => self.toggle(Overlay::Help),
            Action::Explain => {
                self.view.explain_scroll = 0;
                self.toggle(Overlay::Explain)
            }
            Action::DemoNext | Action::DemoPrev => {
                if let Some(d) = self.demo.as_mut() {
                    if action == Action::DemoNext {
                        d.next()
                    } else {
                        d.prev()
                    }
                }
            }
            _ => {}
        }
    }

    /// Load the model under the model picker's cursor, or make it the draft model.
    fn choose_model(&mut self, picker: ModelPicker) -> Vec<Command> {
        let Some(found) = picker.entries.get(picker.selected).cloned() else {
            return Vec::new();
        };
        if !picker.draft && found.spec == self.model_spec {
            self.say(UiNotice::ModelAlready(found.name));
            return Vec::new();
        }
        self.recent_models.retain(|s| *s != found.spec);
        self.recent_models.insert(0, found.spec.clone());
        self.recent_models.truncate(RECENT_MODELS);
        if picker.draft {
            self.say(UiNotice::DraftPicked(found.name));
            return vec![Command::Set(SettingChange::DraftModel(found.spec))];
        }
        self.say(UiNotice::ModelPicked(found.name));
        self.model_spec = found.spec.clone();
        vec![Command::LoadModel { spec: found.spec }]
    }

    fn choose_preset(&mut self, store: &Store, picker: Picker) -> Vec<Command> {
        let Some(preset) = picker.presets.get(picker.selected).cloned() else {
            return Vec::new();
        };
        let mut cmds = self.apply_preset(store, &preset);
        self.prompt = preset.prompts[0].clone();
        // A demo's n / N keys work outside the prompt.
        self.view.focus = if preset.demo.is_some() {
            Focus::Tape
        } else {
            Focus::Prompt
        };
        if let Some(m) = preset.model.as_ref().filter(|m| **m != self.model_spec) {
            self.model_spec = m.clone();
            cmds.insert(0, Command::LoadModel { spec: m.clone() });
        }
        self.say(if preset.demo.is_some() {
            UiNotice::DemoPicked(preset.name)
        } else {
            UiNotice::PresetPicked(preset.name)
        });
        cmds
    }

    /// Take a preset's settings; returns the commands that tell the worker.
    pub fn apply_preset(&mut self, store: &Store, p: &Preset) -> Vec<Command> {
        let settings = p.settings();
        let mut cmds = settings.commands();
        self.params = p.params.clone();
        self.asked.draft_mode = settings.draft_mode.unwrap_or(self.asked.draft_mode);
        self.asked.k = settings.k.unwrap_or(self.asked.k);
        self.asked.quant = settings.quant.unwrap_or(self.asked.quant);
        self.asked.kv_live = settings.kv_dtype.unwrap_or(self.asked.kv_live);
        self.asked.policy = settings.policy.unwrap_or(self.asked.policy);
        if let Some(demo) = &p.demo {
            let mut view = DemoView::from_preset(p, store.demos.len());
            let request = (demo.clone(), p.prompts[0].clone());
            // With no model yet (still loading, or about to fall back to the synthetic one) the
            // demo waits for the next ModelLoaded.
            if store.model.is_some() {
                cmds.push(Command::RunDemo {
                    demo: Box::new(request.0),
                    prompt: request.1,
                });
            } else {
                view.waiting = Some(request);
            }
            self.demo = Some(view);
            self.view.focus = Focus::Tape;
            self.banner = Some(format!("demo {}: {}", p.name, p.description));
            return cmds;
        }
        self.demo = None;
        if let Some(stream) = &p.stream {
            // Like a demo, a stream waits for a model.
            match store.model {
                Some(_) => cmds.push(Command::RunStream {
                    stream: Box::new(stream.clone()),
                }),
                None => self.stream_waiting = Some(stream.clone()),
            }
        }
        if let Some(cmd) = self.preset_race(store, p) {
            cmds.push(cmd);
        }
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

    fn run(&mut self, store: &Store) -> Option<Command> {
        if store.running() {
            self.say(UiNotice::RunInProgress);
            return None;
        }
        if store.model.is_none() {
            self.say(if store.loading.is_some() {
                UiNotice::StillLoading
            } else {
                UiNotice::NoModel
            });
            return None;
        }
        if self.prompt.trim().is_empty() {
            self.say(UiNotice::EmptyPrompt);
            return None;
        }
        self.say(UiNotice::Running);
        Some(Command::Generate {
            prompt: self.prompt.clone(),
            params: self.params.clone(),
        })
    }

    /// Whether a batch run or a race may start: nothing runs, a model is loaded and the prompt
    /// has text; else the status line says which is missing.
    pub(super) fn may_start(&mut self, store: &Store) -> bool {
        let why = if store.running() || store.scheduling() {
            UiNotice::RunInProgress
        } else if store.model.is_none() {
            UiNotice::NoModel
        } else if self.prompt.trim().is_empty() {
            UiNotice::EmptyPrompt
        } else {
            return true;
        };
        self.say(why);
        false
    }

    /// Run the prompt as `WHAT_IF_BATCH[what_if.batch]` sequences at once.
    fn run_batch(&mut self, store: &Store) -> Option<Command> {
        if !self.may_start(store) {
            return None;
        }
        let batch = WHAT_IF_BATCH[self.what_if.batch];
        self.sched_dismissed = None;
        self.say(UiNotice::BatchRunning(batch));
        Some(Command::RunBatch {
            prompt: self.prompt.clone(),
            params: self.params.clone(),
            batch,
        })
    }

    /// The scheduler's view takes the body: a scheduler has run and its view was not dismissed.
    pub fn sched_shown(&self, store: &Store) -> bool {
        store.sched.active() && self.sched_dismissed != Some(store.sched_runs)
    }

    fn stop(&mut self, store: &Store) -> Option<Command> {
        if store.running() {
            self.say(UiNotice::Stopping);
            Some(Command::Stop)
        } else {
            None
        }
    }

    /// Stop the run, or the job the worker is on (a load, a switch, a quality run, a demo).
    fn stop_anything(&mut self, store: &Store) -> Command {
        self.say(if store.running() {
            UiNotice::Stopping
        } else {
            UiNotice::StoppingJob
        });
        Command::Stop
    }
}
