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
}
