//! `labtui bench spec --policies` on the synthetic model: each acceptance rule is a row, the
//! lossless one's text is plain decoding's, a lossy one is named so with how far its text agrees
//! and the perplexity of its output under the target beside plain decoding's.

mod common;

use common::OutputWithin;

#[test]
fn each_policy_is_a_row_with_its_fidelity() {
    let dir = tempfile::tempdir().unwrap();
    let o = common::labtui_cmd()
        .args([
            "bench",
            "spec",
            "--model",
            "synthetic",
            "--modes",
            "prompt-lookup",
        ])
        .args(["--ks", "4", "--prompts", "1", "--tokens", "24"])
        .args(["--policies", "lossless,topk=1000,tau=1", "--charts"])
        .arg(dir.path())
        .output_bounded();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    let row = |policy: &str| {
        out.lines()
            .find(|l| l.contains(&format!("| {policy} |")))
            .unwrap_or_else(|| panic!("no {policy} row:\n{out}"))
            .to_string()
    };
    assert!(row("lossless").contains("| yes |"), "{out}");
    // Every drafted token is among the synthetic vocabulary's top 1000: all are kept.
    let all = row("top-1000 agreement (lossy)");
    assert!(all.contains("tokens equal"), "{all}");
    // A threshold of 1 keeps nothing greedy would not: the same text, all positions agree.
    assert!(
        row("threshold τ=1 (lossy)").contains("first 24 tokens equal, 100% of positions"),
        "{out}"
    );
    // Perplexities under the target, plain decoding's and each lossy row's (the synthetic
    // model is sure of its every token: 1).
    let ppl = |l: &str| -> f64 {
        let cell = l.trim_end_matches('|').rsplit('|').next().unwrap().trim();
        cell.parse().unwrap_or_else(|_| panic!("{l}"))
    };
    let plain = out.lines().find(|l| l.contains("| none |")).unwrap();
    assert!(ppl(plain) >= 1.0 && ppl(&all) >= 1.0, "{out}");
    // Speed against fidelity, drawn.
    for ext in ["png", "svg"] {
        let f = dir.path().join(format!("policy-speed-fidelity.{ext}"));
        assert!(
            std::fs::metadata(&f).unwrap().len() > 1000,
            "{}",
            f.display()
        );
    }
}
