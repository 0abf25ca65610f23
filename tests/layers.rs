//! The modules of `src/` are layers: each imports only layers below it, and the files of one
//! folder import each other without a cycle. This test reads the `crate::` and `super::` paths of
//! every file; the order is written once, here (and quoted in `src/lib.rs` and the README).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lowest first; modules in one group may not import each other.
const LAYERS: &[&[&str]] = &[
    &["protocol", "alloc"],
    &["stats"],
    &["engine"],
    &["sysmon"],
    &["lab"],
    &["serve"],
    &["worker"],
    &["record", "preset", "catalog"],
    &["state"],
    &["report"],
    &["tui"],
    &["app"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without comments (string literals are left: none of ours spells a path).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first segments of the paths that follow `prefix` (`crate::`, `super::`): `a` of
/// `crate::a::b`, and `a`, `b` of `crate::{a::x, b}`.
fn heads(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices(prefix) {
        // `super::super::x` is read from its last `super::`.
        let before = &text[..i];
        if before.ends_with("::")
            || before.ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let mut rest = &text[i + prefix.len()..];
        while let Some(r) = rest.strip_prefix(prefix) {
            rest = r;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let (mut depth, mut item) = (0, String::new());
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(item.trim()).to_string());
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(ident(item.trim()).to_string());
        } else {
            out.insert(ident(rest).to_string());
        }
    }
    out.remove("");
    out
}

/// The top-level module a file belongs to (`None` for lib.rs and main.rs).
fn top_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_str()?.to_string();
    let name = first.strip_suffix(".rs").unwrap_or(&first).to_string();
    (name != "lib" && name != "main").then_some(name)
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut bad = Vec::new();
    let mut tops = BTreeSet::new();
    for f in &files {
        let Some(top) = top_of(f) else { continue };
        tops.insert(top.clone());
        let Some(mine) = layer_of(&top) else {
            bad.push(format!("{top} is in no layer: add it to LAYERS"));
            continue;
        };
        let text = strip_comments(&std::fs::read_to_string(f).unwrap());
        for target in heads(&text, "crate::") {
            if target == top {
                continue;
            }
            match layer_of(&target) {
                Some(theirs) if theirs < mine => {}
                Some(_) => bad.push(format!(
                    "{} imports crate::{target}, which is not below {top}",
                    f.strip_prefix(src()).unwrap().display()
                )),
                None => {}
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
    // Every layer names a module that exists.
    for name in LAYERS.iter().flat_map(|l| l.iter()) {
        assert!(
            tops.contains(*name),
            "LAYERS names {name}, which src/ lacks"
        );
    }
}

/// Cycles in a directed graph (strongly connected components of more than one node).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph.
    let nodes: BTreeSet<&String> = edges.keys().chain(edges.values().flatten()).collect();
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    fn visit<'a>(
        v: &'a String,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        seen: &mut BTreeSet<&'a String>,
        order: &mut Vec<&'a String>,
    ) {
        if !seen.insert(v) {
            return;
        }
        for w in edges.get(v).into_iter().flatten() {
            visit(w, edges, seen, order);
        }
        order.push(v);
    }
    for v in &nodes {
        visit(v, edges, &mut seen, &mut order);
    }
    let mut reversed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, bs) in edges {
        for b in bs {
            reversed.entry(b.clone()).or_default().insert(a.clone());
        }
    }
    let mut assigned = BTreeSet::new();
    let mut out = Vec::new();
    for v in order.into_iter().rev() {
        let mut comp = Vec::new();
        let mut stack = vec![v.clone()];
        while let Some(x) = stack.pop() {
            if !assigned.insert(x.clone()) {
                continue;
            }
            for w in reversed.get(&x).into_iter().flatten() {
                stack.push(w.clone());
            }
            comp.push(x);
        }
        if comp.len() > 1 {
            comp.sort();
            out.push(comp);
        }
    }
    out
}

#[test]
fn the_files_of_a_folder_import_each_other_without_a_cycle() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut by_dir: BTreeMap<PathBuf, Vec<PathBuf>> = BTreeMap::new();
    for f in files {
        by_dir
            .entry(f.parent().unwrap().to_path_buf())
            .or_default()
            .push(f);
    }
    let mut found = Vec::new();
    for (dir, files) in by_dir {
        // A folder's siblings are its files other than mod.rs (the parent that declares them).
        let stem = |f: &Path| f.file_stem().unwrap().to_str().unwrap().to_string();
        let siblings: BTreeSet<String> = files
            .iter()
            .map(|f| stem(f))
            .filter(|s| s != "mod" && !(dir == src() && (s == "lib" || s == "main")))
            .collect();
        // The path of this folder from the crate root, as `crate::a::b::`.
        let rel = dir.strip_prefix(src()).unwrap();
        let crate_prefix: String = rel
            .components()
            .map(|c| format!("{}::", c.as_os_str().to_str().unwrap()))
            .collect();
        let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for f in &files {
            let me = stem(f);
            if !siblings.contains(&me) {
                continue;
            }
            let text = strip_comments(&std::fs::read_to_string(f).unwrap());
            let mut targets = heads(&text, "super::");
            if dir == src() {
                targets = heads(&text, "crate::");
            } else {
                targets.extend(heads(&text, &format!("crate::{crate_prefix}")));
            }
            for t in targets {
                if t != me && siblings.contains(&t) {
                    edges.entry(me.clone()).or_default().insert(t);
                }
            }
        }
        for c in cycles(&edges) {
            found.push(format!("{}: {}", dir.display(), c.join(" ↔ ")));
        }
    }
    assert!(found.is_empty(), "import cycles:\n{}", found.join("\n"));
}

#[test]
fn the_reader_finds_paths_in_use_groups_and_nested_supers() {
    let text = "use crate::{protocol::Event, stats, engine::{a, b}};\nlet x = crate::tui::FRAME;\nuse super::super::kernels::QK;";
    assert_eq!(
        heads(text, "crate::"),
        ["engine", "protocol", "stats", "tui"]
            .into_iter()
            .map(String::from)
            .collect()
    );
    assert_eq!(
        heads(text, "super::"),
        ["kernels"].into_iter().map(String::from).collect()
    );
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&g), vec![vec!["a".to_string(), "b".to_string()]]);
}

/// The kernels share their helpers through `kernels::common` only: no kernel file imports
/// another (the dispatch in `kernels/mod.rs` calls them all).
#[test]
fn no_kernel_file_imports_another() {
    let dir = src().join("engine/kernels");
    let mut kernels = BTreeSet::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("mod.rs") {
            kernels.insert(p.file_stem().unwrap().to_str().unwrap().to_string());
        }
    }
    assert!(kernels.len() >= 5, "kernel files: {kernels:?}");
    let mut bad = Vec::new();
    for k in &kernels {
        let text = strip_comments(&std::fs::read_to_string(dir.join(format!("{k}.rs"))).unwrap());
        let mut used = heads(&text, "crate::engine::kernels::");
        used.extend(heads(&text, "super::"));
        for other in used.intersection(&kernels) {
            if other != k {
                bad.push(format!("{k}.rs imports {other}"));
            }
        }
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
