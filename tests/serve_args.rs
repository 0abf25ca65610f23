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

/// Two JSON results of the same levels against servers of different speeds: `labtui report
/// --diff` lines them up by load and gives each figure's ratio; a capacity search says what it
/// found in the table.
#[test]
fn report_diffs_two_json_results_and_capacity_says_what_it_found() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let ms = std::time::Duration::from_millis;
    let fast = Mock::start(Script::paced(ms(5), ms(2), 8)).unwrap();
    let slow = Mock::start(Script::paced(ms(40), ms(10), 8)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (name, mock) in [("fast", &fast), ("slow", &slow)] {
        let o = common::labtui_cmd()
            .args(["bench", "serve", "--endpoint", &mock.url(), "--model", "m"])
            .args([
                "--concurrency",
                "1,2",
                "--requests",
                "6",
                "--format",
                "json",
            ])
            .output_bounded();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, &o.stdout).unwrap();
        files.push(path);
    }
    let o = common::labtui_cmd()
        .arg("report")
        .args(&files)
        .arg("--diff")
        .output_bounded();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The slow server's TTFT is 8× the fast one's, more or less: worse, marked ✗.
    let ttft = out
        .lines()
        .find(|l| l.starts_with("| concurrency 1 | TTFT p50 ms"))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(ttft.ends_with("| ✗ |"), "{ttft}");
    assert!(out.contains("2 of 2 levels of A matched"), "{out}");
    // A capacity search: the SLO holds to a concurrency, then breaks.
    let o = common::labtui_cmd()
        .args(["bench", "serve", "--endpoint", &slow.url(), "--model", "m"])
        .args([
            "--capacity",
            "concurrency",
            "--slo",
            "e2e=60000",
            "--requests",
            "4",
        ])
        .args(["--warmup", "0"])
        .output_bounded();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        out.contains("Capacity under the SLO (E2E ≤ 60000 ms) for at least 90% of requests"),
        "{out}"
    );
    // The mock serves everything at once: every concurrency passes, up to the four a level of
    // four requests can hold in flight.
    assert!(
        out.contains(&format!("- {}: **concurrency 4**", slow.url())),
        "{out}"
    );
}
