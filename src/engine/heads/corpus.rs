//! Text to train draft heads on: what ships inside the binary (see `assets/corpus/README.md`:
//! labtui's own engine source in Rust, and twelve modules of Python's standard library under the
//! PSF licence; a code model's kind of text), or the user's files.

use crate::engine::error::{EngineError, Result};
use std::path::Path;

static RUST: include_dir::Dir<'_> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/src/engine");
static PYTHON: include_dir::Dir<'_> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/assets/corpus/python");

/// The name the default corpus goes by in headers and reports.
pub const DEFAULT_NAME: &str = "built in: labtui's engine source and Python standard modules";

/// Files larger than this are skipped in a corpus folder (data, not text).
const MAX_FILE: u64 = 4 << 20;

/// One document: where it came from and its text.
#[derive(Debug, Clone)]
pub struct Doc {
    pub name: String,
    pub text: String,
}

/// The built-in corpus, in path order.
pub fn default_docs() -> Vec<Doc> {
    let mut docs = Vec::new();
    collect_embedded(&RUST, &mut docs);
    collect_embedded(&PYTHON, &mut docs);
    docs.sort_by(|a, b| a.name.cmp(&b.name));
    docs
}

/// `docs` in an order fixed by `seed`: a token budget then takes from every part of a corpus,
/// and the held-out chunks (the last) are not one folder.
pub fn shuffled(mut docs: Vec<Doc>, seed: u64) -> Vec<Doc> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    docs.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
    docs
}

fn collect_embedded(dir: &include_dir::Dir<'_>, docs: &mut Vec<Doc>) {
    for f in dir.files() {
        if f.path().extension().is_some_and(|e| e == "txt") {
            continue; // a licence
        }
        if let Some(text) = f.contents_utf8() {
            docs.push(Doc {
                name: f.path().display().to_string(),
                text: text.to_string(),
            });
        }
    }
    for d in dir.dirs() {
        collect_embedded(d, docs);
    }
}

/// The documents of `path`: one text file, or every UTF-8 text file under a folder (hidden
/// entries and files over 4 MiB skipped), in path order. A corpus with no text is an error.
pub fn read(path: &Path) -> Result<Vec<Doc>> {
    let meta = std::fs::metadata(path)
        .map_err(|e| EngineError::Setting(format!("corpus {}: {e}", path.display())))?;
    let mut docs = Vec::new();
    if meta.is_dir() {
        walk(path, &mut docs)?;
    } else if let Some(d) = read_text(path) {
        docs.push(d);
    }
    docs.sort_by(|a, b| a.name.cmp(&b.name));
    if docs.iter().all(|d| d.text.trim().is_empty()) {
        return Err(EngineError::Setting(format!(
            "corpus {}: no UTF-8 text in it",
            path.display()
        )));
    }
    Ok(docs)
}

fn walk(dir: &Path, docs: &mut Vec<Doc>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| EngineError::Setting(format!("corpus {}: {e}", dir.display())))?;
    for e in entries.flatten() {
        let p = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        if p.is_dir() {
            walk(&p, docs)?;
        } else if let Some(d) = read_text(&p) {
            docs.push(d);
        }
    }
    Ok(())
}

fn read_text(p: &Path) -> Option<Doc> {
    if std::fs::metadata(p).ok()?.len() > MAX_FILE {
        return None;
    }
    let text = String::from_utf8(std::fs::read(p).ok()?).ok()?;
    Some(Doc {
        name: p.display().to_string(),
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_corpus_is_this_engine_source() {
        let docs = default_docs();
        assert!(docs
            .iter()
            .any(|d| d.name.ends_with("corpus.rs") && d.text.contains("The built-in corpus")));
        assert!(docs.iter().any(|d| d.name.ends_with("heapq.py")));
        assert!(!docs.iter().any(|d| d.name.contains("LICENSE")));
        let bytes: usize = docs.iter().map(|d| d.text.len()).sum();
        assert!(bytes > 100_000, "{bytes} bytes");
    }

    #[test]
    fn a_folder_reads_its_text_files_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "def f():\n    return 1\n").unwrap();
        std::fs::write(dir.path().join("b.bin"), [0xff, 0xfe, 0x00, 0x80]).unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/x"), "hidden").unwrap();
        let docs = read(dir.path()).unwrap();
        assert_eq!(docs.len(), 1);
        assert!(docs[0].name.ends_with("a.py"));
        let empty = tempfile::tempdir().unwrap();
        let e = read(empty.path()).unwrap_err().to_string();
        assert!(e.contains("no UTF-8 text"), "{e}");
        let e = read(&empty.path().join("missing")).unwrap_err().to_string();
        assert!(e.contains("missing"), "{e}");
    }
}
