//! The settings the UI changes while the engine runs, as the worker holds them.

use crate::protocol::{Command, DraftMode, KPolicy, KvDtype, Quant};

/// Settings the UI can change while the engine runs.
pub(super) struct Settings {
    pub(super) draft_mode: DraftMode,
    pub(super) k: KPolicy,
    /// The draft model for `draft-model` mode; `None` picks one beside the target.
    pub(super) draft_model: Option<String>,
    /// Layers of the `layer-skip` draft; `None` is half the target's.
    pub(super) draft_layers: Option<usize>,
    /// A weight or KV switch asked for and not yet made (only the newest of each is kept).
    pub(super) quant: Option<Quant>,
    pub(super) kv_dtype: Option<KvDtype>,
}

impl Settings {
    /// Take a setting command; the answer says what happened to it.
    pub(super) fn apply(&mut self, cmd: &Command) -> String {
        match cmd {
            Command::SetQuantization { quant } => {
                self.quant = Some(*quant);
                format!("quantization {quant}: requantising when no run is in progress")
            }
            Command::SetKvDtype { dtype } => {
                self.kv_dtype = Some(*dtype);
                format!("KV cache {dtype}: from the next run")
            }
            Command::SetDraftMode { mode } => {
                self.draft_mode = *mode;
                format!("draft mode {mode}: from the next run")
            }
            Command::SetK { k } => {
                self.k = *k;
                format!("K = {k}: from the next step")
            }
            Command::SetDraftModel { spec } => {
                self.draft_model = Some(spec.clone());
                format!("draft model {spec}: loaded when draft-model mode next runs")
            }
            Command::SetDraftLayers { layers } => {
                let layers = (*layers).max(1);
                self.draft_layers = Some(layers);
                format!("layer-skip drafts through {layers} layers: from the next run")
            }
            other => format!("{other:?} is not a setting"),
        }
    }
}

/// Which drafter is built, so a run reuses it when the settings have not changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DrafterKey {
    pub(super) mode: DraftMode,
    pub(super) draft_model: Option<String>,
    pub(super) layers: Option<usize>,
}

/// Commands that only change a setting.
pub(super) fn is_setting(c: &Command) -> bool {
    matches!(
        c,
        Command::SetDraftModel { .. }
            | Command::SetDraftLayers { .. }
            | Command::SetQuantization { .. }
            | Command::SetKvDtype { .. }
            | Command::SetDraftMode { .. }
            | Command::SetK { .. }
    )
}
