//! `labtui demo all`: every demo in one run on one loaded model, from the presets built into the
//! binary (run outside the checkout), each report stamped alike and narrated with its own numbers.

mod common;

use common::OutputWithin;
use labtui::protocol::DemoKind;

/// The files each demo writes besides `report.md` and `recording.ron`.
fn charts(kind: DemoKind) -> &'static [&'static str] {
    match kind {
        DemoKind::PrefillVsDecode => &["prefill", "decode"],
        DemoKind::KvCache => &["per-token", "kv-bytes"],
        DemoKind::Roofline => &["roofline"],
        DemoKind::Quantization => &["decode", "kl"],
        DemoKind::Speculation => &["speedup"],
        DemoKind::Batching => &["batch"],
        DemoKind::PagedKv => &["memory"],
        DemoKind::Sensitivity => &["heatmap-q4_0", "heatmap-q2_k"],
        DemoKind::FlashAttention => &["time", "memory"],
        DemoKind::DecodeRoofline => &["roofline"],
        DemoKind::ServingMetrics => &["curve-64x64", "curve-256x8"],
    }
}

/// The `> ` lines a report starts with.
fn stamp(report: &str) -> String {
    report
        .lines()
        .filter(|l| l.starts_with("> "))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn demo_all_writes_every_demo_stamped_alike_and_narrated_with_its_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all");
    // Outside the checkout, with no presets folder: the built-in presets run.
    let o = common::labtui_cmd()
        .args(["demo", "all", "--headless", "--model", "synthetic", "--out"])
        .arg(&out)
        .current_dir(dir.path())
        .env_remove("LABTUI_PRESETS")
        .output_bounded();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let index = std::fs::read_to_string(out.join("README.md")).unwrap();
    let first = stamp(&index);
    assert!(
        first.contains("**Machine**") && first.contains("**Roofs**") && first.contains("commit"),
        "{index}"
    );
    for kind in DemoKind::ALL {
        let name = kind.name();
        let d = out.join(name);
        let report = std::fs::read_to_string(d.join("report.md"))
            .unwrap_or_else(|e| panic!("{name}: {e}; {stderr}"));
        assert!(report.starts_with(&format!("# Demo: {name}\n")), "{report}");
        assert_eq!(stamp(&report), first, "{name}: one run, one stamp");
        assert!(index.contains(&format!("]({name}/report.md)")), "{index}");
        // Every step's template was filled from the run.
        let steps: String = report
            .lines()
            .skip_while(|l| *l != "## Steps")
            .take_while(|l| !l.starts_with("## ") || *l == "## Steps")
            .collect::<Vec<_>>()
            .join("\n");
        assert!(steps.lines().count() > 3, "{name}: {report}");
        assert!(
            !steps.contains('{') && !steps.contains('}'),
            "{name}: a placeholder was left unfilled:\n{steps}"
        );
        for c in charts(kind) {
            for ext in ["png", "svg"] {
                let f = d.join(format!("{c}.{ext}"));
                assert!(f.exists(), "{} missing", f.display());
            }
        }
        labtui::record::load(&d.join("recording.ron")).unwrap();
    }
    let paged = std::fs::read_to_string(out.join("paged-kv/report.md")).unwrap();
    for baseline in [
        "contiguous, each sequence's exact length",
        "contiguous, prompt + the client's max_tokens",
        "contiguous, the server's context limit (",
    ] {
        assert!(paged.contains(baseline), "{baseline}: {paged}");
    }
    let kv = std::fs::read_to_string(out.join("kv-cache/report.md")).unwrap();
    assert!(
        kv.contains("multi-head (one KV head per query head)")
            && kv.contains("## At a server's scale"),
        "{kv}"
    );
}
