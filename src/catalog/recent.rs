//! The models picked last, kept between sessions for the model picker: a RON list of model specs,
//! newest first, in `$XDG_STATE_HOME/labtui/recent-models.ron` (else
//! `~/.local/state/labtui/recent-models.ron`). Written whole to a temporary file and renamed over
//! the old one, so a crash never leaves half a list.

use std::path::{Path, PathBuf};

/// The file, where a home or a state folder is known.
pub fn file() -> Option<PathBuf> {
    let state = match std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        Some(s) => PathBuf::from(s),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".local/state"),
    };
    Some(state.join("labtui").join("recent-models.ron"))
}

/// The list in `path`: empty when there is none yet; an error that names the file when it cannot
/// be read or parsed.
pub fn load(path: &Path) -> Result<Vec<String>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) => ron::from_str(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Write `specs` to `path`, creating its folder.
pub fn save(path: &Path, specs: &[String]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = ron::to_string(specs).map_err(std::io::Error::other)?;
    let tmp = path.with_extension("ron.tmp");
    std::fs::write(&tmp, text + "\n")?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_round_trips_and_a_broken_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/labtui/recent-models.ron");
        assert_eq!(load(&path).unwrap(), Vec::<String>::new(), "none yet");
        let specs = vec!["/m/a \"b\".gguf".to_string(), "synthetic".into()];
        save(&path, &specs).unwrap();
        assert_eq!(load(&path).unwrap(), specs);
        std::fs::write(&path, "[\"cut off").unwrap();
        let err = load(&path).unwrap_err();
        assert!(err.contains("recent-models.ron"), "{err}");
    }
}
