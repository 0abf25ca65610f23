//! A stand-in load target (no HTTP) and the plan and run helpers the load tests share.
#![allow(dead_code)]

use futures::future::BoxFuture;
use labtui::protocol::serve::{Failure, FailureKind, Load, Outcome, Request, ServeEvent};
use labtui::serve::load::workload::{Prompts, Workload};
use labtui::serve::load::{run, LoadPlan, Run, Sweep, Target};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A server that takes `latency` per request and streams `tokens` tokens evenly over it, with
/// `slots` requests served at once (the rest queue); `fail` makes every request a 500.
pub struct Fake {
    pub latency: Duration,
    pub tokens: usize,
    pub slots: Arc<tokio::sync::Semaphore>,
    pub in_flight: Arc<AtomicUsize>,
    pub most_in_flight: Arc<AtomicUsize>,
    pub fail: Option<FailureKind>,
    /// When each request was sent, from the run's origin.
    pub sent_at: Arc<std::sync::Mutex<Vec<Duration>>>,
    /// The finish reason every answer gives.
    pub finish: Option<&'static str>,
    /// Every request received.
    pub seen: Arc<std::sync::Mutex<Vec<Request>>>,
}

impl Fake {
    pub fn new(latency_ms: u64, slots: usize) -> Self {
        Self {
            latency: Duration::from_millis(latency_ms),
            tokens: 4,
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            in_flight: Arc::default(),
            most_in_flight: Arc::default(),
            fail: None,
            sent_at: Arc::default(),
            finish: None,
            seen: Arc::default(),
        }
    }
}

impl Target for Fake {
    fn name(&self) -> String {
        "fake://server".into()
    }

    fn send(&self, req: Request, origin: Instant) -> BoxFuture<'static, Outcome> {
        let (latency, tokens, slots) = (
            self.latency,
            self.tokens.min(req.max_tokens),
            self.slots.clone(),
        );
        let (in_flight, most) = (self.in_flight.clone(), self.most_in_flight.clone());
        let fail = self.fail.clone();
        let sent_at = self.sent_at.clone();
        let finish = self.finish.map(String::from);
        self.seen.lock().unwrap().push(req.clone());
        Box::pin(async move {
            let sent = origin.elapsed();
            sent_at.lock().unwrap().push(sent);
            let start = Instant::now();
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            let _slot = slots.acquire_owned().await.unwrap();
            tokio::time::sleep(latency).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            let e2e = start.elapsed();
            if let Some(kind) = fail {
                return Outcome {
                    sent,
                    e2e,
                    failure: Some(Failure {
                        kind,
                        message: "scripted".into(),
                    }),
                    ..Outcome::default()
                };
            }
            let token_at: Vec<Duration> = (1..=tokens)
                .map(|i| e2e * i as u32 / tokens as u32)
                .collect();
            Outcome {
                sent,
                ttft: token_at.first().copied(),
                e2e,
                output_tokens: tokens,
                token_at,
                finish,
                text: "a reply".into(),
                ..Outcome::default()
            }
        })
    }
}

pub fn workload() -> Workload {
    Workload {
        prompts: Prompts::Builtin,
        max_tokens: 16,
        ignore_eos: false,
        temperature: 0.0,
        seed: 1,
        shape: Default::default(),
    }
}

pub fn plan(loads: Vec<Load>, requests: usize) -> LoadPlan {
    LoadPlan {
        loads,
        requests,
        duration: None,
        warmup: 0,
        max_error_rate: 0.5,
        slo: None,
        usd_per_hour: None,
        cut: Default::default(),
        percentiles: Vec::new(),
        search: None,
        turns: Default::default(),
    }
}

/// Run with a bound on the whole test, collecting the events.
pub async fn go(
    target: Arc<dyn Target>,
    plan: &LoadPlan,
    sweep: Option<&Sweep>,
) -> (
    anyhow::Result<Vec<labtui::protocol::serve::LevelSummary>>,
    Vec<ServeEvent>,
) {
    let mut events = Vec::new();
    let mut sink = |e: ServeEvent| events.push(e);
    let mut r = Run::new(&mut sink, Arc::new(AtomicBool::new(false)));
    let res = tokio::time::timeout(
        Duration::from_secs(60),
        run(&[target], &workload(), plan, sweep, &mut r),
    )
    .await
    .expect("the load run ends");
    (res, events)
}
