//! Long runs on the dashboard: what the panes build to draw a frame stays bounded by the screen,
//! and the latency chart's axis fits the data.

mod common;

use common::screen::{draw, state};
use labtui::protocol::{Event, Stamped};
use labtui::state::AppState;
use labtui::tui::{panes, view};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

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
