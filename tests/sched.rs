//! The batching scheduler on the synthetic model: it never holds more KV blocks than its budget,
//! serves every request of any arrival stream, and gives each request the tokens the request gets
//! alone — under continuous or static batching, with or without preemption. Its events, replayed,
//! tell the same story.

use candle_core::Device;
use labtui::engine::kernels::SMALL_BATCH;
use labtui::engine::sampling::SamplingParams;
use labtui::engine::sched::{Replay, ReqState, SchedConfig, Scheduler, SeqRequest};
use labtui::engine::Engine;
use labtui::protocol::{FinishReason, SchedEvent, SchedPolicy};
use proptest::prelude::*;

mod common;

use common::sched::{alone, drive, drive_on, engine, preempted, prompt, Arrival};

/// Requests running that were admitted before `step`.
fn running_before(replay: &Replay, step: u64) -> usize {
    replay
        .reqs
        .values()
        .filter(|r| r.state == ReqState::Running && r.admitted < Some(step))
        .count()
}

/// Four requests whose peaks (49 tokens: 4 blocks each) cannot all fit 9 blocks.
fn tight_stream() -> Vec<Arrival> {
    (0..4)
        .map(|j| Arrival {
            at: j as u64,
            prompt: prompt(j, 20),
            max_tokens: 30,
        })
        .collect()
}

#[test]
fn a_preempted_request_gets_the_tokens_it_gets_uninterrupted() {
    let stream = tight_stream();
    let cfg = SchedConfig {
        kv_blocks: 9,
        max_batch: 4,
        step_tokens: 64,
        ..Default::default()
    };
    let (events, out) = drive(cfg, &stream);
    assert!(preempted(&events) > 0, "the budget forced no preemption");
    for (j, a) in stream.iter().enumerate() {
        let want = alone(&engine().model, &a.prompt, a.max_tokens, 64);
        assert_eq!(out[&(j as u64)], want, "request {j}");
    }
    // Each preempted request came back and recomputed what it had.
    let resumed = events
        .iter()
        .filter(|e| matches!(e, SchedEvent::Resumed { .. }))
        .count();
    assert_eq!(resumed, preempted(&events));
}

#[test]
fn static_and_continuous_batching_give_the_same_tokens_and_static_waits_for_its_batch() {
    let stream: Vec<Arrival> = (0..7)
        .map(|j| Arrival {
            at: 2 * j as u64,
            prompt: prompt(j, 5 + 11 * j),
            max_tokens: 3 + (j * 5) % 9,
        })
        .collect();
    let run = |policy| {
        drive(
            SchedConfig {
                policy,
                max_batch: 3,
                kv_blocks: 64,
                step_tokens: 32,
                prefix_cache: false,
            },
            &stream,
        )
    };
    let (cont_events, cont) = run(SchedPolicy::Continuous);
    let (stat_events, stat) = run(SchedPolicy::Static);
    assert_eq!(cont, stat);
    assert_eq!(cont.len(), stream.len());
    // Static: nobody is admitted while any request of the batch runs.
    let mut replay = Replay::default();
    for e in &stat_events {
        if let SchedEvent::Admitted { req, step, .. } = *e {
            assert_eq!(
                running_before(&replay, step),
                0,
                "request {req} joined a running batch"
            );
        }
        replay.apply(e);
    }
    // Continuous: someone is.
    let mut replay = Replay::default();
    let mut joined_running = false;
    for e in &cont_events {
        if let SchedEvent::Admitted { step, .. } = *e {
            joined_running |= running_before(&replay, step) > 0;
        }
        replay.apply(e);
    }
    assert!(joined_running);
    // Static makes requests wait longer: more steps in all.
    let steps = |ev: &[SchedEvent]| {
        ev.iter()
            .filter(|e| matches!(e, SchedEvent::Step { .. }))
            .count()
    };
    assert!(steps(&stat_events) > steps(&cont_events));
}

#[test]
fn recorded_events_replay_to_the_same_outputs() {
    let stream = tight_stream();
    let cfg = SchedConfig {
        kv_blocks: 9,
        ..Default::default()
    };
    let (events, out) = drive(cfg, &stream);
    let text = ron::to_string(&events).unwrap();
    let back: Vec<SchedEvent> = ron::from_str(&text).unwrap();
    assert_eq!(back, events);
    let mut replay = Replay::default();
    back.iter().for_each(|e| replay.apply(e));
    assert_eq!(replay.reqs.len(), stream.len());
    for (id, r) in &replay.reqs {
        assert_eq!(r.state, ReqState::Done(FinishReason::MaxTokens));
        assert_eq!(&r.tokens, &out[id]);
        assert!(r.prefilled >= r.prompt_tokens);
        assert!(r.arrived <= r.admitted.unwrap());
        assert!(r.admitted.unwrap() <= r.first_token.unwrap());
    }
    assert!(replay.reqs.values().map(|r| r.preemptions).sum::<usize>() > 0);
}

#[test]
fn a_cancelled_request_gives_its_blocks_back() {
    let model = &engine().model;
    let mut s = Scheduler::new(model, SchedConfig::default(), vec![]);
    for id in 0..3 {
        s.submit(SeqRequest {
            id,
            prompt: prompt(id as usize, 40),
            max_tokens: 50,
            sampling: SamplingParams::greedy(),
            ignore_eos: true,
        })
        .unwrap();
    }
    s.step(model).unwrap();
    assert_eq!(s.running(), 3);
    let held = s.blocks_held();
    assert!(s.cancel(1));
    assert_eq!(s.blocks_held(), held - 3);
    let ev = s.take_events();
    assert!(ev.contains(&SchedEvent::Finished {
        req: 1,
        step: 1,
        reason: FinishReason::Stopped,
        generated: 1,
    }));
}

fn arrival() -> impl Strategy<Value = Arrival> {
    // Few seeds: prompts of one seed are prefixes of each other, for the prefix cache to find.
    (0..12u64, 1..70usize, 1..10usize, 0..4usize).prop_map(|(at, len, max_tokens, seed)| Arrival {
        at,
        prompt: prompt(seed, len),
        max_tokens,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Whatever arrives, under whatever budget that fits the largest request, with or without
    /// the prefix cache: blocks stay within the budget (checked in `drive`), every request
    /// finishes with all its tokens, and those are the tokens it gets alone.
    #[test]
    fn every_request_is_served_within_the_block_budget(
        mut stream in proptest::collection::vec(arrival(), 1..8),
        extra_blocks in 0..8usize,
        max_batch in 1..6usize,
        step_tokens in 4..80usize,
        static_policy in any::<bool>(),
        prefix_cache in any::<bool>(),
    ) {
        stream.sort_by_key(|a| a.at);
        let peak = stream
            .iter()
            .map(|a| (a.prompt.len() + a.max_tokens - 1).div_ceil(16))
            .max()
            .unwrap();
        let cfg = SchedConfig {
            policy: if static_policy { SchedPolicy::Static } else { SchedPolicy::Continuous },
            max_batch,
            kv_blocks: peak + extra_blocks,
            step_tokens,
            prefix_cache,
        };
        let (events, out) = drive(cfg, &stream);
        prop_assert_eq!(out.len(), stream.len());
        for (j, a) in stream.iter().enumerate() {
            let want = alone(&engine().model, &a.prompt, a.max_tokens, step_tokens);
            prop_assert_eq!(&out[&(j as u64)], &want, "request {}", j);
        }
        let finished = events
            .iter()
            .filter(|e| matches!(e, SchedEvent::Finished { reason: FinishReason::MaxTokens, .. }))
            .count();
        prop_assert_eq!(finished, stream.len());
    }
}

/// The dashboard's view, fed the events alone, knows after every step what the scheduler held:
/// the running and waiting queues, and each running request's blocks (their sum is the step's
/// `blocks_held`), through prefill chunks, decode rows, preemption and recomputation.
#[test]
fn the_view_rebuilds_queues_and_blocks_from_the_events() {
    use labtui::state::SchedView;
    let stream = tight_stream();
    let cfg = SchedConfig {
        kv_blocks: 9,
        max_batch: 4,
        step_tokens: 24,
        ..Default::default()
    };
    let (events, _) = drive(cfg, &stream);
    assert!(preempted(&events) > 0);
    let mut view = SchedView::default();
    let mut steps = 0;
    for e in &events {
        view.apply(std::time::Duration::ZERO, e);
        if let SchedEvent::Step {
            running,
            waiting,
            blocks_held,
            blocks_total,
            ..
        } = *e
        {
            steps += 1;
            let held: usize = view.blocks().iter().map(|b| b.1).sum();
            assert_eq!(held, blocks_held, "after {e:?}: {:?}", view.blocks());
            assert_eq!(view.ids(|s| s == ReqState::Running).len(), running);
            assert_eq!(view.ids(|s| s == ReqState::Waiting).len(), waiting);
            assert_eq!(view.blocks_total(), blocks_total);
        }
    }
    assert!(steps > 10);
    assert_eq!(view.preemptions as usize, preempted(&events));
    assert!(view.blocks().is_empty(), "every block back at the end");
}

/// The scheduler view as the dashboard draws it, from a synthetic stream's events part way
/// through: sixteen requests at once on four slots and twelve blocks (so some are preempted),
/// stamped 50 ms a step. Every request arrives at step 0, so the decisions do not depend on the
/// machine's speed.
#[test]
fn the_scheduler_view_draws_queues_timeline_and_blocks() {
    use labtui::lab::stream;
    use labtui::protocol::{Arrivals, Event, Stamped};
    use labtui::state::AppState;
    use ratatui::{backend::TestBackend, Terminal};
    let arrivals = Arrivals {
        rate: f64::INFINITY,
        requests: 16,
        prompt_tokens: (8, 40),
        output_tokens: (4, 30),
        seed: 5,
    };
    let reqs = stream::requests(&arrivals, engine().model.cfg.vocab).unwrap();
    let cfg = SchedConfig {
        max_batch: 4,
        kv_blocks: 12,
        ..Default::default()
    };
    let mut events = Vec::new();
    stream::run(
        &engine().model,
        cfg,
        &reqs,
        &[],
        stream::Pace::Skip,
        &mut |_, e| events.push(e.clone()),
    )
    .unwrap();
    let mut s = AppState::new("synthetic", "");
    // Steps of 50 ms: arrivals come before the step they join, its other events at its end.
    let mut steps = 0;
    for e in &events {
        let at = match e {
            SchedEvent::Arrived { .. } => 50 * steps,
            _ => 50 * (steps + 1),
        };
        if let SchedEvent::Step { .. } = e {
            steps += 1;
        }
        if steps > 25 {
            break;
        }
        s.apply(&Stamped {
            at: std::time::Duration::from_millis(at),
            event: Event::Sched(e.clone()),
        });
    }
    let v = &s.store.sched;
    assert!(v.ids(|r| r == ReqState::Running).len() <= 4);
    assert!(!v.ids(|r| r == ReqState::Waiting).is_empty());
    for (w, h) in [(160, 50), (100, 30)] {
        let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
        t.draw(|f| labtui::tui::view::render(&s, f.area(), f.buffer_mut()))
            .unwrap();
        let screen = format!("{}", t.backend());
        assert!(screen.contains("scheduler · step 24"), "{screen}");
        assert!(screen.contains("running (") && screen.contains("waiting ("));
        assert!(screen.contains("KV blocks of 16 tokens"));
        insta::assert_snapshot!(format!("sched_view_{w}x{h}"), t.backend());
    }
}

/// On the real 0.5B (Q4_K and Q6_K weights, whose prefill and decode products sum in different
/// orders) each request gets, bit for bit, the tokens it gets alone: with enough blocks (prompt
/// chunks of several requests multiplied together), and with so few that requests are preempted
/// and recompute what they had. Prompts span several chunks.
#[test]
fn real_model_requests_get_their_tokens_alone_through_batching_and_preemption() {
    let Some(path) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let e = Engine::from_file(&path, &Device::Cpu).unwrap();
    let texts = [
        "def quicksort(xs):\n    \"\"\"Sort a list of integers in place and return it.\"\"\"\n",
        "Explain, in two short paragraphs, why a hash map lookup takes constant time on average \
         and what happens when two keys collide in the same bucket.",
        "// Rust: a function that reads a file line by line and counts the words in it.\nuse std::",
        "The three most common mistakes people make when they first learn SQL joins are",
    ];
    let stream: Vec<Arrival> = texts
        .iter()
        .enumerate()
        .map(|(j, t)| Arrival {
            // Three at once: their prompt chunks share the step's products.
            at: j.saturating_sub(2) as u64,
            prompt: e.tokenizer.encode(t).unwrap(),
            max_tokens: 24,
        })
        .collect();
    let cfg = |kv_blocks| SchedConfig {
        kv_blocks,
        max_batch: 4,
        step_tokens: 32,
        ..Default::default()
    };
    let (ample_events, ample) = drive_on(&e.model, cfg(64), &stream);
    assert_eq!(preempted(&ample_events), 0);
    let (tight_events, tight) = drive_on(&e.model, cfg(8), &stream);
    assert!(
        preempted(&tight_events) > 0,
        "8 blocks forced no preemption"
    );
    for (j, a) in stream.iter().enumerate() {
        let want = alone(&e.model, &a.prompt, a.max_tokens, 32);
        assert_eq!(ample[&(j as u64)], want, "request {j} with enough blocks");
        assert_eq!(tight[&(j as u64)], want, "request {j}, preempted");
    }
}

/// A request's pieces depend on its positions only, never on the budget left or on preemption:
/// its prompt in chunks that end at multiples of `step_tokens` (or at its end), whatever else the
/// step runs; recomputed after preemption in those very chunks; its generated tokens recomputed
/// in short spans that never reach into the prompt. (A long span sums in another order than
/// decode rows, and a prompt run as 40 + 40 tokens gets other bits than as 80; on the real model
/// that changes tokens.)
#[test]
fn every_piece_a_request_runs_is_a_function_of_its_positions() {
    let step_tokens = 24;
    // Peaks of 4, 4, 5 and 5 blocks; all four are admitted, and preempted as their outputs grow.
    let stream: Vec<Arrival> = (0..4)
        .map(|j| Arrival {
            at: j as u64,
            prompt: prompt(j, 20 + 9 * j),
            max_tokens: 30,
        })
        .collect();
    let cfg = SchedConfig {
        kv_blocks: 10,
        max_batch: 4,
        step_tokens,
        ..Default::default()
    };
    let (events, _) = drive(cfg, &stream);
    assert!(preempted(&events) > 0, "the budget forced no preemption");
    let mut recomputed_generated = false;
    for e in &events {
        let SchedEvent::Prefill {
            req, start, len, ..
        } = *e
        else {
            continue;
        };
        let p = stream[req as usize].prompt.len();
        let end = start + len;
        if start < p {
            assert!(
                start % step_tokens == 0 && (end % step_tokens == 0 || end == p) && end <= p,
                "request {req}: prompt piece {start}..{end} of {p}"
            );
        } else {
            recomputed_generated = true;
            assert!(
                len <= SMALL_BATCH,
                "request {req}: {len} generated tokens in one span"
            );
        }
    }
    assert!(
        recomputed_generated,
        "no generated tokens were recomputed: {events:?}"
    );
}
