//! Presets: RON files that describe a repeatable experiment — model, prompts, generation
//! parameters and the engine settings to use. Defaults live in code; a preset overlays only what it
//! names.
//!
//! The presets in the repository's `presets/` are compiled into the binary, so demos work from any
//! directory and after `cargo install`; a `presets/` folder in the working directory (or
//! `$LABTUI_PRESETS`) overrides them by name and adds its own.

use crate::protocol::{DemoSection, DraftMode, GenParams, KPolicy, KvDtype, Quant, Settings};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The presets built in (the repository's `presets/` folder).
static BUILTIN: include_dir::Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/presets");

/// The preset format this build reads.
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The trained heads file for the medusa and eagle draft modes (default: beside the model).
    #[serde(default)]
    pub draft_heads: Option<String>,
    pub prompts: Vec<String>,
    #[serde(default)]
    pub params: GenParams,
    #[serde(default)]
    pub quantization: Option<Quant>,
    /// A mixed-precision variant to build (`labtui bench mixed --preset` writes one).
    #[serde(default)]
    pub mix: Option<crate::protocol::sensitivity::MixSpec>,
    #[serde(default)]
    pub kv_dtype: Option<KvDtype>,
    #[serde(default)]
    pub draft_mode: Option<DraftMode>,
    /// K: 1–16, or 0 for adaptive.
    #[serde(default)]
    pub k: Option<KPolicy>,
    /// The acceptance policy: "lossless", or a lossy "tau=0.3", "topk=3", "typical=0.09".
    #[serde(default)]
    pub policy: Option<crate::protocol::AcceptPolicy>,
    /// Narration shown while the preset runs, one line per step.
    #[serde(default)]
    pub notes: Vec<String>,
    /// A teaching demo this preset runs (its steps are the notes).
    #[serde(default)]
    pub demo: Option<DemoSection>,
    /// A simulated request stream this preset runs on the batching scheduler (the dashboard's
    /// scheduler view draws it).
    #[serde(default)]
    pub stream: Option<crate::protocol::StreamSpec>,
    /// An A/B race of its first prompt: each side as `labtui race --a/--b` writes it.
    #[serde(default)]
    pub race: Option<RacePreset>,
}

/// A preset's race: side A (the baseline unless named) and side B, as `key=value` pairs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RacePreset {
    #[serde(default = "baseline")]
    pub a: String,
    pub b: String,
}

fn baseline() -> String {
    "baseline".into()
}

impl RacePreset {
    /// Both sides, parsed.
    pub fn sides(&self) -> std::result::Result<[crate::protocol::race::RaceConfig; 2], String> {
        use crate::protocol::race::RaceConfig;
        Ok([RaceConfig::parse(&self.a)?, RaceConfig::parse(&self.b)?])
    }
}

impl Preset {
    /// The engine settings this preset names.
    pub fn settings(&self) -> Settings {
        Settings {
            quant: self.quantization,
            mix: self.mix.clone(),
            kv_dtype: self.kv_dtype,
            draft_mode: self.draft_mode,
            k: self.k,
            draft_model: self.draft_model.clone(),
            draft_heads: self.draft_heads.clone(),
            draft_layers: None,
            policy: self.policy,
        }
    }
}

/// The folder that overrides the built-in presets: `$LABTUI_PRESETS`, else `./presets`.
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

/// Where a preset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Compiled into the binary.
    Builtin,
    /// A file in the presets folder.
    File(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Builtin => f.write_str("built in"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// A preset found by [`all`]: its name, where it comes from, and what parsing it gave.
#[derive(Debug)]
pub struct Found {
    pub name: String,
    pub origin: Origin,
    pub preset: Result<Preset>,
}

fn builtin(name: &str) -> Option<&'static str> {
    BUILTIN
        .get_file(format!("{name}.ron"))
        .and_then(|f| f.contents_utf8())
}

fn builtin_names() -> Vec<String> {
    BUILTIN
        .files()
        .filter(|f| f.path().extension().is_some_and(|x| x == "ron"))
        .filter_map(|f| f.path().file_stem()?.to_str().map(String::from))
        .collect()
}

/// Every preset by name, the folder's overriding the built-in ones, sorted by name.
pub fn all() -> Vec<Found> {
    let mut found: std::collections::BTreeMap<String, Found> = builtin_names()
        .into_iter()
        .map(|name| {
            let text = builtin(&name).unwrap_or_default();
            let preset = parse(text, &format!("{name}.ron (built in)"));
            let origin = Origin::Builtin;
            (
                name.clone(),
                Found {
                    name,
                    origin,
                    preset,
                },
            )
        })
        .collect();
    for path in list(&dir()).unwrap_or_default() {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(String::from) else {
            continue;
        };
        let preset = read(&path);
        let origin = Origin::File(path);
        found.insert(
            name.clone(),
            Found {
                name,
                origin,
                preset,
            },
        );
    }
    found.into_values().collect()
}

fn read(path: &Path) -> Result<Preset> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, &path.display().to_string())
}

/// Load a preset by path, or by name: from the presets folder ([`dir`]), else built in.
pub fn load(name_or_path: &str) -> Result<Preset> {
    let direct = Path::new(name_or_path);
    if direct.is_file() {
        return read(direct);
    }
    let in_dir = dir().join(format!("{name_or_path}.ron"));
    if in_dir.is_file() {
        return read(&in_dir);
    }
    if let Some(text) = builtin(name_or_path) {
        return parse(text, &format!("{name_or_path}.ron (built in)"));
    }
    let known: Vec<String> = all().into_iter().map(|f| f.name).collect();
    bail!(
        "no preset {name_or_path:?} (known: {}; the folder {} overrides and adds to them)",
        if known.is_empty() {
            "none".into()
        } else {
            known.join(", ")
        },
        dir().display()
    )
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
    p.params
        .validate()
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    if let Some(d) = &p.demo {
        d.validate().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        if p.notes.is_empty() {
            bail!("{name}: a demo needs narration: give `notes`, one line per step");
        }
    }
    if let Some(st) = &p.stream {
        st.validate().map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    }
    if let Some(r) = &p.race {
        r.sides()
            .map_err(|e| anyhow::anyhow!("{name}: race: {e}"))?;
    }
    Ok(p)
}
