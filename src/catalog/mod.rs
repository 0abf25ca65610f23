//! The models on this machine, for the dashboard's model picker (and, in [`recent`], the ones
//! picked last): GGUF files and Hugging Face
//! checkpoint folders in the models directory, and those in the Hugging Face cache (`HF_HUB_CACHE`,
//! else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`). Listing reads directories only, never a
//! weight.

use crate::engine::hf::is_checkpoint;
use crate::engine::source::models_dir;
use std::path::{Path, PathBuf};

pub mod recent;

/// A model the picker offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// What `--model` (and the worker's load) takes for it.
    pub spec: String,
    /// How the picker names it.
    pub name: String,
    /// Where it is and how large.
    pub detail: String,
}

/// The Hugging Face cache's `hub` folder, where the Hub's files are kept.
pub fn hub_cache() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(p).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// Every model in the models directory and the Hugging Face cache.
pub fn catalog() -> Vec<Found> {
    scan(&models_dir(), hub_cache().as_deref())
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn is_gguf(p: &Path) -> bool {
    p.is_file()
        && p.extension()
            .is_some_and(|x| x.eq_ignore_ascii_case("gguf"))
}

/// Bytes of a checkpoint's weights.
fn weights_bytes(dir: &Path) -> u64 {
    sorted_entries(dir)
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// The models in `models` (files by name, which `--model` finds there; folders by path) and in
/// the cache folder `hub`, each list in name order.
pub fn scan(models: &Path, hub: Option<&Path>) -> Vec<Found> {
    let mut out = Vec::new();
    let shown = models.display();
    for p in sorted_entries(models) {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if is_gguf(&p) {
            let size = std::fs::metadata(&p).map_or(0, |m| m.len());
            out.push(Found {
                spec: name.clone(),
                name,
                detail: format!("{shown} · GGUF · {}", mib(size)),
            });
        } else if is_checkpoint(&p) {
            out.push(Found {
                spec: p.display().to_string(),
                name,
                detail: format!("{shown} · checkpoint · {}", mib(weights_bytes(&p))),
            });
        }
    }
    let Some(hub) = hub else {
        return out;
    };
    for repo in sorted_entries(hub) {
        let Some(dir) = repo.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(id) = dir.strip_prefix("models--") else {
            continue;
        };
        let id = id.replacen("--", "/", 1);
        for snap in sorted_entries(&repo.join("snapshots")) {
            if is_checkpoint(&snap) {
                out.push(Found {
                    spec: snap.display().to_string(),
                    name: id.clone(),
                    detail: format!(
                        "Hugging Face cache · checkpoint · {}",
                        mib(weights_bytes(&snap))
                    ),
                });
            }
            for f in sorted_entries(&snap).into_iter().filter(|p| is_gguf(p)) {
                let file = f.file_name().map(|n| n.to_string_lossy().into_owned());
                let size = std::fs::metadata(&f).map_or(0, |m| m.len());
                out.push(Found {
                    spec: f.display().to_string(),
                    name: format!("{id}/{}", file.unwrap_or_default()),
                    detail: format!("Hugging Face cache · GGUF · {}", mib(size)),
                });
            }
        }
    }
    out
}

/// The model picker's entries: the models picked earlier first (newest first; one whose file is
/// gone since, by `exists`, is not offered), then the rest of `found`, then the built-in
/// synthetic model.
pub fn picker_entries(
    found: Vec<Found>,
    recent: &[String],
    exists: impl Fn(&str) -> bool,
) -> Vec<Found> {
    let mut entries: Vec<Found> = recent
        .iter()
        .filter(|spec| {
            found.iter().any(|f| f.spec == **spec)
                || spec.as_str() == "synthetic"
                || spec.starts_with("hf:")
                || exists(spec)
        })
        .map(|spec| {
            let known = found.iter().find(|f| f.spec == *spec);
            Found {
                spec: spec.clone(),
                name: known.map_or(spec.clone(), |f| f.name.clone()),
                detail: match known {
                    Some(f) => format!("picked earlier · {}", f.detail),
                    None => "picked earlier".into(),
                },
            }
        })
        .collect();
    entries.extend(found.into_iter().filter(|f| !recent.contains(&f.spec)));
    entries.push(Found {
        spec: "synthetic".into(),
        name: "synthetic".into(),
        detail: "built in: a tiny random-weight model, for trying the dashboard".into(),
    });
    entries
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_gguf_files_and_checkpoints_here_and_in_the_hub_cache() {
        let root = tempfile::tempdir().unwrap();
        let models = root.path().join("models");
        std::fs::create_dir_all(models.join("tiny-llama")).unwrap();
        std::fs::write(models.join("b.gguf"), vec![0u8; 3 << 20]).unwrap();
        std::fs::write(models.join("a.GGUF"), b"x").unwrap();
        std::fs::write(models.join("notes.txt"), b"x").unwrap();
        std::fs::write(models.join("tiny-llama/config.json"), b"{}").unwrap();
        std::fs::write(
            models.join("tiny-llama/model.safetensors"),
            vec![0u8; 2 << 20],
        )
        .unwrap();
        std::fs::create_dir_all(models.join("empty-folder")).unwrap();
        let hub = root.path().join("hub");
        let snap = hub.join("models--Qwen--Qwen2.5-0.5B/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("config.json"), b"{}").unwrap();
        let gsnap = hub.join("models--Org--X-GGUF/snapshots/def");
        std::fs::create_dir_all(&gsnap).unwrap();
        std::fs::write(gsnap.join("x-q4_k_m.gguf"), b"x").unwrap();
        std::fs::create_dir_all(hub.join("datasets--Org--Y/snapshots/1")).unwrap();

        let found = scan(&models, Some(&hub));
        let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a.GGUF",
                "b.gguf",
                "tiny-llama",
                "Org/X-GGUF/x-q4_k_m.gguf",
                "Qwen/Qwen2.5-0.5B"
            ]
        );
        assert_eq!(found[1].spec, "b.gguf");
        assert!(
            found[1].detail.ends_with("GGUF · 3 MiB"),
            "{}",
            found[1].detail
        );
        assert_eq!(
            found[2].spec,
            models.join("tiny-llama").display().to_string()
        );
        assert!(found[2].detail.contains("checkpoint · 2 MiB"));
        assert_eq!(found[4].spec, snap.display().to_string());
        assert!(scan(&root.path().join("none"), None).is_empty());
    }

    #[test]
    fn picked_models_come_first_and_gone_files_are_not_offered() {
        let found = |spec: &str| Found {
            spec: spec.into(),
            name: spec.into(),
            detail: "1 MiB".into(),
        };
        let recent = ["b.gguf", "/gone.gguf", "hf:o/r"].map(String::from);
        let entries = picker_entries(vec![found("a.gguf"), found("b.gguf")], &recent, |_| false);
        let specs: Vec<&str> = entries.iter().map(|f| f.spec.as_str()).collect();
        assert_eq!(specs, ["b.gguf", "hf:o/r", "a.gguf", "synthetic"]);
        assert_eq!(entries[0].detail, "picked earlier · 1 MiB");
        assert_eq!(entries[1].detail, "picked earlier");
    }
}
