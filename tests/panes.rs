//! The dashboard as a person sees it: every pane and the whole screen rendered with ratatui's
//! `TestBackend` from a recorded event stream (no model), in the empty, running, finished and error
//! states, at three terminal sizes including one too small to draw in.

mod common;

use common::screen::{draw, speculative_state, state, Pane};
use labtui::protocol::{Event, Stamped};
use labtui::state::{Action, AppState, Focus};
use labtui::tui::{panes, view};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::Terminal;

const STATES: [&str; 4] = ["empty", "running", "finished", "error"];

#[test]
fn whole_screen_at_three_sizes() {
    for name in STATES {
        for (w, h) in [(160, 50), (100, 30), (50, 15)] {
            let s = state(name);
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
                .unwrap();
            insta::assert_snapshot!(format!("screen_{name}_{w}x{h}"), t.backend());
        }
    }
}

#[test]
fn every_pane_in_every_state() {
    let pane_list: [(&str, Pane); 8] = [
        ("prompt", panes::prompt::render),
        ("tape", panes::tape::render),
        ("timing", panes::timing::render),
        ("kv", panes::kv::render),
        ("memory", panes::memory::render),
        ("spec", panes::spec::render),
        ("status_top", panes::status::render_top),
        ("status_bottom", panes::status::render_bottom),
    ];
    for name in STATES {
        let s = state(name);
        for (pane, render) in pane_list {
            let mut t = Terminal::new(TestBackend::new(80, 22)).unwrap();
            t.draw(|f| render(&s, f.area(), f.buffer_mut())).unwrap();
            insta::assert_snapshot!(format!("pane_{pane}_{name}"), t.backend());
        }
    }
}

#[test]
fn help_lists_every_key_and_selection_shows_a_token() {
    let mut s = state("finished");
    s.update(Action::FocusNext);
    s.update(Action::SelectPrev);
    s.update(Action::SelectPrev);
    s.update(Action::ToggleHelp);
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{}", t.backend());
    for row in labtui::tui::keys::overlay() {
        assert!(screen.contains(row.keys), "help lacks {}", row.keys);
    }
    insta::assert_snapshot!("help_over_finished_run", t.backend());
}

#[test]
fn replayed_values_are_the_runs_values() {
    let s = state("finished");
    let summary = s
        .store
        .current
        .as_ref()
        .and_then(|r| r.summary.clone())
        .expect("finished run");
    let mut t = Terminal::new(TestBackend::new(160, 50)).unwrap();
    t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{}", t.backend());
    assert!(
        screen.contains(&format!("{:.1}", summary.decode_tok_s)),
        "decode tok/s of the run is shown"
    );
    assert!(screen.contains(&format!("{} tok @", summary.prompt_tokens)));
    assert!(
        screen.contains("24576 B"),
        "the formula's bytes per token are shown"
    );
}

#[test]
fn the_preset_picker_loads_a_preset() {
    use labtui::protocol::{Command, DraftMode, KPolicy, SettingChange};
    use labtui::state::{Overlay, Picker};
    let presets: Vec<_> = labtui::preset::all()
        .into_iter()
        .map(|f| f.preset.unwrap())
        .collect();
    let target = presets
        .iter()
        .position(|p| p.name == "rewrite-lookup")
        .expect("rewrite-lookup ships");
    let mut s = state("finished");
    s.ui.overlay = Some(Overlay::Presets(Picker {
        presets,
        selected: 0,
    }));
    for _ in 0..target {
        s.update(Action::PickerDown);
    }
    let mut t = Terminal::new(TestBackend::new(120, 40)).unwrap();
    t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    insta::assert_snapshot!("preset_picker", t.backend());
    // On a short terminal the list scrolls to keep the cursor's preset in view.
    let mut short = Terminal::new(TestBackend::new(120, 24)).unwrap();
    short
        .draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{}", short.backend());
    assert!(screen.contains("rewrite-lookup"), "{screen}");
    assert_eq!(
        s.update(Action::PickerChoose),
        vec![
            Command::Set(SettingChange::DraftMode(DraftMode::PromptLookup)),
            Command::Set(SettingChange::K(KPolicy::Fixed(4)))
        ]
    );
    assert!(!s.ui.picker_open());
    assert!(s.ui.prompt.starts_with("Rename the variable"));
    assert!(s
        .ui
        .banner
        .as_deref()
        .unwrap_or("")
        .contains("rewrite-lookup"));
}

#[test]
fn speculation_pane_and_tape_show_a_speculative_run() {
    let s = speculative_state();
    let run = s.store.current.as_ref().unwrap();
    let summary = run.summary.as_ref().unwrap().spec.clone().unwrap();
    // The pane's counts are the engine's.
    assert_eq!(run.spec.counts.accepted, summary.accepted);
    assert_eq!(run.spec.counts.drafted, summary.drafted);
    assert_eq!(run.spec.counts.per_position(), summary.per_position);
    for (pane, render, w, h) in [
        ("spec", panes::spec::render as Pane, 80, 8),
        ("tape", panes::tape::render as Pane, 100, 16),
    ] {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| render(&s, f.area(), f.buffer_mut())).unwrap();
        let screen = format!("{}", t.backend());
        if pane == "spec" {
            assert!(screen.contains(&format!("{:.0}%", summary.acceptance_rate * 100.0)));
            assert!(screen.contains(&format!("{:.2}", summary.mean_accepted_len)));
        }
        insta::assert_snapshot!(format!("speculative_{pane}"), t.backend());
    }
    // Accepted drafts, rejected ones, corrections and bonus tokens are styled apart in the tape,
    // each by a colour of the colour-blind-safe palette and by a mark.
    let t = draw(&s, panes::tape::render, 100, 16);
    let (colours, marks) = token_styles(t.backend().buffer());
    use panes::palette;
    for c in [palette::ACCEPTED, palette::REJECTED, palette::CORRECTION] {
        assert!(colours.contains(&c), "{c:?} missing");
    }
    assert_eq!(marks, all_marks(), "every kind of token has its mark");
}

/// `e` on the speculation pane: acceptance, accepted length, the speedups with their inputs,
/// acceptance by position and a step's costs, each with its formula, at 160×50 and 100×30.
#[test]
fn e_explains_the_speculation_pane_at_two_sizes() {
    let mut s = speculative_state();
    s.update(Action::Focus(Focus::Spec));
    s.update(Action::Explain);
    for (w, h) in [(160, 50), (100, 30)] {
        let t = draw(&s, labtui::tui::view::render, w, h);
        let screen = format!("{:?}", t.backend());
        assert!(screen.contains("explain · speculation"), "{screen}");
        assert!(screen.contains("accepted ÷ "), "{screen}");
        insta::assert_snapshot!(format!("explain_spec_{w}x{h}"), t.backend());
    }
}

use ratatui::style::{Color, Modifier};

/// The colours on screen, and the token marks (underline, strike-out with ⟨ ⟩, bold) drawn
/// inside the token tape's frame (its text rows, below the title).
fn token_styles(buf: &Buffer) -> (std::collections::HashSet<Color>, Vec<&'static str>) {
    let colours = buf.content().iter().map(|c| c.fg).collect();
    let tape = tape_area(buf);
    let cells: Vec<_> = (tape.top()..tape.bottom())
        .flat_map(|y| (tape.left()..tape.right()).map(move |x| (x, y)))
        .map(|p| &buf[p])
        .collect();
    let has = |m: Modifier| {
        cells
            .iter()
            .any(|c| c.modifier.contains(m) && c.symbol() != " ")
    };
    let mut marks = Vec::new();
    if has(Modifier::UNDERLINED) {
        marks.push("underlined");
    }
    if has(Modifier::CROSSED_OUT) && cells.iter().any(|c| c.symbol() == "⟨") {
        marks.push("struck out in ⟨ ⟩");
    }
    if has(Modifier::BOLD) {
        marks.push("bold");
    }
    (colours, marks)
}

/// The inside of the tape's frame: from the corner of its title "╭ tokens · " to the next corner
/// right of it, down to its bottom corner.
fn tape_area(buf: &Buffer) -> Rect {
    let area = buf.area;
    let row = |y: u16| -> String { (0..area.width).map(|x| buf[(x, y)].symbol()).collect() };
    let top = (0..area.height)
        .find(|&y| row(y).contains("╭ tokens · "))
        .expect("the tape is on screen");
    let cols: Vec<&str> = (0..area.width).map(|x| buf[(x, top)].symbol()).collect();
    let title = row(top).find("╭ tokens · ").unwrap();
    let left = row(top)[..title].chars().count() as u16;
    let right = (left..area.width)
        .find(|&x| cols[x as usize] == "╮")
        .unwrap();
    let bottom = (top..area.height)
        .find(|&y| buf[(left, y)].symbol() == "╰")
        .unwrap();
    Rect::new(left + 1, top + 1, right - left - 1, bottom - top - 1)
}

fn all_marks() -> Vec<&'static str> {
    vec!["underlined", "struck out in ⟨ ⟩", "bold"]
}

/// `NO_COLOR`: the whole screen of a speculative run without one colour, the tape's marks kept;
/// without it, the same screen in colour.
#[test]
fn no_color_draws_the_marks_without_colours() {
    let mut s = speculative_state();
    let colour = draw(&s, view::render, 160, 50);
    let (colours, marks) = token_styles(colour.backend().buffer());
    assert!(colours.contains(&panes::palette::ACCEPTED));
    assert_eq!(marks, all_marks());
    s.ui.no_color = true;
    for (w, h) in [(160, 50), (100, 30)] {
        let t = draw(&s, view::render, w, h);
        let buf = t.backend().buffer();
        let coloured: Vec<_> = buf
            .content()
            .iter()
            .filter(|c| c.fg != Color::Reset || c.bg != Color::Reset)
            .collect();
        assert!(coloured.is_empty(), "{} coloured cells", coloured.len());
        assert_eq!(token_styles(buf).1, all_marks(), "at {w}×{h}");
        // The same text as in colour.
        if w == 160 {
            assert_eq!(format!("{}", t.backend()), format!("{}", colour.backend()));
        }
    }
    // The help names each mark.
    s.update(Action::ToggleHelp);
    let t = draw(&s, view::render, 100, 40);
    let screen = format!("{}", t.backend());
    for words in [
        "accepted draft underlined",
        "⟨rejected⟩ struck out",
        "correction bold",
        "bonus bold italic",
    ] {
        assert!(screen.contains(words), "{screen}");
    }
}

/// A served model's metrics as the scraper sends them: a scrape of `body`, then one half a second
/// later with 500 more generated tokens, 2048 more prompt tokens (1024 of them prefix-cache
/// hits) and 100 more drafts (of 300 tokens, 160 accepted: 80, 50 and 30 by position).
fn server_events(body: &str, from: std::time::Duration) -> Vec<Stamped> {
    use labtui::protocol::ServerSample;
    use std::time::Duration;
    let mut a = labtui::serve::scrape::parse(body).expect("the fixture reads");
    a.at = from;
    let add = |x: Option<f64>, n: f64| x.map(|x| x + n);
    let b = ServerSample {
        at: from + Duration::from_millis(500),
        generation_tokens: add(a.generation_tokens, 500.0),
        prompt_tokens: add(a.prompt_tokens, 2048.0),
        prefix_hits: add(a.prefix_hits, 1024.0),
        prefix_queries: add(a.prefix_queries, 2048.0),
        spec_drafts: add(a.spec_drafts, 100.0),
        spec_draft_tokens: add(a.spec_draft_tokens, 300.0),
        spec_accepted: add(a.spec_accepted, 160.0),
        spec_accepted_per_pos: a
            .spec_accepted_per_pos
            .iter()
            .zip([80.0, 50.0, 30.0])
            .map(|(x, n)| x + n)
            .collect(),
        running: Some(14.0),
        ..a.clone()
    };
    [a, b]
        .into_iter()
        .map(|s| Stamped {
            at: s.at,
            event: Event::Server(s),
        })
        .collect()
}

#[test]
fn a_served_models_metrics_in_the_kv_memory_and_speculation_panes() {
    let vllm = include_str!("fixtures/metrics/vllm.txt");
    // Serving only: no local model, the server's numbers alone.
    let mut serving = AppState::new("", "");
    for e in server_events(vllm, std::time::Duration::from_secs(1)) {
        serving.apply(&e);
    }
    // Beside a local run.
    let mut beside = state("finished");
    let after = beside.store.now;
    for e in server_events(vllm, after) {
        beside.apply(&e);
    }
    let panes: [(&str, Pane); 3] = [
        ("kv", panes::kv::render),
        ("memory", panes::memory::render),
        ("spec", panes::spec::render),
    ];
    for (name, s) in [("server", &serving), ("finished_with_server", &beside)] {
        for (pane, render) in panes {
            let t = draw(s, render, 80, 22);
            let screen = format!("{}", t.backend());
            match pane {
                "kv" | "memory" => assert!(
                    screen.contains("server vLLM · KV cache 42% · running 14 · waiting 3"),
                    "{screen}"
                ),
                _ => {
                    // 160 of 300 drafted tokens accepted, 1 + 160 / 100 per step over 0.5 s;
                    // by position 80, 50 and 30 of 100 drafts.
                    assert!(screen.contains("acceptance 53%"), "{screen}");
                    assert!(screen.contains("accepted length 2.60"), "{screen}");
                    assert!(screen.contains("80% 50% 30% of drafts"), "{screen}");
                }
            }
            if pane == "memory" {
                // 500 tokens and 2048 prompt tokens in 0.5 s; 1024 of 2048 looked up were hits.
                assert!(
                    screen.contains(
                        "generation 1000 tok/s · prompt 4096 tok/s · prefix cache hits 50%"
                    ),
                    "{screen}"
                );
            }
            insta::assert_snapshot!(format!("pane_{pane}_{name}"), t.backend());
        }
    }
    // An engine without KV-cache usage: its running requests over time instead.
    let mut tgi = AppState::new("", "");
    for e in server_events(
        include_str!("fixtures/metrics/tgi.txt"),
        std::time::Duration::from_secs(1),
    ) {
        tgi.apply(&e);
    }
    let t = draw(&tgi, panes::kv::render, 80, 12);
    let screen = format!("{}", t.backend());
    assert!(screen.contains("TGI exports no KV-cache usage"), "{screen}");
    insta::assert_snapshot!("pane_kv_server_tgi", t.backend());
}

/// The default model could not be had (no file, no network): the banner that says how to get one
/// wraps inside the screen and keeps its advice on screen at 100×30 and 160×50.
#[test]
fn the_no_model_banner_keeps_its_advice() {
    use labtui::engine::source::{DEFAULT_MODEL, HOW_TO_GET};
    let mut s = AppState::new(DEFAULT_MODEL, "");
    s.ui.fallback_to_synthetic = true;
    let hub = "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF";
    let message = format!(
        "Hugging Face Hub: cannot get {DEFAULT_MODEL} from {hub}: cannot reach \
         https://huggingface.co/{hub}/resolve/main/{DEFAULT_MODEL}: client error (Connect): dns error: \
         failed to lookup address information: Temporary failure in name resolution ({HOW_TO_GET})"
    );
    for event in [
        Event::ModelLoading {
            spec: DEFAULT_MODEL.into(),
        },
        Event::Error { message },
    ] {
        s.apply(&Stamped {
            at: std::time::Duration::from_secs(1),
            event,
        });
    }
    let advice = "To run one, start with --model PATH";
    for (w, h) in [(100, 30), (160, 50)] {
        let t = draw(&s, view::render, w, h);
        let rows = panes::banner::height(&s, Rect::new(0, 0, w, h));
        let banner = banner_text(t.backend().buffer(), rows);
        assert!(banner.contains(advice), "{w}×{h}: {banner}");
        assert!(
            banner.starts_with("Running the built-in synthetic model"),
            "{banner}"
        );
        if w == 160 {
            // Room for all of it; the error's own advice, which says the same, is left out.
            assert!(banner.ends_with("name resolution"), "{banner}");
            assert!(!banner.contains("fetch-models") && banner.matches("https://").count() == 1);
        } else {
            // A fifth of the screen at most; what is cut is the error's detail, marked.
            assert_eq!(rows, 6);
            assert!(banner.ends_with('…'), "{banner}");
        }
        insta::assert_snapshot!(format!("banner_no_model_{w}x{h}"), t.backend());
    }
    // An error is shown whole at 100×30 too.
    let s = state("error");
    let t = draw(&s, view::render, 100, 30);
    let rows = panes::banner::height(&s, Rect::new(0, 0, 100, 30));
    let banner = banner_text(t.backend().buffer(), rows);
    assert!(
        banner.ends_with("the model was unloaded, load it again"),
        "{banner}"
    );
}

/// The banner's `rows` rows under the status bar, joined by spaces.
fn banner_text(buf: &Buffer, rows: u16) -> String {
    (1..=rows)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol())
                .collect::<String>()
                .trim()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The engine's block report in the KV pane: blocks held and free, and the held slots the run's
/// tokens leave empty (the last block's slack); a report for another run is not this run's.
#[test]
fn the_kv_pane_shows_the_runs_blocks() {
    let mut s = state("finished");
    let run = s.store.current.as_ref().unwrap();
    let (id, tokens) = (run.run, run.tokens.last().unwrap().kv_tokens);
    let held = tokens.div_ceil(16);
    let at = s.store.now;
    let report = |run| Stamped {
        at,
        event: Event::KvBlocks {
            run,
            blocks: labtui::protocol::KvBlocks {
                block_tokens: 16,
                held,
                free: 3,
            },
        },
    };
    s.apply(&report(id + 1));
    let screen = format!("{}", draw(&s, panes::kv::render, 120, 12).backend());
    assert!(!screen.contains("blocks of"), "{screen}");
    s.apply(&report(id));
    let screen = format!("{}", draw(&s, panes::kv::render, 120, 12).backend());
    let shown = format!(
        "blocks of 16 {held} held · 3 free · {} slots empty",
        held * 16 - tokens
    );
    assert!(screen.contains(&shown), "{shown} missing:\n{screen}");
}

/// Each pane that zooms, zoomed to the whole screen (a real speculative run of the 0.5B), at
/// 160×50 and 100×30: the pane fills the body, its frame thick (focused), no other pane drawn.
#[test]
fn a_zoomed_pane_fills_the_screen() {
    use labtui::state::Focus;
    for (pane, title) in [
        (Focus::Tape, "tokens ·"),
        (Focus::Memory, "memory"),
        (Focus::Spec, "speculation"),
        (Focus::Timing, "prefill vs decode"),
        (Focus::Kv, "KV cache"),
    ] {
        let mut s = speculative_state();
        s.update(Action::Focus(pane));
        s.update(Action::ToggleZoom);
        assert!(s.ui.view.zoom);
        for (w, h) in [(160, 50), (100, 30)] {
            let area = Rect::new(0, 0, w, h);
            let areas = view::pane_areas(&s, area);
            assert_eq!(areas.len(), 1, "{pane:?}: {areas:?}");
            // Everything between the status bar (and banner) and the message line.
            assert_eq!((areas[0].1.width, areas[0].1.bottom()), (w, h - 1));
            let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
            t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
                .unwrap();
            let screen = format!("{}", t.backend());
            assert!(screen.contains(title), "{pane:?} at {w}x{h}:\n{screen}");
            let top = areas[0].1;
            let corner = t.backend().buffer()[(top.x, top.y)].symbol();
            assert_eq!(corner, "┏", "the focused pane's frame is thick");
            insta::assert_snapshot!(format!("zoomed_{pane:?}_{w}x{h}"), t.backend());
        }
        // z unzooms; so does Esc (through the keymap).
        s.update(Action::ToggleZoom);
        assert_eq!(view::pane_areas(&s, Rect::new(0, 0, 160, 50)).len(), 6);
    }
}

/// Tab walks every pane, the focused one's frame thick, the others rounded: the focus shows
/// without colour.
#[test]
fn focus_shows_as_a_thick_frame() {
    use labtui::state::Focus;
    let mut s = speculative_state();
    let area = Rect::new(0, 0, 160, 50);
    for _ in 0..Focus::ALL.len() {
        s.update(Action::FocusNext);
        let mut buf = Buffer::empty(area);
        view::render(&s, area, &mut buf);
        for (pane, r) in view::pane_areas(&s, area) {
            let corner = buf[(r.x, r.y)].symbol();
            let want = if pane == s.ui.view.focus {
                "┏"
            } else {
                "╭"
            };
            assert_eq!(corner, want, "{pane:?} with {:?} focused", s.ui.view.focus);
        }
    }
}

/// The demo pane while a real sensitivity sweep of the 0.5B runs (the first 78 cells of its
/// recording, `tests/fixtures/sensitivity_0.5b_partial.ron`): the progress line, the bar and the
/// heat map as far as it has filled in, each cell's KL in it.
#[test]
fn the_sensitivity_demo_draws_the_heat_map_as_it_fills_in() {
    let mut s = labtui::state::AppState::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "");
    let preset = labtui::preset::load("demo-sensitivity").unwrap();
    s.ui.demo = Some(labtui::state::DemoView::from_preset(&preset, 0));
    for line in include_str!("fixtures/sensitivity_0.5b_partial.ron")
        .lines()
        .skip(1)
    {
        let labtui::record::Line::Event(e) = ron::from_str(line).expect("fixture line parses")
        else {
            unreachable!("one header, then events")
        };
        s.apply(&e);
    }
    let map = s
        .store
        .sensitivity
        .as_ref()
        .expect("the sweep's events build a map");
    assert_eq!(map.progress(), (78, 498));
    let t = common::screen::draw(&s, labtui::tui::panes::demo::render, 100, 40);
    let text = format!("{}", t.backend());
    assert!(text.contains("cells 78/498"), "{text}");
    assert!(text.contains("L0 ") && text.contains("mlp down"), "{text}");
    // A measured cell is coloured on the KL scale; one still to come is not.
    let buf = t.backend().buffer();
    let coloured = (0..buf.area.height)
        .flat_map(|y| (0..buf.area.width).map(move |x| (x, y)))
        .filter(|&(x, y)| matches!(buf[(x, y)].bg, ratatui::style::Color::Rgb(..)))
        .count();
    assert!(coloured > 50, "{coloured} coloured cells");
    insta::assert_snapshot!("pane_demo_sensitivity_filling", t.backend());
}
