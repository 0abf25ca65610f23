//! `labtui bench serve`'s options say what they do: a sweep probes at one concurrency (it does not
//! drop the others in silence), and --duration alone drives a level by time, not by the default
//! request count.

mod common;

use common::OutputWithin;
use labtui::serve::mock::{Mock, Script};

#[test]
fn a_sweep_with_several_concurrencies_is_refused_by_name() {
    let o = common::labtui_cmd()
        .args([
            "bench",
            "serve",
            "--endpoint",
            "http://127.0.0.1:9",
            "--model",
            "m",
            "--sweep",
            "--concurrency",
            "1,2,4",
        ])
        .output_bounded();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("--sweep probes at one concurrency") && err.contains("not 3"),
        "{err}"
    );
}

#[test]
fn duration_alone_runs_past_the_default_request_count() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let mock = Mock::start(Script::instant(4)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let detailed = dir.path().join("requests.jsonl");
    let o = common::labtui_cmd()
        .args(["bench", "serve", "--endpoint", &mock.url(), "--model", "m"])
        .args([
            "--concurrency",
            "2",
            "--duration",
            "1",
            "--warmup",
            "0",
            "--format",
            "json",
        ])
        .arg("--save-detailed")
        .arg(&detailed)
        .output_bounded();
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let level = &v["levels"][0];
    let sent = level["requests"].as_u64().unwrap();
    assert!(
        sent > 32,
        "a 1 s level against an instant server sent only {sent}"
    );
    assert!(level["stopped_early"].is_null(), "{level}");
    assert_eq!(
        (level["load_kind"].as_str(), level["concurrency"].as_u64()),
        (Some("concurrency"), Some(2))
    );
    // The metadata block says what ran and where.
    let meta = &v["metadata"];
    assert_eq!(meta["endpoints"][0], mock.url());
    assert_eq!(meta["load"]["duration_s"], 1.0);
    assert!(
        meta["commit"].as_str().is_some_and(|c| !c.is_empty()),
        "{meta}"
    );
    assert!(
        meta["machine"]["bandwidth_gb_s"].as_f64().is_some(),
        "{meta}"
    );
    // --save-detailed: a line per request, each with its times and tokens.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&detailed)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, sent);
    let r = &lines[0];
    assert_eq!(
        (r["level"].as_u64(), r["output_tokens"].as_u64()),
        (Some(0), Some(4))
    );
    assert!(r["ttft_ms"].as_f64().is_some(), "{r}");
    assert_eq!(r["token_ms"].as_array().map(Vec::len), Some(4), "{r}");
}
