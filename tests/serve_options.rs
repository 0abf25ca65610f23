//! What a user adds to every request and what the client reads besides tokens, against the
//! scripted mock on loopback: `--extra-body` and `--header` reach the server, `--no-stream`
//! measures a whole answer, a prefix cache's count is read from the usage, and each new
//! connection's setup is timed apart from the requests that use it.

mod common;

use common::client::{request, within_bound};
use labtui::serve::client::{Client, Extra};
use labtui::serve::load::Target;
use labtui::serve::mock::{Mock, Script};
use labtui::serve::target::Http;
use labtui::serve::Api;
use std::time::{Duration, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test]
async fn extra_body_fields_and_headers_reach_the_server() {
    within_bound(async {
        let mock = Mock::start(Script::instant(4)).unwrap();
        let mut body = serde_json::Map::new();
        body.insert("top_k".into(), serde_json::json!(1));
        // The user's value wins over labtui's own.
        body.insert("temperature".into(), serde_json::json!(0.7));
        let client = Client::default().with_extra(Extra {
            body,
            headers: vec![("X-Tenant".into(), "lab".into())],
            no_stream: false,
        });
        let out = client
            .stream(
                &mock.endpoint(Api::Chat),
                &request(4),
                Instant::now(),
                None,
                |_| {},
            )
            .await;
        assert!(out.ok(), "{:?}", out.failure);
        let seen = mock.requests().pop().unwrap();
        assert_eq!(seen.body["top_k"], 1);
        assert_eq!(seen.body["temperature"], 0.7);
        assert_eq!(seen.body["stream"], true);
        assert!(
            seen.headers
                .iter()
                .any(|(k, v)| k == "x-tenant" && v == "lab"),
            "{:?}",
            seen.headers
        );
    })
    .await
}

#[tokio::test]
async fn a_whole_answer_is_measured_without_a_stream() {
    within_bound(async {
        let script = Script::paced(ms(40), ms(10), 6);
        let mock = Mock::start(script).unwrap();
        let client = Client::default().with_extra(Extra {
            no_stream: true,
            ..Extra::default()
        });
        let out = client
            .stream(
                &mock.endpoint(Api::Chat),
                &request(6),
                Instant::now(),
                None,
                |_| {},
            )
            .await;
        assert!(out.ok(), "{:?}", out.failure);
        let seen = mock.requests().pop().unwrap();
        assert_eq!(seen.body["stream"], false);
        assert!(seen.body.get("stream_options").is_none());
        assert_eq!(out.output_tokens, 6);
        assert_eq!(out.text, "tok tok tok tok tok tok");
        // All of it arrives at once: the first token's time is the answer's, 40 + 5 × 10 ms.
        assert_eq!(out.ttft, Some(out.e2e));
        assert!(out.e2e >= ms(90), "{:?}", out.e2e);
        assert_eq!(out.finish.as_deref(), Some("length"));
    })
    .await
}

#[tokio::test]
async fn the_prompt_tokens_a_prefix_cache_served_are_read_from_the_usage() {
    within_bound(async {
        let mock = Mock::start(Script {
            cached_tokens: Some(7),
            ..Script::instant(3)
        })
        .unwrap();
        let ep = mock.endpoint(Api::Chat);
        let out = Client::default()
            .stream(&ep, &request(3), Instant::now(), None, |_| {})
            .await;
        assert_eq!(out.cached_tokens, Some(7));
        // llama.cpp says it in its own timings instead.
        let chunk: labtui::serve::openai::Chunk =
            serde_json::from_str(r#"{"choices":[],"timings":{"cache_n":12,"prompt_n":3}}"#)
                .unwrap();
        assert_eq!(chunk.cached_tokens(), Some(12));
    })
    .await
}

#[tokio::test]
async fn new_connections_are_timed_apart_and_reused_ones_are_not() {
    within_bound(async {
        let mock = Mock::start(Script::instant(2)).unwrap();
        let http = Http {
            client: Client::default(),
            metrics: reqwest::Client::new(),
            endpoint: mock.endpoint(Api::Chat),
            cancel: Default::default(),
        };
        for _ in 0..3 {
            let out = http.send(request(2), Instant::now()).await;
            assert!(out.ok(), "{:?}", out.failure);
        }
        // Three requests one after another share one pooled connection.
        let setups = http.connections().unwrap();
        assert_eq!(setups.len(), 1, "{setups:?}");
        assert!(setups[0] < Duration::from_secs(1));
        http.send(request(2), Instant::now()).await;
        assert_eq!(http.connections().unwrap().len(), 0);
        // Two at once need a second connection.
        let (a, b) = tokio::join!(
            http.send(request(2), Instant::now()),
            http.send(request(2), Instant::now())
        );
        assert!(a.ok() && b.ok());
        assert_eq!(http.connections().unwrap().len(), 1);
    })
    .await
}
