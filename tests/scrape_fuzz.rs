//! Mutated Prometheus bodies of every engine, and arbitrary text, must never panic the parser or
//! the panes that draw a server's metrics.

mod common;

use labtui::protocol::{Event, ServerSample, Stamped};
use labtui::serve::scrape;
use labtui::state::AppState;
use proptest::prelude::*;
use std::time::Duration;

const VLLM: &str = include_str!("fixtures/metrics/vllm.txt");
const TGI: &str = include_str!("fixtures/metrics/tgi.txt");
const LLAMACPP: &str = include_str!("fixtures/metrics/llamacpp.txt");
const LLAMACPP_OLD: &str = include_str!("fixtures/metrics/llamacpp_unified_kv_before.txt");
const SGLANG: &str = include_str!("fixtures/metrics/sglang.txt");
const UNKNOWN: &str = include_str!("fixtures/metrics/unknown.txt");

/// Numbers and words that break arithmetic or parsing, to put where a body has a number.
const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "NaN",
    "+Inf",
    "-Inf",
    "1e-320",
    "18446744073709551616",
    "0x10",
    "",
    "1 2 3",
    "999999999999",
    "4294967296",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// A number of the body replaced.
    Number {
        which: usize,
        value: usize,
    },
    /// A byte set (kept as text: bodies are read as lossy UTF-8).
    Byte {
        at: usize,
        byte: u8,
    },
    Remove {
        at: usize,
        len: u8,
    },
    /// A line repeated.
    Repeat {
        at: usize,
    },
    Truncate {
        at: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        6 => (any::<usize>(), any::<usize>()).prop_map(|(which, value)| Mutation::Number { which, value }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Byte { at, byte }),
        2 => (any::<usize>(), any::<u8>()).prop_map(|(at, len)| Mutation::Remove { at, len }),
        1 => any::<usize>().prop_map(|at| Mutation::Repeat { at }),
        1 => any::<usize>().prop_map(|at| Mutation::Truncate { at }),
    ]
}

fn mutate(text: &mut Vec<u8>, m: &Mutation) {
    if text.is_empty() {
        return;
    }
    match *m {
        Mutation::Number { which, value } => {
            let mut runs = Vec::new();
            let mut i = 0;
            while i < text.len() {
                if text[i].is_ascii_digit() {
                    let start = i;
                    while i < text.len() && (text[i].is_ascii_digit() || b".e+-".contains(&text[i]))
                    {
                        i += 1;
                    }
                    runs.push(start..i);
                }
                i += 1;
            }
            if let Some(r) = runs.get(which % runs.len().max(1)).cloned() {
                text.splice(r, NUMBERS[value % NUMBERS.len()].bytes());
            }
        }
        Mutation::Byte { at, byte } => {
            let n = text.len();
            text[at % n] = byte;
        }
        Mutation::Remove { at, len } => {
            let start = at % text.len();
            let end = (start + len as usize).min(text.len());
            text.drain(start..end);
        }
        Mutation::Repeat { at } => {
            let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
            let line = lines[at % lines.len()].to_vec();
            text.push(b'\n');
            text.extend_from_slice(&line);
        }
        Mutation::Truncate { at } => {
            let n = text.len();
            text.truncate(at % n);
        }
    }
}

/// `sample` as the scraper sends it `ms` into the session.
fn stamped(ms: u64, sample: ServerSample) -> Stamped {
    let at = Duration::from_millis(ms);
    let event = Event::Server(ServerSample { at, ..sample });
    Stamped { at, event }
}

/// Parse a body; when it reads, feed it to the state as two samples and draw the server panes.
fn read_and_draw(body: &str) {
    let Ok(sample) = scrape::parse(body) else {
        return;
    };
    let mut state = AppState::new("fuzz", "");
    state.apply(&stamped(0, sample.clone()));
    state.apply(&stamped(500, sample));
    use ratatui::{buffer::Buffer, layout::Rect};
    for render in [
        labtui::tui::panes::kv::render,
        labtui::tui::panes::memory::render,
        labtui::tui::panes::spec::render,
    ] {
        let area = Rect::new(0, 0, 80, 12);
        render(&state, area, &mut Buffer::empty(area));
    }
}

proptest! {
    #![proptest_config(common::proptest_config())]

    #[test]
    fn mutated_bodies_never_panic(
        which in 0usize..6,
        ms in prop::collection::vec(mutation(), 1..8),
    ) {
        let base = [VLLM, TGI, LLAMACPP, LLAMACPP_OLD, SGLANG, UNKNOWN][which];
        let mut bytes = base.as_bytes().to_vec();
        for m in &ms {
            mutate(&mut bytes, m);
        }
        read_and_draw(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_text_never_panics(body in ".{0,400}") {
        read_and_draw(&body);
    }
}
