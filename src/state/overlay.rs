//! What can lie over the dashboard: the help, the variants table, and the preset and model
//! pickers with their entries and cursor.

use crate::catalog::Found;
use crate::preset::Preset;

/// The model picker: the models found on this machine and the one under the cursor; `draft`
/// when it picks the draft model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPicker {
    pub entries: Vec<Found>,
    pub selected: usize,
    pub draft: bool,
}

/// Models picked in this session, newest first, at most this many.
pub const RECENT_MODELS: usize = 5;

/// The preset picker: the presets found and the one under the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Picker {
    pub presets: Vec<Preset>,
    pub selected: usize,
}

/// What lies over the dashboard. At most one is open, so the one that takes the keys and the one
/// drawn on top are the same.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Help,
    /// The focused pane's figures, each with its definition, formula and source.
    Explain,
    /// The table of the weight variants tried in this session.
    Variants,
    Presets(Picker),
    Models(ModelPicker),
}

impl Overlay {
    /// Which overlay stays when another asks to open: a picker over the help over the variants.
    pub(super) fn rank(&self) -> u8 {
        match self {
            Overlay::Variants => 0,
            Overlay::Help | Overlay::Explain => 1,
            Overlay::Presets(_) | Overlay::Models(_) => 2,
        }
    }
}
