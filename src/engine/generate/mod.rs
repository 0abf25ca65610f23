//! The token-by-token generation loop: prefill, then one decode step per token, each measured
//! where it happens and reported as an event.
//!
//! A run is a [`Generation`]: [`Generation::prefill`] gives the first token, each
//! [`Generation::step`] drafts (an empty draft for plain decoding) and verifies, and
//! [`Generation::emit`] reports the tokens a step produced and says when the run is over;
//! [`Generation::finish`] sums it up.

mod produced;
mod request;
mod run;
mod step;
mod tree_step;

pub use produced::{Produced, Step};
pub use request::{Prompt, RunRequest};
pub use run::Generation;

use super::error::Result;
use super::spec::{KPolicy, Speculator};
use super::Engine;
use crate::protocol::{Event, RunSummary};

/// What the caller wants after each token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepControl {
    Continue,
    Stop,
    /// Change K from the next step on; the caller is asked again.
    SetK(KPolicy),
}

/// Generate what `request` asks for, emitting `RunStarted`, `PrefillDone`, one `Token` per token
/// (after a `SpecStep` for each speculative step) and `KvBlocks` when the cache's blocks change.
/// `control` is asked before every decode step, so a stop lands within one step. Plain decoding
/// is `spec` = [`Speculator::none`].
pub fn generate(
    engine: &mut Engine,
    spec: &mut Speculator,
    request: &RunRequest,
    emit: &mut dyn FnMut(Event),
    control: &mut dyn FnMut() -> StepControl,
) -> Result<RunSummary> {
    let mut run = Generation::new(engine, spec, request)?;
    let mut step = run.prefill(emit)?;
    let reason = loop {
        if let Some(reason) = run.emit(&step, emit)? {
            break reason;
        }
        if let Some(reason) = run.poll(control) {
            break reason;
        }
        step = run.step(emit)?;
    };
    run.finish(reason)
}
