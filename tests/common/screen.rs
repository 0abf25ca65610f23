//! The recorded runs the screen tests draw: a plain run (`tests/fixtures/qwen_run.ron`) in four
//! states, and a real prompt-lookup run of the 0.5B model
//! on the rewrite preset (`tests/fixtures/qwen_spec_run.ron`, its events alone).

use labtui::protocol::{Event, Stamped};
use labtui::state::AppState;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::Terminal;

/// A pane's render function.
pub type Pane = fn(&AppState, Rect, &mut Buffer);

/// `render` drawn alone on a `w`×`h` test terminal.
pub fn draw(s: &AppState, render: Pane, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| render(s, f.area(), f.buffer_mut())).unwrap();
    t
}

/// The events of a real run of the 0.5B model (`tests/fixtures/qwen_run.ron`).
pub fn events() -> Vec<Stamped> {
    include_str!("../fixtures/qwen_run.ron")
        .lines()
        .map(|l| ron::from_str(l).expect("fixture line parses"))
        .collect()
}

/// The app after the events of a state: empty (nothing yet), running (half the tokens), finished, error.
pub fn state(name: &str) -> AppState {
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

/// The fixture's events applied to a fresh app state.
pub fn speculative_state() -> AppState {
    let mut s = AppState::new("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", "");
    for line in include_str!("../fixtures/qwen_spec_run.ron").lines() {
        s.apply(&ron::from_str(line).expect("fixture line parses"));
    }
    s
}

/// The speculative run's events as a recording (the fixture is its events alone).
pub fn spec_recording() -> labtui::record::Recording {
    labtui::record::Recording {
        header: labtui::record::Header::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        ),
        events: include_str!("../fixtures/qwen_spec_run.ron")
            .lines()
            .map(|l| ron::from_str(l).expect("fixture line parses"))
            .collect(),
        truncated: false,
    }
}
