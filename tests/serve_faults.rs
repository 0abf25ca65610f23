//! The serving client's faults against the scripted mock on loopback (and against no server at
//! all): each ends the request with its kind, a one-line message that names what happened, and
//! what was measured before it; a cancel or a dropped future stops the request. Every test is
//! bounded.

mod common;

use common::client::{endpoint, fails, ms, request, stream, within_bound as bounded};
use labtui::serve::client::{Cancel, Client, Piece};
use labtui::serve::mock::{Fault, Mock, Script};
use labtui::serve::{Api, FailureKind};
use std::time::{Duration, Instant};

#[tokio::test]
async fn connection_refused() {
    bounded(async {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = dead.local_addr().unwrap().port();
        drop(dead);
        let ep = endpoint(format!("http://127.0.0.1:{port}"));
        let out = fails(
            &Client::default(),
            &ep,
            FailureKind::Refused,
            "connection refused",
        )
        .await;
        assert!(out.failure.unwrap().message.contains(&port.to_string()));
        assert_eq!((out.ttft, out.output_tokens), (None, 0));
    })
    .await
}

#[tokio::test]
async fn unknown_host() {
    bounded(async {
        let ep = endpoint("http://no-such-host.invalid:8080".into());
        fails(
            &Client::default(),
            &ep,
            FailureKind::Dns,
            "no-such-host.invalid",
        )
        .await;
    })
    .await
}

#[tokio::test]
async fn a_url_that_is_not_one() {
    bounded(async {
        let ep = endpoint("localhost:8080".into());
        fails(
            &Client::default(),
            &ep,
            FailureKind::Other,
            "http://host:port",
        )
        .await;
    })
    .await
}

#[tokio::test]
async fn tls_to_a_plain_server() {
    bounded(async {
        let mock = Mock::start(Script::instant(3)).unwrap();
        let ep = endpoint(format!("https://{}", mock.addr()));
        fails(&Client::default(), &ep, FailureKind::Tls, "TLS handshake").await;
    })
    .await
}

#[tokio::test]
async fn error_statuses_give_the_servers_message() {
    bounded(async {
        let json = r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError","code":404}}"#;
        let mock = Mock::start(Script::instant(3).with_fault(Fault::Status {
            code: 404,
            body: json.into(),
        }))
        .unwrap();
        let ep = mock.endpoint(Api::Chat);
        let out = fails(
            &Client::default(),
            &ep,
            FailureKind::Status(404),
            "HTTP 404 Not Found: The model `x` does not exist.",
        )
        .await;
        assert!(out.ttft.is_none() && out.token_at.is_empty());

        let page = format!("<html>\n<body>Service Unavailable {}</body>", "x".repeat(5000));
        mock.set_script(Script::instant(3).with_fault(Fault::Status {
            code: 503,
            body: page,
        }));
        let out = fails(
            &Client::default(),
            &ep,
            FailureKind::Status(503),
            "HTTP 503 Service Unavailable: <html> <body>Service Unavailable xxx",
        )
        .await;
        assert!(out.failure.unwrap().message.chars().count() < 260, "truncated");
    })
    .await
}

#[tokio::test]
async fn a_malformed_chunk_keeps_what_came_before() {
    bounded(async {
        let mock =
            Mock::start(Script::instant(10).with_fault(Fault::Malformed { after: 3 })).unwrap();
        let out = fails(
            &Client::default(),
            &mock.endpoint(Api::Chat),
            FailureKind::Malformed,
            "malformed stream",
        )
        .await;
        assert_eq!((out.output_tokens, out.token_at.len()), (3, 3));
        assert_eq!(out.text, "w0 w1 w2 ");
        assert!(out.ttft.is_some());
    })
    .await
}

#[tokio::test]
async fn a_stall_times_out_and_keeps_what_came_before() {
    bounded(async {
        let mock = Mock::start(Script::instant(10).with_fault(Fault::Stall { after: 2 })).unwrap();
        let client = Client::new(ms(300));
        let t = Instant::now();
        let out = fails(
            &client,
            &mock.endpoint(Api::Chat),
            FailureKind::Stalled,
            "sent nothing for 300 ms after 2 tokens",
        )
        .await;
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(out.e2e >= ms(300));
        assert_eq!(out.token_at.len(), 2);
        assert_eq!(out.output_tokens, 2);

        // A stall before the response's headers too: a server that accepts and never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = endpoint(format!("http://{}", silent.local_addr().unwrap()));
        let hold = tokio::spawn(async move {
            let (_conn, _) = silent.accept().await.unwrap();
            std::future::pending::<()>().await
        });
        fails(&client, &ep, FailureKind::Stalled, "before the first token").await;
        hold.abort();
    })
    .await
}

#[tokio::test]
async fn a_connection_closed_mid_stream_keeps_what_came_before() {
    bounded(async {
        let mock = Mock::start(Script::instant(10).with_fault(Fault::Close { after: 4 })).unwrap();
        let out = fails(
            &Client::default(),
            &mock.endpoint(Api::Chat),
            FailureKind::Closed,
            "closed after 4 tokens, before [DONE]",
        )
        .await;
        assert_eq!(out.token_at.len(), 4);
        assert_eq!(out.finish, None);
    })
    .await
}

#[tokio::test]
async fn a_cancel_stops_the_stream_with_its_partial_outcome() {
    bounded(async {
        let mock = Mock::start(Script::paced(ms(5), ms(20), 50)).unwrap();
        let cancel = Cancel::new();
        let mut seen = 0;
        let out = Client::default()
            .stream(
                &mock.endpoint(Api::Chat),
                &request(100),
                Instant::now(),
                Some(&cancel),
                |p: &Piece| {
                    seen += p.tokens;
                    if seen == 3 {
                        cancel.cancel();
                    }
                },
            )
            .await;
        let f = out.failure.expect("cancelled");
        assert_eq!(f.kind, FailureKind::Cancelled);
        assert_eq!(f.message, "cancelled after 3 tokens");
        assert_eq!(out.token_at.len(), 3);
        assert!(out.e2e < ms(200), "{:?}", out.e2e);
    })
    .await
}

async fn processing(client: &reqwest::Client, mock: &Mock) -> String {
    let text = client
        .get(format!("{}/metrics", mock.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("llamacpp:requests_processing "))
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn dropping_the_future_stops_the_request() {
    bounded(async {
        let mock = Mock::start(Script::paced(ms(5), ms(20), 1000)).unwrap();
        let ep = mock.endpoint(Api::Chat);
        let client = Client::default();
        let run = stream(&client, &ep, 1000);
        assert!(tokio::time::timeout(ms(100), run).await.is_err());
        // The mock sees the connection gone at its next write, and its stream ends.
        let http = reqwest::Client::new();
        let mut gauge = String::new();
        for _ in 0..100 {
            gauge = processing(&http, &mock).await;
            if gauge.ends_with(" 0") {
                break;
            }
            tokio::time::sleep(ms(10)).await;
        }
        assert_eq!(gauge, "llamacpp:requests_processing 0");
        assert!(mock.tokens_streamed() < 20, "{}", mock.tokens_streamed());
    })
    .await
}

#[tokio::test]
async fn keep_alives_hold_off_the_stall_timer() {
    bounded(async {
        // A server that answers at once, then sends only `: ping` comments (every 100 ms, for
        // 900 ms) before its one token: the request is queued, and the server is alive.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = endpoint(format!("http://{}", listener.local_addr().unwrap()));
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let _ = conn.read(&mut buf).await;
            conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
            for _ in 0..9 {
                tokio::time::sleep(ms(100)).await;
                conn.write_all(b": ping\n\n").await.unwrap();
            }
            conn.write_all(
                b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            )
            .await
            .unwrap();
            tokio::time::sleep(ms(200)).await;
        });
        let client = Client::new(ms(300));
        let (out, _) = stream(&client, &ep, 16).await;
        assert!(out.failure.is_none(), "{:?}", out.failure);
        let ttft = out.ttft.expect("the token came");
        assert!(ttft >= ms(850), "{ttft:?}");
        server.abort();
    })
    .await
}

#[tokio::test]
async fn a_request_sent_again_after_an_unanswered_close_says_so() {
    bounded(async {
        // The first connection is read and closed unanswered; the second is answered.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep = endpoint(format!("http://{}", listener.local_addr().unwrap()));
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = vec![0u8; 1 << 16];
            let (mut first, _) = listener.accept().await.unwrap();
            let _ = first.read(&mut buf).await;
            drop(first);
            let (mut conn, _) = listener.accept().await.unwrap();
            let _ = conn.read(&mut buf).await;
            conn.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
                  data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            )
            .await
            .unwrap();
            tokio::time::sleep(ms(200)).await;
        });
        let client = Client::new(ms(2000));
        let (out, _) = stream(&client, &ep, 16).await;
        assert!(out.failure.is_none(), "{:?}", out.failure);
        assert!(out.retried, "the second send is on the record");
        server.abort();
    })
    .await
}
