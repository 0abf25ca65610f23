//! What a run is asked to do, as one value.

use crate::protocol::{GenParams, RunSettings};

/// What to generate from.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Text, templated unless the parameters say `raw`.
    Text(String),
    /// Token ids as they are (benchmarks).
    Ids(Vec<u32>),
}

/// One generation: its id, its prompt and the settings it runs with (reported back in
/// `RunStarted`), whose sampling parameters it generates with.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub run: u64,
    pub prompt: Prompt,
    pub settings: RunSettings,
}

impl RunRequest {
    pub fn new(run: u64, prompt: Prompt, settings: RunSettings) -> Self {
        Self {
            run,
            prompt,
            settings,
        }
    }

    pub fn params(&self) -> &GenParams {
        &self.settings.params
    }
}
