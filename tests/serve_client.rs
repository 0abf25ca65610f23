//! The serving client against the scripted mock on loopback: what it measures matches what the
//! script did, tokens are split and counted from the server's usage, and each fault ends the
//! request with its kind, a message, and what was measured before it. Every test is bounded.

mod common;

use common::client::{ms, request, stream, within_bound};

use labtui::serve::client::{Client, CountTokens, Piece};
use labtui::serve::mock::{self, Mock, Script};
use labtui::serve::{Api, Counted, Endpoint, FailureKind, Outcome};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Timing tests run alone: they hold this for writing, every other test holds it for reading.
/// On a two-core runner, the 64-stream benchmark beside a timing test delays it by milliseconds.
static TIMING: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// No test may hang: each runs under this bound. It shares the machine with other non-timing
/// tests only.
async fn bounded<T>(f: impl Future<Output = T>) -> T {
    let _shared = TIMING.read().await;
    within_bound(f).await
}

/// A timing test: bounded, and alone among this file's tests.
async fn bounded_alone<T>(f: impl Future<Output = T>) -> T {
    let _alone = TIMING.write().await;
    within_bound(f).await
}

/// The script with its delays scaled by [`common::timing_scale`]: on a loaded machine the gaps
/// grow, and with them the room the checks leave.
fn scaled(script: Script) -> Script {
    let k = common::timing_scale();
    Script {
        ttft: script.ttft * k,
        chunk_delays: script.chunk_delays.iter().map(|d| *d * k).collect(),
        ..script
    }
}

/// When the script sends token `i`, as the client places it: a chunk's tokens spread evenly over
/// the gap since the chunk before (the first chunk's tokens all arrive at once).
fn scripted_at(script: &Script, i: usize) -> Duration {
    let per = script.tokens_per_chunk.max(1);
    let (chunk, k) = (i / per, i % per + 1);
    if chunk == 0 {
        return script.due(0);
    }
    let n = per.min(script.tokens - chunk * per);
    let before = script.due(chunk - 1);
    before + (script.due(chunk) - before).mul_f64(k as f64 / n as f64)
}

/// Where the client's times disagree with the script. Nothing can arrive before the script sends
/// it, so each token's arrival (TTFT the first's, E2E the last's) is at least the scripted time;
/// a machine's load only delays it. A client that mis-measures (a token counted at the wrong
/// chunk, a clock started late) is off by a whole scripted gap, so each arrival must also come
/// within half the script's shortest gap of its time. Empty when all agree.
fn off_script(script: &Script, out: &Outcome) -> Vec<String> {
    let gaps = (0..script.chunks(script.tokens)).map(|c| script.delay_before(c));
    let room = gaps.min().unwrap_or_default() / 2;
    let mut off = Vec::new();
    let mut check = |measured: Duration, scripted: Duration, what: String| {
        if measured < scripted || measured >= scripted + room {
            off.push(format!(
                "{what}: measured {measured:?}, scripted {scripted:?} (room {room:?})"
            ));
        }
    };
    for (i, at) in out.token_at.iter().enumerate() {
        check(*at, scripted_at(script, i), format!("token {i}"));
    }
    check(out.ttft.unwrap_or_default(), script.due(0), "TTFT".into());
    let last = script.chunks(script.tokens) - 1;
    check(out.e2e, script.due(last), "E2E".into());
    off
}

/// A timing check, tried up to three times on a warm connection: a loaded machine (other builds
/// on two cores) can stall one run's thread for a whole gap, but not a client that mis-measures
/// every time.
async fn timed<F: Future<Output = Vec<String>>>(mut attempt: impl FnMut() -> F) {
    let mut tries = Vec::new();
    for _ in 0..3 {
        let off = attempt().await;
        if off.is_empty() {
            return;
        }
        tries.push(off.join("; "));
    }
    panic!("off the script in every try:\n{}", tries.join("\n"));
}

/// TTFT, each ITL and E2E as the client measured them, against the script.
async fn timing_matches_the_script(api: Api) {
    let script = scaled(Script {
        ttft: ms(30),
        chunk_delays: vec![ms(50), ms(80), ms(40), ms(60)],
        tokens: 8,
        ..Script::default()
    });
    let mock = Mock::start(script.clone()).unwrap();
    let client = Client::default();
    let ep = mock.endpoint(api);
    stream(&client, &ep, 1).await; // warm-up: the connection, then reused
    timed(|| async {
        let (out, pieces) = stream(&client, &ep, 100).await;
        assert!(out.ok(), "{:?}", out.failure);
        assert_eq!(out.output_tokens, 8);
        assert_eq!(out.token_at.len(), 8);
        assert_eq!(pieces.len(), 8);
        assert_eq!(out.finish.as_deref(), Some("stop"));
        assert_eq!(out.text, "w0 w1 w2 w3 w4 w5 w6 w7 ");
        off_script(&script, &out)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_timing_matches_the_script() {
    bounded_alone(timing_matches_the_script(Api::Chat)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_timing_matches_the_script() {
    bounded_alone(timing_matches_the_script(Api::Completions)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_token_chunks_are_split_by_the_servers_usage() {
    bounded_alone(async {
        let script = scaled(Script {
            ttft: ms(30),
            chunk_delays: vec![ms(60)],
            tokens_per_chunk: 3,
            tokens: 10,
            ..Script::default()
        });
        let mock = Mock::start(script.clone()).unwrap();
        let client = Client::default();
        let ep = mock.endpoint(Api::Chat);
        stream(&client, &ep, 1).await;
        timed(|| async {
            let (out, pieces) = stream(&client, &ep, 100).await;
            assert!(out.ok(), "{:?}", out.failure);
            assert_eq!((out.output_tokens, out.counted), (10, Some(Counted::Usage)));
            assert_eq!(out.prompt_tokens, Some(7));
            assert_eq!(pieces.iter().map(|p| p.1).collect::<Vec<_>>(), [3, 3, 3, 1]);
            assert_eq!(out.token_at.len(), 10);
            // The first chunk's three tokens arrive together; later chunks' tokens spread over
            // their gap (60 ms over 3 tokens, then 60 ms for the last chunk's single token).
            assert_eq!(
                out.token_at[0], out.token_at[2],
                "the first chunk's tokens together"
            );
            // ITL as vLLM's: one gap per chunk, four chunks, three gaps, none zero.
            let itl = out.itl();
            assert_eq!(itl.len(), 3, "{itl:?}");
            assert!(itl.iter().all(|g| *g > Duration::ZERO), "{itl:?}");
            off_script(&script, &out)
        })
        .await
    })
    .await
}

#[tokio::test]
async fn usage_at_the_end_counts_without_splitting() {
    bounded(async {
        let script = Script {
            tokens_per_chunk: 2,
            tokens: 10,
            continuous_usage: false,
            ..Script::instant(10)
        };
        let mock = Mock::start(script).unwrap();
        let (out, _) = stream(&Client::default(), &mock.endpoint(Api::Chat), 100).await;
        assert!(out.ok(), "{:?}", out.failure);
        assert_eq!((out.output_tokens, out.counted), (10, Some(Counted::Usage)));
        assert_eq!(
            out.token_at.len(),
            5,
            "one arrival per chunk: nothing to split by"
        );
    })
    .await
}

struct Words;
impl CountTokens for Words {
    fn count(&self, text: &str) -> usize {
        text.split_whitespace().count()
    }
}

#[tokio::test]
async fn without_usage_a_tokenizer_counts_else_chunks_do() {
    bounded(async {
        let script = Script {
            tokens_per_chunk: 3,
            continuous_usage: false,
            final_usage: false,
            ..Script::instant(9)
        };
        let mock = Mock::start(script).unwrap();
        let ep = mock.endpoint(Api::Completions);
        let words = Client::default().with_tokenizer(Arc::new(Words));
        let (out, _) = stream(&words, &ep, 100).await;
        assert_eq!(
            (out.output_tokens, out.counted),
            (9, Some(Counted::Tokenizer))
        );
        assert_eq!(out.token_at.len(), 9);
        let (out, _) = stream(&Client::default(), &ep, 100).await;
        assert_eq!((out.output_tokens, out.counted), (3, Some(Counted::Chunks)));
    })
    .await
}

#[tokio::test]
async fn max_tokens_caps_the_stream_at_length() {
    bounded(async {
        let mock = Mock::start(Script::instant(50)).unwrap();
        let (out, _) = stream(&Client::default(), &mock.endpoint(Api::Chat), 7).await;
        assert_eq!(out.output_tokens, 7);
        assert_eq!(out.finish.as_deref(), Some("length"));
        assert!(out.tpot().is_some());
    })
    .await
}

#[tokio::test]
async fn the_request_carries_the_options_and_the_key() {
    bounded(async {
        let mock = Mock::start(Script::instant(4)).unwrap();
        mock.set_api_key(Some("sk-test".into()));
        let mut ep = mock.endpoint(Api::Chat);
        let (out, _) = stream(&Client::default(), &ep, 4).await;
        let f = out.failure.expect("no key: refused");
        assert_eq!(f.kind, FailureKind::Status(401));
        assert_eq!(f.message, "HTTP 401 Unauthorized: invalid API key");

        ep.api_key = Some("sk-test".into());
        let (out, _) = stream(&Client::default(), &ep, 4).await;
        assert!(out.ok(), "{:?}", out.failure);
        let seen = mock.requests().pop().unwrap();
        assert_eq!(seen.path, "/v1/chat/completions");
        assert_eq!(seen.authorization.as_deref(), Some("Bearer sk-test"));
        let b = &seen.body;
        assert_eq!(b["model"], mock::MODEL);
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"]["include_usage"], true);
        assert_eq!(b["stream_options"]["continuous_usage_stats"], true);
        assert_eq!(b["max_tokens"], 4);
        assert_eq!(b["temperature"], 0.0);
        assert_eq!(b["ignore_eos"], true);
        assert_eq!(b["messages"][0]["role"], "user");
    })
    .await
}

#[tokio::test]
async fn without_a_model_name_the_first_listed_is_used() {
    bounded(async {
        let mock = Mock::start(Script::instant(3)).unwrap();
        let client = Client::default();
        for base in [mock.url(), format!("{}/v1/", mock.url())] {
            let ep = Endpoint {
                url: base,
                api_key: None,
                model: None,
                api: Api::Completions,
            };
            assert_eq!(client.models(&ep).await.unwrap(), [mock::MODEL]);
            let (out, _) = stream(&client, &ep, 3).await;
            assert!(out.ok(), "{:?}", out.failure);
            let seen = mock.requests().pop().unwrap();
            assert_eq!(seen.path, "/v1/completions");
            assert_eq!(seen.body["model"], mock::MODEL);
            assert_eq!(seen.body["prompt"], "Tell me a story about a lighthouse");
        }
    })
    .await
}

#[tokio::test]
async fn metrics_count_what_was_streamed_or_say_what_they_are_told() {
    bounded(async {
        let mock = Mock::start(Script::instant(12)).unwrap();
        let client = Client::default();
        for _ in 0..2 {
            let (out, _) = stream(&client, &mock.endpoint(Api::Chat), 100).await;
            assert!(out.ok());
        }
        let http = reqwest::Client::new();
        let url = format!("{}/metrics", mock.url());
        let text = http.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(
            text.contains("llamacpp:tokens_predicted_total 24\n"),
            "{text}"
        );
        assert!(text.contains("llamacpp:prompt_tokens_total 14\n"), "{text}");
        assert!(
            text.contains("# TYPE llamacpp:requests_processing gauge\n"),
            "{text}"
        );
        assert_eq!(mock.tokens_streamed(), 24);
        mock.set_metrics(Some("vllm:num_requests_running 3\n".into()));
        let text = http.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(text, "vllm:num_requests_running 3\n");
    })
    .await
}

#[tokio::test]
async fn stamped_chunks_carry_the_mocks_send_time() {
    bounded(async {
        let mock = Mock::start(Script {
            stamp: true,
            ..Script::instant(5)
        })
        .unwrap();
        let origin = mock.origin();
        let mut lags = Vec::new();
        let out = Client::default()
            .stream(
                &mock.endpoint(Api::Chat),
                &request(5),
                Instant::now(),
                None,
                |p: &Piece| {
                    let sent = origin + mock::stamp_of(p.text).expect("a stamp");
                    lags.push(Instant::now().duration_since(sent));
                },
            )
            .await;
        assert!(out.ok(), "{:?}", out.failure);
        assert_eq!(lags.len(), 5);
        assert!(lags.iter().all(|l| *l < Duration::from_secs(1)), "{lags:?}");
    })
    .await
}

/// `labtui bench client` runs both phases and prints them (its numbers are not asserted).
#[test]
fn the_client_benchmark_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args(["bench", "client", "--seconds", "1", "--streams", "4"])
        .args(["--tokens-per-stream", "32", "--rate", "2000"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "| saturate | no delay |",
        "| paced | 2000 tok/s |",
        "added latency:",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
    assert!(!text.contains("failed requests"), "{text}");
}
