//! Every figure the README and docs quote from a report is inserted from it, between markers:
//!
//! ```text
//! <!-- figures: assets/demos/kv-cache/report.md#Steps -->
//! … the section, as the report has it …
//! <!-- /figures -->
//! ```
//!
//! The fragment names the report's `## Heading` whose body is quoted, or `stamp` for its stamp
//! (the `> ` lines at its head); without one the whole file is quoted. A figure edited by hand, or a report regenerated without the
//! docs, fails here; `UPDATE_DOCS=1 cargo test --test figures` inserts the reports' text again
//! (`scripts/figures.sh` does, after a fresh run).

use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const OPEN: &str = "<!-- figures: ";
const CLOSE: &str = "<!-- /figures -->";

/// README.md and every Markdown file under docs/.
fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![Path::new(ROOT).join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(Path::new(ROOT).join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The quoted part of `report`: the `## fragment` section's body, its stamp, or (no fragment)
/// all of it.
fn section(report: &str, fragment: &str) -> Option<String> {
    if fragment.is_empty() {
        return Some(report.trim().to_string());
    }
    if fragment == "stamp" {
        let lines: Vec<&str> = report
            .lines()
            .skip_while(|l| !l.starts_with("> "))
            .take_while(|l| l.starts_with("> "))
            .collect();
        return (!lines.is_empty()).then(|| lines.join("\n"));
    }
    let head = format!("## {fragment}");
    let mut lines = report.lines().skip_while(|l| l.trim_end() != head);
    lines.next()?;
    let body: Vec<&str> = lines.take_while(|l| !l.starts_with("## ")).collect();
    Some(body.join("\n").trim().to_string())
}

/// A marked block: where its text starts and ends in the document, and what it cites.
struct Block {
    start: usize,
    end: usize,
    file: String,
    fragment: String,
}

fn blocks(doc: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(i) = doc[at..].find(OPEN) {
        let open = at + i;
        let line_end = open + doc[open..].find("-->").expect("a marker ends with -->") + 3;
        let cite = doc[open + OPEN.len()..line_end - 3].trim();
        let (file, fragment) = cite.split_once('#').unwrap_or((cite, ""));
        let close = line_end
            + doc[line_end..]
                .find(CLOSE)
                .unwrap_or_else(|| panic!("{cite}: no {CLOSE}"));
        out.push(Block {
            start: line_end,
            end: close,
            file: file.to_string(),
            fragment: fragment.to_string(),
        });
        at = close + CLOSE.len();
    }
    out
}

/// The text a block should hold: the cited section between two newlines.
fn expected(b: &Block) -> Result<String, String> {
    let path = Path::new(ROOT).join(&b.file);
    let report = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", b.file))?;
    let text = section(&report, &b.fragment)
        .ok_or_else(|| format!("{} has no section {:?}", b.file, b.fragment))?;
    Ok(format!("\n{text}\n"))
}

#[test]
fn quoted_figures_are_their_reports_text() {
    let update = std::env::var_os("UPDATE_DOCS").is_some();
    let mut wrong = Vec::new();
    let mut quoted = 0;
    for file in doc_files() {
        let doc = std::fs::read_to_string(&file).unwrap();
        let mut fixed = doc.clone();
        // From the last block back, so earlier offsets stay right while rewriting.
        for b in blocks(&doc).iter().rev() {
            quoted += 1;
            match expected(b) {
                Ok(want) if doc[b.start..b.end] == want => {}
                Ok(want) if update => fixed.replace_range(b.start..b.end, &want),
                Ok(_) => wrong.push(format!(
                    "{}: the block citing {}#{} is not the report's text",
                    file.display(),
                    b.file,
                    b.fragment
                )),
                Err(e) => wrong.push(format!("{}: {e}", file.display())),
            }
        }
        if update && fixed != doc {
            std::fs::write(&file, fixed).unwrap();
        }
    }
    assert!(quoted > 0, "the docs quote no report between markers");
    assert!(
        wrong.is_empty(),
        "{}\n(run scripts/figures.sh after a fresh run, or UPDATE_DOCS=1 cargo test --test figures)",
        wrong.join("\n")
    );
}

#[test]
fn a_hand_edited_figure_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let report = "# Demo: x\n\n> **Machine** here\n\n## Steps\n\n1. Decode ran at 80.3 tok/s.\n\n## Table\n\n| a |\n";
    std::fs::write(dir.path().join("r.md"), report).unwrap();
    let rel = |f: &str| dir.path().join(f).to_string_lossy().into_owned();
    let doc = |steps: &str| format!("{OPEN}{}#Steps -->\n{steps}\n{CLOSE}\n", rel("r.md"));
    let check = |d: &str| {
        blocks(d)
            .iter()
            .map(|b| {
                let path = PathBuf::from(&b.file);
                let text = section(&std::fs::read_to_string(path).unwrap(), &b.fragment).unwrap();
                d[b.start..b.end] == format!("\n{text}\n")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(check(&doc("1. Decode ran at 80.3 tok/s.")), [true]);
    assert_eq!(check(&doc("1. Decode ran at 90.0 tok/s.")), [false]);
    assert_eq!(
        section(report, "stamp").as_deref(),
        Some("> **Machine** here")
    );
    assert_eq!(section(report, "Table").as_deref(), Some("| a |"));
}
