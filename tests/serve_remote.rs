//! The remote backend against the scripted mock on loopback: the worker handle, driven with no
//! terminal, answers `Generate` with the events a local run emits (one token event per output
//! token, TTFT as scripted), stops a run on `Stop`, reports a refused endpoint as an error, and
//! answers the engine's settings with a notice. Every wait is bounded.

use labtui::protocol::{
    Command, Event, FinishReason, GenParams, Notice, Phase, Quant, RunSummary, SettingChange,
    Stamped, Unserved,
};
use labtui::serve::mock::{Mock, Script, MODEL};
use labtui::serve::{Api, Endpoint};
use labtui::worker::{Options, Worker, SHUTDOWN_WAIT};
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn opts() -> Options {
    Options {
        sample_every: None,
        ..Options::default()
    }
}

fn generate(max_tokens: usize) -> Command {
    Command::Generate {
        prompt: "Tell me a story about a lighthouse".into(),
        params: GenParams {
            max_tokens,
            ..GenParams::default()
        },
    }
}

/// The next event that `pick` accepts (others are kept in `seen`); fails after 10 s.
async fn until<T>(
    w: &mut Worker,
    seen: &mut Vec<Event>,
    what: &str,
    mut pick: impl FnMut(&Event) -> Option<T>,
) -> T {
    let wait = async {
        while let Some(Stamped { event, .. }) = w.events.recv().await {
            let got = pick(&event);
            seen.push(event);
            if let Some(t) = got {
                return t;
            }
        }
        panic!("the worker's events ended before {what}");
    };
    match tokio::time::timeout(Duration::from_secs(10), wait).await {
        Ok(t) => t,
        Err(_) => panic!("no {what} within 10 s; seen: {seen:#?}"),
    }
}

fn finished(e: &Event) -> Option<RunSummary> {
    match e {
        Event::RunFinished { summary, .. } => Some(summary.clone()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_gives_the_events_of_a_local_run() {
    // The script's times are checked as lower bounds and as an order: a loaded machine delays
    // what arrives, it never hastens it.
    let script = Script {
        ttft: ms(40),
        chunk_delays: vec![ms(100)],
        tokens_per_chunk: 3,
        tokens: 10,
        ..Script::default()
    };
    let mock = Mock::start(script).unwrap();
    let mut w = Worker::spawn_remote(mock.endpoint(Api::Chat), opts());
    let mut seen = Vec::new();
    let info = until(&mut w, &mut seen, "the model", |e| match e {
        Event::ModelLoaded(i) => Some(i.clone()),
        _ => None,
    })
    .await;
    assert_eq!(info.name, MODEL);
    assert_eq!(info.arch, "remote");
    assert_eq!(info.device, format!("remote: {}", mock.url()));

    w.send(generate(10));
    let summary = until(&mut w, &mut seen, "the run's end", finished).await;
    let started = seen
        .iter()
        .position(|e| matches!(e, Event::RunStarted { .. }))
        .expect("RunStarted");
    let prefill = seen
        .iter()
        .position(|e| matches!(e, Event::PrefillDone { .. }))
        .expect("PrefillDone");
    let tokens: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Token(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert!(started < prefill);
    assert_eq!(tokens.len(), 10, "one event per token: {tokens:#?}");
    assert_eq!(
        tokens.iter().map(|t| t.index).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(tokens[0].phase, Phase::Prefill);
    assert!(tokens[1..].iter().all(|t| t.phase == Phase::Decode));
    // A chunk's text rides on its first token.
    assert_eq!(tokens[0].text, "w0 w1 w2 ");
    assert_eq!(tokens[1].text, "");
    assert_eq!(tokens[3].text, "w3 w4 w5 ");
    let text: String = tokens.iter().map(|t| t.text.as_str()).collect();
    assert_eq!(text, summary.text);

    assert_eq!(summary.generated_tokens, 10);
    assert_eq!(summary.reason, FinishReason::MaxTokens);
    // TTFT is the first chunk's arrival: no sooner than the 40 ms scripted, and before the
    // second chunk, which the script sends a whole 100 ms gap later.
    assert!(summary.ttft >= ms(40), "TTFT {:?}", summary.ttft);
    assert!(
        summary.ttft < tokens[3].elapsed,
        "TTFT {:?} is the first chunk's, not the second's ({:?})",
        summary.ttft,
        tokens[3].elapsed
    );
    let Some(Event::PrefillDone { duration, .. }) = seen.get(prefill) else {
        unreachable!()
    };
    assert_eq!(*duration, tokens[0].elapsed);
    assert_eq!(
        *duration, summary.ttft,
        "one clock for the event and the summary"
    );
    // The last chunk leaves the mock at least 40 + 3 × 100 ms after the request came in (when
    // each chunk arrives here depends on this machine's load; when it left does not).
    assert!(
        summary.end_to_end >= ms(340),
        "E2E {:?}",
        summary.end_to_end
    );
    assert!(summary.decode_tok_s > 0.0);
    assert!(summary.itl_p99 >= summary.itl_p50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completions_route_gives_the_same_events() {
    let mock = Mock::start(Script::instant(6)).unwrap();
    let mut w = Worker::spawn_remote(mock.endpoint(Api::Completions), opts());
    let mut seen = Vec::new();
    w.send(generate(6));
    let summary = until(&mut w, &mut seen, "the run's end", finished).await;
    let tokens: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::Token(t) => Some(t.text.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tokens.len(), 6);
    assert_eq!(summary.generated_tokens, 6);
    assert_eq!(tokens.concat(), summary.text);
    assert!(!summary.text.is_empty());
    assert!(!seen.iter().any(|e| matches!(e, Event::Error { .. })));
}

/// The mock counts a prompt's whitespace-separated words as its tokens.
const PROMPT_WORDS: usize = 7;

/// The `tokens` of the run's `PrefillDone`, and its summary.
async fn prompt_counts(script: Script) -> (usize, RunSummary) {
    assert_eq!(
        "Tell me a story about a lighthouse"
            .split_whitespace()
            .count(),
        PROMPT_WORDS
    );
    let mock = Mock::start(script).unwrap();
    let mut w = Worker::spawn_remote(mock.endpoint(Api::Chat), opts());
    let mut seen = Vec::new();
    w.send(generate(6));
    let summary = until(&mut w, &mut seen, "the run's end", finished).await;
    let prefill = seen
        .iter()
        .find_map(|e| match e {
            Event::PrefillDone { tokens, .. } => Some(*tokens),
            _ => None,
        })
        .expect("PrefillDone");
    (prefill, summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_prompt_tokens_reach_the_prefill_and_the_summary() {
    // Usage on every chunk (vLLM's continuous usage): known at the first token.
    let (prefill, summary) = prompt_counts(Script::paced(ms(20), ms(5), 6)).await;
    assert_eq!(prefill, PROMPT_WORDS);
    assert_eq!(summary.prompt_tokens, PROMPT_WORDS);
    let expected = PROMPT_WORDS as f64 / summary.prefill.as_secs_f64();
    assert!(
        (summary.prefill_tok_s - expected).abs() < 1e-6 * expected,
        "prefill {} tok/s against {expected}",
        summary.prefill_tok_s
    );

    // Usage only at the end: unknown at the first token, in the summary.
    let script = Script {
        continuous_usage: false,
        ..Script::paced(ms(20), ms(5), 6)
    };
    let (prefill, summary) = prompt_counts(script).await;
    assert_eq!(prefill, 0, "not known before the usage came");
    assert_eq!(summary.prompt_tokens, PROMPT_WORDS);
    assert!(summary.prefill_tok_s > 0.0);

    // No usage at all: unknown, not invented.
    let script = Script {
        continuous_usage: false,
        final_usage: false,
        ..Script::paced(ms(20), ms(5), 6)
    };
    let (prefill, summary) = prompt_counts(script).await;
    assert_eq!(prefill, 0);
    assert_eq!(summary.prompt_tokens, 0);
    assert_eq!(summary.prefill_tok_s, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_run_at_once() {
    let mock = Mock::start(Script::paced(ms(5), ms(50), 200)).unwrap();
    let mut w = Worker::spawn_remote(mock.endpoint(Api::Chat), opts());
    let mut seen = Vec::new();
    w.send(generate(200));
    until(&mut w, &mut seen, "a few tokens", |e| match e {
        Event::Token(t) if t.index == 2 => Some(()),
        _ => None,
    })
    .await;
    let asked = Instant::now();
    w.send(Command::Stop);
    let summary = until(&mut w, &mut seen, "the stopped run", finished).await;
    // Tokens come every 50 ms and 200 were asked for: 10 s if Stop were ignored.
    assert!(asked.elapsed() < ms(2000), "{:?}", asked.elapsed());
    assert_eq!(summary.reason, FinishReason::Stopped);
    assert!(summary.generated_tokens < 200);
    assert!(!seen.iter().any(|e| matches!(e, Event::Error { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_endpoint_is_an_error_not_a_hang() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ep = Endpoint {
        url: format!("http://127.0.0.1:{port}"),
        api_key: None,
        model: Some("served".into()),
        api: Api::Chat,
    };
    let mut w = Worker::spawn_remote(ep, opts());
    let mut seen = Vec::new();
    w.send(generate(8));
    let message = until(&mut w, &mut seen, "an error", |e| match e {
        Event::Error { message } => Some(message.clone()),
        _ => None,
    })
    .await;
    assert!(!message.is_empty());
    assert!(!seen.iter().any(|e| matches!(e, Event::RunFinished { .. })));
    let dropped = Instant::now();
    drop(w);
    assert!(dropped.elapsed() <= SHUTDOWN_WAIT + ms(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_settings_get_a_notice() {
    let mock = Mock::start(Script::instant(4)).unwrap();
    let mut w = Worker::spawn_remote(mock.endpoint(Api::Chat), opts());
    let mut seen = Vec::new();
    let asked = SettingChange::Quant(Quant::Q8_0);
    w.send(Command::Set(asked.clone()));
    let refused = until(&mut w, &mut seen, "a notice", |e| match e {
        Event::Note(Notice::NotRemote { asked, .. }) => Some(asked.clone()),
        _ => None,
    })
    .await;
    assert_eq!(refused, Unserved::Setting(asked));
    // The worker still runs.
    w.send(generate(16));
    let summary = until(&mut w, &mut seen, "a run", finished).await;
    assert_eq!(summary.generated_tokens, 4);
    assert_eq!(summary.reason, FinishReason::Eos);
}
