//! Finding a draft model for a target: the one named, or the largest smaller GGUF beside the
//! target that shares its tokenizer.

use super::super::error::{EngineError, Result};
use super::super::heads::vocab::DraftVocab;
use super::super::heads::{file, Drafting, HeadKind};
use super::super::synthetic::SyntheticSpec;
use super::super::Engine;
use candle_core::Device;
use std::path::Path;

/// The synthetic target's draft: the same vocabulary in a single layer.
pub fn synthetic_draft(device: &Device) -> Result<Engine> {
    Engine::synthetic(
        &SyntheticSpec {
            layers: 1,
            ..SyntheticSpec::default()
        },
        device,
    )
}

/// Open the draft model named by `spec`, or pick one for `target` when `spec` is `None`.
pub fn open_draft(target: &Engine, spec: Option<&str>, device: &Device) -> Result<Engine> {
    match spec {
        Some("synthetic") => synthetic_draft(device),
        Some(s) => Engine::open(s, device, |_, _| {}),
        None if target.info.source == "synthetic" => synthetic_draft(device),
        None => pick_beside(target, device),
    }
}

/// Trained heads of `kind` for `target`: from `path`, or beside the model's file.
pub fn open_heads(
    target: &Engine,
    kind: HeadKind,
    path: Option<&str>,
    device: &Device,
) -> Result<super::Drafter> {
    let path = match path {
        Some(p) => std::path::PathBuf::from(p),
        None => file::default_path(&target.info.source, kind),
    };
    if !path.exists() {
        return Err(EngineError::Setting(format!(
            "no {} heads for {} at {}: train them with `labtui train-draft --kind {} --model {}`",
            kind.name(),
            target.info.name,
            path.display(),
            kind.name(),
            target.info.source
        )));
    }
    let (heads, header, ids) = file::load(&path, target, device)?;
    if header.kind != kind {
        return Err(EngineError::Setting(format!(
            "{} holds {} heads, not {}",
            path.display(),
            header.kind.name(),
            kind.name()
        )));
    }
    let vocab = match ids {
        Some(ids) => Some(DraftVocab::new(&target.model, ids)?),
        None => None,
    };
    let drafting = Drafting { heads, vocab };
    Ok(super::Drafter::Heads(std::sync::Arc::new(drafting)))
}

fn pick_beside(target: &Engine, device: &Device) -> Result<Engine> {
    let path = Path::new(&target.info.source);
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut candidates: Vec<(u64, std::path::PathBuf)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "gguf") && p != path)
                .filter_map(|p| Some((std::fs::metadata(&p).ok()?.len(), p)))
                .filter(|(len, _)| *len < target.info.file_bytes)
                .collect()
        })
        .unwrap_or_default();
    // The largest smaller model drafts best; a different tokenizer or architecture is skipped.
    candidates.sort_by_key(|b| std::cmp::Reverse(b.0));
    for (_, p) in candidates {
        if let Ok(e) = Engine::from_file(&p, device) {
            if super::draft::check_same_tokenizer(target, &e).is_ok() {
                return Ok(e);
            }
        }
    }
    Err(EngineError::Setting(format!(
        "no draft model for {}: no smaller GGUF with the same tokenizer in {}; name one with --draft-model",
        target.info.name,
        dir.display()
    )))
}
