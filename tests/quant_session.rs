//! Quantization as a dashboard user meets it: the worker switches weights and the KV dtype
//! between runs, measures quality, and the variants table gains a row for each variant tried.

mod common;

use labtui::protocol::{Command, Event, GenParams, KvDtype, Quant, SettingChange, Stamped};
use labtui::state::{Action, AppState};
use labtui::tui::{panes, view};
use labtui::worker::{Options, Worker};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

/// Events until `done` says so; an error event, or two minutes without it, fails the test.
fn until(w: &mut Worker, seen: &mut Vec<Stamped>, done: impl Fn(&Event) -> bool) {
    let within = std::time::Duration::from_secs(120);
    seen.extend(common::worker::events_until(w, within, done));
}

/// A session: a run on the loaded weights, then Q8_0, a quality measurement, an f16 KV cache, a
/// run and another measurement, then Q4_K.
fn session(model: &str) -> Vec<Stamped> {
    let mut w = Worker::spawn(Options {
        device: candle_core::Device::Cpu,
        sample_every: None,
    });
    let mut seen = Vec::new();
    let params = GenParams {
        max_tokens: 12,
        ..GenParams::default()
    };
    let run = |w: &mut Worker, seen: &mut Vec<Stamped>| {
        w.send(Command::Generate {
            prompt: "Write a function that adds two numbers.".into(),
            params: params.clone(),
        });
        until(w, seen, |e| matches!(e, Event::RunFinished { .. }));
    };
    let quality = |w: &mut Worker, seen: &mut Vec<Stamped>| {
        w.send(Command::MeasureQuality { tokens: 256 });
        until(w, seen, |e| matches!(e, Event::Quality(_)));
    };
    w.send(Command::LoadModel { spec: model.into() });
    until(&mut w, &mut seen, |e| matches!(e, Event::ModelLoaded(_)));
    run(&mut w, &mut seen);
    quality(&mut w, &mut seen);
    for (cmd, then_run) in [
        (Command::Set(SettingChange::Quant(Quant::Q8_0)), true),
        (Command::Set(SettingChange::KvDtype(KvDtype::F16)), true),
        (Command::Set(SettingChange::Quant(Quant::Q4K)), false),
    ] {
        w.send(cmd);
        until(&mut w, &mut seen, |e| matches!(e, Event::VariantReady(_)));
        if then_run {
            run(&mut w, &mut seen);
            quality(&mut w, &mut seen);
        }
    }
    seen
}

fn state_after(events: &[Stamped]) -> AppState {
    let mut s = AppState::new("synthetic", "");
    for e in events {
        s.apply(e);
    }
    s
}

#[test]
fn the_variants_table_gains_a_row_for_each_variant_tried() {
    // LABTUI_SESSION_MODEL runs the session on another model (to record the fixture below).
    let model = std::env::var("LABTUI_SESSION_MODEL").unwrap_or_else(|_| "synthetic".into());
    let events = session(&model);
    if let Ok(path) = std::env::var("LABTUI_WRITE_VARIANTS_FIXTURE") {
        let lines: Vec<String> = events.iter().map(|e| ron::to_string(e).unwrap()).collect();
        std::fs::write(path, lines.join("\n") + "\n").unwrap();
    }
    let progress = events
        .iter()
        .filter(|e| matches!(e.event, Event::Requantizing { .. }))
        .count();
    assert!(progress >= 2, "requantising reports progress");
    let mut s = state_after(&events);
    let rows: Vec<(String, String)> = s
        .store
        .variants
        .iter()
        .map(|r| (r.quant.to_string(), r.kv_dtype.to_string()))
        .collect();
    let rows: Vec<(&str, &str)> = rows.iter().map(|(q, k)| (q.as_str(), k.as_str())).collect();
    assert_eq!(
        rows,
        [
            ("as loaded", "f32"),
            ("Q8_0", "f32"),
            ("Q8_0", "f16"),
            ("Q4_K", "f16")
        ]
    );
    let measured: Vec<bool> = s
        .store
        .variants
        .iter()
        .map(|r| r.quality.is_some())
        .collect();
    assert_eq!(measured, [true, true, true, false]);
    let ran: Vec<bool> = s
        .store
        .variants
        .iter()
        .map(|r| r.decode_tok_s.is_some())
        .collect();
    assert_eq!(ran, [true, true, true, false]);
    let q = s.store.variants[0].quality.as_ref().unwrap();
    assert_eq!(
        (q.mean_kl, q.top1),
        (0.0, 1.0),
        "the loaded weights against themselves"
    );
    // The runs recorded the weights they used, and the memory pane follows the switch.
    let used: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.event {
            Event::RunStarted { settings, .. } => Some(settings.quantization.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(used, ["as loaded", "Q8_0", "Q8_0"]);
    let v = s.store.variant.clone().unwrap();
    assert_eq!((v.quant, v.kv_dtype), (Quant::Q4K, KvDtype::F16));
    assert_eq!(s.store.model.as_ref().unwrap().weight_bytes, v.weight_bytes);
    assert!(v.kept_bytes > 0);

    s.ui.view.focus = labtui::state::Focus::Tape;
    s.ui.overlay = None;
    s.update(Action::ToggleVariants);
    let mut t = Terminal::new(TestBackend::new(120, 30)).unwrap();
    t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{}", t.backend());
    for r in &s.store.variants {
        for cell in panes::variants::cells(r) {
            assert!(screen.contains(&cell), "{cell} missing from the table");
        }
    }
    assert!(
        screen.contains("loaded weights"),
        "the kept weights are explained"
    );
}

#[test]
fn variants_overlay_from_a_recorded_real_session() {
    // Recorded with LABTUI_WRITE_VARIANTS_FIXTURE on the session above, on the real 0.5B model.
    let events: Vec<Stamped> = include_str!("fixtures/qwen_variants.ron")
        .lines()
        .map(|l| ron::from_str(l).expect("fixture line parses"))
        .collect();
    let mut s = state_after(&events);
    s.ui.overlay = Some(labtui::state::Overlay::Variants);
    let mut t = Terminal::new(TestBackend::new(120, 16)).unwrap();
    t.draw(|f| panes::variants::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    insta::assert_snapshot!("variants_overlay", t.backend());
}

/// A mixed-precision variant through the worker, as a preset applies it: its own row in the
/// variants table, with its speed and quality, beside the loaded weights' untouched row.
#[test]
fn a_mix_gets_a_row_of_its_own() {
    use labtui::protocol::sensitivity::{MixSpec, Part, TensorKind};
    let mut w = Worker::spawn(Options {
        device: candle_core::Device::Cpu,
        sample_every: None,
    });
    let mut seen = Vec::new();
    w.send(Command::LoadModel {
        spec: "synthetic".into(),
    });
    until(&mut w, &mut seen, |e| matches!(e, Event::ModelLoaded(_)));
    let spec = MixSpec {
        label: "mixed test".into(),
        types: [(Part::layer(1, TensorKind::Down).gguf_name(), Quant::Q2K)]
            .into_iter()
            .collect(),
    };
    w.send(Command::Set(SettingChange::Mix(spec)));
    until(&mut w, &mut seen, |e| matches!(e, Event::VariantReady(_)));
    w.send(Command::Generate {
        prompt: "Add two numbers.".into(),
        params: GenParams {
            max_tokens: 6,
            ..GenParams::default()
        },
    });
    until(&mut w, &mut seen, |e| {
        matches!(e, Event::RunFinished { .. })
    });
    w.send(Command::MeasureQuality { tokens: 64 });
    until(&mut w, &mut seen, |e| matches!(e, Event::Quality(_)));
    let s = state_after(&seen);
    let rows = &s.store.variants;
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (loaded, mix) = (&rows[0], &rows[1]);
    assert_eq!(loaded.mix, None);
    assert_eq!(mix.mix.as_deref(), Some("mixed test"));
    assert!(mix.weight_bytes < loaded.weight_bytes, "{rows:?}");
    assert!(
        mix.decode_tok_s.is_some() && mix.quality.is_some(),
        "{mix:?}"
    );
    assert!(
        loaded.decode_tok_s.is_none() && loaded.quality.is_none(),
        "{loaded:?}"
    );
    assert_eq!(s.store.running_mix().as_deref(), Some("mixed test"));
}
