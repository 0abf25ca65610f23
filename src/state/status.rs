//! What the status line says, as values: the newest thing a worker event reported or an action
//! got as an answer. One field holds it ([`crate::state::Ui::status`]), written by
//! [`crate::state::follow`] for events and by whatever answers a person; the words and key hints
//! are made in one place, `tui::panes::status`.

use super::Focus;
use crate::protocol::{
    BatchDone, Event, FinishReason, KvDtype, Notice, Quality, Quant, StreamDone,
};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Default)]
pub enum Status {
    /// Nothing happened yet: how to begin.
    #[default]
    Welcome,
    /// What a worker event reported.
    Worker(Happened),
    /// An action's answer, or the terminal loop's.
    Ui(UiNotice),
}

/// What a worker event reported, with the numbers the status line shows.
#[derive(Debug, Clone, PartialEq)]
pub enum Happened {
    Loading {
        spec: String,
    },
    Loaded {
        name: String,
        took: Duration,
    },
    Requantizing {
        quant: Quant,
        done: usize,
        total: usize,
    },
    Switched {
        /// The weights' type, or a mixed variant's label.
        weights: String,
        weight_bytes: u64,
        kv_dtype: KvDtype,
        took: Duration,
    },
    Quality(Quality),
    RunStarted {
        run: u64,
        prompt_tokens: usize,
    },
    Decoding {
        run: u64,
    },
    RunDone {
        run: u64,
        reason: FinishReason,
        tokens: usize,
        decode_tok_s: f64,
    },
    DemoMeasured {
        demo: String,
        model: String,
    },
    StreamDone(StreamDone),
    BatchDone(BatchDone),
    Notice(Notice),
    /// A notice in words of its own.
    Text(String),
    /// An error (the error line above says which).
    Error,
    /// No real model could be loaded: the built-in synthetic one loads.
    FallingBack,
}

impl Happened {
    /// What `ev` reported, if the status line tells it.
    pub fn of(ev: &Event) -> Option<Self> {
        Some(match ev {
            Event::ModelLoading { spec } => Self::Loading { spec: spec.clone() },
            Event::ModelLoaded(info) => Self::Loaded {
                name: info.name.clone(),
                took: info.load_time,
            },
            Event::Requantizing { quant, done, total } => Self::Requantizing {
                quant: *quant,
                done: *done,
                total: *total,
            },
            Event::VariantReady(v) => Self::Switched {
                weights: v.mix.clone().unwrap_or_else(|| v.quant.to_string()),
                weight_bytes: v.weight_bytes,
                kv_dtype: v.kv_dtype,
                took: v.took,
            },
            Event::Quality(q) => Self::Quality(q.clone()),
            Event::RunStarted {
                run, prompt_tokens, ..
            } => Self::RunStarted {
                run: *run,
                prompt_tokens: *prompt_tokens,
            },
            Event::PrefillDone { run, .. } => Self::Decoding { run: *run },
            Event::RunFinished { run, summary } => Self::RunDone {
                run: *run,
                reason: summary.reason,
                tokens: summary.generated_tokens,
                decode_tok_s: summary.decode_tok_s,
            },
            Event::Note(n) => Self::Notice(n.clone()),
            Event::Notice { message } => Self::Text(message.clone()),
            Event::StreamDone(d) => Self::StreamDone(d.clone()),
            Event::BatchDone(d) => Self::BatchDone(d.clone()),
            Event::Demo(run) => Self::DemoMeasured {
                demo: run.demo.clone(),
                model: run.model.clone(),
            },
            Event::Error { .. } => Self::Error,
            Event::Race(crate::protocol::race::RaceEvent::Started { a, b, .. }) => {
                Self::Text(format!(
                    "race: A {} against B {}, one step of each in turn on this machine",
                    a.label, b.label
                ))
            }
            Event::Race(crate::protocol::race::RaceEvent::Finished(s)) => Self::Text(format!(
                "race over: B ran at {} of A's decode speed; {}",
                s.ratio_text(),
                s.parting()
            )),
            Event::Sensitivity(crate::protocol::sensitivity::SensEvent::Finished { took }) => {
                Self::Text(format!(
                    "sensitivity sweep finished in {}",
                    crate::stats::human_secs(*took)
                ))
            }
            Event::Sensitivity(_)
            | Event::Race(crate::protocol::race::RaceEvent::Lane { .. })
            | Event::LoadProgress { .. }
            | Event::Token(_)
            | Event::KvBlocks { .. }
            | Event::SpecStep(_)
            | Event::System(_)
            | Event::Server(_)
            | Event::Serve(_)
            | Event::Sched(_) => return None,
        })
    }
}

/// An answer to a person's action, or what the terminal loop did.
#[derive(Debug, Clone, PartialEq)]
pub enum UiNotice {
    // Runs.
    Running,
    BatchRunning(usize),
    RunInProgress,
    NoModel,
    StillLoading,
    EmptyPrompt,
    Stopping,
    StoppingJob,
    QualityQueued,
    // Settings asked for.
    MaxTokens(usize),
    Temperature(f32),
    BatchSize(usize),
    /// A race started: its sides' labels.
    Racing {
        a: String,
        b: String,
    },
    /// `A` with the settings at the baseline: nothing to race.
    RaceNeedsChange,
    // The view.
    SchedClosed,
    RaceClosed,
    ZoomNeedsPane,
    Zoomed(Focus),
    Unzoomed,
    // Pickers.
    ModelAlready(String),
    DraftPicked(String),
    ModelPicked(String),
    DemoPicked(String),
    PresetPicked(String),
    NoPresets,
    BrokenPresets(Vec<String>),
    RecentNotRead(String),
    RecentNotSaved {
        path: String,
        why: String,
    },
    // Files the terminal loop writes.
    Screenshot {
        svg: String,
        txt: String,
    },
    NoScreenshot(String),
    Recording(String),
    RecordingSaved(String),
    CannotRecord(String),
    RecordingStopped(String),
    // Replays and watched feeds.
    ReplayAt {
        speed: f64,
    },
    ReplayStep {
        speed: f64,
        paused: bool,
        done: usize,
        total: usize,
    },
    ReplayOf {
        name: String,
        at: f64,
    },
    NoEngine {
        watching: bool,
    },
    /// A watched feed's own line (it names what it runs).
    Feed(String),
}
