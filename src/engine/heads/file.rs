//! Trained heads on disk: the weights as safetensors (`MODEL.medusa.safetensors`) and a small
//! RON header beside them (`MODEL.medusa.ron`) naming the target they were trained on (a hash of
//! its weights), their shape and how they were trained. Heads are refused for another model.

use super::{HeadKind, Heads};
use crate::engine::error::{EngineError, Result};
use crate::engine::Engine;
use candle_core::Device;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The header's format version.
pub const FORMAT: u32 = 1;

/// The draft vocabulary's token ids in the weights file (u32), when it has one.
const VOCAB: &str = "draft_vocab";

/// What a heads file says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub format: u32,
    pub kind: HeadKind,
    /// Medusa's head count (1 for EAGLE).
    pub heads: usize,
    pub hidden: usize,
    pub vocab: usize,
    /// The target's name and the SHA-256 of its loaded weights ([`fingerprint`]).
    pub target: String,
    pub target_hash: String,
    pub training: Training,
}

/// How far training went: resuming continues from here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Training {
    pub corpus: String,
    /// Corpus tokens the features came from (training and held-out).
    pub corpus_tokens: usize,
    pub steps_done: usize,
    pub steps_total: usize,
    pub positions_seen: u64,
    pub seconds: f64,
    pub train_loss: f32,
    pub held_out_loss: f32,
    /// Held-out estimate: the share of drafts at each place (1st, 2nd, …) the target would keep,
    /// given the ones before it were kept.
    pub held_out_acceptance: Vec<f32>,
    /// Held-out estimate of tokens accepted per step with every place drafted.
    pub held_out_accepted_len: f32,
    /// Held-out share of positions where each place's draft is the target's own choice.
    #[serde(default)]
    pub held_out_top1: Vec<f32>,
}

/// Where `kind` heads for a model loaded from `source` live by default: beside the file.
pub fn default_path(source: &str, kind: HeadKind) -> PathBuf {
    let p = Path::new(source);
    let stem = p
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.replace(['/', ':'], "_"));
    let dir = p.parent().unwrap_or(Path::new("."));
    dir.join(format!("{stem}.{}.safetensors", kind.name()))
}

/// The RON header that goes with a weights file.
pub fn header_path(weights: &Path) -> PathBuf {
    weights.with_extension("ron")
}

/// SHA-256 of the target's loaded weights (its embeddings, output head and shape): heads trained
/// on one model are refused for any other.
pub fn fingerprint(engine: &Engine) -> Result<String> {
    let model = engine.original.as_ref().unwrap_or(&engine.model);
    let mut h = Sha256::new();
    let c = &model.cfg;
    h.update(format!("{}|{}|{}|{}", c.name, c.layers, c.hidden, c.vocab).as_bytes());
    h.update(model.embed.data()?.as_ref());
    let norm: Vec<f32> = model.norm.flatten_all()?.to_vec1()?;
    for x in norm {
        h.update(x.to_le_bytes());
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Write `heads` and `header` to `path` (and its header), each through a temporary file
/// renamed over the old, so an interrupted save leaves the previous checkpoint whole.
pub fn save(path: &Path, heads: &Heads, vocab: Option<&[u32]>, header: &Header) -> Result<()> {
    let io = |e: std::io::Error| EngineError::Setting(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("safetensors.tmp");
    let mut tensors = heads.tensors();
    if let Some(ids) = vocab {
        let t = candle_core::Tensor::new(ids, &candle_core::Device::Cpu)?;
        tensors.insert(VOCAB.into(), t);
    }
    candle_core::safetensors::save(&tensors, &tmp)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    let text = ron::ser::to_string_pretty(header, ron::ser::PrettyConfig::default())
        .map_err(|e| EngineError::Setting(e.to_string()))?;
    let hp = header_path(path);
    let tmp = hp.with_extension("ron.tmp");
    std::fs::write(&tmp, text).map_err(io)?;
    std::fs::rename(&tmp, &hp).map_err(io)
}

/// Read a header alone.
pub fn read_header(path: &Path) -> Result<Header> {
    let hp = header_path(path);
    let text = std::fs::read_to_string(&hp).map_err(|e| {
        EngineError::Setting(format!(
            "{}: {e} (train heads with `labtui train-draft`)",
            hp.display()
        ))
    })?;
    let header: Header = ron::from_str(&text)
        .map_err(|e| EngineError::Setting(format!("{}: not a heads header: {e}", hp.display())))?;
    if header.format != FORMAT {
        return Err(EngineError::Setting(format!(
            "{}: header format {} (this labtui reads {FORMAT})",
            hp.display(),
            header.format
        )));
    }
    Ok(header)
}

/// Load heads for `engine` from `path`, with their draft vocabulary's ids when they have one;
/// refused, saying why, when they were trained on another model or their weights do not have
/// the shape the header says.
pub fn load(
    path: &Path,
    engine: &Engine,
    device: &Device,
) -> Result<(Heads, Header, Option<Vec<u32>>)> {
    let header = read_header(path)?;
    let refuse = |why: String| {
        EngineError::Setting(format!(
            "{}: these {} heads {why}",
            path.display(),
            header.kind.name()
        ))
    };
    let cfg = &engine.model.cfg;
    if header.hidden != cfg.hidden || header.vocab != cfg.vocab {
        return Err(refuse(format!(
            "are for a model of hidden size {} and vocabulary {} ({}), not {} ({} and {})",
            header.hidden, header.vocab, header.target, engine.info.name, cfg.hidden, cfg.vocab
        )));
    }
    if header.target_hash != fingerprint(engine)? {
        return Err(refuse(format!(
            "were trained on {} ({}…), not on {} (other weights)",
            header.target,
            &header.target_hash[..12.min(header.target_hash.len())],
            engine.info.name
        )));
    }
    let mut tensors = candle_core::safetensors::load(path, device)
        .map_err(|e| refuse(format!("could not be read: {e}")))?;
    let ids = match tensors.remove(VOCAB) {
        Some(t) => {
            let ids: Vec<u32> = t.to_vec1()?;
            if ids.iter().any(|&i| i as usize >= cfg.vocab) {
                return Err(refuse("have a draft vocabulary beyond the model's".into()));
            }
            Some(ids)
        }
        None => None,
    };
    let heads = Heads::from_tensors(header.kind, header.heads, tensors)
        .map_err(|e| refuse(format!("are incomplete: {e}")))?;
    for (name, t) in heads.tensors() {
        let want = if name.ends_with(".b") { 1 } else { 2 };
        if t.rank() != want || t.dim(0)? != cfg.hidden {
            return Err(refuse(format!("have {name} of shape {:?}", t.dims())));
        }
    }
    Ok((heads, header, ids))
}
