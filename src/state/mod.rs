//! The app model, in two parts as bottom and gitui keep them: the [`Store`] of what the worker
//! reported (changed only by [`Store::apply`], returning nothing) and the [`Ui`] of what a person
//! asked for and looks at (changed by [`Ui::update`], which answers with commands). Where an event
//! leads to a command, [`follow`] decides. No IO; series are bounded.

mod demo;
pub mod figure;
mod follow;
pub mod itl;
mod kv_figures;
mod memory_figures;
mod overlay;
mod race;
mod race_figures;
mod ring;
mod run;
mod run_figures;
pub mod sched;
mod sched_figures;
mod serve;
pub mod serve_figures;
mod server_figures;
mod spec;
mod spec_figures;
mod status;
mod store;
pub mod thin;
mod ui;
mod view;
mod what_if;

pub use demo::DemoView;
pub use follow::follow;
pub use itl::Itl;
pub use kv_figures::{kv_figures, KvFigures};
pub use memory_figures::{memory_figures, MemoryFigures};
pub use overlay::{ModelPicker, Overlay, Picker, RECENT_MODELS};
pub use race::RaceView;
pub use race_figures::{RaceFigures, RowFigures, SideFigures};
pub use ring::Ring;
pub use run::{ends_line, RunView, LINE_BYTES};
pub use run_figures::{TimingFigures, TokenFigures, LIVE_STEPS};
pub use sched::SchedView;
pub use sched_figures::SchedFigures;
pub use serve::{LevelProgress, ServeView};
pub use server_figures::{
    gauges as server_gauges, server_figures, server_spec_figures, ServerFigures, ServerSpecFigures,
};
pub use spec::SpecView;
pub use spec_figures::{spec_figures, SpecFigures, POSITIONS_SHOWN};
pub use status::{Happened, Status, UiNotice};
pub use store::{Store, VariantRow, SERVER_RECENT, SERVER_SAMPLES};
pub use thin::Thinned;
pub use ui::{AskedSettings, Ui};
pub use view::{Action, Focus, ViewState};
pub use what_if::{WhatIf, WhatIfDtype, WHAT_IF_BATCH, WHAT_IF_CONTEXTS};

use crate::protocol::{Command, DemoRun, Stamped};

/// The store and the UI state together: what the panes draw.
#[derive(Debug, Clone, PartialEq)]
pub struct AppState {
    pub store: Store,
    pub ui: Ui,
}

impl AppState {
    pub fn new(model_spec: &str, prompt: &str) -> Self {
        Self {
            store: Store::new(),
            ui: Ui::new(model_spec, prompt),
        }
    }

    /// Take one worker event: the store records it, then the UI follows; returns the commands
    /// the event calls for (live sessions send them, replays drop them).
    pub fn apply(&mut self, ev: &Stamped) -> Vec<Command> {
        self.store.apply(ev);
        follow(&mut self.ui, &self.store, ev)
    }

    /// Take one user action; returns the commands for the worker.
    pub fn update(&mut self, action: Action) -> Vec<Command> {
        self.ui.update(&self.store, action)
    }

    /// The error to show, unless the UI dealt with it.
    pub fn error(&self) -> Option<&str> {
        self.store
            .error
            .as_deref()
            .filter(|_| self.store.errors > self.ui.errors_handled)
    }

    /// The demo on screen's result, once measured.
    pub fn demo_result(&self) -> Option<&DemoRun> {
        self.ui.demo.as_ref()?.result(&self.store.demos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        Event, FinishReason, GenParams, KPolicy, Phase, SettingChange, TokenEvent,
    };
    use std::time::Duration;

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

    /// Run 1 starts, 5 prompt tokens, default settings.
    fn started() -> Event {
        Event::RunStarted {
            run: 1,
            prompt_tokens: 5,
            settings: crate::protocol::RunSettings {
                params: GenParams::default(),
                quantization: Default::default(),
                draft_mode: Default::default(),
                k: Default::default(),
                policy: Default::default(),
            },
            prompt: "hi".into(),
        }
    }

    #[test]
    fn a_run_fills_the_view_and_history() {
        let mut s = AppState::new("synthetic", "hi");
        s.apply(&at(1, started()));
        assert!(s.store.running());
        for i in 0..3 {
            s.apply(&at(2 + i as u64, Event::Token(token(i))));
        }
        assert_eq!(s.store.current.as_ref().unwrap().text(), "t0t1t2");
        assert_eq!(s.store.current.as_ref().unwrap().itl.len(), 2);
        assert_eq!(s.update(Action::Stop), vec![Command::Stop]);
    }

    #[test]
    fn an_error_in_the_middle_of_a_run_ends_it() {
        let mut s = AppState::new("synthetic", "hi");
        s.apply(&at(1, started()));
        s.apply(&at(2, Event::Token(token(0))));
        assert!(s.store.running());
        s.apply(&at(
            3,
            Event::Error {
                message: "boom".into(),
            },
        ));
        assert!(!s.store.running(), "Enter may run again");
        let run = s.store.current.as_ref().unwrap();
        assert_eq!(run.failed.as_deref(), Some("boom"));
        assert_eq!(s.update(Action::Stop), vec![Command::Stop]);
    }

    #[test]
    fn run_needs_a_model_and_a_prompt() {
        let mut s = AppState::new("synthetic", "");
        assert_eq!(s.update(Action::Run), vec![]);
        assert_eq!(s.ui.status, Status::Ui(UiNotice::NoModel));
        let _ = FinishReason::Eos;
    }

    #[test]
    fn a_failed_default_load_falls_back_to_synthetic_once() {
        let mut s = AppState::new("default", "");
        s.ui.fallback_to_synthetic = true;
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
            vec![Command::LoadModel {
                spec: "synthetic".into()
            }]
        );
        assert!(s.ui.banner.as_ref().unwrap().contains("synthetic"));
        assert_eq!(s.error(), None, "the fallback deals with the error");
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
            vec![]
        );
        assert_eq!(s.error(), Some("boom"));
    }

    #[test]
    fn k_stays_within_1_to_16_or_adaptive() {
        let mut s = AppState::new("synthetic", "");
        for _ in 0..20 {
            s.update(Action::KUp);
        }
        assert_eq!(s.ui.asked.k, KPolicy::Fixed(16));
        for _ in 0..20 {
            s.update(Action::KDown);
        }
        assert_eq!(
            s.update(Action::KDown),
            vec![Command::Set(SettingChange::K(KPolicy::Adaptive))]
        );
        assert_eq!(
            s.update(Action::KUp),
            vec![Command::Set(SettingChange::K(KPolicy::Fixed(1)))]
        );
    }
}
