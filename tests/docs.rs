//! The README stays a front door, and the paths the docs name exist: a renamed file breaks this
//! test instead of a reader's trust.

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const README_MAX_LINES: usize = 200;
/// Words starting with these are paths from the repository's root.
const REPO_DIRS: [&str; 6] = ["src/", "tests/", "assets/", "presets/", "docs/", "scripts/"];

/// README.md and every Markdown file under docs/.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(ROOT).unwrap().to_path_buf())
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// A word that stands for any file (`FILE`, `NAME.ron`, `F.ron`), not a real one.
fn is_placeholder(path: &str) -> bool {
    path.split('/').any(|seg| {
        let stem = seg.split('.').next().unwrap_or("");
        !stem.is_empty() && stem.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    }) || path.contains('…')
        || path.contains("...")
}

/// Whether `path` (relative to `base`) names something that exists; `*` matches within one
/// file name, as in `presets/demo-*.ron`.
fn exists(base: &Path, path: &str) -> bool {
    let full = base.join(path);
    let Some(name) = full.file_name().and_then(|n| n.to_str()) else {
        return full.exists();
    };
    let Some((before, after)) = name.split_once('*') else {
        return full.exists();
    };
    let dir = full.parent().unwrap();
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.len() >= before.len() + after.len() && n.starts_with(before) && n.ends_with(after)
        })
    })
}

/// The repository paths a Markdown text names, each with the folder it is relative to: link
/// targets are relative to the file, words that start with a top-level folder (in backticks,
/// code blocks or prose) and `*.rs` paths relative to `src/` are relative to the root.
fn named_paths(file: &Path, text: &str) -> Vec<(PathBuf, String)> {
    let root = PathBuf::from(ROOT);
    let file_dir = root.join(file.parent().unwrap());
    let mut found = Vec::new();
    for target in text.split("](").skip(1) {
        let target = target.split(')').next().unwrap_or("");
        let target = target.split('#').next().unwrap_or("");
        if target.is_empty() || target.contains("://") || target.starts_with('<') {
            continue;
        }
        found.push((file_dir.clone(), target.to_string()));
    }
    let separators = |c: char| c.is_whitespace() || "`()[]<>\"',;|".contains(c);
    for word in text.split(separators) {
        let word = word.trim_start_matches("./");
        let word = word.trim_end_matches(['.', ':']);
        // A `#fragment` names a place in the file, not another file.
        let word = word.split('#').next().unwrap_or(word);
        if word.contains("://") {
            continue;
        }
        if REPO_DIRS.iter().any(|d| word.starts_with(d)) {
            found.push((root.clone(), word.to_string()));
        } else if word.ends_with(".rs") && word.contains('/') && !word.starts_with("../") {
            // A module path such as `engine/kernels/q4k.rs` is read from src/.
            found.push((root.join("src"), word.to_string()));
        }
    }
    found
}

fn missing_paths(file: &Path, text: &str) -> Vec<String> {
    named_paths(file, text)
        .into_iter()
        .filter(|(_, p)| !is_placeholder(p))
        .filter(|(base, p)| !exists(base, p))
        .map(|(base, p)| {
            let from = base
                .strip_prefix(ROOT)
                .unwrap_or(&base)
                .display()
                .to_string();
            let from = if from.is_empty() {
                "the root".into()
            } else {
                from
            };
            format!("{}: {p} (from {from})", file.display())
        })
        .collect()
}

#[test]
fn every_path_the_docs_name_exists() {
    let mut missing = Vec::new();
    for file in doc_files() {
        let text = std::fs::read_to_string(Path::new(ROOT).join(&file)).unwrap();
        missing.extend(missing_paths(&file, &text));
    }
    assert!(
        missing.is_empty(),
        "paths that do not exist:\n{}",
        missing.join("\n")
    );
}

#[test]
fn a_wrong_path_is_caught() {
    let text = "see `src/engine/kernels_q4k.rs`, `engine/kernels_q8k.rs`, [a chart](nope.png) \
                and scripts/screens.sh, but not `FILE.ron`, `presets/NAME.ron` or https://x.org/src/a";
    let missing = missing_paths(Path::new("docs/x.md"), text);
    assert_eq!(missing.len(), 3, "{missing:#?}");
}

#[test]
fn the_readme_is_a_front_door() {
    let text = std::fs::read_to_string(Path::new(ROOT).join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, at most {README_MAX_LINES}"
    );
    // CI runs the README's test command: the first lines stay the two commands.
    assert!(text.starts_with("# labtui\n\n```sh\ncargo run --release\ncargo test\n```\n"));
}
