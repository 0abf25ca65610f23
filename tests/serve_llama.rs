//! End to end against a real server: llama.cpp's `llama-server` on loopback serving the 0.5B GGUF
//! with four slots and its metrics on; `labtui bench serve` measures three closed-loop levels and
//! each level's output tokens must equal the server's own `llamacpp:tokens_predicted_total` over
//! that level.

mod common;

use common::{
    llama_server, port_for_another_process, real_model, KillOnDrop, OutputWithin, QWEN_05B,
};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the server answers /health within `limit`; false when it exits first (it could not
/// bind its port, say).
fn wait_healthy(port: u16, server: &mut KillOnDrop, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if let Some(status) = server.0.try_wait().unwrap() {
            eprintln!("llama-server exited before it was ready: {status}");
            return false;
        }
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = s
                .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("llama-server did not answer /health within {limit:?}");
}

/// llama-server on loopback, ready, and its port. It takes a port number, not a listener, so a
/// port another process takes first makes it exit: then it starts again on another number.
fn start_llama_server(bin: &Path, model: &Path) -> (KillOnDrop, u16) {
    for _ in 0..3 {
        let port = port_for_another_process();
        // `--no-repack`: some CPUs with AMX crash in llama.cpp's repacked kernels; speed is not
        // what this test checks.
        let mut server = KillOnDrop(
            Command::new(bin)
                .args([
                    "-m",
                    model.to_str().unwrap(),
                    "--host",
                    "127.0.0.1",
                    "--port",
                ])
                .arg(port.to_string())
                .args([
                    "--parallel",
                    "4",
                    "--metrics",
                    "-c",
                    "4096",
                    "-t",
                    "2",
                    "--no-repack",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("llama-server starts"),
        );
        if wait_healthy(port, &mut server, Duration::from_secs(120)) {
            return (server, port);
        }
    }
    panic!("llama-server exited before it was ready, three times");
}

#[test]
fn bench_serve_against_llama_server_agrees_with_its_metrics() {
    let (Some(model), Some(bin)) = (real_model(QWEN_05B), llama_server()) else {
        return;
    };
    let (_server, port) = start_llama_server(&bin, &model);
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args(["bench", "serve", "--endpoint", &url])
        .args([
            "--concurrency",
            "1,2,4",
            "--requests",
            "8",
            "--max-tokens",
            "32",
            // Two 64-token prefixes shared by every request: llama-server's prompt cache
            // serves them, and the levels say how much.
            "--shared-prefix",
            "64:2",
        ])
        .args(["--format", "json"])
        .output_within(Duration::from_secs(600));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench serve failed: {stderr}");
    eprintln!("{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let levels = v["levels"].as_array().expect("a levels array");
    assert_eq!(levels.len(), 3, "{v:#}");
    let cached: u64 = levels
        .iter()
        .filter_map(|l| l["cached_tokens"].as_u64())
        .sum();
    assert!(
        cached > 0,
        "llama-server's cache served some of the shared prefixes: {v:#}"
    );
    assert!(
        levels.iter().all(|l| l["prefix_hit"].as_f64().is_some()),
        "{v:#}"
    );
    for (l, c) in levels.iter().zip([1, 2, 4]) {
        assert_eq!(l["load"], format!("concurrency {c}"));
        assert_eq!(l["ok"], 8, "level {c}: {l:#}");
        assert_eq!(
            l["server_engine"], "llamacpp",
            "the llamacpp: metrics were read: {l:#}"
        );
        let ours = l["output_tokens"].as_u64().unwrap();
        assert!(ours > 0 && ours <= 8 * 32, "level {c}: {ours} tokens");
        assert_eq!(
            l["server_output_tokens"].as_u64(),
            Some(ours),
            "level {c}: our count against llamacpp:tokens_predicted_total: {l:#}"
        );
        assert_eq!(l["counted"], "usage", "llama-server gives usage: {l:#}");
        for k in [
            "ttft_p50_ms",
            "tpot_p50_ms",
            "itl_p50_ms",
            "e2e_p50_ms",
            "output_tok_s",
        ] {
            assert!(l[k].as_f64().unwrap() > 0.0, "level {c}: {k} in {l:#}");
        }
    }
}

#[test]
fn the_server_says_its_context_slots_and_shape() {
    let (Some(model), Some(bin)) = (real_model(QWEN_05B), llama_server()) else {
        return;
    };
    let (_server, port) = start_llama_server(&bin, &model);
    let ep = labtui::serve::Endpoint {
        url: format!("http://127.0.0.1:{port}"),
        api_key: None,
        model: None,
        api: labtui::serve::Api::Chat,
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let info = rt.block_on(labtui::serve::client::Client::default().server_info(&ep));
    // -c 4096 over 4 slots; the 0.5B's hidden size and vocabulary.
    assert_eq!(info.context, Some(1024), "{info:?}");
    assert_eq!(info.slots, Some(4));
    assert_eq!((info.hidden, info.vocab), (Some(896), Some(151936)));
    assert_eq!(info.context_train, Some(32768));
    assert!(info.bytes.unwrap() > 300 << 20);
    // Synthetic prompts are token-exact: 48 words of one token each, no tag, and no template
    // on the completions route.
    let out = Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args([
            "bench",
            "serve",
            "--endpoint",
            &ep.url,
            "--api",
            "completions",
        ])
        .args([
            "--input-tokens",
            "48",
            "--concurrency",
            "1",
            "--requests",
            "3",
        ])
        .args(["--max-tokens", "4", "--warmup", "0", "--format", "json"])
        .output_within(Duration::from_secs(300));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["levels"][0]["prompt_tokens"], 3 * 48, "{v:#}");
}
