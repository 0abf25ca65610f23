//! Presets: RON files in `presets/` that describe a repeatable experiment — model, prompts,
//! generation parameters and the engine settings to use. Defaults live in code; a preset overlays
//! only what it names.

use crate::protocol::GenParams;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The preset format this build reads.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    pub format: u32,
    pub name: String,
    pub description: String,
    /// Model spec (path, models-directory file, hf:…, or `synthetic`); the default model if absent.
    #[serde(default)]
    pub model: Option<String>,
    /// The draft model for draft-model speculation.
    #[serde(default)]
    pub draft_model: Option<String>,
    pub prompts: Vec<String>,
    #[serde(default)]
    pub params: GenParams,
    #[serde(default)]
    pub quantization: Option<String>,
    /// KV cache dtype: f32, f16 or bf16.
    #[serde(default)]
    pub kv_dtype: Option<String>,
    #[serde(default)]
    pub draft_mode: Option<String>,
    #[serde(default)]
    pub k: Option<usize>,
    /// Narration shown while the preset runs, one line per step.
    #[serde(default)]
    pub notes: Vec<String>,
    /// A teaching demo this preset runs (its steps are the notes).
    #[serde(default)]
    pub demo: Option<crate::demo::DemoSection>,
}

impl Preset {
    /// The commands that set this preset's engine settings in the worker.
    pub fn commands(&self) -> Vec<crate::protocol::Command> {
        use crate::protocol::Command;
        let mut c = Vec::new();
        if let Some(spec) = &self.draft_model {
            c.push(Command::SetDraftModel { spec: spec.clone() });
        }
        if let Some(mode) = &self.draft_mode {
            c.push(Command::SetDraftMode { mode: mode.clone() });
        }
        if let Some(k) = self.k {
            c.push(Command::SetK { k });
        }
        if let Some(quant) = &self.quantization {
            c.push(Command::SetQuantization {
                quant: quant.clone(),
            });
        }
        if let Some(dtype) = &self.kv_dtype {
            c.push(Command::SetKvDtype {
                dtype: dtype.clone(),
            });
        }
        c
    }
}

/// Where presets are looked up by name.
pub fn dir() -> PathBuf {
    std::env::var_os("LABTUI_PRESETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("presets"))
}

/// Every preset file in `dir`, sorted by name.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the presets folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ron"))
        .collect();
    files.sort();
    Ok(files)
}

/// Parse a preset's text; errors give the file, line and column.
pub fn parse(text: &str, name: &str) -> Result<Preset> {
    let p: Preset = ron::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{name}:{}:{}: {}",
            e.span.start.line,
            e.span.start.col,
            e.code
        )
    })?;
    if p.format > FORMAT {
        bail!(
            "{name}: preset format {} is newer than this labtui reads ({FORMAT}): update labtui",
            p.format
        );
    }
    if p.prompts.is_empty() {
        bail!("{name}: `prompts` is empty: a preset needs at least one prompt");
    }
    if let Some(k) = p.k {
        if !(1..=16).contains(&k) {
            bail!("{name}: k = {k} is out of range (1 to 16)");
        }
    }
    if let Some(m) = &p.draft_mode {
        if !crate::state::DRAFT_MODES.contains(&m.as_str()) {
            bail!(
                "{name}: draft_mode {m:?} is not one of {}",
                crate::state::DRAFT_MODES.join(", ")
            );
        }
    }
    if let Some(q) = &p.quantization {
        if let Err(e) = crate::engine::quant::Quant::parse(q) {
            bail!("{name}: {e}");
        }
    }
    if let Some(d) = &p.kv_dtype {
        if let Err(e) = crate::engine::quant::parse_kv_dtype(d) {
            bail!("{name}: {e}");
        }
    }
    if let Some(d) = &p.demo {
        d.validate().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if p.notes.is_empty() {
            bail!("{name}: a demo needs narration: give `notes`, one line per step");
        }
    }
    Ok(p)
}

/// Load a preset by path, or by name from [`dir`].
pub fn load(name_or_path: &str) -> Result<Preset> {
    let direct = Path::new(name_or_path);
    let path = if direct.exists() {
        direct.to_path_buf()
    } else {
        let by_name = dir().join(format!("{name_or_path}.ron"));
        if !by_name.exists() {
            let known: Vec<String> = list(&dir())
                .unwrap_or_default()
                .iter()
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect();
            bail!(
                "no preset {name_or_path:?} (known in {}: {})",
                dir().display(),
                if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                }
            );
        }
        by_name
    };
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, &path.display().to_string())
}
