//! Building the drafter a run's settings ask for: none, prompt lookup, layer skip, a draft
//! model, or trained heads.

use super::Outbox;
use crate::engine::heads::HeadKind;
use crate::engine::spec::{pick, Drafter};
use crate::engine::{self, Engine};
use crate::protocol::{DraftMode, Event, Notice, Settings};
use candle_core::Device;

/// Which drafter is built, so a run reuses it when the settings have not changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DrafterKey {
    pub(super) mode: DraftMode,
    pub(super) draft_model: Option<String>,
    pub(super) draft_heads: Option<String>,
    pub(super) layers: Option<usize>,
}

impl DrafterKey {
    pub(super) fn of(s: &Settings) -> Self {
        Self {
            mode: s.draft_mode.unwrap_or_default(),
            draft_model: s.draft_model.clone(),
            draft_heads: s.draft_heads.clone(),
            layers: s.draft_layers,
        }
    }
}

/// The drafter `key` names for `engine`; loading a draft model is announced on `out`.
pub(super) fn build(
    engine: &Engine,
    key: &DrafterKey,
    device: &Device,
    out: &Outbox,
) -> engine::Result<Drafter> {
    Ok(match key.mode {
        DraftMode::None => Drafter::None,
        DraftMode::PromptLookup => Drafter::PromptLookup,
        DraftMode::LayerSkip => Drafter::for_mode(key.mode, &engine.model, key.layers)
            .expect("layer skip drafts from the target"),
        DraftMode::DraftModel => {
            out.send(Event::Note(Notice::DraftLoading {
                spec: key.draft_model.clone(),
            }));
            let draft = pick::open_draft(engine, key.draft_model.as_deref(), device)?;
            let name = draft.info.name.clone();
            let d = Drafter::draft_model(engine, draft)?;
            out.send(Event::Note(Notice::DraftReady {
                draft: name,
                target: engine.info.name.clone(),
            }));
            d
        }
        DraftMode::Medusa | DraftMode::Eagle => {
            let kind = match key.mode {
                DraftMode::Medusa => HeadKind::Medusa,
                _ => HeadKind::Eagle,
            };
            pick::open_heads(engine, kind, key.draft_heads.as_deref(), device)?
        }
    })
}
