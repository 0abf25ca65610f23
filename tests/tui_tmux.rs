//! The dashboard as a person uses it, in a real terminal (tmux): `bench serve --tui` against a
//! mock server on loopback shows each level's results and quits with q, the terminal restored.

mod common;

use common::tmux::{assert_cooked, have_tmux, Pane};
use labtui::serve::mock::{Mock, Script};
use std::time::Duration;

#[test]
fn bench_serve_tui_shows_each_level_and_quits_with_q() {
    if !have_tmux() {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = {
        let _g = rt.enter();
        Mock::start(Script {
            // No spinning to the microsecond: this is load, not a timing check.
            exact: false,
            ..Script::paced(Duration::from_millis(20), Duration::from_millis(10), 8)
        })
        .unwrap()
    };
    let pane = Pane::start(
        "serve",
        &format!(
            "bench serve --tui --endpoint {} --concurrency 1,2 --requests 6 --max-tokens 8 \
             --format json",
            mock.url()
        ),
        160,
        50,
    );
    let s = pane.wait_for("both levels measured", 120, |s| {
        s.contains("all 2 levels measured")
    });
    assert!(s.contains(&format!("serve · {}", mock.url())), "{s}");
    for level in ["concurrency 1", "concurrency 2"] {
        let row = s
            .lines()
            .find(|l| l.contains(level) && l.contains(" done"))
            .unwrap_or_else(|| panic!("no row for {level}:\n{s}"));
        // Its requests all came back: 6 done, 6 ok and none failed.
        assert!(row.contains("6 done") && row.contains("6/0"), "{row}");
    }
    pane.keys(&["q"]);
    assert_cooked(&pane.modes_after_exit(20));
    // After the dashboard, the table: both levels, every request ok.
    let out = std::fs::read_to_string(pane.dir.path().join("out.txt")).unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    let levels = json["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for l in levels {
        assert_eq!(l["ok"], 6, "{l}");
    }
}
