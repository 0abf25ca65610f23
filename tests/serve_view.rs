//! The dashboard's serve view: a serving benchmark's levels, the running level's progress, the
//! throughput–latency curve and the server's metrics, drawn from real `bench serve` event
//! streams — a recording of the load generator against the mock server (with its `/metrics`
//! scraped, as `--tui` does), a fresh `bench serve --record` replayed, and the `--tui` feed
//! driving the app loop.

mod common;

use common::OutputWithin;
use labtui::protocol::serve::{LevelSummary, Load, ServeEvent};
use labtui::protocol::Stamper;
use labtui::protocol::{Event, Stamped};
use labtui::serve::load::drive::{drive, Bench};
use labtui::serve::load::workload::{Prompts, Workload};
use labtui::serve::load::{LoadPlan, Target};
use labtui::serve::mock::{Mock, Script};
use labtui::state::AppState;
use labtui::tui::panes::serve::curve;
use labtui::tui::{panes, view};
use ratatui::backend::TestBackend;
use ratatui::Terminal;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIXTURE: &str = "tests/fixtures/serve_bench.ron";

/// The recorded benchmark: concurrency 1, 2 and 4, six requests each, against the mock (40 ms
/// to the first token, then one every 10 ms, 16 tokens), its llama.cpp-style metrics scraped.
fn events() -> Vec<Stamped> {
    labtui::record::load(std::path::Path::new(FIXTURE))
        .expect("the fixture loads")
        .events
}

fn summaries(evs: &[Stamped]) -> Vec<LevelSummary> {
    evs.iter()
        .filter_map(|e| match &e.event {
            Event::Serve(ServeEvent::LevelDone { summary, .. }) => Some((**summary).clone()),
            _ => None,
        })
        .collect()
}

/// The app after the fixture's events up to the first `n` (all for `None`), folded as a replay
/// folds them.
fn state(evs: &[Stamped], n: Option<usize>) -> AppState {
    let mut s = AppState::new("replay", "");
    for e in &evs[..n.unwrap_or(evs.len())] {
        s.apply(e);
    }
    s
}

/// How many events bring the benchmark to the middle: the first level done, the second with
/// two of its requests ended.
fn mid_sweep(evs: &[Stamped]) -> usize {
    let mut levels_done = 0;
    let mut ended = 0;
    for (i, e) in evs.iter().enumerate() {
        match &e.event {
            Event::Serve(ServeEvent::LevelDone { .. }) => levels_done += 1,
            Event::Serve(ServeEvent::Done { .. }) if levels_done == 1 => {
                ended += 1;
                if ended == 2 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    panic!("the fixture has no second level with two ended requests");
}

fn screen(s: &AppState, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| view::render(s, f.area(), f.buffer_mut()))
        .unwrap();
    t
}

fn text(t: &Terminal<TestBackend>) -> String {
    labtui::tui::shot::text(t.backend().buffer())
}

/// A measured level's numbers as the table shows them.
fn shown(l: &LevelSummary) -> Vec<String> {
    let ms = panes::ms;
    vec![
        format!("{:.1}", l.output_tok_s),
        ms(l.ttft.p50),
        ms(l.ttft.p99),
        ms(l.tpot.p50),
        ms(l.e2e.p50),
        format!("{}/{}", l.ok, l.failed),
    ]
}

/// The row of the table that starts with `label`.
fn row<'a>(screen: &'a str, label: &str) -> &'a str {
    screen
        .lines()
        .find(|l| l.trim_start_matches(['│', ' ', '"']).starts_with(label))
        .unwrap_or_else(|| panic!("no row {label} in\n{screen}"))
}

#[test]
fn mid_sweep_one_level_measured_and_one_running() {
    let evs = events();
    let n = mid_sweep(&evs);
    let s = state(&evs, Some(n));
    let first = &summaries(&evs[..n])[0];
    let live = s.store.serve.current.as_ref().expect("level 2 runs");
    // What the events say of the running level.
    let sent = evs[..n]
        .iter()
        .filter(|e| matches!(e.event, Event::Serve(ServeEvent::Sent { level: 1, .. })))
        .count();
    assert_eq!((live.index, live.done, live.sent), (1, 2, sent));
    assert_eq!(live.in_flight(), sent - 2);
    for (w, h) in [(160, 50), (100, 30)] {
        let t = screen(&s, w, h);
        let screen = text(&t);
        assert!(screen.contains("level 2 of 3"), "{screen}");
        let done = row(&screen, "concurrency 1");
        for number in shown(first) {
            assert!(done.contains(&number), "{number} not in {done}");
        }
        let running = row(&screen, "concurrency 2");
        assert!(running.contains("2/6"), "{running}");
        assert!(
            running.contains(&format!(" {} ", live.in_flight())),
            "{running}"
        );
        assert!(row(&screen, "level 3").contains("waiting"));
        assert!(screen.contains("E2E p50 (ms)") && screen.contains("output tok/s"));
        // One point so far: the first level's.
        assert_eq!(screen.matches('•').count(), 1, "{screen}");
        insta::assert_snapshot!(format!("serve_mid_sweep_{w}x{h}"), t.backend());
    }
}

#[test]
fn after_the_sweep_every_level_and_its_point() {
    let evs = events();
    let s = state(&evs, None);
    let levels = summaries(&evs);
    assert_eq!(levels.len(), 3);
    assert!(s.store.serve.finished());
    let loads: Vec<Load> = levels.iter().map(|l| l.load).collect();
    assert_eq!(
        loads,
        [1, 2, 4].map(Load::Concurrency).to_vec(),
        "the fixture's levels"
    );
    for (w, h) in [(160, 50), (100, 30)] {
        let t = screen(&s, w, h);
        let screen = text(&t);
        assert!(screen.contains("all 3 levels measured"), "{screen}");
        for l in &levels {
            let r = row(
                &screen,
                &format!(
                    "concurrency {}",
                    match l.load {
                        Load::Concurrency(c) => c,
                        _ => unreachable!(),
                    }
                ),
            );
            for number in shown(l) {
                assert!(r.contains(&number), "{number} not in {r}");
            }
        }
        assert_eq!(
            screen.matches('•').count(),
            3,
            "a point per level:\n{screen}"
        );
        // The server's metrics, scraped while the load ran.
        assert!(screen.contains("server llama.cpp"), "{screen}");
        insta::assert_snapshot!(format!("serve_finished_{w}x{h}"), t.backend());
    }
    // `e` explains each level's figures: drawn in its row, its rate recomputed from its
    // tokens over its span, its percentiles naming how many requests.
    let (name, figs) = labtui::tui::panes::explain::figures(&s).unwrap();
    assert_eq!(name, "serving benchmark");
    assert_eq!(figs.len(), 3 * 5, "a rate and four latencies a level");
    let screen = text(&screen(&s, 160, 50));
    for (f, l) in figs.iter().zip(levels.iter().flat_map(|l| [l; 5])) {
        let c = match l.load {
            Load::Concurrency(c) => c,
            _ => unreachable!(),
        };
        let r = row(&screen, &format!("concurrency {c}"));
        assert!(
            r.contains(&f.shown()),
            "{} {} not in {r}",
            f.name,
            f.shown()
        );
        if let Some(v) = f.evaluate() {
            assert!((v - l.output_tok_s).abs() < 1e-9, "{}", f.formula());
        }
    }
}

#[test]
fn the_curve_grows_a_point_per_level_inside_its_axes() {
    let evs = events();
    let mut seen = Vec::new();
    let mut s = AppState::new("replay", "");
    for e in &evs {
        s.apply(e);
        let series = curve::series(&s.store.serve.levels);
        let points = series.iter().map(|x| x.points.len()).sum::<usize>();
        if seen.last() != Some(&points) {
            seen.push(points);
        }
        let (x, y) = curve::bounds(&series);
        for (px, py) in series.iter().flat_map(|x| x.points.iter()) {
            assert!(*px > 0.0 && *px <= x[1] && *py > 0.0 && *py <= y[1]);
        }
        // Fitted: the axis ends at the next round number over the top point and its headroom,
        // at most a quarter further.
        if let Some(top) = series
            .iter()
            .flat_map(|x| &x.points)
            .map(|p| p.1)
            .reduce(f64::max)
        {
            assert!(
                top * 1.1 * 1.25 >= y[1],
                "y axis {y:?} wastes room over {top}"
            );
        }
    }
    assert_eq!(seen, vec![0, 1, 2, 3]);
    // x is E2E p50 in ms, y output tok/s, by latency.
    let levels = summaries(&evs);
    let pts = &curve::series(&levels)[0].points;
    let mut want: Vec<(f64, f64)> = levels
        .iter()
        .map(|l| (l.e2e.p50.as_secs_f64() * 1e3, l.output_tok_s))
        .collect();
    want.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(pts, &want);
}

/// `bench serve --record` against the mock, then the recording replayed in the app: the serve
/// view draws each level with the numbers the benchmark printed, and the server's metrics the
/// headless run scraped (as `--tui` does).
#[test]
fn a_replayed_bench_serve_recording_draws_its_levels() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mock = {
        let _g = rt.enter();
        Mock::start(Script {
            // No spinning to the microsecond: this is load, not a timing check.
            exact: false,
            // About 160 ms a request: the first level lasts about a second, long enough for
            // scrapes at 2 Hz.
            ..Script::paced(Duration::from_millis(20), Duration::from_millis(20), 8)
        })
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("serve.ron");
    let out = common::labtui_cmd()
        .args(["bench", "serve", "--endpoint", &mock.url()])
        .args([
            "--concurrency",
            "1,3",
            "--requests",
            "6",
            "--max-tokens",
            "8",
        ])
        .args(["--format", "json", "--record"])
        .arg(&rec)
        .output_within(Duration::from_secs(120));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let printed = json["levels"].as_array().unwrap();
    assert_eq!(printed.len(), 2);
    let recording = labtui::record::load(&rec).unwrap();
    let levels = summaries(&recording.events);
    let scraped: Vec<_> = recording
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Server(s) => Some(s.clone()),
            _ => None,
        })
        .collect();
    assert!(
        scraped.len() >= 2,
        "the headless run records the server's metrics: {} samples",
        scraped.len()
    );
    // The mock's own counters, read through its llama.cpp-style /metrics.
    let last = scraped.last().unwrap();
    assert_eq!(
        last.engine,
        labtui::protocol::scraped::ServerEngine::LlamaCpp
    );
    assert!(
        last.generation_tokens.unwrap_or(0.0) > 0.0,
        "the mock's tokens_predicted_total: {last:?}"
    );
    let mut app = labtui::tui::App::new(
        labtui::tui::Start::replay(recording, 1.0),
        labtui::worker::Options {
            sample_every: None,
            ..Default::default()
        },
    );
    assert!(
        app.tick(Duration::from_secs(3600)),
        "the recording's events come due"
    );
    assert_eq!(app.state.store.server.len(), scraped.len());
    assert_eq!(app.state.store.last_server.as_ref(), Some(last));
    let mut t = Terminal::new(TestBackend::new(160, 50)).unwrap();
    t.draw(|f| app.draw(f.area(), f.buffer_mut())).unwrap();
    let screen = text(&t);
    assert!(screen.contains("serve · http://127.0.0.1:"), "{screen}");
    assert!(screen.contains("server llama.cpp"), "{screen}");
    assert!(screen.contains("all 2 levels measured"), "{screen}");
    for (l, p) in levels.iter().zip(printed) {
        // The recording's numbers are the printed table's.
        let printed_tok_s = p["output_tok_s"].as_f64().unwrap();
        assert!(
            (printed_tok_s - l.output_tok_s).abs() < 0.01,
            "{printed_tok_s} printed, {} recorded",
            l.output_tok_s
        );
        assert_eq!(l.ok, 6);
        let label = match l.load {
            Load::Concurrency(c) => format!("concurrency {c}"),
            _ => unreachable!(),
        };
        let r = row(&screen, &label);
        for number in shown(l) {
            assert!(r.contains(&number), "{number} not in {r}");
        }
    }
}

/// The `--tui` feed: the load against the mock drives the app loop (no terminal), the view
/// shows its levels and the server's metrics, the app outlives the load's end and q quits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tui_feed_drives_the_dashboard_until_q() {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use labtui::tui::{App, Feed, Input, Start};
    let mock = Mock::start(Script {
        // No spinning to the microsecond: this is load, not a timing check.
        exact: false,
        ..Script::paced(Duration::from_millis(20), Duration::from_millis(5), 8)
    })
    .unwrap();
    let target = Arc::new(labtui::serve::target::Http {
        client: labtui::serve::client::Client::new(Duration::from_secs(10)),
        metrics: reqwest::Client::builder().no_proxy().build().unwrap(),
        endpoint: mock.endpoint(labtui::serve::Api::Chat),
        cancel: labtui::serve::client::Cancel::new(),
    }) as Arc<dyn Target>;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let load = tokio::spawn(drive(
        Bench {
            targets: vec![target],
            workload: Workload {
                prompts: Prompts::Builtin,
                max_tokens: 8,
                ignore_eos: true,
                temperature: 0.0,
                seed: 0,
                shape: Default::default(),
            },
            plan: LoadPlan {
                loads: vec![Load::Concurrency(1), Load::Concurrency(2)],
                // Long enough for a scrape or two at 2 Hz.
                requests: 10,
                duration: None,
                warmup: 1,
                max_error_rate: 0.5,
                slo: None,
                usd_per_hour: None,
                cut: Default::default(),
                percentiles: Vec::new(),
                search: None,
                turns: Default::default(),
            },
            sweep: None,
            api_key: None,
        },
        Stamper::new(tx, Instant::now()),
        Arc::new(AtomicBool::new(false)),
    ));
    let mut app = App::new(
        Start::watching(
            Feed {
                events: rx,
                status: "bench serve".into(),
            },
            None,
        ),
        labtui::worker::Options {
            sample_every: None,
            ..Default::default()
        },
    );
    let (keys, inputs) = tokio::sync::mpsc::unbounded_channel::<std::io::Result<Input>>();
    let inputs = futures::stream::unfold(
        inputs,
        |mut r| async move { r.recv().await.map(|x| (x, r)) },
    );
    let mut terminal = Terminal::new(TestBackend::new(160, 50)).unwrap();
    let mut last = String::new();
    let mut quit_sent = false;
    let session = app.run(
        &mut terminal,
        Box::pin(inputs),
        Duration::from_millis(10),
        |state, buf| {
            last = labtui::tui::shot::text(buf);
            // Once the load is over and its numbers are drawn, q.
            if !quit_sent && state.store.serve.finished() && state.store.last_server.is_some() {
                quit_sent = true;
                let _ = keys.send(Ok(Input::Key(KeyEvent::new(
                    KeyCode::Char('q'),
                    KeyModifiers::NONE,
                ))));
            }
        },
    );
    tokio::time::timeout(Duration::from_secs(60), session)
        .await
        .unwrap_or_else(|_| panic!("the dashboard did not quit; last screen:\n{last}"))
        .unwrap();
    let (levels, requests) = load.await.unwrap().unwrap();
    assert_eq!(levels.len(), 2);
    assert_eq!(requests.len(), 20);
    assert!(last.contains("all 2 levels measured"), "{last}");
    assert!(last.contains("server llama.cpp"), "{last}");
    for l in &levels {
        assert!(last.contains(&format!("{:.1}", l.output_tok_s)), "{last}");
    }
    assert_eq!(
        app.state.store.serve.levels, levels,
        "the view's levels are the load's"
    );
}

/// Re-record the fixture (`cargo test --test serve_view -- --ignored record_the_fixture`): the
/// `--tui` load and scrape against the mock, written as `bench serve --record` writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/fixtures/serve_bench.ron"]
async fn record_the_fixture() {
    let mock = Mock::start(Script {
        // No spinning to the microsecond: this is load, not a timing check.
        exact: false,
        ..Script::paced(Duration::from_millis(40), Duration::from_millis(10), 16)
    })
    .unwrap();
    let target = Arc::new(labtui::serve::target::Http {
        client: labtui::serve::client::Client::new(Duration::from_secs(10)),
        metrics: reqwest::Client::builder().no_proxy().build().unwrap(),
        endpoint: mock.endpoint(labtui::serve::Api::Chat),
        cancel: labtui::serve::client::Cancel::new(),
    }) as Arc<dyn Target>;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let plan = LoadPlan {
        loads: [1, 2, 4].map(Load::Concurrency).to_vec(),
        requests: 6,
        duration: None,
        warmup: 1,
        max_error_rate: 0.5,
        slo: None,
        usd_per_hour: None,
        cut: Default::default(),
        percentiles: Vec::new(),
        search: None,
        turns: Default::default(),
    };
    let workload = Workload {
        prompts: Prompts::Builtin,
        max_tokens: 16,
        ignore_eos: true,
        temperature: 0.0,
        seed: 0,
        shape: Default::default(),
    };
    let bench = Bench {
        targets: vec![target],
        workload,
        plan,
        sweep: None,
        api_key: None,
    };
    drive(
        bench,
        Stamper::new(tx, Instant::now()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    let header = labtui::record::Header::new(
        None,
        Default::default(),
        Default::default(),
        Default::default(),
    );
    let mut r = labtui::record::Recorder::create(std::path::Path::new(FIXTURE), header).unwrap();
    while let Some(e) = rx.recv().await {
        r.event(&e).unwrap();
    }
}
