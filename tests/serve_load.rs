//! The load generator against stand-in targets (no HTTP): concurrency bounds, open-loop arrival
//! statistics, early stops, the sweep and a target that cannot be reached.

use labtui::protocol::serve::{FailureKind, Load, ServeEvent, StopReason};
use labtui::serve::load::arrivals::{dispersion, mean_cv2};
use labtui::serve::load::workload::Workload;
use labtui::serve::load::{run, Run, Sweep, Target};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[path = "common/fake.rs"]
mod fake;
use fake::{go, plan, workload, Fake};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_keeps_exactly_n_in_flight() {
    let fake = Arc::new(Fake::new(20, 64));
    let (res, events) = go(fake.clone(), &plan(vec![Load::Concurrency(4)], 40), None).await;
    let levels = res.unwrap();
    assert_eq!(levels.len(), 1);
    let l = &levels[0];
    assert_eq!((l.requests, l.ok, l.failed), (40, 40, 0));
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 4);
    assert_eq!(l.output_tokens, 160);
    // 40 requests, 4 at a time, 20 ms each: about 10 rounds.
    assert!(l.duration >= Duration::from_millis(200), "{:?}", l.duration);
    let sent = events
        .iter()
        .filter(|e| matches!(e, ServeEvent::Sent { .. }))
        .count();
    let done = events
        .iter()
        .filter(|e| matches!(e, ServeEvent::Done { .. }))
        .count();
    assert_eq!((sent, done), (40, 40));
    assert!(matches!(
        events.first(),
        Some(ServeEvent::LevelStarted { .. })
    ));
    assert!(matches!(events.last(), Some(ServeEvent::LevelDone { .. })));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_arrivals_are_poisson() {
    // 1,000 arrivals at 200/s against an instant server: about 5 s.
    let fake = Arc::new(Fake::new(0, 1024));
    let load = Load::Rate {
        rate: 200.0,
        burstiness: 1.0,
        max_concurrency: None,
    };
    let (res, events) = go(fake, &plan(vec![load], 1000), None).await;
    assert_eq!(res.unwrap()[0].ok, 1000);
    let mut sent: Vec<f64> = events
        .iter()
        .filter_map(|e| match e {
            ServeEvent::Done { outcome, .. } => Some(outcome.sent.as_secs_f64()),
            _ => None,
        })
        .collect();
    sent.sort_by(f64::total_cmp);
    let t0 = sent[0];
    let times: Vec<f64> = sent.iter().map(|t| t - t0).collect();
    let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    let (mean, cv2) = mean_cv2(&gaps);
    // The mean gap of 999 exponential gaps is 5 ms ± 3.2% (one standard error).
    assert!((mean - 0.005).abs() < 0.005 * 0.15, "mean gap {mean}");
    assert!(
        (cv2 - 1.0).abs() < 0.3,
        "squared coefficient of variation {cv2}"
    );
    // Counts in 50 ms windows (10 expected): variance equals the mean for Poisson arrivals.
    let d = dispersion(&times, 0.05);
    assert!((d - 1.0).abs() < 0.35, "index of dispersion {d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_server_stops_the_level_early() {
    let mut fake = Fake::new(1, 64);
    fake.fail = Some(FailureKind::Status(500));
    let (res, _) = go(Arc::new(fake), &plan(vec![Load::Concurrency(2)], 200), None).await;
    let l = &res.unwrap()[0];
    assert!(l.requests < 200 && l.requests >= 10, "{}", l.requests);
    assert_eq!(l.ok, 0);
    assert_eq!(l.errors.get("http 500"), Some(&l.requests));
    let why = l.stopped_early.as_ref().unwrap();
    assert!(
        matches!(why, StopReason::Errors { failed, ended, .. } if 2 * failed > *ended),
        "{why:?}"
    );
    assert!(why.to_string().starts_with("errors passed 50%"), "{why}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_open_loop_stops_as_saturated() {
    // Two slots of 100 ms serve 20 req/s; 200 req/s piles up.
    let fake = Arc::new(Fake::new(100, 2));
    let load = Load::Rate {
        rate: 200.0,
        burstiness: 1.0,
        max_concurrency: None,
    };
    let (res, _) = go(fake, &plan(vec![load], 2000), None).await;
    let l = &res.unwrap()[0];
    assert!(
        matches!(l.stopped_early, Some(StopReason::Saturated { outstanding, limit }) if outstanding > limit),
        "{:?}",
        l.stopped_early
    );
    assert!(l.requests < 2000);
    assert_eq!(l.failed, 0, "requests in flight at the stop still finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_cap_holds_open_loop_arrivals() {
    let fake = Arc::new(Fake::new(30, 64));
    let load = Load::Rate {
        rate: 1000.0,
        burstiness: 1.0,
        max_concurrency: Some(3),
    };
    let (res, _) = go(fake.clone(), &plan(vec![load], 12), None).await;
    let levels = res.unwrap();
    assert_eq!(levels[0].ok, 12);
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 3);
    // 12 arrivals due within 11 ms, served 3 at a time for 30 ms each: the last ones wait about
    // 90 ms for a slot, and the report says the load offered fell short.
    let lag = levels[0]
        .send_lag
        .as_ref()
        .expect("an open loop's send lag");
    assert_eq!(lag.n, 12);
    assert!(lag.p99 >= Duration::from_millis(60), "{lag:?}");
    let md = labtui::report::serve::markdown(&levels);
    assert!(md.contains("coordinated omission"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_probes_then_measures_below_saturation() {
    // Four slots of 40 ms: saturation is 100 req/s.
    let fake = Arc::new(Fake::new(40, 4));
    let sweep = Sweep {
        probe: 8,
        fractions: vec![0.5, 0.9],
        burstiness: 1.0,
        max_concurrency: None,
    };
    let (res, events) = go(fake, &plan(vec![], 60), Some(&sweep)).await;
    let levels = res.unwrap();
    assert_eq!(levels.len(), 3);
    assert_eq!(levels[0].load, Load::Concurrency(8));
    let sat = levels[0].req_s;
    assert!(sat > 60.0 && sat < 110.0, "probe saturation {sat} req/s");
    for (l, f) in levels[1..].iter().zip([0.5, 0.9]) {
        let Load::Rate { rate, .. } = l.load else {
            panic!("{:?}", l.load)
        };
        assert!((rate - sat * f).abs() < 0.01, "{rate} vs {}", sat * f);
    }
    let started: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            ServeEvent::LevelStarted { index, levels, .. } => Some(index * 10 + levels),
            _ => None,
        })
        .collect();
    assert_eq!(started, vec![3, 13, 23]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_fails_at_warm_up() {
    let mut fake = Fake::new(0, 1);
    fake.fail = Some(FailureKind::Refused);
    let mut p = plan(vec![Load::Concurrency(1)], 4);
    p.warmup = 1;
    let (res, events) = go(Arc::new(fake), &p, None).await;
    let e = res.unwrap_err().to_string();
    assert!(e.contains("fake://server") && e.contains("scripted"), "{e}");
    assert!(events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbounded_rate_under_a_cap_is_not_saturation() {
    // All 32 due at once, 8 at a time: the client's own queue, not the server's backlog.
    let fake = Arc::new(Fake::new(50, 64));
    let load = Load::Rate {
        rate: f64::INFINITY,
        burstiness: 1.0,
        max_concurrency: Some(8),
    };
    let (res, _) = go(fake.clone(), &plan(vec![load], 32), None).await;
    let l = &res.unwrap()[0];
    assert_eq!((l.ok, &l.stopped_early), (32, &None));
    assert_eq!(fake.most_in_flight.load(Ordering::SeqCst), 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_in_flight_than_sixteen_before_the_first_reply_is_ordinary_load() {
    // 100 req/s × 300 ms: about 30 in flight before any reply, and the server keeps up.
    let fake = Arc::new(Fake::new(300, 256));
    let load = Load::Rate {
        rate: 100.0,
        burstiness: 1.0,
        max_concurrency: None,
    };
    let (res, _) = go(fake.clone(), &plan(vec![load], 60), None).await;
    let l = &res.unwrap()[0];
    assert_eq!((l.ok, &l.stopped_early), (60, &None));
    assert!(fake.most_in_flight.load(Ordering::SeqCst) > 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_side_by_side_get_the_same_arrivals() {
    let (a, b) = (Arc::new(Fake::new(5, 64)), Arc::new(Fake::new(5, 64)));
    let load = Load::Rate {
        rate: 10.0,
        burstiness: 1.0,
        max_concurrency: None,
    };
    let mut events = Vec::new();
    let mut sink = |e: ServeEvent| events.push(e);
    let mut r = Run::new(&mut sink, Arc::new(AtomicBool::new(false)));
    let targets: Vec<Arc<dyn Target>> = vec![a.clone(), b.clone()];
    tokio::time::timeout(
        Duration::from_secs(30),
        run(&targets, &workload(), &plan(vec![load], 16), None, &mut r),
    )
    .await
    .expect("the load run ends")
    .unwrap();
    let offsets = |f: &Fake| {
        let t = f.sent_at.lock().unwrap().clone();
        t.iter()
            .map(|s| (*s - t[0]).as_secs_f64())
            .collect::<Vec<_>>()
    };
    let (oa, ob) = (offsets(&a), offsets(&b));
    assert_eq!(oa.len(), 16);
    for (x, y) in oa.iter().zip(&ob) {
        assert!((x - y).abs() < 0.03, "A sent at {oa:?}, B at {ob:?}");
    }
    // Normalised: the last arrival at (16 − 1) ÷ 10 s.
    assert!((oa[15] - 1.5).abs() < 0.05, "{oa:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_at_eos_despite_ignore_eos_is_named() {
    let mut fake = Fake::new(1, 64);
    fake.finish = Some("stop");
    let w = Workload {
        ignore_eos: true,
        ..workload()
    };
    let mut events = Vec::new();
    let mut sink = |e: ServeEvent| events.push(e);
    let mut r = Run::new(&mut sink, Arc::new(AtomicBool::new(false)));
    let target: Arc<dyn Target> = Arc::new(fake);
    let levels = run(
        &[target],
        &w,
        &plan(vec![Load::Concurrency(2)], 6),
        None,
        &mut r,
    )
    .await
    .unwrap();
    assert_eq!(levels[0].eos_stops, Some(6));
    let md = labtui::report::serve::markdown(&levels);
    assert!(
        md.contains("6 of 6 requests ended at end-of-sequence"),
        "{md}"
    );
    assert!(md.contains("p99 of fewer than 100 values"), "{md}");
    // Without the flag nothing is said.
    let (res, _) = go(
        Arc::new(Fake::new(1, 64)),
        &plan(vec![Load::Concurrency(2)], 6),
        None,
    )
    .await;
    assert_eq!(res.unwrap()[0].eos_stops, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_at_a_stop_are_counted_as_cancelled() {
    let fake: Arc<dyn Target> = Arc::new(Fake::new(2000, 64));
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        flag.store(true, Ordering::SeqCst);
    });
    let mut events = Vec::new();
    let mut sink = |e: ServeEvent| events.push(e);
    let mut r = Run::new(&mut sink, stop);
    let levels = tokio::time::timeout(
        Duration::from_secs(20),
        run(
            &[fake],
            &workload(),
            &plan(vec![Load::Concurrency(4)], 8),
            None,
            &mut r,
        ),
    )
    .await
    .expect("a stop ends the level")
    .unwrap();
    let l = &levels[0];
    assert_eq!((l.requests, l.ok, l.failed), (4, 0, 4), "{l:?}");
    assert!(
        l.errors.keys().any(|k| k.contains("cancel")),
        "{:?}",
        l.errors
    );
    assert!(matches!(l.stopped_early, Some(StopReason::Stopped)));
}
