//! Recordings as a user makes them: written during a run, complete after a clean exit, loadable
//! after a SIGKILL, and replayed into the same pane values.

mod common;

use common::OutputWithin;

use labtui::protocol::{Event, Stamped};
use labtui::record;
use labtui::state::AppState;
use labtui::tui::view;
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{labtui_cmd as labtui, record_synthetic};

#[test]
fn a_recording_holds_exactly_the_streamed_events() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ron");
    let out = record_synthetic(&path, "hello", 24, &["--format", "ron"]);
    let streamed: Vec<Stamped> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| ron::from_str(l).unwrap())
        .collect();
    let rec = record::load(&path).unwrap();
    assert_eq!(rec.events, streamed);
    assert!(!rec.truncated);
    assert_eq!(rec.header.format, record::FORMAT);
    assert!(rec.header.machine.cores >= 1 && rec.header.machine.ram_bytes > 0);
    assert!(rec
        .events
        .iter()
        .any(|e| matches!(e.event, Event::RunFinished { .. })));
}

#[test]
fn replay_shows_the_values_of_the_live_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.ron");
    let out = record_synthetic(&path, "the prompt", 16, &[]);
    let rec = record::load(&path).unwrap();
    let mut state = AppState::new("replay", "");
    for e in &rec.events {
        state.apply(e);
    }
    let summary = rec
        .events
        .iter()
        .find_map(|e| {
            if let Event::RunFinished { summary, .. } = &e.event {
                Some(summary.clone())
            } else {
                None
            }
        })
        .unwrap();
    let mut t = Terminal::new(TestBackend::new(160, 50)).unwrap();
    t.draw(|f| view::render(&state, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{}", t.backend());
    assert!(
        screen.contains("the prompt"),
        "the prompt comes back from the recording"
    );
    assert!(
        screen.contains(&format!("{:.1} tok/s", summary.decode_tok_s)),
        "mean decode rate shown"
    );
    assert!(screen.contains(&format!("{} tok @", summary.prompt_tokens)));
    // The summary line printed live names the same rates.
    let live = String::from_utf8_lossy(&out.stderr);
    assert!(
        live.contains(&format!("{:.1} tok/s", summary.decode_tok_s)),
        "{live}"
    );
}

#[test]
fn a_recording_killed_mid_run_still_loads() {
    let Some(model) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.ron");
    let mut child = labtui()
        .args([
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            "Count from one to five hundred.",
            "-n",
            "400",
            "--record",
        ])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let tokens = std::fs::read_to_string(&path)
            .map(|s| s.matches("event:Token(").count())
            .unwrap_or(0);
        if tokens >= 10 {
            break;
        }
        assert!(Instant::now() < end, "no tokens recorded in time");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let rec = record::load(&path).unwrap();
    let tokens = rec
        .events
        .iter()
        .filter(|e| matches!(e.event, Event::Token(_)))
        .count();
    assert!(tokens >= 10, "{tokens} tokens");
    assert!(!rec
        .events
        .iter()
        .any(|e| matches!(e.event, Event::RunFinished { .. })));
}

#[test]
fn a_broken_recording_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.ron");
    std::fs::write(&path, "Header(oops)\n").unwrap();
    let out = labtui().arg("replay").arg(&path).output_bounded();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("broken.ron:1") && err.contains("header"),
        "{err}"
    );
}

#[test]
fn report_compares_runs_and_diffs_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.ron"), dir.path().join("b.ron"));
    record_synthetic(&a, "hello", 12, &[]);
    record_synthetic(&b, "hello", 8, &[]);
    let out = labtui()
        .arg("report")
        .arg(&a)
        .arg(&b)
        .args(["--format", "json"])
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["generated_tokens"], 12);
    assert_eq!(rows[1]["generated_tokens"], 8);
    assert!(rows[0]["decode_tok_s"].as_f64().unwrap() > 0.0);
    let md = labtui().arg("report").arg(&a).arg(&b).output_bounded();
    assert_eq!(String::from_utf8_lossy(&md.stdout).lines().count(), 4);
    // Greedy runs of the same prompt agree token for token as far as the shorter one goes.
    let diff = labtui()
        .arg("report")
        .arg(&a)
        .arg(&b)
        .args(["--diff", "--format", "json"])
        .output_bounded();
    let d: serde_json::Value = serde_json::from_slice(&diff.stdout).unwrap();
    assert_eq!(d["same"], 8);
    assert_eq!(d["a_tokens"], 12);
    // Each row names the weights and the KV dtype its run used.
    let c = dir.path().join("c.ron");
    record_synthetic(&c, "hello", 4, &["--quant", "q8_0", "--kv-dtype", "bf16"]);
    let out = labtui()
        .arg("report")
        .arg(&a)
        .arg(&c)
        .args(["--format", "json"])
        .output_bounded();
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&rows[0]["quant"], &rows[0]["kv_dtype"]),
        (&"as loaded".into(), &"f32".into())
    );
    assert_eq!(
        (&rows[1]["quant"], &rows[1]["kv_dtype"]),
        (&"Q8_0".into(), &"bf16".into())
    );
}

#[test]
fn report_plots_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.ron");
    record_synthetic(&a, "hello", 30, &[]);
    let plots = dir.path().join("plots");
    let out = labtui()
        .arg("report")
        .arg(&a)
        .arg("--plot")
        .arg(&plots)
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stem in ["itl", "kv"] {
        let png = std::fs::read(plots.join(format!("{stem}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(plots.join(format!("{stem}.svg"))).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("a.ron"),
            "the legend names the recording"
        );
    }
}
