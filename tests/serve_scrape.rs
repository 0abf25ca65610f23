//! A server's Prometheus `/metrics` as labtui reads it: realistic bodies of vLLM, TGI, llama.cpp
//! and SGLang (fixtures typed from the metric names in each engine's source), rates across samples
//! and a restart, bodies that are no metrics at all, the scraper loop against a server on loopback
//! (metrics, a 404, a refused port, stopping), the store and the recording of its events, and
//! mutated bodies that must never panic the parser or the panes.

use labtui::protocol::{Event, Rates, ServerEngine, ServerSample, Stamped};
use labtui::serve::scrape::{self, ParseError, ScrapeConfig};
use labtui::state::{AppState, SERVER_SAMPLES};
use std::time::{Duration, Instant};
use tokio::sync::mpsc::UnboundedReceiver;

const VLLM: &str = include_str!("fixtures/metrics/vllm.txt");
const VLLM_DEPRECATED: &str = include_str!("fixtures/metrics/vllm_deprecated.txt");
const TGI: &str = include_str!("fixtures/metrics/tgi.txt");
const LLAMACPP: &str = include_str!("fixtures/metrics/llamacpp.txt");
const LLAMACPP_OLD: &str = include_str!("fixtures/metrics/llamacpp_unified_kv_before.txt");
const SGLANG: &str = include_str!("fixtures/metrics/sglang.txt");
const UNKNOWN: &str = include_str!("fixtures/metrics/unknown.txt");

/// Nothing in these tests may hang: every wait is bounded.
const LIMIT: Duration = Duration::from_secs(10);

fn source<'a>(s: &'a ServerSample, field: &str) -> &'a str {
    s.sources.get(field).map_or("", String::as_str)
}

// ---------------------------------------------------------------------------------------------
// Parsing

#[test]
fn vllm_v1_with_speculation() {
    let s = scrape::parse(VLLM).unwrap();
    assert_eq!(s.engine, ServerEngine::Vllm);
    assert_eq!(s.kv_usage, Some(0.4237));
    assert_eq!(
        source(&s, "kv_usage"),
        "vllm:kv_cache_usage_perc",
        "the current name first"
    );
    assert_eq!((s.running, s.waiting), (Some(12.0), Some(3.0)));
    assert_eq!(s.prompt_tokens, Some(1_048_576.0));
    assert_eq!(s.generation_tokens, Some(262_144.0));
    assert_eq!(
        (s.prefix_hits, s.prefix_queries),
        (Some(393_216.0), Some(1_048_576.0))
    );
    assert_eq!(source(&s, "prefix_hits"), "vllm:prefix_cache_hits_total");
    assert_eq!(s.spec_drafts, Some(50_000.0));
    assert_eq!(s.spec_draft_tokens, Some(150_000.0));
    assert_eq!(s.spec_accepted, Some(90_000.0));
    assert_eq!(s.spec_accepted_per_pos, vec![40_000.0, 30_000.0, 20_000.0]);
    assert_eq!(
        source(&s, "spec_accepted_per_pos"),
        "vllm:spec_decode_num_accepted_tokens_per_pos_total"
    );
    assert_eq!(
        s.kv_tokens, None,
        "vLLM exports no token count of its KV cache"
    );
    assert_eq!(s.at, Duration::ZERO, "the caller stamps it");
    // vLLM's own formulas (SpecDecodingLogging): 1 + accepted ÷ drafts, per position ÷ drafts.
    let r = Rates::since_start(&s);
    assert_eq!(r.spec_mean_len, Some(2.8));
    assert_eq!(r.spec_acceptance, Some(0.6));
    assert_eq!(r.spec_per_pos, vec![0.8, 0.6, 0.4]);
    assert_eq!(r.prefix_hit_rate, Some(0.375));
}

#[test]
fn vllm_names_deprecated_in_0_9() {
    let s = scrape::parse(VLLM_DEPRECATED).unwrap();
    assert_eq!(s.kv_usage, Some(0.0712));
    assert_eq!(source(&s, "kv_usage"), "vllm:gpu_cache_usage_perc");
    assert_eq!(
        source(&s, "prefix_queries"),
        "vllm:gpu_prefix_cache_queries_total"
    );
    assert_eq!(
        (s.prefix_hits, s.prefix_queries),
        (Some(5120.0), Some(20480.0))
    );
    assert!(
        s.spec_accepted_per_pos.is_empty() && s.spec_drafts.is_none(),
        "no speculation"
    );
}

#[test]
fn vllm_data_parallel_engines_add_up_and_usage_averages() {
    let body = "\
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine=\"0\",model_name=\"m\"} 5.0
vllm:num_requests_running{engine=\"1\",model_name=\"m\"} 7.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine=\"0\",model_name=\"m\"} 0.2
vllm:kv_cache_usage_perc{engine=\"1\",model_name=\"m\"} 0.4
# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine=\"0\",model_name=\"m\",position=\"0\"} 3.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine=\"1\",model_name=\"m\",position=\"0\"} 4.0
vllm:spec_decode_num_accepted_tokens_per_pos_total{engine=\"1\",model_name=\"m\",position=\"1\"} 2.0
";
    let s = scrape::parse(body).unwrap();
    assert_eq!(s.running, Some(12.0));
    assert!((s.kv_usage.unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(s.spec_accepted_per_pos, vec![7.0, 2.0]);
}

#[test]
fn tgi_router() {
    let s = scrape::parse(TGI).unwrap();
    assert_eq!(s.engine, ServerEngine::Tgi);
    assert_eq!((s.running, s.waiting), (Some(32.0), Some(4.0)));
    assert_eq!(s.prompt_tokens, Some(522_240.0));
    assert_eq!(source(&s, "prompt_tokens"), "tgi_request_input_length_sum");
    assert_eq!(s.generation_tokens, Some(261_120.0));
    assert_eq!(s.kv_usage, None, "TGI exports no KV-cache usage");
    assert_eq!(s.prefix_hits, None);
}

#[test]
fn llama_server_with_metrics() {
    let s = scrape::parse(LLAMACPP).unwrap();
    assert_eq!(s.engine, ServerEngine::LlamaCpp);
    assert_eq!((s.running, s.waiting), (Some(4.0), Some(2.0)));
    assert_eq!(s.prompt_tokens, Some(3120.0));
    assert_eq!(s.generation_tokens, Some(2048.0));
    // Its prompt counter leaves cached tokens out: looked up = processed + cached.
    assert_eq!(
        (s.prefix_hits, s.prefix_queries),
        (Some(1040.0), Some(4160.0))
    );
    assert_eq!(
        source(&s, "prefix_queries"),
        "llamacpp:prompt_tokens_total + llamacpp:prompt_tokens_cached_total"
    );
    assert_eq!(
        (s.spec_drafts, s.spec_draft_tokens, s.spec_accepted),
        (Some(512.0), Some(1536.0), Some(1024.0))
    );
    assert_eq!(s.spec_accepted_per_pos, vec![450.0, 330.0, 244.0]);
    assert_eq!(
        (s.generation_tok_s, s.prompt_tok_s),
        (Some(54.75), Some(330.2))
    );
    assert_eq!(s.kv_usage, None, "gone since the KV cache was unified");
}

#[test]
fn llama_server_before_the_unified_kv_cache() {
    let s = scrape::parse(LLAMACPP_OLD).unwrap();
    assert_eq!(s.engine, ServerEngine::LlamaCpp);
    assert_eq!((s.kv_usage, s.kv_tokens), (Some(0.0751953), Some(308.0)));
    assert_eq!(s.prefix_hits, None, "no cached-token counter then");
}

#[test]
fn sglang_scheduler_and_tokenizer() {
    let s = scrape::parse(SGLANG).unwrap();
    assert_eq!(s.engine, ServerEngine::Sglang);
    assert_eq!((s.kv_usage, s.kv_tokens), (Some(0.28), Some(45311.0)));
    assert_eq!((s.running, s.waiting), (Some(24.0), Some(7.0)));
    assert_eq!(s.prompt_tokens, Some(8_128_902.0));
    assert_eq!(s.generation_tokens, Some(7_557_572.0));
    assert_eq!(
        (s.prefix_hits, s.prefix_queries),
        (Some(61024.0), Some(8_128_902.0))
    );
    assert_eq!(s.prefix_hit_rate, Some(0.0075));
    assert_eq!(s.generation_tok_s, Some(1843.2));
    assert_eq!(
        (s.spec_accept_length, s.spec_accept_rate),
        (Some(3.12), Some(0.53))
    );
}

#[test]
fn another_exporter_is_an_unknown_engine_not_an_error() {
    let s = scrape::parse(UNKNOWN).unwrap();
    assert_eq!(s.engine, ServerEngine::Unknown);
    assert_eq!(s, ServerSample::default(), "nothing read, nothing made up");
}

#[test]
fn no_metrics_is_a_clear_error() {
    assert_eq!(scrape::parse(""), Err(ParseError::Empty));
    assert_eq!(scrape::parse(" \n\r\n\t"), Err(ParseError::Empty));
    for garbage in [
        "<!DOCTYPE html><html><body>404 page not found</body></html>",
        "{\"error\":\"not found\"}",
        "\u{0}\u{1}\u{2}\u{fffd}\u{fffd}",
        "# HELP vllm:x only comments\n# TYPE vllm:x gauge\n",
        "vllm:num_requests_running{model_name=\"m\"} not-a-number\n",
    ] {
        let e = scrape::parse(garbage).unwrap_err();
        let msg = e.to_string();
        assert!(
            matches!(e, ParseError::NoSamples { .. }),
            "{garbage:?}: {e:?}"
        );
        assert!(msg.contains("no Prometheus samples"), "{msg}");
        let start: String = garbage.lines().next().unwrap().chars().take(60).collect();
        assert!(
            msg.contains(&format!("{start:?}")),
            "the message quotes the start: {msg}"
        );
    }
}

#[test]
fn values_that_are_no_numbers_are_skipped() {
    let s = scrape::parse(
        "vllm:kv_cache_usage_perc NaN\nvllm:num_requests_running +Inf\nvllm:num_requests_waiting 2\n",
    )
    .unwrap();
    assert_eq!((s.kv_usage, s.running, s.waiting), (None, None, Some(2.0)));
}

// ---------------------------------------------------------------------------------------------
// Rates

fn bumped(body: &str, from: &str, to: &str) -> String {
    assert!(body.contains(from), "{from} is in the fixture");
    body.replace(from, to)
}

#[test]
fn rates_across_samples_and_a_restart() {
    let mut a = scrape::parse(VLLM).unwrap();
    a.at = Duration::from_millis(1000);
    // Half a second later: 500 more generated tokens, 2048 prompt tokens of which 1024 were hits.
    let later = bumped(VLLM, "} 262144.0", "} 262644.0");
    let later = bumped(
        &later,
        "prefix_cache_hits_total{engine=\"0\",model_name=\"Qwen/Qwen2.5-7B-Instruct\"} 393216.0",
        "prefix_cache_hits_total{engine=\"0\",model_name=\"Qwen/Qwen2.5-7B-Instruct\"} 394240.0",
    );
    let later = later.replace("1.048576e+06", "1.050624e+06");
    let mut b = scrape::parse(&later).unwrap();
    b.at = Duration::from_millis(1500);
    let r = Rates::between(&a, &b).unwrap();
    assert_eq!(r.seconds, 0.5);
    assert_eq!(r.generation_tok_s, Some(1000.0));
    assert_eq!(r.prompt_tok_s, Some(4096.0));
    assert_eq!(r.prefix_hit_rate, Some(0.5));
    assert!(!r.reset);
    // The server restarts: its counters start again from zero.
    let restarted = "\
vllm:generation_tokens_total{engine=\"0\",model_name=\"m\"} 250.0
vllm:prompt_tokens_total{engine=\"0\",model_name=\"m\"} 0.0
";
    let mut c = scrape::parse(restarted).unwrap();
    c.at = Duration::from_millis(2500);
    let r = Rates::over([&a, &b, &c]).unwrap();
    assert!(r.reset);
    assert_eq!(r.seconds, 1.5);
    assert_eq!(
        r.generation_tok_s,
        Some(500.0),
        "(500 + 250) tokens in 1.5 s"
    );
    let r = Rates::between(&b, &c).unwrap();
    assert_eq!(
        r.generation_tok_s,
        Some(250.0),
        "what it counted since the restart"
    );
    assert_eq!(
        r.prefix_hit_rate, None,
        "the restarted server exports no prefix counters"
    );
}

// ---------------------------------------------------------------------------------------------
// Store and recording

fn stamped(ms: u64, sample: ServerSample) -> Stamped {
    Stamped {
        at: Duration::from_millis(ms),
        event: Event::Server(ServerSample {
            at: Duration::from_millis(ms),
            ..sample
        }),
    }
}

#[test]
fn the_store_keeps_a_bounded_series_and_the_latest() {
    let mut state = AppState::new("synthetic", "");
    let base = scrape::parse(VLLM).unwrap();
    for i in 0..(SERVER_SAMPLES as u64 + 10) {
        let mut s = base.clone();
        s.generation_tokens = Some(100.0 * i as f64);
        state.apply(&stamped(500 * i, s));
    }
    assert_eq!(state.store.server.len(), SERVER_SAMPLES);
    let last = state.store.last_server.as_ref().unwrap();
    assert_eq!(
        last.generation_tokens,
        Some(100.0 * (SERVER_SAMPLES as f64 + 9.0))
    );
    let r = state.store.server_rates().unwrap();
    assert_eq!(r.generation_tok_s, Some(200.0));
    assert!(r.seconds <= 2.0 && r.seconds >= 0.5);
    assert!(state.store.server_window().unwrap().seconds > 100.0);
    // A (crafted) recorded sample with more positions than a scrape keeps is cut to size.
    let wide = ServerSample {
        spec_accepted_per_pos: vec![1.0; 100_000],
        ..base
    };
    state.apply(&stamped(10_000_000, wide));
    let kept = &state
        .store
        .last_server
        .as_ref()
        .unwrap()
        .spec_accepted_per_pos;
    assert_eq!(kept.len(), labtui::protocol::MAX_SPEC_POSITIONS);
}

#[test]
fn server_events_are_recorded_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("serve.ron");
    let header = labtui::record::Header::new(
        None,
        Default::default(),
        Default::default(),
        Default::default(),
    );
    let mut rec = labtui::record::Recorder::create(&path, header).unwrap();
    let events: Vec<Stamped> = [VLLM, TGI, LLAMACPP, SGLANG, UNKNOWN]
        .iter()
        .enumerate()
        .map(|(i, body)| stamped(500 * i as u64, scrape::parse(body).unwrap()))
        .collect();
    for e in &events {
        rec.event(e).unwrap();
    }
    let back = labtui::record::load(&path).unwrap();
    assert_eq!(back.events, events);
}

#[test]
fn a_sample_line_from_an_older_labtui_still_reads() {
    // Fields added later default: a recorded sample carrying only some of them still loads.
    let line =
        "(at:(secs:1,nanos:0),event:Server((at:(secs:1,nanos:0),engine:Vllm,kv_usage:Some(0.5))))";
    let s: Stamped = ron::from_str(line).unwrap();
    let Event::Server(s) = s.event else { panic!() };
    assert_eq!(s.kv_usage, Some(0.5));
    assert!(s.sources.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The scraper loop

/// A server on loopback answering `/metrics` with `body` (or no `/metrics` route at all).
async fn serve(body: Option<&'static str>) -> String {
    use axum::routing::get;
    let mut app = axum::Router::new().route("/health", get(|| async { "ok" }));
    if let Some(body) = body {
        app = app.route("/metrics", get(move || async move { body }));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn fast(url: &str) -> ScrapeConfig {
    ScrapeConfig {
        period: Duration::from_millis(50),
        timeout: Duration::from_millis(500),
        ..ScrapeConfig::new(url)
    }
}

/// Events received within `window`.
async fn collect(rx: &mut UnboundedReceiver<Stamped>, window: Duration) -> Vec<Stamped> {
    let mut out = Vec::new();
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(e)) = tokio::time::timeout_at(end, rx.recv()).await {
        out.push(e);
    }
    out
}

fn notices(evs: &[Stamped]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match &e.event {
            Event::Notice { message } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn samples(evs: &[Stamped]) -> Vec<&ServerSample> {
    evs.iter()
        .filter_map(|e| match &e.event {
            Event::Server(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn scrapes_a_server_a_few_times_a_second() {
    tokio::time::timeout(LIMIT, async {
        let url = serve(Some(VLLM)).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let clock = Instant::now();
        let scraper = scrape::spawn(fast(&format!("{url}/v1")), clock, tx);
        let evs = collect(&mut rx, Duration::from_millis(600)).await;
        let got = samples(&evs);
        assert!(got.len() >= 4, "{} samples in 600 ms at 20 Hz", got.len());
        assert!(got
            .iter()
            .all(|s| s.engine == ServerEngine::Vllm && s.running == Some(12.0)));
        // Stamped on the caller's clock, in order, the event's time the sample's.
        assert!(got.windows(2).all(|w| w[0].at < w[1].at));
        for e in &evs {
            if let Event::Server(s) = &e.event {
                assert_eq!(e.at, s.at);
                assert!(s.at <= clock.elapsed());
            }
        }
        assert_eq!(
            notices(&evs),
            vec![format!("server metrics: vLLM at {url}/metrics")]
        );
        scraper.stop().await;
        // Stopped: what was sent before is all there is; the sender went with the task.
        while rx.recv().await.is_some() {}
    })
    .await
    .expect("the scraper answers within the limit");
}

#[tokio::test]
async fn a_server_without_metrics_is_said_once() {
    tokio::time::timeout(LIMIT, async {
        let url = serve(None).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let scraper = scrape::spawn(fast(&url), Instant::now(), tx);
        let evs = collect(&mut rx, Duration::from_millis(500)).await;
        assert!(samples(&evs).is_empty());
        let said = notices(&evs);
        assert_eq!(said.len(), 1, "said once, not every 50 ms: {said:?}");
        assert!(
            said[0].contains("HTTP 404") && said[0].contains("--metrics"),
            "{}",
            said[0]
        );
        assert!(
            !scraper.is_finished(),
            "it keeps trying: the server may come back"
        );
        drop(scraper);
        // Dropping the scraper stops it: the channel closes (this would hang, and time out, if not).
        while rx.recv().await.is_some() {}
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_refused_port_is_said_once() {
    tokio::time::timeout(LIMIT, async {
        // A port that was just free: nothing listens there now.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let scraper = scrape::spawn(fast(&url), Instant::now(), tx);
        let evs = collect(&mut rx, Duration::from_millis(400)).await;
        let said = notices(&evs);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("connection refused"), "{}", said[0]);
        assert!(
            said[0].contains(&format!("127.0.0.1:{port}/metrics")),
            "{}",
            said[0]
        );
        scraper.stop().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_body_that_is_no_metrics_is_said_once() {
    tokio::time::timeout(LIMIT, async {
        let url = serve(Some("<html>hello</html>")).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let scraper = scrape::spawn(fast(&url), Instant::now(), tx);
        let said = notices(&collect(&mut rx, Duration::from_millis(400)).await);
        assert_eq!(said.len(), 1, "{said:?}");
        assert!(said[0].contains("no Prometheus samples"), "{}", said[0]);
        scraper.stop().await;
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn a_bad_url_ends_the_loop_with_a_notice() {
    tokio::time::timeout(LIMIT, async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _scraper = scrape::spawn(fast("localhost:8000"), Instant::now(), tx);
        let evs = collect(&mut rx, Duration::from_millis(300)).await;
        let said = notices(&evs);
        assert_eq!(said.len(), 1);
        assert!(said[0].contains("http://127.0.0.1:8000"), "{}", said[0]);
        assert_eq!(rx.recv().await, None, "the loop ended");
    })
    .await
    .expect("within the limit");
}

#[tokio::test]
async fn the_loop_ends_when_its_receiver_is_gone() {
    tokio::time::timeout(LIMIT, async {
        let url = serve(Some(TGI)).await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let scraper = scrape::spawn(fast(&url), Instant::now(), tx);
        drop(rx);
        while !scraper.is_finished() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the scraper ends by itself");
}

#[tokio::test]
async fn scrape_once_reads_one_body() {
    tokio::time::timeout(LIMIT, async {
        let url = serve(Some(SGLANG)).await;
        let cfg = fast(&url);
        let s = scrape::scrape_once(
            &reqwest::Client::new(),
            &scrape::metrics_url(&url).unwrap(),
            &cfg,
        )
        .await
        .unwrap();
        assert_eq!(s.engine, ServerEngine::Sglang);
    })
    .await
    .expect("within the limit");
}
