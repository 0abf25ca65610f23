//! The dashboard's batch run (`B`): the prompt runs as B sequences at once on the batching
//! scheduler, each sequence sampling with its own seed. Each copy gets exactly the tokens a plain
//! run with its seed gets; the scheduler's view shows every sequence's progress and the aggregate
//! throughput, and Esc closes it.

mod common;

use labtui::protocol::{Command, Event, GenParams, SchedEvent, Stamped};
use labtui::state::{Action, AppState, Happened, Status, UiNotice};
use labtui::worker::{Options, Worker};
use ratatui::{backend::TestBackend, Terminal};
use std::collections::BTreeMap;
use std::time::Duration;

const PROMPT: &str = "the quick brown fox";

fn worker() -> Worker {
    let w = Worker::spawn(Options {
        sample_every: None,
        ..Options::default()
    });
    w.send(Command::LoadModel {
        spec: "synthetic".into(),
    });
    w
}

/// Every event until one matches `done` (which is returned last), within a minute.
fn until(w: &mut Worker, done: impl Fn(&Event) -> bool) -> Vec<Stamped> {
    common::worker::events_until(w, Duration::from_secs(60), done)
}

/// A plain run's tokens with these parameters.
fn alone(w: &mut Worker, params: &GenParams) -> Vec<u32> {
    w.send(Command::Generate {
        prompt: PROMPT.into(),
        params: params.clone(),
    });
    until(w, |e| matches!(e, Event::RunFinished { .. }))
        .into_iter()
        .filter_map(|s| match s.event {
            Event::Token(t) => Some(t.id),
            _ => None,
        })
        .collect()
}

/// The batch run's tokens by sequence, and its events.
fn batch(w: &mut Worker, params: &GenParams, n: usize) -> (BTreeMap<u64, Vec<u32>>, Vec<Stamped>) {
    w.send(Command::RunBatch {
        prompt: PROMPT.into(),
        params: params.clone(),
        batch: n,
    });
    let events = until(w, |e| matches!(e, Event::BatchDone(_)));
    let mut tokens: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for s in &events {
        if let Event::Sched(SchedEvent::Token { req, index, id, .. }) = s.event {
            let t = tokens.entry(req).or_default();
            assert_eq!(t.len(), index, "tokens of #{req} in order");
            t.push(id);
        }
    }
    (tokens, events)
}

#[test]
fn each_copy_gets_the_tokens_of_a_plain_run_with_its_seed() {
    let mut w = worker();
    until(&mut w, |e| matches!(e, Event::ModelLoaded(_)));
    let greedy = GenParams {
        max_tokens: 12,
        ignore_eos: true,
        ..GenParams::default()
    };
    let (tokens, events) = batch(&mut w, &greedy, 4);
    assert!(
        matches!(
            events.iter().find_map(|s| match &s.event {
                Event::Sched(e @ SchedEvent::Started { .. }) => Some(e.clone()),
                _ => None,
            }),
            Some(SchedEvent::Started { max_batch: 4, .. })
        ),
        "a scheduler of 4 rows starts"
    );
    // All four ran in the same steps: one prefill step, then one decode row each per step.
    let steps = events
        .iter()
        .filter(|s| matches!(s.event, Event::Sched(SchedEvent::Step { .. })))
        .count();
    assert_eq!(steps, 12, "4 sequences × 12 tokens in 12 steps");
    let plain = alone(&mut w, &greedy);
    assert_eq!(plain.len(), 12);
    assert_eq!(tokens.len(), 4);
    for (req, t) in &tokens {
        assert_eq!(t, &plain, "greedy copy #{req} is the plain run");
    }
    let done = events.last().unwrap();
    assert!(
        matches!(&done.event, Event::BatchDone(d) if d.tokens == 48 && d.distinct == 1),
        "{done:?}"
    );

    // Sampled: copy i draws with seed + i, as a plain run with that seed does (the synthetic
    // model's logits are peaked: a high temperature spreads the draws).
    let sampled = GenParams {
        temperature: 50.0,
        seed: 7,
        ..greedy
    };
    let (tokens, _) = batch(&mut w, &sampled, 3);
    for (req, t) in &tokens {
        let with_seed = GenParams {
            seed: 7 + req,
            ..sampled.clone()
        };
        assert_eq!(t, &alone(&mut w, &with_seed), "sampled copy #{req}");
    }
    assert_ne!(tokens[&0], tokens[&1], "other seeds, other tokens");
}

#[test]
fn b_runs_the_batch_in_the_dashboard_and_esc_closes_its_view() {
    let mut w = worker();
    let mut s = AppState::new("synthetic", PROMPT);
    assert!(
        s.update(Action::RunBatch).is_empty(),
        "no model yet: nothing runs"
    );
    for e in until(&mut w, |e| matches!(e, Event::ModelLoaded(_))) {
        s.apply(&e);
    }
    s.ui.params.max_tokens = 10;
    s.ui.params.ignore_eos = true;
    // b: batch 1, 2, 4.
    s.update(Action::CycleBatch);
    s.update(Action::CycleBatch);
    assert_eq!(s.ui.status, Status::Ui(UiNotice::BatchSize(4)));
    let cmds = s.update(Action::RunBatch);
    assert!(
        matches!(cmds.as_slice(), [Command::RunBatch { batch: 4, .. }]),
        "{cmds:?}"
    );
    w.send(cmds[0].clone());
    let draw = |s: &AppState| {
        let mut t = Terminal::new(TestBackend::new(140, 40)).unwrap();
        t.draw(|f| labtui::tui::view::render(s, f.area(), f.buffer_mut()))
            .unwrap();
        format!("{:?}", t.backend())
    };
    let mut seen_running = false;
    for e in until(&mut w, |e| matches!(e, Event::BatchDone(_))) {
        s.apply(&e);
        if s.store.scheduling() && !seen_running {
            seen_running = true;
            assert!(
                s.update(Action::RunBatch).is_empty(),
                "a second batch waits for the first"
            );
        }
    }
    assert!(seen_running);
    let screen = draw(&s);
    assert!(screen.contains("scheduler"), "{screen}");
    assert!(
        screen.contains("tok/s"),
        "the aggregate throughput: {screen}"
    );
    for id in 0..4 {
        assert!(
            screen.contains(&format!("#{id}")),
            "sequence #{id}: {screen}"
        );
    }
    assert!(
        matches!(&s.ui.status, Status::Worker(Happened::BatchDone(d)) if d.batch == 4 && d.tokens == 40),
        "{:?}",
        s.ui.status
    );
    assert!(!s.store.scheduling());
    // `e` explains the scheduler's figures, each drawn in its title.
    let (name, figs) = labtui::tui::panes::explain::figures(&s).unwrap();
    assert_eq!(name, "scheduler");
    assert!(figs.iter().any(|f| f.name == "throughput"), "{figs:?}");
    for f in &figs {
        assert!(
            screen.contains(&f.shown()),
            "{} not drawn: {screen}",
            f.shown()
        );
        if let Some(v) = f.evaluate() {
            assert!((v - f.value).abs() < 1e-9, "{}", f.formula());
        }
    }
    // Arrivals are heard before the step that prefills them, so each TTFT holds that step (about
    // half of the whole run here), not the microseconds between two of its events.
    let ttft: Vec<_> = s.store.sched.ttft.iter().copied().collect();
    let e2e: Vec<_> = s.store.sched.e2e.iter().copied().collect();
    assert_eq!((ttft.len(), e2e.len()), (4, 4));
    for (t, e) in ttft.iter().zip(&e2e) {
        assert!(*t * 20 >= *e, "TTFT {ttft:?} against E2E {e2e:?}");
    }
    // Esc closes the view: the prompt is back.
    s.update(Action::Escape);
    let screen = draw(&s);
    assert!(!screen.contains("scheduler ·"), "{screen}");
    assert!(screen.contains(PROMPT), "{screen}");
    // The next batch shows its view again.
    let cmds = s.update(Action::RunBatch);
    assert_eq!(cmds.len(), 1);
    assert!(s.ui.sched_shown(&s.store));
}
