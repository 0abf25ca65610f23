//! The scheduler's own checks on the synthetic model (the end-to-end ones are in tests/sched.rs).

use super::*;
use crate::engine::Engine;
use candle_core::Device;

fn req(id: u64, prompt: usize, max_tokens: usize) -> SeqRequest {
    SeqRequest {
        id,
        prompt: (0..prompt as u32)
            .map(|t| 1 + (t * 7 + id as u32) % 50)
            .collect(),
        max_tokens,
        sampling: SamplingParams::greedy(),
        ignore_eos: true,
    }
}

#[test]
fn refuses_what_could_never_fit() {
    let e = Engine::synthetic(&Default::default(), &Device::Cpu).unwrap();
    let cfg = SchedConfig {
        kv_blocks: 2,
        ..Default::default()
    };
    let mut s = Scheduler::new(&e.model, cfg, vec![]);
    assert_eq!(s.submit(req(1, 0, 4)), Err(SchedError::EmptyPrompt(1)));
    // 30 + 3 tokens held at most: 3 blocks.
    assert!(matches!(
        s.submit(req(2, 30, 4)),
        Err(SchedError::OverBudget { blocks: 3, .. })
    ));
    s.submit(req(3, 30, 3)).unwrap();
    assert_eq!(s.submit(req(3, 5, 3)), Err(SchedError::Duplicate(3)));
    assert!(s.cancel(3) && !s.cancel(3));
    assert!(s.is_idle());
}

#[test]
fn chunks_a_long_prompt_beside_a_decode() {
    let e = Engine::synthetic(&Default::default(), &Device::Cpu).unwrap();
    let cfg = SchedConfig {
        step_tokens: 32,
        ..Default::default()
    };
    let mut s = Scheduler::new(&e.model, cfg, vec![]);
    s.submit(req(1, 4, 8)).unwrap();
    s.step(&e.model).unwrap();
    s.submit(req(2, 70, 2)).unwrap();
    let ev = s.step(&e.model).unwrap();
    // Request 1 decodes one row; request 2's first chunk (to position 32) runs whole, one
    // token past the budget, as the step's first prefill.
    assert!(ev.contains(&SchedEvent::Prefill {
        req: 2,
        step: 1,
        start: 0,
        len: 32
    }));
    assert!(ev.iter().any(|e| matches!(
        e,
        SchedEvent::Step {
            decode_rows: 1,
            prefill_tokens: 32,
            ..
        }
    )));
    let ev = s.step(&e.model).unwrap();
    assert!(ev.contains(&SchedEvent::Prefill {
        req: 2,
        step: 2,
        start: 32,
        len: 32
    }));
    // The last chunk is the rest of the prompt.
    let ev = s.step(&e.model).unwrap();
    assert!(ev.contains(&SchedEvent::Prefill {
        req: 2,
        step: 3,
        start: 64,
        len: 6
    }));
}
