//! Two generations in turn on one machine: A's prefill, B's prefill, then one step of A and one
//! of B until both end. Each side's times are its own steps' (a [`Generation`] measures each
//! step where it runs), so neither is charged for the other's.

use super::error::Result;
use super::generate::{Generation, RunRequest, Step, StepControl};
use super::spec::Speculator;
use super::Engine;
use crate::protocol::race::Lane;
use crate::protocol::{Event, FinishReason, Phase, RunSummary};
use std::time::Duration;

/// One side: its engine (its own cache), speculator and request.
pub struct Side<'a> {
    pub engine: &'a mut Engine,
    pub spec: &'a mut Speculator,
    pub request: &'a RunRequest,
}

/// What both sides produced: their summaries, each token's text, and each decode token's share
/// of its step (the inter-token latencies).
#[derive(Debug, Clone, PartialEq)]
pub struct Raced {
    pub summaries: [RunSummary; 2],
    pub texts: [Vec<String>; 2],
    pub itl: [Vec<Duration>; 2],
}

/// A side's tape as a race compares it: each token's text and each decode token's share of its
/// step (its inter-token latency).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tape {
    pub texts: Vec<String>,
    pub itl: Vec<Duration>,
}

impl Tape {
    /// Keep what `ev` adds, if it is a token.
    pub fn take(&mut self, ev: &Event) {
        if let Event::Token(t) = ev {
            self.texts.push(t.text.clone());
            if t.phase != Phase::Prefill {
                self.itl.push(t.step);
            }
        }
    }
}

/// Race `a` against `b`, emitting each side's run events with its lane. `stop` is asked before
/// every step of either side; a stop ends both (their summaries say `Stopped`).
pub fn race(
    a: Side,
    b: Side,
    emit: &mut dyn FnMut(Lane, Event),
    stop: &mut dyn FnMut() -> bool,
) -> Result<Raced> {
    let mut tapes: [Tape; 2] = Default::default();
    let mut tap = |lane: Lane, ev: Event| {
        tapes[lane.index()].take(&ev);
        emit(lane, ev)
    };
    // Each side is set up and prefilled before the other starts, so its time to first token
    // is its own.
    let mut sides = Vec::with_capacity(2);
    for (lane, side) in Lane::BOTH.into_iter().zip([a, b]) {
        let mut g = Generation::new(side.engine, side.spec, side.request)?;
        let first = g.prefill(&mut |ev| tap(lane, ev))?;
        sides.push(Running {
            lane,
            g,
            step: first,
            done: None,
        });
    }
    // A stop ends both sides: once asked, it holds for the other side's turn too.
    let mut stopped = false;
    let mut control = || {
        stopped = stopped || stop();
        if stopped {
            StepControl::Stop
        } else {
            StepControl::Continue
        }
    };
    while sides.iter().any(|s| s.done.is_none()) {
        for s in sides.iter_mut().filter(|s| s.done.is_none()) {
            let lane = s.lane;
            s.done = s.g.emit(&s.step, &mut |ev| tap(lane, ev))?;
            if s.done.is_none() {
                s.done = s.g.poll(&mut control);
            }
            if s.done.is_none() {
                s.step = s.g.step(&mut |ev| tap(lane, ev))?;
            }
        }
    }
    let mut summaries = Vec::with_capacity(2);
    for s in sides {
        let (lane, run) = (s.lane, s.g.run_id());
        let summary = s.g.finish(s.done.unwrap_or(FinishReason::Stopped))?;
        let finished = Event::RunFinished {
            run,
            summary: summary.clone(),
        };
        tap(lane, finished);
        summaries.push(summary);
    }
    let [sa, sb]: [RunSummary; 2] = summaries.try_into().expect("two sides");
    let [ta, tb] = tapes;
    Ok(Raced {
        summaries: [sa, sb],
        texts: [ta.texts, tb.texts],
        itl: [ta.itl, tb.itl],
    })
}

/// A side in progress: its generation, the step it has yet to report, and why it ended.
struct Running<'a> {
    lane: Lane,
    g: Generation<'a>,
    step: Step,
    done: Option<FinishReason>,
}
