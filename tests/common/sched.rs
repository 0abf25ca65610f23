//! Driving the batching scheduler over an arrival stream, and the reference it is held to.

use labtui::engine::kv_cache::PrefixStats;
use labtui::engine::sampling::SamplingParams;
use labtui::engine::sched::{SchedConfig, Scheduler, SeqRequest};
use labtui::engine::{Engine, Model};
use labtui::protocol::SchedEvent;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The synthetic engine, loaded once per test binary.
pub fn engine() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(super::synthetic)
}

/// A request arriving before step `at`.
#[derive(Debug, Clone)]
pub struct Arrival {
    pub at: u64,
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
}

/// `prompt`'s greedy continuation run alone, its prompt in chunks of `chunk` tokens.
pub fn alone(model: &Model, prompt: &[u32], n: usize, chunk: usize) -> Vec<u32> {
    let run = super::greedy_alone(model, prompt, n, chunk);
    run.into_iter().map(|(t, _)| t).collect()
}

/// Every event of the run, and each request's tokens. Checks the block budget after every step.
pub fn drive(cfg: SchedConfig, stream: &[Arrival]) -> (Vec<SchedEvent>, BTreeMap<u64, Vec<u32>>) {
    drive_on(&engine().model, cfg, stream)
}

pub fn drive_on(
    model: &Model,
    cfg: SchedConfig,
    stream: &[Arrival],
) -> (Vec<SchedEvent>, BTreeMap<u64, Vec<u32>>) {
    let (events, out, _) = drive_stats(model, cfg, stream);
    (events, out)
}

/// As [`drive_on`], with the scheduler's prefix-cache counts at the end.
pub fn drive_stats(
    model: &Model,
    cfg: SchedConfig,
    stream: &[Arrival],
) -> (Vec<SchedEvent>, BTreeMap<u64, Vec<u32>>, PrefixStats) {
    let budget = cfg.kv_blocks;
    let mut s = Scheduler::new(model, cfg, vec![]);
    let mut events = Vec::new();
    let mut next = 0;
    let mut step = 0u64;
    while next < stream.len() || !s.is_idle() {
        while next < stream.len() && stream[next].at <= step {
            let a = &stream[next];
            s.submit(SeqRequest {
                id: next as u64,
                prompt: a.prompt.clone(),
                max_tokens: a.max_tokens,
                sampling: SamplingParams::greedy(),
                ignore_eos: true,
            })
            .unwrap();
            next += 1;
        }
        events.extend(s.step(model).unwrap());
        assert!(
            s.blocks_held() <= budget,
            "step {step}: {} blocks held",
            s.blocks_held()
        );
        let u = s.usage();
        assert_eq!(u.held, s.blocks_held());
        assert!(u.held <= budget);
        step += 1;
        assert!(step < 10_000, "the scheduler made no progress");
    }
    let mut out: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
    for e in &events {
        if let SchedEvent::Token { req, id, .. } = e {
            out.entry(*req).or_default().push(*id);
        }
    }
    (events, out, s.prefix_stats())
}

pub fn prompt(seed: usize, len: usize) -> Vec<u32> {
    (0..len)
        .map(|i| (1 + (seed * 131 + i * 17) % 250) as u32)
        .collect()
}

pub fn preempted(events: &[SchedEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, SchedEvent::Preempted { .. }))
        .count()
}
