//! The demo pane drawn from the real 0.5B's demo recordings under `assets/demos/` (no model):
//! the narration's first step above the run's own tables, as `TestBackend` snapshots.

mod common;

/// The demo pane after the real flash-attention, decode-roofline and serving-metrics runs of the
/// 0.5B (their recordings under `assets/demos/`): the narration's first step and the run's own
/// table, with dense's 16k-token prefill shown as skipped, the grid's long contexts, and how
/// many users each serving policy fits.
#[test]
fn the_flash_attention_decode_roofline_and_serving_demos_draw_their_tables() {
    for (name, size, wants) in [
        (
            "flash-attention",
            (140, 40),
            &["skipped", "16384", "tiled ms"][..],
        ),
        (
            "decode-roofline",
            (140, 44),
            &["16384", "MBU", "GFLOP/s"][..],
        ),
        (
            "serving-metrics",
            (160, 50),
            &["one at a time", "users", "$/1M"][..],
        ),
    ] {
        let mut s = labtui::state::AppState::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "");
        let preset = labtui::preset::load(&format!("demo-{name}")).unwrap();
        s.ui.demo = Some(labtui::state::DemoView::from_preset(&preset, 0));
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let rec =
            labtui::record::load(&root.join(format!("assets/demos/{name}/recording.ron"))).unwrap();
        for e in &rec.events {
            s.apply(e);
        }
        let t = common::screen::draw(&s, labtui::tui::panes::demo::render, size.0, size.1);
        let text = format!("{}", t.backend());
        for w in wants {
            assert!(text.contains(w), "{name}: {w} missing:\n{text}");
        }
        insta::assert_snapshot!(format!("pane_demo_{name}"), t.backend());
    }
}
