//! Every pane in remote mode (`labtui --endpoint URL` on llama-server): what the server told
//! (its context, vocabulary, hidden size and bytes from `/v1/models` and `/props`, its KV use from
//! `/metrics`) is shown, and what it cannot tell (layers, heads, threads) says so instead of
//! drawing zeros, infinities or negative axes. Snapshots of each pane at 100×30.

mod common;

use common::screen::{draw, events, Pane};
use labtui::protocol::{Event, Stamped};
use labtui::serve::info::ServerInfo;
use labtui::serve::{Api, Endpoint};
use labtui::state::AppState;
use labtui::tui::panes;
use std::time::Duration;

/// What llama-server said of the 0.5B at `--parallel 4 -c 8192` (captured).
fn llama_info() -> ServerInfo {
    ServerInfo {
        context: Some(2048),
        context_train: Some(32768),
        vocab: Some(151936),
        hidden: Some(896),
        parameters: Some(630_167_424),
        bytes: Some(485_452_288),
        slots: Some(4),
        quant: Some("Q4_K - Medium".into()),
    }
}

/// The recorded local run's events as a remote run gives them: the server's model, and tokens
/// that hold no local KV cache; then two scrapes of llama.cpp's metrics.
fn remote_state(info: &ServerInfo, metrics: Option<&str>) -> AppState {
    let ep = Endpoint {
        url: "http://127.0.0.1:8093".into(),
        api_key: None,
        model: None,
        api: Api::Chat,
    };
    let mut s = AppState::new(
        "http://127.0.0.1:8093",
        "Write a Rust function that reverses a string.",
    );
    let model = labtui::worker::remote::endpoint_info(
        &ep,
        "qwen-0.5b.gguf".into(),
        info,
        Duration::from_millis(40),
    );
    for mut e in events() {
        match &mut e.event {
            Event::ModelLoaded(m) => *m = model.clone(),
            Event::ModelLoading { .. } | Event::KvBlocks { .. } => continue,
            Event::Token(t) => {
                t.kv_tokens = 0;
                t.kv_bytes = 0;
            }
            _ => {}
        }
        s.apply(&e);
    }
    if let Some(body) = metrics {
        let at = s.store.now;
        for (i, extra) in [0.0, 64.0].into_iter().enumerate() {
            let mut sample = labtui::serve::scrape::parse(body).unwrap();
            sample.at = at + Duration::from_millis(500 * i as u64);
            sample.generation_tokens = sample.generation_tokens.map(|g| g + extra);
            s.apply(&Stamped {
                at: sample.at,
                event: Event::Server(sample),
            });
        }
    }
    s
}

const NONSENSE: [&str; 6] = [
    "0 layers",
    "inf tokens",
    "-1 tok",
    "0 thr",
    "context 0 / 0",
    "NaN",
];

#[test]
fn every_pane_in_remote_mode_says_what_it_knows() {
    let metrics = include_str!("fixtures/metrics/llamacpp.txt");
    let panes: [(&str, Pane); 7] = [
        ("status", panes::status::render_top),
        ("timing", panes::timing::render),
        ("kv", panes::kv::render),
        ("memory", panes::memory::render),
        ("spec", panes::spec::render),
        ("tape", panes::tape::render),
        ("sched", panes::sched::render),
    ];
    let mut wrong = Vec::new();
    for (name, info, body) in [
        ("llama", llama_info(), Some(metrics)),
        ("bare", ServerInfo::default(), None),
    ] {
        let s = remote_state(&info, body);
        for (pane, render) in panes {
            let h = if pane == "status" { 1 } else { 30 };
            let t = draw(&s, render, 100, h);
            let screen = format!("{}", t.backend());
            for bad in NONSENSE {
                if screen.contains(bad) {
                    wrong.push(format!("{pane} ({name}) shows {bad:?}:\n{screen}"));
                }
            }
            insta::assert_snapshot!(format!("remote_{pane}_{name}"), t.backend());
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// In remote mode each pane's figures are drawn, the server's name the metric they were read
/// from, and `e` lists them.
#[test]
fn remote_figures_are_drawn_and_name_their_metrics() {
    use labtui::state::figure::Measured;
    use labtui::state::{Action, Focus};
    let metrics = include_str!("fixtures/metrics/llamacpp.txt");
    let mut s = remote_state(&llama_info(), Some(metrics));
    let mut server = Vec::new();
    for (focus, render) in [
        (Focus::Tape, panes::tape::render as Pane),
        (Focus::Memory, panes::memory::render),
        (Focus::Spec, panes::spec::render),
        (Focus::Timing, panes::timing::render),
        (Focus::Kv, panes::kv::render),
    ] {
        s.update(Action::Focus(focus));
        let Some((_, figs)) = panes::explain::figures(&s) else {
            panic!("{focus:?}: no figures");
        };
        let screen = format!("{}", draw(&s, render, 160, 30).backend());
        for f in &figs {
            assert!(
                screen.contains(&f.shown()),
                "{focus:?}: {} {} not drawn:\n{screen}",
                f.name,
                f.shown()
            );
            if f.measured == Measured::Server {
                server.push(f.formula());
            }
        }
    }
    // The running gauge and the generation counter, by their llama.cpp names.
    for metric in [
        "llamacpp:requests_processing",
        "llamacpp:tokens_predicted_total",
    ] {
        assert!(
            server.iter().any(|f| f.contains(metric)),
            "{metric}: {server:#?}"
        );
    }
}
