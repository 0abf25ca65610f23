//! An A/B race as the dashboard sees it: each side's run (the same [`RunView`] a single run
//! fills), the summary row at the end, and the key that starts one.

use super::{RunView, Store, Ui, UiNotice};
use crate::protocol::race::{RaceConfig, RaceEvent, RaceSide, RaceSummary};
use crate::protocol::{Command, KvDtype, Quant, Settings};

#[derive(Debug, Clone, PartialEq)]
pub struct RaceView {
    pub sides: [RaceSide; 2],
    /// Each side's run, from its `RunStarted` on.
    pub runs: [Option<RunView>; 2],
    /// The sides take turns step by step on one machine.
    pub turns: bool,
    pub summary: Option<RaceSummary>,
    /// Why the race ended without a summary.
    pub failed: Option<String>,
    /// Token positions both tapes have and that were compared, how many of them have the same
    /// text, and the first whose texts differ: kept as tokens arrive, so a frame never walks
    /// the tapes.
    compared: usize,
    same: usize,
    parted: Option<usize>,
}

impl RaceView {
    /// Take one race event into `race` (a start replaces the last race).
    pub fn apply(race: &mut Option<RaceView>, e: &RaceEvent) {
        match e {
            RaceEvent::Started { a, b, turns } => {
                *race = Some(RaceView {
                    sides: [(**a).clone(), (**b).clone()],
                    runs: [None, None],
                    turns: *turns,
                    summary: None,
                    failed: None,
                    compared: 0,
                    same: 0,
                    parted: None,
                })
            }
            RaceEvent::Lane { lane, event } => {
                let Some(r) = race.as_mut() else { return };
                let run = &mut r.runs[lane.index()];
                match (RunView::started(event), run.as_mut()) {
                    (Some(v), _) => *run = Some(v),
                    (None, Some(v)) => v.apply(event),
                    (None, None) => {}
                }
                r.compare();
            }
            RaceEvent::Finished(s) => {
                if let Some(r) = race.as_mut() {
                    r.summary = Some((**s).clone());
                }
            }
        }
    }

    pub fn running(&self) -> bool {
        self.summary.is_none() && self.failed.is_none()
    }

    /// The first token index where the two tapes' texts differ, as far as both have come.
    pub fn parting(&self) -> Option<usize> {
        match &self.summary {
            Some(s) => s.first_diff,
            None => self.parted,
        }
    }

    /// Compare the positions both tapes reached since the last call.
    fn compare(&mut self) {
        let [Some(a), Some(b)] = &self.runs else {
            return;
        };
        let n = a.tokens.len().min(b.tokens.len());
        while self.compared < n {
            let i = self.compared;
            if a.tokens[i].text == b.tokens[i].text {
                self.same += 1;
            } else if self.parted.is_none() {
                self.parted = Some(i);
            }
            self.compared += 1;
        }
    }

    /// Positions both tapes have whose texts are the same.
    pub fn same_positions(&self) -> usize {
        self.same
    }
}

impl Ui {
    /// The race's view takes the body: a race has started and its view was not dismissed.
    pub fn race_shown(&self, store: &Store) -> bool {
        store.race.is_some() && self.race_dismissed != Some(store.races)
    }

    /// What `A` races: the baseline (as loaded, plain decoding, f32 KV) against the settings
    /// asked for now.
    pub fn race_sides(&self) -> [RaceConfig; 2] {
        let a = &self.asked;
        let asked = Settings {
            quant: (a.quant != Quant::AsLoaded).then_some(a.quant),
            kv_dtype: (a.kv_live != KvDtype::default()).then_some(a.kv_live),
            draft_mode: (a.draft_mode != Default::default()).then_some(a.draft_mode),
            k: (a.draft_mode != Default::default()).then_some(a.k),
            policy: (a.policy != Default::default()).then_some(a.policy),
            ..Settings::default()
        };
        [RaceConfig::default(), RaceConfig::from_settings(&asked)]
    }

    /// Start a race of the prompt (`A`), unless something runs or there is nothing to race.
    /// A preset's race of its first prompt: sent now, or (with no model yet) on the next
    /// `ModelLoaded`.
    pub(super) fn preset_race(
        &mut self,
        store: &Store,
        p: &crate::preset::Preset,
    ) -> Option<Command> {
        let [a, b] = p.race.as_ref()?.sides().ok()?;
        self.prompt = p.prompts[0].clone();
        self.race_dismissed = None;
        let cmd = Command::Race {
            prompt: self.prompt.clone(),
            params: p.params.clone(),
            a: a.clone(),
            b: b.clone(),
        };
        if store.model.is_none() {
            self.race_waiting = Some(cmd);
            return None;
        }
        if !self.may_start(store) {
            return None;
        }
        self.say(UiNotice::Racing {
            a: a.label(),
            b: b.label(),
        });
        Some(cmd)
    }

    pub(super) fn race(&mut self, store: &Store) -> Option<Command> {
        if !self.may_start(store) {
            return None;
        }
        let [a, b] = self.race_sides();
        if a == b {
            self.say(UiNotice::RaceNeedsChange);
            return None;
        }
        self.race_dismissed = None;
        self.say(UiNotice::Racing {
            a: a.label(),
            b: b.label(),
        });
        Some(Command::Race {
            prompt: self.prompt.clone(),
            params: self.params.clone(),
            a,
            b,
        })
    }
}
