//! The dashboard as a person sees it: every pane and the whole screen rendered with ratatui's
//! `TestBackend` from a recorded event stream (no model), in the empty, running, finished and error
//! states, at three terminal sizes including one too small to draw in.

use labtui::protocol::{Event, Stamped};
use labtui::state::{Action, AppState, Status, UiNotice};
use labtui::tui::{panes, view};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::Terminal;

fn events() -> Vec<Stamped> {
    include_str!("fixtures/qwen_run.ron")
        .lines()
        .map(|l| ron::from_str(l).expect("fixture line parses"))
        .collect()
}

/// The app after the events of a state: empty (nothing yet), running (half the tokens), finished, error.
fn state(name: &str) -> AppState {
    let mut s = AppState::new(
        "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        "Write a Rust function that reverses a string.",
    );
    let evs = events();
    let tokens = evs
        .iter()
        .filter(|e| matches!(e.event, Event::Token(_)))
        .count();
    let mut seen = 0;
    let apply = |s: &mut AppState, e: &Stamped| {
        s.apply(e);
    };
    match name {
        "empty" => {}
        // An error half way through the run: the worker sends no summary then.
        "running" | "error" => {
            for e in &evs {
                if matches!(e.event, Event::Token(_)) {
                    seen += 1;
                    if seen > tokens / 2 {
                        break;
                    }
                }
                apply(&mut s, e);
            }
        }
        "finished" => evs.iter().for_each(|e| apply(&mut s, e)),
        _ => unreachable!(),
    }
    if name == "error" {
        let at = s.store.now;
        s.apply(&Stamped {
            at,
            event: Event::Error {
                message: "internal error in the worker: a kernel failed; the model was unloaded, load it again"
                    .into(),
            },
        });
    }
    s
}

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

type Pane = fn(&AppState, Rect, &mut Buffer);

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

/// A real prompt-lookup run of the 0.5B model on the rewrite preset.
fn speculative_state() -> AppState {
    let mut s = AppState::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "");
    for line in include_str!("fixtures/qwen_spec_run.ron").lines() {
        s.apply(&ron::from_str(line).expect("fixture line parses"));
    }
    s
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

fn draw(s: &AppState, render: Pane, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(s, f.area(), f.buffer_mut())).unwrap();
    t
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

/// The running fixture continued to `n` tokens: words, a newline every 12 tokens, step times
/// spread over 15–45 ms, the KV cache growing by a token each.
fn long_run(n: usize) -> AppState {
    continued(n, |i| {
        std::time::Duration::from_micros(15_000 + (i as u64 * 7_919) % 30_000)
    })
}

/// The running fixture continued to `n` tokens, token `i` taking `step(i)`.
fn continued(n: usize, step: fn(usize) -> std::time::Duration) -> AppState {
    use labtui::protocol::TokenEvent;
    let mut s = state("running");
    let last = s
        .store
        .current
        .as_ref()
        .unwrap()
        .tokens
        .last()
        .unwrap()
        .clone();
    let per_token = 24_576;
    for i in last.index + 1..n {
        let step = step(i);
        let token = TokenEvent {
            index: i,
            id: (i % 50_000) as u32,
            text: if i % 12 == 11 { ".\n" } else { " word" }.into(),
            phase: labtui::protocol::Phase::Decode,
            prob: 0.9,
            elapsed: last.elapsed + step * (i - last.index) as u32,
            step,
            kv_tokens: last.kv_tokens + (i - last.index),
            kv_bytes: last.kv_bytes + per_token * (i - last.index) as u64,
        };
        s.apply(&Stamped {
            at: s.store.now + step,
            event: Event::Token(token),
        });
    }
    s
}

/// A 100,000-token run: what the panes build to draw a frame is bounded by the screen, not by
/// the run (sizes, not times, so that the test says the same on any machine).
#[test]
fn a_long_run_draws_from_bounded_data() {
    use labtui::state::{itl, thin};
    let n = 100_000;
    let s = long_run(n);
    let run = s.store.current.as_ref().unwrap();
    assert_eq!(run.tokens.len(), n);
    // What the store keeps for drawing.
    assert_eq!(run.itl.len(), n - 1);
    assert_eq!(run.itl.recent().len(), itl::RECENT);
    assert!(run.kv.len() <= thin::POINTS, "{} KV points", run.kv.len());
    // What each pane builds: the tape the lines of a screen (and twice that at most, whole
    // lines), the charts one point a column.
    for (scroll, h) in [(0u16, 18u16), (40, 18), (0, 45)] {
        let (lines, _) = panes::tape::window(run, Some(n / 2), scroll, 78, h);
        let rows = (h + scroll) as usize;
        assert!(lines.len() <= 2 * rows + 2, "{} lines", lines.len());
        let spans: usize = lines.iter().map(|l| l.spans.len()).sum();
        assert!(spans <= 13 * lines.len(), "{spans} spans");
    }
    assert_eq!(panes::timing::chart_data(run, 70).len(), 70);
    assert_eq!(panes::kv::chart_data(run, 70).len(), 70);
    // The KV chart spans the run: its first point is the first token's cache, its last the last.
    let kv = panes::kv::chart_data(run, 70);
    let at = |t: &labtui::protocol::TokenEvent| (t.kv_tokens as f64, t.kv_bytes as f64);
    assert_eq!(kv[0], at(&run.tokens[0]));
    assert_eq!(kv[69], at(&run.tokens[n - 1]));
    // And the whole screen draws: the tape ends with the run's end, the timing pane's numbers
    // are the run's.
    let mut t = Terminal::new(TestBackend::new(160, 50)).unwrap();
    t.draw(|f| view::render(&s, f.area(), f.buffer_mut()))
        .unwrap();
    let screen = format!("{}", t.backend());
    assert!(screen.contains("word.↵"), "{screen}");
    assert!(screen.contains(&format!("#{}", n - 1)), "{screen}");
    assert!(
        screen.contains(&format!("mean {:.1} tok/s", run.itl.mean_rate())),
        "{screen}"
    );
}

/// Latencies between 20 and 22 ms: the chart's y axis spans them (with a little margin), not
/// 0 to 22 ms, and draws a line, not a wall of blocks.
#[test]
fn the_latency_chart_is_fitted_to_the_data() {
    use std::time::Duration;
    // 600 tokens: the newest latencies (those the chart draws) are all the new ones.
    let s = continued(600, |i| {
        Duration::from_micros(20_000 + (i % 3) as u64 * 1_000)
    });
    for (w, h) in [(80, 22), (70, 14)] {
        let t = draw(&s, panes::timing::render, w, h);
        let screen = format!("{}", t.backend());
        assert!(screen.contains("19.8 ms"), "{screen}");
        assert!(screen.contains("22.2 ms"), "{screen}");
        assert!(
            !screen.contains(" 0.0 ms") && !screen.contains(" 0 ms"),
            "{screen}"
        );
        // A line of braille dots, no block characters outside the histogram's rows.
        assert!(screen
            .chars()
            .any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)));
        let chart_rows: String = screen.lines().skip(5).take(4).collect();
        assert!(!chart_rows.contains('█'), "{screen}");
    }
    // The KV chart spans the cache the run holds, not from zero bytes.
    let run = s.store.current.as_ref().unwrap();
    let t = draw(&s, panes::kv::render, 80, 22);
    let screen = format!("{}", t.backend());
    let first = run.tokens[0].kv_bytes as f64 / (1024.0 * 1024.0);
    assert!(first > 0.5, "the fixture's cache starts above zero");
    assert!(
        !screen.contains(" 0.00 MiB") && !screen.contains(" 0.0 MiB"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("{} tok", run.tokens[599].kv_tokens)),
        "{screen}"
    );
    insta::assert_snapshot!(
        "pane_timing_fitted",
        draw(&s, panes::timing::render, 80, 22).backend()
    );
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

/// The speculative run's events as a recording (the fixture is its events alone).
fn spec_recording() -> labtui::record::Recording {
    labtui::record::Recording {
        header: labtui::record::Header::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        ),
        events: include_str!("fixtures/qwen_spec_run.ron")
            .lines()
            .map(|l| ron::from_str(l).expect("fixture line parses"))
            .collect(),
        truncated: false,
    }
}

/// The app with the speculative recording replayed to its end, screenshots going to `shots`.
fn replayed_app(shots: Option<std::path::PathBuf>) -> labtui::tui::App {
    let rec = spec_recording();
    let mut app = labtui::tui::App::new(
        labtui::tui::Start {
            shots,
            ..labtui::tui::Start::replay(rec, 1.0)
        },
        labtui::worker::Options {
            sample_every: None,
            ..Default::default()
        },
    );
    assert!(app.tick(std::time::Duration::from_secs(3600)));
    app
}

/// The mouse, as the terminal reports it: a click focuses the pane under it, the wheel scrolls
/// the token tape (tmux cannot be made to send wheel events to the pane portably, so this is
/// checked here, on the app that the terminal loop drives).
#[test]
fn clicks_focus_panes_and_the_wheel_scrolls_the_tokens() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    use labtui::state::Focus;
    let mut app = replayed_app(None);
    let area = Rect::new(0, 0, 160, 50);
    let at = |kind, column, row| MouseEvent {
        kind,
        column,
        row,
        modifiers: KeyModifiers::NONE,
    };
    for (pane, r) in view::pane_areas(&app.state, area) {
        let (x, y) = (r.x + r.width / 2, r.y + r.height / 2);
        app.mouse(at(MouseEventKind::Down(MouseButton::Left), x, y), area);
        assert_eq!(app.state.ui.view.focus, pane, "a click at {x},{y}");
    }
    // A click outside every pane (the status bar) changes nothing.
    app.mouse(at(MouseEventKind::Down(MouseButton::Left), 5, 0), area);
    assert_eq!(app.state.ui.view.focus, Focus::Kv);
    let tape_text = |app: &labtui::tui::App, area: Rect| {
        let mut buf = Buffer::empty(area);
        app.draw(area, &mut buf);
        let r = view::pane_areas(&app.state, area)
            .into_iter()
            .find(|(p, _)| *p == Focus::Tape)
            .unwrap()
            .1;
        (r.y + 1..r.bottom() - 2)
            .map(|y| {
                (r.x..r.right())
                    .map(|x| buf[(x, y)].symbol())
                    .collect::<String>()
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    // The wheel on a small screen, where the tape does not show the whole run.
    let area = Rect::new(0, 0, view::MIN_WIDTH, view::MIN_HEIGHT);
    let bottom = tape_text(&app, area);
    for _ in 0..3 {
        app.mouse(at(MouseEventKind::ScrollUp, 20, 20), area);
    }
    assert_eq!(app.state.ui.view.scroll, 3);
    let up = tape_text(&app, area);
    assert_ne!(up, bottom, "the wheel moved the tape");
    for _ in 0..3 {
        app.mouse(at(MouseEventKind::ScrollDown, 20, 20), area);
    }
    assert_eq!(app.state.ui.view.scroll, 0);
    assert_eq!(tape_text(&app, area), bottom, "and back to the end");
}

/// A click on a token of the tape selects that token: drawn again, the cell clicked is part of
/// the token shown reversed (the selection), and the detail line names it. A click on the tape's
/// header, on a rejected draft (struck through: not a token of the run) or past the text selects
/// nothing new.
#[test]
fn a_click_on_a_token_selects_it() {
    use crossterm::event::{KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
    use labtui::state::Focus;
    use ratatui::style::{Color, Modifier};
    let mut app = replayed_app(None);
    let area = Rect::new(0, 0, 160, 50);
    let click = |app: &mut labtui::tui::App, column, row| {
        app.mouse(
            MouseEvent {
                kind: MouseEventKind::Down(MouseButton::Left),
                column,
                row,
                modifiers: KeyModifiers::NONE,
            },
            area,
        )
    };
    let drawn = |app: &labtui::tui::App| {
        let mut buf = Buffer::empty(area);
        app.draw(area, &mut buf);
        buf
    };
    let r = view::pane_areas(&app.state, area)
        .into_iter()
        .find(|(p, _)| *p == Focus::Tape)
        .unwrap()
        .1;
    let tokens = app.state.store.current.as_ref().unwrap().tokens.len();
    let mut selections = std::collections::BTreeSet::new();
    // Text rows: inside the frame, above the detail line.
    for y in (r.y + 1..r.bottom() - 2).step_by(2) {
        for x in (r.x + 1..r.right() - 1).step_by(7) {
            let before = drawn(&app);
            // Past the text a cell has no style; a token's spaces have its colour.
            let blank = (before[(x, y)].symbol() == " " && before[(x, y)].fg == Color::Reset)
                || before[(x, y)].modifier.contains(Modifier::CROSSED_OUT);
            let was = app.state.ui.view.selected;
            click(&mut app, x, y);
            let header = (r.x + 1..r.right() - 1)
                .map(|x| before[(x, y)].symbol())
                .collect::<String>()
                .starts_with("run ");
            if blank || header {
                assert_eq!(
                    app.state.ui.view.selected, was,
                    "a click at {x},{y} off the tokens"
                );
                continue;
            }
            let Some(i) = app.state.ui.view.selected else {
                panic!(
                    "a click on {:?} at {x},{y} selected nothing",
                    before[(x, y)].symbol()
                );
            };
            assert!(i < tokens);
            let after = drawn(&app);
            assert!(
                after[(x, y)].modifier.contains(Modifier::REVERSED),
                "token {i} selected by a click at {x},{y}, but that cell is not the one shown selected"
            );
            let detail: String = (r.x + 1..r.right() - 1)
                .map(|x| after[(x, r.bottom() - 2)].symbol())
                .collect();
            assert!(detail.contains(&format!("#{i} ")), "{detail}");
            selections.insert(i);
        }
    }
    assert!(selections.len() >= 5, "clicks selected {selections:?}");
}

/// `S` writes the screen drawn as SVG and text into the shots folder and says where.
#[test]
fn a_screenshot_is_the_screen_as_svg_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = replayed_app(Some(dir.path().join("shots")));
    let area = Rect::new(0, 0, 100, 30);
    let mut buf = Buffer::empty(area);
    app.draw(area, &mut buf);
    app.screenshot(&buf);
    let status = panes::status::words(&app.state.ui.status);
    assert!(
        matches!(app.state.ui.status, Status::Ui(UiNotice::Screenshot { .. })),
        "{status}"
    );
    let mut files: Vec<_> = std::fs::read_dir(dir.path().join("shots"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    for f in &files {
        assert!(status.contains(&f.display().to_string()), "{status}");
    }
    let text = std::fs::read_to_string(&files[1]).unwrap();
    assert_eq!(text, labtui::tui::shot::text(&buf));
    assert_eq!(text.lines().count(), 30);
    assert!(text.contains("speculation"));
    let svg = std::fs::read_to_string(&files[0]).unwrap();
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    // A second one in the same second gets a name of its own.
    app.screenshot(&buf);
    assert_eq!(
        std::fs::read_dir(dir.path().join("shots")).unwrap().count(),
        4
    );
}

/// The SVG of a known small screen: well-formed, every cell's text at its column, colours
/// (named, indexed and RGB, foreground and background) and styles kept, XML escaped.
#[test]
fn the_svg_keeps_text_colours_and_styles() {
    use ratatui::style::Style;
    let mut buf = Buffer::empty(Rect::new(0, 0, 12, 2));
    buf.set_string(0, 0, "ab", Style::default().fg(Color::Red));
    buf.set_string(
        2,
        0,
        "<&>",
        Style::default()
            .fg(Color::Rgb(1, 2, 3))
            .bg(Color::Indexed(21)),
    );
    buf.set_string(
        5,
        0,
        "bold",
        Style::default().add_modifier(Modifier::BOLD | Modifier::UNDERLINED),
    );
    buf.set_string(0, 1, "x y", Style::default().bg(Color::Blue));
    buf.set_string(
        4,
        1,
        "rev",
        Style::default()
            .fg(Color::Green)
            .add_modifier(Modifier::REVERSED),
    );
    let svg = labtui::tui::shot::svg(&buf);
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(root.attribute("width"), Some("108"));
    assert_eq!(root.attribute("height"), Some("36"));
    let texts: Vec<(String, String, Option<String>, Option<String>)> = root
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| {
            (
                n.text().unwrap_or_default().to_string(),
                n.attribute("fill").unwrap_or_default().to_string(),
                n.attribute("x").map(String::from),
                n.attribute("font-weight").map(String::from),
            )
        })
        .collect();
    let find = |t: &str| {
        texts
            .iter()
            .find(|x| x.0 == t)
            .unwrap_or_else(|| panic!("no <text> {t:?} in {texts:?}"))
    };
    assert_eq!(find("ab").1, "#cd0000");
    assert_eq!(find("ab").2.as_deref(), Some("0"));
    assert_eq!(find("<&>").1, "#010203");
    assert_eq!(find("<&>").2.as_deref(), Some("18"), "column 2 × 9 px");
    assert_eq!(find("bold").3.as_deref(), Some("bold"));
    assert!(svg.contains("text-decoration=\"underline\""));
    // One run per style: "x y" on a blue background is one text, its background one rect.
    assert_eq!(find("x y").2.as_deref(), Some("0"));
    let fills: Vec<&str> = root
        .descendants()
        .filter(|n| n.has_tag_name("rect"))
        .filter_map(|n| n.attribute("fill"))
        .collect();
    assert!(fills.contains(&"#0000ee"), "blue background: {fills:?}");
    assert!(fills.contains(&"#0000ff"), "indexed 21: {fills:?}");
    // Reversed: green becomes the background, the text takes the default background.
    assert!(fills.contains(&"#00cd00"), "{fills:?}");
    assert_eq!(find("rev").1, "#101014");
    let all: String = texts.iter().map(|t| t.0.as_str()).collect();
    assert_eq!(all, "ab<&>boldx yrev");
}

/// `labtui replay FILE --snapshot-at S --out F.svg`: the screen that far into the recording.
#[test]
fn replay_snapshot_at_draws_the_recording_headless() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("spec.ron");
    let rec = spec_recording();
    let mut r = labtui::record::Recorder::create(&file, rec.header.clone()).unwrap();
    for e in &rec.events {
        r.event(e).unwrap();
    }
    drop(r);
    let snap = |at: &str, out: &str| {
        let out = dir.path().join(out);
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
            .args(["replay", "--snapshot-at", at, "--size", "100x30", "--out"])
            .arg(&out)
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out).unwrap()
    };
    // Before the run's start (2.7 s), half way, and after its end (17.7 s).
    let (before, mid, end, svg) = (
        snap("1", "before.txt"),
        snap("10", "mid.txt"),
        snap("60", "end.txt"),
        snap("60", "end.svg"),
    );
    assert_eq!(mid.lines().count(), 30);
    assert!(mid.contains("replay of spec.ron at 10.0 s"), "{mid}");
    // Before the run: no tokens yet (the model still loading at 1 s); half way: tokens.
    assert!(before.contains("Waiting for a model"), "{before}");
    assert!(
        !mid.contains("Waiting for a model") && !mid.contains("No run yet"),
        "{mid}"
    );
    // The finished run's decode speed is on the end's screen.
    let s = speculative_state();
    let decode = format!(
        "{:.1}",
        s.store
            .current
            .as_ref()
            .unwrap()
            .summary
            .as_ref()
            .unwrap()
            .decode_tok_s
    );
    assert!(end.contains(&decode), "{decode} not in:\n{end}");
    assert_ne!(mid, end);
    roxmltree::Document::parse(&svg).expect("well-formed SVG");
    for title in [
        "speculation",
        "prefill vs decode",
        "replay of spec.ron at 60.0 s",
    ] {
        assert!(svg.contains(title), "{title} not in the SVG");
    }
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args(["replay", "--snapshot-at=-1", "--out", "x.svg"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!bad.status.success());
}
