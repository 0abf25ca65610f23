//! The measured window of a level and the capacity search, against stand-in targets (no
//! HTTP): a ramp raises the load linearly and is cut from the window, the drain after the last
//! send is cut, warm-up and cool-down cut the latencies' requests, and the search finds the
//! most a server sustains within an SLO.

#[path = "common/fake.rs"]
mod fake;
use fake::{go, plan, Fake};

use labtui::protocol::serve::{Load, Slo};
use labtui::serve::load::capacity::{found, Over, Search};
use labtui::serve::load::Cut;
use std::sync::Arc;
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_ramp_starts_with_one_in_flight() {
    for ramp in [None, Some(ms(800))] {
        let fake = Fake::new(100, 8);
        let sent = fake.sent_at.clone();
        let most = fake.most_in_flight.clone();
        let mut p = plan(vec![Load::Concurrency(4)], 24);
        p.cut.ramp_up = ramp;
        let (levels, _) = go(Arc::new(fake), &p, None).await;
        let l = &levels.unwrap()[0];
        // Within the ramp's first 200 ms one request may be in flight; without, four at once
        // (and four more when they end, 100 ms in).
        let early = sent.lock().unwrap().iter().filter(|s| **s < ms(90)).count();
        assert_eq!(early, if ramp.is_some() { 1 } else { 4 }, "{ramp:?}");
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 4);
        let w = l.steady.expect("a steady window");
        if ramp.is_some() {
            // The window starts once all four may run, 800 ms in, and latencies skip the ramp's.
            assert!(w.from >= ms(800), "{w:?}");
            assert!(l.ttft.n < 24, "the ramp's requests are not measured");
        } else {
            assert_eq!(l.ttft.n, 24);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_loop_ramp_raises_the_rate_from_zero() {
    let fake = Fake::new(20, 64);
    let sent = fake.sent_at.clone();
    let mut p = plan(
        vec![Load::Rate {
            rate: 40.0,
            burstiness: 1.0,
            max_concurrency: None,
        }],
        40,
    );
    p.cut.ramp_up = Some(ms(1000));
    let (levels, _) = go(Arc::new(fake), &p, None).await;
    let l = &levels.unwrap()[0];
    // At 40 req/s ramped over 1 s, 40·t²/2 are due by t: 5 by 0.5 s (20 without the ramp);
    // the Poisson draws move a few.
    let early = sent
        .lock()
        .unwrap()
        .iter()
        .filter(|s| **s < ms(500))
        .count();
    assert!(early <= 10, "{early} sent in the first 0.5 s");
    // All 40 go out by 1 + 39/40 − 0.5 s, the ramp costing half its length.
    assert!(l.steady.unwrap().from >= ms(1000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_after_the_last_send_is_cut_from_the_window() {
    // One slot, four in flight: the last request sent waits for three before it.
    let fake = Fake::new(100, 1);
    let (levels, _) = go(Arc::new(fake), &plan(vec![Load::Concurrency(4)], 8), None).await;
    let l = &levels.unwrap()[0];
    let w = l.steady.unwrap();
    // The last send is when the fifth request ended, ~400 ms in; the level ends ~800 ms in.
    assert!(w.to < l.duration, "{w:?} against {:?}", l.duration);
    assert!(w.to >= ms(350), "{w:?}");
    assert!(w.to + ms(300) < l.duration, "the drain is ~400 ms: {w:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_and_cool_down_cut_the_requests_measured() {
    let fake = Fake::new(50, 4);
    let mut p = plan(vec![Load::Concurrency(1)], 20);
    p.cut = Cut {
        ramp_up: None,
        warm_up: ms(240),
        cool_down: ms(240),
    };
    p.percentiles = vec![95.0, 99.9];
    let (levels, _) = go(Arc::new(fake), &p, None).await;
    let l = &levels.unwrap()[0];
    let w = l.steady.unwrap();
    // 20 requests, one per ~50 ms: about 5 cut at each end (fewer on a slow machine, where
    // each takes longer).
    assert!(l.ttft.n <= 16 && l.ttft.n >= 4, "{} measured", l.ttft.n);
    assert_eq!(w.requests, l.ttft.n);
    let p = l.percentiles.as_ref().unwrap();
    assert_eq!(p.at, [95.0, 99.9]);
    assert_eq!(p.e2e.len(), 2);
    assert!(p.e2e[1] >= p.e2e[0] && p.e2e[1] == l.e2e.max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_search_finds_the_servers_slots() {
    // Four slots at 100 ms: four in flight meet an E2E of 150 ms, a fifth queues for 200 ms.
    let fake = Fake::new(100, 4);
    let mut p = plan(Vec::new(), 8);
    p.slo = Some(Slo {
        e2e: Some(ms(150)),
        ..Slo::default()
    });
    p.search = Some(Search {
        over: Over::Concurrency,
        attain: 0.9,
        start: 1.0,
        steps: 4,
        burstiness: 1.0,
        most: None,
    });
    let (levels, _) = go(Arc::new(fake), &p, None).await;
    let levels = levels.unwrap();
    let probed: Vec<Load> = levels.iter().map(|l| l.load).collect();
    assert_eq!(
        probed,
        [1, 2, 4, 8, 6, 5].map(Load::Concurrency).to_vec(),
        "double to a failure, then bisect"
    );
    let best = found(&levels, "fake://server", 0.9).unwrap();
    assert_eq!(best.load, Load::Concurrency(4));
    assert_eq!(best.slo_met, Some(8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversations_follow_up_after_their_think_time() {
    let fake = Fake::new(50, 8);
    let (seen, most) = (fake.seen.clone(), fake.most_in_flight.clone());
    let mut p = plan(vec![Load::Concurrency(2)], 12);
    p.turns = labtui::serve::load::turns::Turns {
        turns: 3,
        think: ms(100),
    };
    let (levels, _) = go(Arc::new(fake), &p, None).await;
    let l = &levels.unwrap()[0];
    assert_eq!(l.ok, 12);
    let seen = seen.lock().unwrap();
    // Conversations of three turns: no history, then one exchange, then two. A user whose
    // conversation ended makes way for a new one, so the twelfth request may be a fifth
    // conversation's first turn.
    let depth = |d: usize| seen.iter().filter(|r| r.context.len() == d).count();
    assert_eq!(depth(0) + depth(2) + depth(4), 12);
    assert!((4..=5).contains(&depth(0)), "{}", depth(0));
    assert!(depth(2) >= 3 && depth(4) >= 3, "{} {}", depth(2), depth(4));
    let third = seen.iter().find(|r| r.context.len() == 4).unwrap();
    assert_eq!(third.context[1].role, "assistant");
    assert_eq!(third.context[1].content, "a reply");
    assert_eq!(third.prompt, labtui::serve::load::turns::FOLLOW_UPS[1]);
    // Two users at most, thinking or waiting; six turns one after another take at least
    // 6 × 50 ms of serving and 4 × 100 ms of thinking on average.
    assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    assert!(l.duration >= ms(300), "{:?}", l.duration);
}
