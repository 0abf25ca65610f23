//! The explain overlay (`e`): the timing pane's figures are values with their recipes. Each
//! figure the pane draws is the one the overlay explains, and each formula, computed again from
//! the run's own events, gives the value shown.

mod common;

use common::{labtui_cmd, real_model, OutputWithin, QWEN_05B};
use labtui::protocol::{
    DraftMode, Event, FinishReason, GenParams, KPolicy, Phase, Quant, RunSettings, RunSummary,
    Stamped, TokenEvent,
};
use labtui::state::figure::Recipe;
use labtui::state::{Action, AppState, Focus};
use labtui::stats::{itl_percentiles, millis, tok_per_s};
use labtui::tui::{panes, view};
use ratatui::{backend::TestBackend, Terminal};
use std::time::Duration;

/// A run of 40 tokens whose gaps are known: 20 ms, with every seventh 55 ms.
fn run_events(finished: bool) -> (Vec<Stamped>, Vec<Duration>) {
    let gaps: Vec<Duration> = (1..40)
        .map(|i| Duration::from_micros(if i % 7 == 0 { 55_000 } else { 20_000 + 37 * i }))
        .collect();
    let prefill = Duration::from_millis(173);
    let mut ev = vec![
        Event::RunStarted {
            run: 1,
            prompt_tokens: 57,
            settings: RunSettings {
                params: GenParams::default(),
                quantization: Quant::AsLoaded,
                draft_mode: DraftMode::None,
                k: KPolicy::Fixed(4),
                policy: Default::default(),
            },
            prompt: "explain me".into(),
        },
        Event::PrefillDone {
            run: 1,
            tokens: 57,
            duration: prefill,
        },
    ];
    let mut elapsed = prefill + Duration::from_millis(4);
    for i in 0..40 {
        let step = if i == 0 { prefill } else { gaps[i - 1] };
        if i > 0 {
            elapsed += step;
        }
        ev.push(Event::Token(TokenEvent {
            index: i,
            id: i as u32,
            text: format!("w{i} "),
            phase: if i == 0 {
                Phase::Prefill
            } else {
                Phase::Decode
            },
            prob: 0.5,
            elapsed,
            step,
            kv_tokens: 57 + i,
            kv_bytes: 1024 * (57 + i) as u64,
        }));
    }
    if finished {
        let [p50, p90, p99] = itl_percentiles(&gaps);
        let decode: Duration = gaps.iter().sum();
        ev.push(Event::RunFinished {
            run: 1,
            summary: RunSummary {
                reason: FinishReason::MaxTokens,
                prompt_tokens: 57,
                generated_tokens: 40,
                ttft: prefill + Duration::from_millis(4),
                prefill,
                prefill_tok_s: tok_per_s(57, prefill),
                decode,
                decode_tok_s: tok_per_s(39, decode),
                itl_p50: p50,
                itl_p90: p90,
                itl_p99: p99,
                end_to_end: elapsed,
                kv_tokens: 96,
                kv_bytes: 1024 * 96,
                text: String::new(),
                spec: None,
            },
        });
    }
    let stamped = ev
        .into_iter()
        .enumerate()
        .map(|(i, event)| Stamped {
            at: Duration::from_millis(i as u64),
            event,
        })
        .collect();
    (stamped, gaps)
}

fn state(finished: bool) -> (AppState, Vec<Duration>) {
    let (events, gaps) = run_events(finished);
    let mut s = AppState::new("synthetic", "explain me");
    for e in &events {
        s.apply(e);
    }
    (s, gaps)
}

fn text(t: &Terminal<TestBackend>) -> String {
    let b = t.backend().buffer();
    (0..b.area.height)
        .map(|y| {
            (0..b.area.width)
                .map(|x| b[(x, y)].symbol())
                .collect::<String>()
                + "\n"
        })
        .collect()
}

#[test]
fn every_timing_figure_is_drawn_explained_and_recomputes_to_its_value() {
    for finished in [false, true] {
        let (s, gaps) = state(finished);
        let run = s.store.current.as_ref().unwrap();
        let f = run.timing_figures();
        let mut t = Terminal::new(TestBackend::new(80, 22)).unwrap();
        t.draw(|fr| panes::timing::render(&s, fr.area(), fr.buffer_mut()))
            .unwrap();
        let pane = text(&t);
        for fig in f.all() {
            // Each is drawn after its label (the prefill's after its token count).
            let drawn = pane
                .split(&format!("{} ", fig.name))
                .skip(1)
                .any(|after| after.split("  ").take(2).any(|v| v.contains(&fig.shown())));
            assert!(drawn, "{} {} not drawn:\n{pane}", fig.name, fig.shown());
            if let Some(v) = fig.evaluate() {
                assert!(
                    (v - fig.value).abs() < 1e-9,
                    "{}: {v} ≠ {}",
                    fig.name,
                    fig.value
                );
            }
            assert!(fig.formula().ends_with(&fig.shown()), "{}", fig.formula());
        }
        // The recipes' inputs are the run's: computed here from the gaps themselves.
        let sum: Duration = gaps.iter().sum();
        assert!((f.mean.value - tok_per_s(39, sum)).abs() < 1e-9);
        let last: Duration = gaps[gaps.len() - 16..].iter().sum();
        assert!((f.live.value - tok_per_s(16, last)).abs() < 1e-9);
        assert!((f.prefill.value - tok_per_s(57, Duration::from_millis(173))).abs() < 1e-9);
        assert!((f.ttft.as_ref().unwrap().value - 177.0).abs() < 1e-9);
        let exact = itl_percentiles(&gaps);
        for (fig, (d, p)) in f.itl.iter().zip(exact.iter().zip([50, 90, 99])) {
            assert_eq!(
                fig.recipe,
                Recipe::Percentile {
                    p,
                    n: 39,
                    of: "inter-token gaps"
                }
            );
            // Exact once the run is done; the live histogram's within its 0.1% before.
            let tol = if finished {
                1e-9
            } else {
                millis(*d) * 1e-3 + 1e-3
            };
            assert!(
                (fig.value - millis(*d)).abs() <= tol,
                "{}: {}",
                fig.name,
                fig.value
            );
        }
    }
}

#[test]
fn e_explains_the_focused_timing_pane_and_says_which_panes_it_cannot_yet() {
    let (mut s, _) = state(true);
    s.update(Action::Focus(Focus::Timing));
    s.update(Action::Explain);
    for (w, h) in [(160, 50), (100, 30)] {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
            .unwrap();
        let screen = text(&t);
        assert!(
            screen.contains(
                "39 decoded tokens ÷ 0.980 s from the first decoded token to the last = 39.8 tok/s"
            ),
            "{screen}"
        );
        assert!(
            screen.contains("99th percentile of 39 inter-token gaps = 55.0 ms"),
            "{screen}"
        );
        // The gaps' range is the decode figures' spread.
        if w == 160 {
            assert!(
                screen.contains("39 samples, gaps 20.0 ms – 55.0 ms"),
                "{screen}"
            );
        }
        insta::assert_snapshot!(format!("explain_timing_{w}x{h}"), t.backend());
    }
    s.update(Action::Escape);
    assert_eq!(s.ui.overlay, None);
    // No memory sample yet; the prompt draws no figures.
    for (focus, why) in [
        (Focus::Memory, "once the first sample arrives"),
        (Focus::Prompt, "draws no figures"),
    ] {
        s.update(Action::Focus(focus));
        s.update(Action::Explain);
        let mut t = Terminal::new(TestBackend::new(100, 30)).unwrap();
        t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
            .unwrap();
        assert!(text(&t).contains(why), "{}", text(&t));
        s.update(Action::Escape);
    }
}

/// On a recorded real run (Qwen2.5-Coder-0.5B, prompt lookup: `assets/screens/spec-0.5b.ron`),
/// the timing and KV panes' figures: each formula evaluates to the value shown, the KV pane
/// draws them, and each is recomputed from the recording's own events.
#[test]
fn the_figures_of_a_recorded_real_run_recompute_from_its_events() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/screens/spec-0.5b.ron");
    let rec = labtui::record::load(&path).unwrap();
    let mut s = AppState::new("qwen", "");
    for e in &rec.events {
        s.apply(e);
    }
    let run = s.store.current.as_ref().unwrap();
    let summary = run.summary.as_ref().unwrap();
    let m = s.store.model.as_ref().unwrap();
    let tokens: Vec<&TokenEvent> = rec
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Token(t) => Some(t),
            _ => None,
        })
        .collect();
    let gaps: Vec<Duration> = tokens.iter().skip(1).map(|t| t.step).collect();

    let t = run.timing_figures();
    let exact = itl_percentiles(&gaps);
    for (fig, d) in t.itl.iter().zip(exact) {
        assert!((fig.value - millis(d)).abs() < 1e-9, "{}", fig.formula());
    }
    assert_eq!([summary.itl_p50, summary.itl_p90, summary.itl_p99], exact);
    assert!((t.mean.value - summary.decode_tok_s).abs() < 1e-9);
    assert!((t.ttft.as_ref().unwrap().value - millis(summary.ttft)).abs() < 1e-9);
    for fig in t.all() {
        if let Some(v) = fig.evaluate() {
            assert!((v - fig.value).abs() < 1e-9, "{}", fig.formula());
        }
    }

    let kv = labtui::state::kv_figures(m, Some(run));
    let last = tokens.last().unwrap();
    assert_eq!(kv.held.value, last.kv_bytes as f64);
    assert_eq!(kv.per_token.value, m.kv_bytes_per_token as f64);
    for fig in kv.all() {
        let v = fig
            .evaluate()
            .unwrap_or_else(|| panic!("{}: {:?}", fig.name, fig.recipe));
        assert!((v - fig.value).abs() < 1e-6, "{} ≠ {v}", fig.formula());
    }
    // Qwen2.5-0.5B: 24 layers, 2 KV heads of 64 dims, f32.
    assert_eq!(
        kv.per_token.formula(),
        "2 × 24 layers × 2 KV heads × 64 dims × 4 B = 24576 B"
    );
    s.update(Action::Focus(Focus::Kv));
    let mut term = Terminal::new(TestBackend::new(160, 50)).unwrap();
    term.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = text(&term);
    for fig in kv.all() {
        assert!(
            screen.contains(&fig.shown()),
            "{} not drawn:\n{screen}",
            fig.shown()
        );
    }
    s.update(Action::Explain);
    term.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = text(&term);
    assert!(screen.contains("explain · KV cache"), "{screen}");
    assert!(screen.contains(&kv.held.formula()), "{screen}");
    insta::assert_snapshot!("explain_kv_real_160x50", term.backend());
}

/// The text of `state`'s explain overlay alone, with its border and every blank taken out (a
/// formula wraps at the overlay's width).
fn overlay_text(s: &AppState, w: u16, h: u16) -> String {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| panes::explain::render(s, f.area(), f.buffer_mut()))
        .unwrap();
    text(&t)
        .chars()
        .filter(|c| !c.is_whitespace() && !"│─┌┐└┘╭╮╰╯┃━┏┓┗┛".contains(*c))
        .collect()
}

/// Every figure the view on screen draws: drawn, recomputed by its recipe to its value, and
/// shown with its formula in the overlay. Returns the figures.
fn check_view(s: &mut AppState, what: &str) -> Vec<labtui::state::figure::Figure> {
    let (_, figs) = panes::explain::figures(s).unwrap_or_else(|| panic!("{what}: no figures"));
    assert!(!figs.is_empty(), "{what}");
    // The pane zoomed, so that none of its lines is cut (the race takes the body anyway).
    let race = s.ui.race_shown(&s.store);
    if !race {
        s.update(Action::ToggleZoom);
    }
    let mut t = Terminal::new(TestBackend::new(160, 50)).unwrap();
    t.draw(|f| view::render(s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = text(&t);
    if !race {
        s.update(Action::ToggleZoom);
    }
    s.update(Action::Explain);
    let overlay = overlay_text(s, 160, 50);
    s.update(Action::Escape);
    for fig in &figs {
        assert!(
            screen.contains(&fig.shown()),
            "{what}: {} {} not drawn:\n{screen}",
            fig.name,
            fig.shown()
        );
        if let Some(v) = fig.evaluate() {
            assert!(
                (v - fig.value).abs() <= 1e-9 * v.abs().max(1.0),
                "{what}: {} ≠ {v}",
                fig.formula()
            );
        }
        let formula: String = fig.formula().split_whitespace().collect();
        assert!(
            overlay.contains(&formula),
            "{what}: {formula} not in\n{overlay}"
        );
    }
    figs
}

fn replay(path: &std::path::Path) -> (AppState, labtui::record::Recording) {
    let rec = labtui::record::load(path).unwrap();
    let mut s = AppState::new("qwen", "");
    for e in &rec.events {
        s.apply(e);
    }
    (s, rec)
}

const REWRITE: &str = "Rename the variable `acc` to `total` and return the code only:\n\n\
fn sum(xs: &[i64]) -> i64 {\n    let mut acc = 0;\n    for x in xs {\n        acc += x;\n    }\n    acc\n}\n";

/// A run and a race on the real Qwen2.5-Coder-0.5B, recorded by the binary and replayed: every
/// pane's figures (the token's, memory, speculation, timing, KV) and the race's are drawn,
/// recompute to their values, and are explained; the speedups recompute to the engine's own,
/// and the race's ratio and agreement to its summary row.
#[test]
fn every_view_of_a_recorded_real_run_and_race_explains_its_figures() {
    let Some(model) = real_model(QWEN_05B) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run.ron");
    let race = dir.path().join("race.ron");
    let m = model.to_str().unwrap();
    let out = labtui_cmd()
        .args([
            "generate",
            "--model",
            m,
            "--draft",
            "prompt-lookup",
            "-k",
            "4",
        ])
        .args(["-n", "48", "--prompt", REWRITE, "--record"])
        .arg(&run)
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut s, rec) = replay(&run);
    for focus in [
        Focus::Tape,
        Focus::Memory,
        Focus::Spec,
        Focus::Timing,
        Focus::Kv,
    ] {
        s.update(Action::Focus(focus));
        let figs = check_view(&mut s, &focus.name());
        if focus == Focus::Spec {
            // The engine's own speedups, in its last step.
            let last = rec
                .events
                .iter()
                .rev()
                .find_map(|e| match &e.event {
                    Event::SpecStep(st) => Some(st.clone()),
                    _ => None,
                })
                .unwrap();
            assert!(
                last.plain_steps > 0,
                "lookup takes plain steps where it finds no match"
            );
            for (name, engine) in [
                ("measured", last.live_speedup.unwrap()),
                ("theory", last.predicted_speedup.unwrap()),
            ] {
                let f = figs.iter().find(|f| f.name == name).unwrap();
                assert!(matches!(f.recipe, Recipe::RunSpeedup { .. }), "{f:?}");
                assert!((f.value - engine).abs() < 1e-9, "{}: {engine}", f.formula());
            }
            assert!(figs.iter().any(|f| f.name == "one α"));
        }
    }
    let out = labtui_cmd()
        .args(["race", "--model", m, "--b", "draft=prompt-lookup,k=4"])
        .args(["-n", "48", "-p", REWRITE, "--record"])
        .arg(&race)
        .output_bounded();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (mut s, _) = replay(&race);
    assert!(s.ui.race_shown(&s.store));
    let figs = check_view(&mut s, "race");
    let summary = s.store.race.as_ref().unwrap().summary.clone().unwrap();
    let get = |name: &str| figs.iter().find(|f| f.name == name).unwrap().value;
    assert!((get("B/A decode") - summary.speed_ratio).abs() < 1e-9);
    assert!((get("agree") - summary.agreement).abs() < 1e-12);
    assert_eq!(get("lowest"), summary.ratio_low);
    assert_eq!(figs.iter().filter(|f| f.name.starts_with("A ")).count(), 6);
    assert_eq!(figs.iter().filter(|f| f.name.starts_with("B ")).count(), 6);
}
