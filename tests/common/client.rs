//! The serving client's test helpers: a bounded test, a streamed request, a failing one.

use labtui::serve::client::{Client, Piece};
use labtui::serve::FailureKind;
use labtui::serve::{Api, Endpoint, Outcome, Request};
use std::future::Future;
use std::time::{Duration, Instant};

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// No test may hang: each runs under this bound.
pub async fn within_bound<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("the test ran past its 20 s bound")
}

pub fn request(max_tokens: usize) -> Request {
    Request {
        context: Vec::new(),
        prompt: "Tell me a story about a lighthouse".into(),
        max_tokens,
        ignore_eos: true,
        temperature: 0.0,
    }
}

pub async fn stream(
    client: &Client,
    ep: &Endpoint,
    max_tokens: usize,
) -> (Outcome, Vec<(Duration, usize, String)>) {
    let mut pieces = Vec::new();
    let out = client
        .stream(
            ep,
            &request(max_tokens),
            Instant::now(),
            None,
            |p: &Piece| pieces.push((p.at, p.tokens, p.text.to_string())),
        )
        .await;
    (out, pieces)
}

/// A request that fails, with its kind and a message that names what happened.
pub async fn fails(client: &Client, ep: &Endpoint, kind: FailureKind, says: &str) -> Outcome {
    let (out, _) = stream(client, ep, 100).await;
    let f = out.failure.clone().expect("the request should fail");
    eprintln!("{:?}: {}", f.kind, f.message);
    assert_eq!(f.kind, kind, "{}", f.message);
    assert!(
        f.message.contains(says),
        "the message {:?} should say {says:?}",
        f.message
    );
    assert!(!f.message.contains('\n'), "one line: {:?}", f.message);
    out
}

pub fn endpoint(url: String) -> Endpoint {
    Endpoint {
        url,
        api_key: None,
        model: Some("m".into()),
        api: Api::Chat,
    }
}
