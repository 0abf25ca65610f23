//! Demo 4b, speculation: the same greedy generation plain and with each draft mode at each K,
//! through the generation loop the dashboard uses — tok/s, acceptance, mean accepted length,
//! speedup over plain decoding, and whether the text is plain greedy's.

use crate::engine::spec::{Drafter, Speculator};
use crate::engine::{generate, Engine, Prompt, RunRequest, StepControl};
use crate::protocol::demo::{SpecPoint, SpecSweep};
use crate::protocol::{DemoKind, DemoSection, DraftMode, GenParams, RunSettings, RunSummary};
use anyhow::{bail, Result};

/// The draft modes this demo sweeps: both draft from the target itself, no second model needed.
pub const MODES: [DraftMode; 2] = [DraftMode::PromptLookup, DraftMode::LayerSkip];

fn once(
    engine: &mut Engine,
    spec: &mut Speculator,
    prompt: &str,
    params: &GenParams,
) -> Result<RunSummary> {
    let settings = RunSettings {
        params: params.clone(),
        quantization: engine.quant,
        draft_mode: spec.drafter.mode(),
        k: spec.controller.policy(),
        policy: Default::default(),
    };
    let request = RunRequest::new(0, Prompt::Text(prompt.into()), settings);
    Ok(generate(engine, spec, &request, &mut |_| {}, &mut || {
        StepControl::Continue
    })?)
}

pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    prompt: &str,
    progress: &mut dyn FnMut(String),
) -> Result<SpecSweep> {
    if prompt.trim().is_empty() {
        bail!("the speculation demo needs a prompt (the preset's first)");
    }
    let params = GenParams {
        max_tokens: section.output_tokens(DemoKind::Speculation),
        ignore_eos: true,
        ..GenParams::default()
    };
    let ks = if section.ks.is_empty() {
        vec![2, 4, 8]
    } else {
        section.ks.clone()
    };
    // Warm-up, then the plain baseline.
    let warm = GenParams {
        max_tokens: 4,
        ..params.clone()
    };
    once(engine, &mut Speculator::none(), prompt, &warm)?;
    let before = once(engine, &mut Speculator::none(), prompt, &params)?;
    progress(format!("plain: {:.1} tok/s", before.decode_tok_s));
    let mut runs = Vec::new();
    for mode in MODES {
        for &k in &ks {
            let drafter =
                Drafter::for_mode(mode, &engine.model, None).expect("modes that draft alone");
            let mut spec = Speculator::new(drafter, crate::protocol::KPolicy::from_number(k));
            let s = once(engine, &mut spec, prompt, &params)?;
            progress(format!("{mode} K {k}: {:.1} tok/s", s.decode_tok_s));
            runs.push((mode, k, s));
        }
    }
    let after = once(engine, &mut Speculator::none(), prompt, &params)?;
    let plain_tok_s = (before.decode_tok_s + after.decode_tok_s) / 2.0;
    let points = runs
        .into_iter()
        .map(|(mode, k, s)| {
            let p = s
                .spec
                .clone()
                .unwrap_or_else(|| unreachable!("a speculative run"));
            SpecPoint {
                mode,
                k,
                decode_tok_s: s.decode_tok_s,
                acceptance: p.acceptance_rate,
                mean_accepted_len: p.mean_accepted_len,
                speedup: s.decode_tok_s / plain_tok_s.max(1e-9),
                same_text: s.text == before.text,
            }
        })
        .collect();
    Ok(SpecSweep {
        prompt_tokens: before.prompt_tokens,
        generated_tokens: before.generated_tokens,
        plain_tok_s,
        points,
    })
}
