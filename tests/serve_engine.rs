//! `labtui serve` on loopback with the synthetic model, asked by our own serving client: both
//! routes, streamed and not, give the greedy text the engine gives alone, with the right usage;
//! concurrent requests (more than the blocks hold at once) all complete; `/metrics` parses and
//! counts what was served. The server stops when its handle drops at the end of each test.

mod common;

use labtui::engine::sched::SchedConfig;
use labtui::engine::spec::Speculator;
use labtui::engine::{generate, Engine, Prompt, RunRequest, StepControl};
use labtui::protocol::{GenParams, RunSettings, ServerEngine};
use labtui::serve::client::Client;
use labtui::serve::server::{ServeConfig, Server};
use labtui::serve::{Api, Endpoint, Request, STALL_TIMEOUT};
use std::time::Instant;

fn engine() -> Engine {
    common::synthetic()
}

fn start(sched: SchedConfig) -> Server {
    let cfg = ServeConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        sched,
    };
    Server::start(engine(), &cfg).unwrap()
}

/// What the engine generates alone for `prompt`, greedy: (text, prompt tokens, tokens).
fn alone(prompt: &str, api: Api, max_tokens: usize) -> (String, usize, usize) {
    let mut e = engine();
    let params = GenParams {
        max_tokens,
        temperature: 0.0,
        raw: api == Api::Completions,
        ..Default::default()
    };
    let settings = RunSettings {
        params: params.clone(),
        quantization: Default::default(),
        draft_mode: Default::default(),
        k: labtui::protocol::DEFAULT_K,
        policy: Default::default(),
    };
    let request = RunRequest::new(0, Prompt::Text(prompt.into()), settings);
    let mut plain = Speculator::none();
    let s = generate(&mut e, &mut plain, &request, &mut |_| {}, &mut || {
        StepControl::Continue
    })
    .unwrap();
    (s.text, s.prompt_tokens, s.generated_tokens)
}

fn endpoint(server: &Server, api: Api) -> Endpoint {
    Endpoint {
        url: server.url(),
        api_key: None,
        model: None,
        api,
    }
}

/// The server's `/metrics` text.
async fn metrics(server: &Server) -> String {
    let url = format!("{}/metrics", server.url());
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

fn request(prompt: &str, max_tokens: usize) -> Request {
    Request {
        context: Vec::new(),
        prompt: prompt.into(),
        max_tokens,
        ignore_eos: false,
        temperature: 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_routes_stream_and_answer_what_the_engine_gives_alone() {
    let server = start(SchedConfig::default());
    let client = Client::new(STALL_TIMEOUT);
    let http = reqwest::Client::new();
    for api in [Api::Chat, Api::Completions] {
        let prompt = "Explain paged attention";
        let (want, prompt_tokens, tokens) = alone(prompt, api, 12);
        let ep = endpoint(&server, api);
        let out = client
            .stream(&ep, &request(prompt, 12), Instant::now(), None, |_| {})
            .await;
        assert!(out.ok(), "{api:?}: {:?}", out.failure);
        assert_eq!(out.text, want, "{api:?} streamed");
        assert_eq!(out.output_tokens, tokens, "{api:?} streamed usage");
        assert_eq!(out.prompt_tokens, Some(prompt_tokens));
        assert!(out.ttft.is_some());

        // Not streamed: one JSON answer.
        let (route, body) = match api {
            Api::Chat => (
                "/v1/chat/completions",
                serde_json::json!({"messages": [{"role": "user", "content": prompt}],
                                   "max_tokens": 12, "temperature": 0}),
            ),
            Api::Completions => (
                "/v1/completions",
                serde_json::json!({"prompt": prompt, "max_tokens": 12, "temperature": 0}),
            ),
        };
        let v: serde_json::Value = http
            .post(format!("{}{route}", server.url()))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let text = match api {
            Api::Chat => v["choices"][0]["message"]["content"].as_str(),
            Api::Completions => v["choices"][0]["text"].as_str(),
        };
        assert_eq!(text, Some(want.as_str()), "{api:?} answer: {v}");
        assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens);
        assert_eq!(v["usage"]["completion_tokens"], tokens);
        let finish = if tokens == 12 { "length" } else { "stop" };
        assert_eq!(v["choices"][0]["finish_reason"], finish);
    }
    // A request that can never fit is refused with a message.
    let r = http
        .post(format!("{}/v1/completions", server.url()))
        .json(&serde_json::json!({"prompt": "word ".repeat(2000), "max_tokens": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("exceeds the context"));
    // What it does not support is refused by name, as OpenAI's API does.
    for (extra, says) in [
        (
            serde_json::json!({"temperature": -1}),
            "`temperature` must be between 0 and 2",
        ),
        (serde_json::json!({"n": 5}), "`n` must be 1"),
    ] {
        let mut body = serde_json::json!({"prompt": "hi", "max_tokens": 4});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let r = http
            .post(format!("{}/v1/completions", server.url()))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert!(r.text().await.unwrap().contains(says), "{body}");
    }
    // Continuous usage: every chunk that carries text carries the usage so far.
    let sse = http
        .post(format!("{}/v1/completions", server.url()))
        .json(&serde_json::json!({"prompt": "count", "max_tokens": 6, "ignore_eos": true,
            "stream": true, "stream_options": {"include_usage": true, "continuous_usage_stats": true}}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<serde_json::Value> = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let with_text: Vec<&serde_json::Value> = chunks
        .iter()
        .filter(|c| {
            c["choices"][0]["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        })
        .collect();
    assert!(!with_text.is_empty(), "{sse}");
    let counts: Vec<u64> = with_text
        .iter()
        .map(|c| {
            c["usage"]["completion_tokens"]
                .as_u64()
                .expect("usage on every chunk")
        })
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]) && counts[counts.len() - 1] <= 6,
        "{counts:?}"
    );
    let models = client.models(&endpoint(&server, Api::Chat)).await.unwrap();
    assert_eq!(models, [server.model()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_all_complete_and_metrics_count_them() {
    // 6 blocks of 16 tokens: the eight requests cannot all hold their KV at once.
    let server = start(SchedConfig {
        kv_blocks: 6,
        max_batch: 4,
        step_tokens: 32,
        ..Default::default()
    });
    let client = Client::new(STALL_TIMEOUT);
    let ep = endpoint(&server, Api::Completions);
    let prompts: Vec<String> = (0..8).map(|i| format!("request number {i} asks")).collect();
    let outs = futures::future::join_all(prompts.iter().map(|p| {
        let (client, ep) = (client.clone(), ep.clone());
        let req = Request {
            context: Vec::new(),
            ignore_eos: true,
            ..request(p, 20)
        };
        async move { client.stream(&ep, &req, Instant::now(), None, |_| {}).await }
    }))
    .await;
    let mut generated = 0;
    let mut prompt_tokens = 0;
    for (p, out) in prompts.iter().zip(&outs) {
        assert!(out.ok(), "{p}: {:?}", out.failure);
        assert_eq!(out.output_tokens, 20);
        generated += out.output_tokens;
        prompt_tokens += out.prompt_tokens.unwrap();
    }
    let body = metrics(&server).await;
    let lines = body.lines().map(|l| Ok(l.replace(':', "_")));
    let scrape = prometheus_parse::Scrape::parse(lines).unwrap();
    assert!(scrape.samples.len() > 10);
    let s = labtui::serve::scrape::parse(&body).unwrap();
    assert_eq!(s.engine, ServerEngine::Labtui);
    assert_eq!(s.generation_tokens, Some(generated as f64));
    assert_eq!(s.prompt_tokens, Some(prompt_tokens as f64));
    assert_eq!((s.running, s.waiting), (Some(0.0), Some(0.0)));
    assert!(
        body.contains("labtui:time_to_first_token_seconds_count 8"),
        "{body}"
    );
    // The prefix cache is off here: nothing looked up.
    assert_eq!((s.prefix_queries, s.prefix_hits), (Some(0.0), Some(0.0)));
}

/// Chat requests that share a system prompt: the server renders the whole conversation (the
/// system prompt reaches the model), the later requests read it from the prefix cache, and
/// `/metrics` counts the lookups and hits; each answer is what it is with the cache off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_requests_sharing_a_system_prompt_hit_the_prefix_cache() {
    let system = "You answer in one short sentence and never use more words than needed. \
                  Prefer plain words, name things exactly, and say when you are unsure.";
    let ask = |server: &Server, q: &'static str| {
        let ep = endpoint(server, Api::Chat);
        let req = Request {
            context: vec![labtui::protocol::serve::Turn::system(system)],
            ..request(q, 8)
        };
        async move {
            let client = Client::new(STALL_TIMEOUT);
            client.stream(&ep, &req, Instant::now(), None, |_| {}).await
        }
    };
    let questions = [
        "What is a mutex?",
        "What is a semaphore?",
        "What is a barrier?",
    ];
    let mut answers = Vec::new();
    for prefix_cache in [true, false] {
        let server = start(SchedConfig {
            prefix_cache,
            step_tokens: 64,
            ..Default::default()
        });
        let mut texts = Vec::new();
        for q in questions {
            let out = ask(&server, q).await;
            assert!(out.ok(), "{q}: {:?}", out.failure);
            texts.push(out.text.clone());
        }
        answers.push(texts);
        let body = metrics(&server).await;
        let s = labtui::serve::scrape::parse(&body).unwrap();
        let (q, h) = (s.prefix_queries.unwrap(), s.prefix_hits.unwrap());
        match prefix_cache {
            true => assert!(q > 0.0 && h >= 64.0 && h < q, "{q} queried, {h} hit"),
            false => assert_eq!((q, h), (0.0, 0.0)),
        }
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_cancels_its_request() {
    let server = start(SchedConfig::default());
    let client = Client::new(STALL_TIMEOUT);
    let ep = endpoint(&server, Api::Completions);
    let cancel = labtui::serve::client::Cancel::new();
    let req = Request {
        context: Vec::new(),
        ignore_eos: true,
        ..request("a long one", 400)
    };
    let stop = cancel.clone();
    let out = client
        .stream(&ep, &req, Instant::now(), Some(&cancel), move |p| {
            if p.tokens > 0 {
                stop.cancel();
            }
        })
        .await;
    assert!(!out.ok());
    // The model thread notices the closed stream and drops the request.
    let url = format!("{}/metrics", server.url());
    for _ in 0..200 {
        let s =
            labtui::serve::scrape::parse(&reqwest::get(&url).await.unwrap().text().await.unwrap())
                .unwrap();
        if s.running == Some(0.0) {
            assert!(s.generation_tokens.unwrap() < 400.0);
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the cancelled request kept running");
}

/// `labtui serve --record`, asked by a client and stopped with Ctrl-C (SIGINT): the recording
/// holds every scheduler decision for the requests served, and replayed headless it draws the
/// scheduler's view, as `labtui serve --tui` shows it live.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_records_its_scheduler_and_the_replay_draws_it() {
    use labtui::protocol::{Event, SchedEvent};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("serve.ron");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args([
            "serve",
            "--model",
            "synthetic",
            "--max-batch",
            "2",
            "--port",
            "0",
        ])
        .arg("--record")
        .arg(&file)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let url = common::served_url(&mut child);
    let http = reqwest::Client::new();
    let t0 = Instant::now();
    while http.get(format!("{url}/health")).send().await.is_err() {
        assert!(t0.elapsed().as_secs() < 30, "labtui serve did not come up");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ep = Endpoint {
        url: url.clone(),
        api_key: None,
        model: None,
        api: Api::Completions,
    };
    let client = Client::new(STALL_TIMEOUT);
    let outs = futures_join(&client, &ep).await;
    assert!(outs.iter().all(|o| o.ok()), "{:?}", outs[0].failure);
    let sigint = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sigint.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "labtui serve after SIGINT: {status}");

    let rec = labtui::record::load(&file).unwrap();
    let sched: Vec<&SchedEvent> = rec
        .events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Sched(s) => Some(s),
            _ => None,
        })
        .collect();
    let count = |f: fn(&SchedEvent) -> bool| sched.iter().filter(|e| f(e)).count();
    assert_eq!(count(|e| matches!(e, SchedEvent::Arrived { .. })), 3);
    assert_eq!(count(|e| matches!(e, SchedEvent::Finished { .. })), 3);
    assert_eq!(count(|e| matches!(e, SchedEvent::Token { .. })), 3 * 6);
    assert!(count(|e| matches!(e, SchedEvent::Step { .. })) >= 6);

    let out = dir.path().join("screen.txt");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args([
            "replay",
            "--snapshot-at",
            "600",
            "--size",
            "100x30",
            "--out",
        ])
        .arg(&out)
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let screen = std::fs::read_to_string(out).unwrap();
    assert!(
        screen.contains("scheduler ·") && screen.contains("#2"),
        "{screen}"
    );
}

/// Three streamed completions at once (one waits: the batch holds two), six tokens each.
async fn futures_join(client: &Client, ep: &Endpoint) -> Vec<labtui::serve::Outcome> {
    let mut req = request("Explain continuous batching", 6);
    req.ignore_eos = true;
    let one = || client.stream(ep, &req, Instant::now(), None, |_| {});
    let (a, b, c) = tokio::join!(one(), one(), one());
    vec![a, b, c]
}
