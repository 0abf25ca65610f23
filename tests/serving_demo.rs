//! The serving-metrics demo on the synthetic model: `labtui serve` in process under a closed
//! loop, every policy at every level, with its numbers tied by the identities it reports.

mod common;

use labtui::protocol::serving::{ServingMetrics, ServingPlan, ServingPolicy};
use labtui::protocol::{DemoKind, DemoResult, DemoSection};
use std::time::Duration;

fn measure(plan: ServingPlan) -> ServingMetrics {
    let mut engine = common::synthetic();
    let section = DemoSection {
        serving: Some(plan),
        ..DemoSection::new(DemoKind::ServingMetrics)
    };
    let run = labtui::serve::lesson::run_demo(
        &mut engine,
        &section,
        "",
        &mut |line| eprintln!("{line}"),
        &mut |_| {},
    )
    .unwrap();
    match run.result {
        DemoResult::ServingMetrics(x) => *x,
        other => panic!("a serving-metrics result, not {other:?}"),
    }
}

fn small_plan() -> ServingPlan {
    ServingPlan {
        concurrency: vec![1, 4],
        // The second shape's prompts make more tokens than the synthetic context (512) holds.
        shapes: vec![(24, 8), (2000, 4)],
        warmup: 1,
        ..ServingPlan::default()
    }
}

/// Every policy measures every level, each request answered in full; goodput, cost and the
/// identities are filled and hold; the long shape's prompts were cut to fit the context; one
/// server at a time holds one request.
#[test]
fn every_policy_measures_every_level_and_the_identities_hold() {
    let x = measure(small_plan());
    assert_eq!(x.shapes.len(), 2);
    let long = &x.shapes[1];
    assert!(
        long.prompt_words < 2000 && long.tokens_per_prompt + 4 + 16 <= 512,
        "{} words, {} tokens",
        long.prompt_words,
        long.tokens_per_prompt
    );
    for r in &x.shapes {
        let policies: Vec<_> = r.policies.iter().map(|p| p.policy).collect();
        assert_eq!(policies, ServingPolicy::ALL);
        for p in &r.policies {
            let want_batch = match p.policy {
                ServingPolicy::OneAtATime => 1,
                _ => 16,
            };
            assert_eq!(p.max_batch, want_batch);
            let cs: Vec<_> = p.levels.iter().map(|l| l.concurrency).collect();
            assert_eq!(cs, [1, 4]);
            for l in &p.levels {
                let s = &l.summary;
                let what = format!("{} {} at {}", r.label(), p.policy, l.concurrency);
                assert_eq!((s.requests, s.ok), (8, 8), "{what}: {:?}", s.errors);
                assert_eq!(s.output_tokens, 8 * r.output_tokens as u64, "{what}");
                assert!(
                    s.prompt_tokens >= 8 * r.tokens_per_prompt as u64 / 2,
                    "{what}"
                );
                assert!(s.slo_met.is_some() && s.goodput.is_some(), "{what}");
                let usd = s.usd_per_mtok.unwrap();
                let want = x.plan.usd_per_hour / (3600.0 * s.output_tok_s) * 1e6;
                assert!(
                    (usd - want).abs() <= 1e-9 * want,
                    "{what}: {usd} against {want}"
                );
                let id = l.identities;
                assert!(id.tail_max < Duration::from_millis(100), "{what}: {id:?}");
                let little = id.little_in_flight / l.concurrency as f64;
                assert!((0.3..=1.001).contains(&little), "{what}: {id:?}");
            }
        }
    }
}

/// One request at a time queues: at 4 in flight each request waits for the ones before it, so
/// its TTFT is several times that at 1; continuous batching admits them into the running batch.
/// (Timing: measured up to three times.)
#[test]
fn one_at_a_time_queues_where_continuous_batching_admits() {
    let plan = ServingPlan {
        shapes: vec![(24, 16)],
        ..small_plan()
    };
    let mut failures = Vec::new();
    for _ in 0..3 {
        let x = measure(plan.clone());
        let ttft = |p: ServingPolicy, c: usize| {
            let l = x.shapes[0].policy(p).unwrap().level(c).unwrap();
            l.summary.ttft.p50.as_secs_f64()
        };
        let naive = ttft(ServingPolicy::OneAtATime, 4) / ttft(ServingPolicy::OneAtATime, 1);
        let cont = ttft(ServingPolicy::Continuous, 4);
        if naive > 1.5 && cont < ttft(ServingPolicy::OneAtATime, 4) {
            return;
        }
        failures.push(format!(
            "one at a time grew {naive:.2}×; continuous {cont:.4} s"
        ));
    }
    panic!("{failures:#?}");
}

/// The report has every table, the narration fills every step, and the chart has a line per
/// policy with a point per level.
#[test]
fn the_report_narrates_every_step_with_the_run_s_numbers() {
    let x = measure(small_plan());
    let preset = labtui::preset::load("demo-serving-metrics").unwrap();
    let run = labtui::protocol::DemoRun {
        demo: "serving-metrics".into(),
        model: "synthetic".into(),
        threads: 1,
        result: DemoResult::ServingMetrics(Box::new(x)),
        stamp: None,
        costs: None,
    };
    let md = labtui::report::demo::markdown(&run, &preset.notes);
    for want in [
        "## How many users fit",
        "### 24:8",
        "### 2000:4",
        "cut to",
        "| one at a time | 4 |",
        "## Request rate depends on the lengths",
    ] {
        assert!(md.contains(want), "{want} missing:\n{md}");
    }
    for step in labtui::report::demo::narrate(&preset.notes, &run) {
        assert!(!step.contains('{'), "unfilled: {step}");
    }
    let charts = labtui::report::demo::charts(&run.result);
    assert_eq!(charts.len(), 2);
    assert_eq!(charts[0].series.len(), 3);
    assert!(charts[0].series.iter().all(|s| s.points.len() == 2));
}

/// The worker's stop (`s`) reaches the in-process server's load: the demo ends with the
/// interrupted error within a level, not after every level has run.
#[test]
fn a_stop_ends_the_demo_within_a_level() {
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    labtui::engine::interrupt::install(flag.clone());
    let plan = ServingPlan {
        concurrency: vec![1, 2, 4, 8, 16],
        shapes: vec![(24, 200)],
        requests: Some(64),
        ..small_plan()
    };
    let setter = {
        let flag = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let mut engine = common::synthetic();
    let section = DemoSection {
        serving: Some(plan),
        ..DemoSection::new(DemoKind::ServingMetrics)
    };
    let t = std::time::Instant::now();
    let r = labtui::serve::lesson::run_demo(&mut engine, &section, "", &mut |_| {}, &mut |_| {});
    setter.join().unwrap();
    let e = r.expect_err("the demo was stopped");
    assert!(
        e.to_string()
            .contains(labtui::engine::interrupt::INTERRUPTED),
        "{e:#}"
    );
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
}
