//! Stamps the binary with the commit it was built from (`LABTUI_COMMIT`), "+dirty" when the tree
//! had uncommitted changes, "unknown" outside a git checkout. Reports print it in their stamp.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    // Rerun when HEAD moves or a source changes (a change may make the tree dirty).
    for p in [
        ".git/HEAD",
        ".git/refs/heads",
        ".git/index",
        "src",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={p}");
    }
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(c) if !c.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}+dirty")
            } else {
                c
            }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=LABTUI_COMMIT={commit}");
}
