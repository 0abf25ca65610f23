//! The app loop: keys (from the terminal or a test), worker events and frame ticks in one
//! `select!`, drawn to any ratatui backend. It owns the state, the worker handle, the recorder and
//! a replay; it does no terminal setup, so a test drives it on `TestBackend`.

use super::replay::Replay;
use super::{keymap, view};
use crate::protocol::{Command, Stamped};
use crate::record::{Recorder, Recording};
use crate::state::{Action, AppState, Focus, Overlay, Picker, UiNotice};
use crate::worker::{Options, Worker};
use anyhow::Result;
use crossterm::event::{KeyEvent, MouseButton, MouseEvent, MouseEventKind};
use futures::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

/// What the dashboard starts with: one mode, and where recordings and screenshots go.
pub struct Start {
    pub mode: Mode,
    /// Record from the start into this file (R toggles recording at any time); a replay ignores it.
    pub record: Option<PathBuf>,
    /// Where `S` writes its screenshots (the current folder when `None`).
    pub shots: Option<PathBuf>,
}

/// Where the dashboard's events come from.
pub enum Mode {
    /// A model on this machine; `None` means the default model, with the synthetic model as the
    /// fallback.
    Local {
        model: Option<String>,
        opening: Opening,
    },
    /// A model on this OpenAI-compatible server.
    Remote {
        endpoint: crate::protocol::serve::Endpoint,
        opening: Opening,
    },
    /// A recording, at this speed.
    Replay(Recording, f64),
    /// Events of work the caller runs itself (a serving benchmark).
    Watch(Feed),
}

/// What a session with a model opens with: the prompt, and a preset's parameters and settings.
#[derive(Default)]
pub struct Opening {
    pub prompt: String,
    pub preset: Option<crate::preset::Preset>,
}

impl Start {
    fn of(mode: Mode) -> Self {
        Self {
            mode,
            record: None,
            shots: None,
        }
    }

    /// `model` on this machine (`None`: the default), with an empty prompt.
    pub fn local(model: Option<String>) -> Self {
        Self::of(Mode::Local {
            model,
            opening: Opening::default(),
        })
    }

    /// The model `endpoint` serves, with an empty prompt.
    pub fn remote(endpoint: crate::protocol::serve::Endpoint) -> Self {
        Self::of(Mode::Remote {
            endpoint,
            opening: Opening::default(),
        })
    }

    /// `recording` replayed at `speed`.
    pub fn replay(recording: Recording, speed: f64) -> Self {
        Self::of(Mode::Replay(recording, speed))
    }

    /// Watch `feed` (no model, no worker), recording to `record` when given.
    pub fn watching(feed: Feed, record: Option<PathBuf>) -> Self {
        Self {
            record,
            ..Self::of(Mode::Watch(feed))
        }
    }
}

/// Events of work the caller runs itself (`labtui bench serve --tui`'s load generator), drawn as a
/// worker's are. The dashboard only watches: the caller stops the work once [`super::run`] returns.
pub struct Feed {
    pub events: UnboundedReceiver<Stamped>,
    /// The message line while it runs.
    pub status: String,
}

/// Where an app's events come from.
enum Source {
    Worker(Worker),
    Replay(Replay),
    Feed(UnboundedReceiver<Stamped>),
}

/// Input from the person in front of the dashboard.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    Key(KeyEvent),
    Mouse(MouseEvent),
    Resize,
    /// End the session (a signal: SIGINT, SIGTERM, SIGHUP).
    Quit,
}

pub struct App {
    pub state: AppState,
    worker: Option<Worker>,
    replay: Option<Replay>,
    /// A feed's events, until it ends; `watching` stays set after.
    feed: Option<UnboundedReceiver<Stamped>>,
    watching: bool,
    recorder: Option<Recorder>,
    record_path: Option<PathBuf>,
    /// Where screenshots go, and whether one is asked for (taken at the next frame drawn).
    shots: PathBuf,
    shot_pending: bool,
}

impl App {
    /// The app for `start`: a worker (with `opts`) loading the model, a replay, or a feed.
    pub fn new(start: Start, opts: Options) -> Self {
        let shots = start.shots.clone().unwrap_or_else(|| PathBuf::from("."));
        let mut app = Self::from_start(start, opts);
        app.shots = shots;
        app
    }

    fn from_start(start: Start, opts: Options) -> Self {
        let (mut state, worker, opening) = match start.mode {
            Mode::Watch(feed) => {
                let mut state = AppState::new("", "");
                state.ui.fallback_to_synthetic = false;
                state.ui.view.focus = Focus::Tape;
                state.ui.say(UiNotice::Feed(feed.status));
                return Self::with(state, Source::Feed(feed.events), start.record);
            }
            Mode::Replay(rec, speed) => {
                let mut state = AppState::new("replay", "");
                state.ui.view.focus = Focus::Tape;
                state.ui.say(UiNotice::ReplayAt { speed });
                return Self::with(state, Source::Replay(Replay::new(rec.events, speed)), None);
            }
            Mode::Remote { endpoint, opening } => {
                let name = endpoint.model.as_deref().unwrap_or(&endpoint.url);
                let mut state = AppState::new(name, &opening.prompt);
                state.ui.fallback_to_synthetic = false;
                (state, Worker::spawn_remote(endpoint, opts), opening)
            }
            Mode::Local { model, opening } => {
                let spec = model
                    .clone()
                    .unwrap_or_else(crate::engine::source::default_spec);
                let mut state = AppState::new(&spec, &opening.prompt);
                state.ui.fallback_to_synthetic = model.is_none();
                load_recent(&mut state);
                let worker = Worker::spawn(opts);
                worker.send(Command::LoadModel { spec });
                (state, worker, opening)
            }
        };
        if let Some(p) = &opening.preset {
            worker.send_all(state.ui.apply_preset(&state.store, p));
        }
        Self::with(state, Source::Worker(worker), start.record)
    }

    /// The app on `source`, recording from the start when `record` is given.
    fn with(state: AppState, source: Source, record: Option<PathBuf>) -> Self {
        let mut app = Self {
            state,
            worker: None,
            replay: None,
            feed: None,
            watching: false,
            recorder: None,
            record_path: record,
            shots: PathBuf::from("."),
            shot_pending: false,
        };
        match source {
            Source::Worker(w) => app.worker = Some(w),
            Source::Replay(r) => app.replay = Some(r),
            Source::Feed(f) => {
                app.feed = Some(f);
                app.watching = true;
            }
        }
        if app.record_path.is_some() {
            app.toggle_record();
        }
        app
    }

    /// Send commands to the worker (a replay or a feed has none: the status line says so).
    pub fn send(&mut self, cmds: Vec<Command>) {
        for cmd in cmds {
            match self.worker.as_ref() {
                Some(w) => w.send(cmd),
                None => self.state.ui.say(UiNotice::NoEngine {
                    watching: self.watching,
                }),
            }
        }
    }

    /// Where events come from: the worker's channel, else a feed's.
    fn event_source(&mut self) -> Option<&mut UnboundedReceiver<Stamped>> {
        match self.worker.as_mut() {
            Some(w) => Some(&mut w.events),
            None => self.feed.as_mut(),
        }
    }

    /// The worker's events, for a caller that drives [`App::events`] itself instead of
    /// [`App::run`] (a benchmark); `None` for a replay.
    pub fn take_events(&mut self) -> Option<UnboundedReceiver<Stamped>> {
        let w = self.worker.as_mut()?;
        let (_, closed) = tokio::sync::mpsc::unbounded_channel();
        Some(std::mem::replace(&mut w.events, closed))
    }

    /// Take a key.
    pub fn key(&mut self, k: KeyEvent) {
        if let Some(r) = self.replay.as_mut() {
            if replay_key(r, &mut self.state, k) {
                return;
            }
        }
        match keymap::action(&self.state, k) {
            Some(Action::ToggleRecord) if self.replay.is_none() => self.toggle_record(),
            Some(Action::OpenPresets) if self.replay.is_none() => open_presets(&mut self.state),
            Some(Action::OpenModels { draft }) if self.replay.is_none() => {
                open_models(&mut self.state, draft)
            }
            Some(Action::Screenshot) => self.shot_pending = true,
            Some(a) => {
                let recent = self.state.ui.recent_models.clone();
                let cmds = self.state.update(a);
                if self.state.ui.recent_models != recent {
                    save_recent(&mut self.state);
                }
                self.send(cmds);
            }
            None => {}
        }
    }

    /// Take a mouse event on a screen of `area`: a click focuses the pane under it (and, on the
    /// token tape, selects the token clicked), the wheel scrolls the tokens (as ↑ and ↓ do).
    pub fn mouse(&mut self, m: MouseEvent, area: ratatui::layout::Rect) {
        let mut actions = Vec::new();
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                if let Some(focus) = view::pane_at(&self.state, area, m.column, m.row) {
                    actions.push(Action::Focus(focus));
                    if let Some(i) = view::token_at(&self.state, area, m.column, m.row) {
                        actions.push(Action::Select(i));
                    }
                }
            }
            MouseEventKind::ScrollUp => actions.push(Action::ScrollDown),
            MouseEventKind::ScrollDown => actions.push(Action::ScrollUp),
            _ => {}
        }
        for a in actions {
            let cmds = self.state.update(a);
            self.send(cmds);
        }
    }

    /// Take worker events: recorded, then applied.
    pub fn events(&mut self, batch: impl IntoIterator<Item = Stamped>) {
        for ev in batch {
            if let Some(r) = self.recorder.as_mut() {
                if let Err(e) = r.event(&ev) {
                    self.state
                        .ui
                        .say(UiNotice::RecordingStopped(format!("{e:#}")));
                    self.state.ui.recording = None;
                    self.recorder = None;
                }
            }
            let cmds = self.state.apply(&ev);
            self.send(cmds);
        }
    }

    /// Advance a replay by `wall` time; says whether anything came due.
    pub fn tick(&mut self, wall: Duration) -> bool {
        let Some(r) = self.replay.as_mut() else {
            return false;
        };
        let due = r.advance(wall).to_vec();
        for e in &due {
            self.state.apply(e);
        }
        !due.is_empty()
    }

    /// Stop the worker: whatever it does is interrupted, and the wait for it is bounded.
    pub fn shutdown(&mut self) {
        self.recorder = None;
        self.worker = None;
    }

    /// Draw the whole screen.
    pub fn draw(&self, area: ratatui::layout::Rect, buf: &mut Buffer) {
        view::render(&self.state, area, buf);
    }

    /// Write `screen` (what was just drawn) as SVG and text into the screenshot folder; the
    /// paths, or why not, go to the status line.
    pub fn screenshot(&mut self, screen: &Buffer) {
        self.state
            .ui
            .say(match super::shot::write(screen, &self.shots) {
                Ok((svg, txt)) => UiNotice::Screenshot {
                    svg: svg.display().to_string(),
                    txt: txt.display().to_string(),
                },
                Err(e) => UiNotice::NoScreenshot(format!("{e:#}")),
            });
    }

    /// Start or stop recording; the answer goes to the status line.
    fn toggle_record(&mut self) {
        let ui = &mut self.state.ui;
        if let Some(r) = self.recorder.take() {
            ui.say(UiNotice::RecordingSaved(r.path().display().to_string()));
            ui.recording = None;
            return;
        }
        let path = self
            .record_path
            .clone()
            .unwrap_or_else(crate::record::default_path);
        let header = crate::record::Header::new(
            self.state.store.model.clone(),
            ui.asked.quant,
            ui.asked.draft_mode,
            ui.asked.k,
        );
        match Recorder::create(&path, header) {
            Ok(r) => {
                ui.say(UiNotice::Recording(path.display().to_string()));
                ui.recording = Some(path.display().to_string());
                self.recorder = Some(r);
            }
            Err(e) => ui.say(UiNotice::CannotRecord(format!("{e:#}"))),
        }
    }

    /// Run until the user quits: `inputs` from the terminal or a test, a frame every `frame`,
    /// `observe` shown each drawn frame.
    pub async fn run<B: Backend>(
        &mut self,
        terminal: &mut Terminal<B>,
        mut inputs: impl Stream<Item = std::io::Result<Input>> + Unpin,
        frame: Duration,
        mut observe: impl FnMut(&AppState, &Buffer),
    ) -> Result<()>
    where
        B::Error: Send + Sync + 'static,
    {
        let mut ticks = tokio::time::interval(frame);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut dirty = true;
        let mut last_tick = Instant::now();
        while !self.state.ui.quit {
            let worker_event = async {
                match self.event_source() {
                    Some(events) => events.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                input = inputs.next() => match input {
                    Some(Ok(Input::Key(k))) => {
                        self.key(k);
                        dirty = true;
                    }
                    Some(Ok(Input::Mouse(m))) => {
                        let size = terminal.size()?;
                        self.mouse(m, ratatui::layout::Rect::new(0, 0, size.width, size.height));
                        dirty = true;
                    }
                    Some(Ok(Input::Resize)) => dirty = true,
                    Some(Ok(Input::Quit)) => break,
                    Some(Err(e)) => return Err(e.into()),
                    None => break,
                },
                ev = worker_event => {
                    let Some(ev) = ev else {
                        // A feed's end is the work's end: its numbers stay on screen until q.
                        if self.feed.take().is_some() {
                            dirty = true;
                            continue;
                        }
                        break;
                    };
                    let mut batch = vec![ev];
                    // Take everything already queued before drawing.
                    if let Some(events) = self.event_source() {
                        while let Ok(ev) = events.try_recv() {
                            batch.push(ev);
                        }
                    }
                    self.events(batch);
                    dirty = true;
                }
                _ = ticks.tick() => {
                    dirty |= self.tick(last_tick.elapsed());
                    last_tick = Instant::now();
                    if dirty {
                        let f = terminal.draw(|f| self.draw(f.area(), f.buffer_mut()))?;
                        observe(&self.state, f.buffer);
                        dirty = false;
                        if std::mem::take(&mut self.shot_pending) {
                            self.screenshot(f.buffer);
                            // The status line shows where it went at the next frame.
                            dirty = true;
                        }
                    }
                }
            }
        }
        if let Some(w) = self.worker.as_ref() {
            w.send(Command::Stop);
        }
        Ok(())
    }
}

/// The models picked in earlier sessions, for the picker; a file that cannot be read is said on
/// the message line and replaced at the next pick.
fn load_recent(state: &mut AppState) {
    let Some(path) = crate::catalog::recent::file() else {
        return;
    };
    match crate::catalog::recent::load(&path) {
        Ok(specs) => state.ui.recent_models = specs,
        Err(e) => state.ui.say(UiNotice::RecentNotRead(e.to_string())),
    }
}

fn save_recent(state: &mut AppState) {
    if let Some(path) = crate::catalog::recent::file() {
        if let Err(e) = crate::catalog::recent::save(&path, &state.ui.recent_models) {
            state.ui.say(UiNotice::RecentNotSaved {
                path: path.display().to_string(),
                why: e.to_string(),
            });
        }
    }
}

/// List the models into the model picker: those picked earlier first, then the models
/// directory's and the Hugging Face cache's, then the built-in synthetic model.
fn open_models(state: &mut AppState, draft: bool) {
    let entries = crate::catalog::picker_entries(
        crate::catalog::catalog(),
        &state.ui.recent_models,
        |spec| std::path::Path::new(spec).exists(),
    );
    let current = if draft {
        None
    } else {
        Some(&state.ui.model_spec)
    };
    let selected = entries
        .iter()
        .position(|f| Some(&f.spec) == current)
        .unwrap_or(0);
    state.ui.open(Overlay::Models(crate::state::ModelPicker {
        entries,
        selected,
        draft,
    }));
}

/// Read the presets into the picker; problems go to the status line.
fn open_presets(state: &mut AppState) {
    let mut presets = Vec::new();
    let mut broken = Vec::new();
    for f in crate::preset::all() {
        match f.preset {
            Ok(p) => presets.push(p),
            Err(e) => broken.push(format!("{e:#}")),
        }
    }
    if presets.is_empty() {
        state.ui.say(UiNotice::NoPresets);
        return;
    }
    if !broken.is_empty() {
        state.ui.say(UiNotice::BrokenPresets(broken));
    }
    state.ui.open(Overlay::Presets(Picker {
        presets,
        selected: 0,
    }));
}

/// Replay's own keys; returns whether the key was one of them.
fn replay_key(r: &mut Replay, state: &mut AppState, k: KeyEvent) -> bool {
    use crossterm::event::KeyCode;
    match k.code {
        KeyCode::Char(' ') => r.paused = !r.paused,
        // With a demo on screen, n steps its narration instead.
        KeyCode::Char('n') if state.ui.demo.is_some() => return false,
        KeyCode::Char('.') | KeyCode::Char('n') => {
            r.paused = true;
            for e in r.step().to_vec() {
                state.apply(&e);
            }
        }
        KeyCode::Char('+') | KeyCode::Char('=') => r.faster(),
        KeyCode::Char('-') => r.slower(),
        _ => return false,
    }
    let (done, total) = r.progress();
    state.ui.say(UiNotice::ReplayStep {
        speed: r.speed,
        paused: r.paused,
        done,
        total,
    });
    true
}
