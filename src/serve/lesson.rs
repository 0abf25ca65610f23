//! The serving-metrics demo (lesson 2): `labtui serve` started in process on loopback, one server
//! per scheduling policy, measured by labtui's own load generator in a closed loop at each
//! concurrency — the same client, workload and summaries as `labtui bench serve`. Each level's
//! numbers are checked against the identities that tie them (E2E = TTFT + (n − 1) · ITL per
//! request; Little's law). It lives here, not in `lab`, because it needs the server.

use crate::engine::kv_cache::BLOCK_TOKENS;
use crate::engine::sched::SchedConfig;
use crate::engine::Engine;
use crate::protocol::serve::{Api, Endpoint, LevelSummary, Load, Outcome, ServeEvent};
use crate::protocol::serving::{
    Identities, PolicyRun, ServingLevel, ServingMetrics, ServingPlan, ServingPolicy, ShapeRun,
};
use crate::protocol::{DemoKind, DemoResult, DemoRun, DemoSection, Event, SchedPolicy};
use crate::serve::client::{Cancel, Client};
use crate::serve::load::workload::{Prompts, Workload};
use crate::serve::load::{self, Cut, LoadPlan, Target};
use crate::serve::server::{ServeConfig, Server};
use anyhow::{bail, Context, Result};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// A queued request may wait this long for its first token: one at a time at 16 in flight waits
/// for fifteen others.
const STALL: Duration = Duration::from_secs(300);

/// The synthetic prompts' seed; a level's adds its place, so no two levels send the same prompt.
const SEED: u64 = 2;

/// Run any demo on `engine`: serving-metrics here, every other one in [`crate::lab`].
pub fn run_demo(
    engine: &mut Engine,
    section: &DemoSection,
    prompt: &str,
    progress: &mut dyn FnMut(String),
    live: &mut dyn FnMut(Event),
) -> Result<DemoRun> {
    if section.kind().map_err(anyhow::Error::msg)? != DemoKind::ServingMetrics {
        return crate::lab::run(engine, section, prompt, progress, live);
    }
    let x = run(engine, section, progress)?;
    Ok(crate::lab::finish(
        engine,
        DemoKind::ServingMetrics,
        DemoResult::ServingMetrics(Box::new(x)),
    ))
}

/// Every shape under every policy at every concurrency of the section's plan.
pub fn run(
    engine: &Engine,
    section: &DemoSection,
    progress: &mut dyn FnMut(String),
) -> Result<ServingMetrics> {
    let plan = section.serving.clone().unwrap_or_default();
    plan.validate().map_err(anyhow::Error::msg)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let step_tokens = SchedConfig::default().step_tokens;
    let mut shapes = Vec::new();
    for (s, &(p, o)) in plan.shapes.iter().enumerate() {
        let shape = fit(engine, p, o, SEED + 100 * s as u64)?;
        let mut policies = Vec::new();
        for &policy in &plan.policies {
            policies.push(rt.block_on(policy_run(engine, &plan, policy, shape, progress))?);
        }
        shapes.push(ShapeRun {
            prompt_tokens: p,
            output_tokens: o,
            prompt_words: shape.words,
            tokens_per_prompt: shape.tokens,
            policies,
        });
    }
    Ok(ServingMetrics {
        plan,
        shapes,
        step_tokens,
    })
}

/// What a shape's requests are: synthetic prompts of `words` words (`tokens` by this model's
/// tokenizer) and `output` tokens to generate.
#[derive(Clone, Copy)]
struct Shape {
    words: usize,
    tokens: usize,
    output: usize,
    seed: u64,
}

/// Room for the tag a warm-up request's prompt starts with.
const TAG_TOKENS: usize = 16;

/// The shape of `prompt` words and `output` tokens, its prompts cut to fit the model's context
/// where this tokenizer makes more tokens of them (a synthetic prompt of n words is about n
/// tokens for the usual vocabularies, not for every one).
fn fit(engine: &Engine, prompt: usize, output: usize, seed: u64) -> Result<Shape> {
    let context = engine.model.cfg.context_length;
    let room = context.saturating_sub(output + TAG_TOKENS);
    if room == 0 {
        bail!("serving-metrics: {output} output tokens leave no room for a prompt in the model's context of {context}");
    }
    let mut shape = Shape {
        words: prompt,
        tokens: 0,
        output,
        seed,
    };
    loop {
        let text = &workload(shape, 0).requests(1)[0].prompt;
        shape.tokens = engine.tokenizer.encode_prompt(text)?.len();
        if shape.tokens <= room {
            return Ok(shape);
        }
        if shape.words == 1 {
            bail!("serving-metrics: a one-word prompt is {} tokens, past the room of {room} in the model's context", shape.tokens);
        }
        shape.words = (shape.words * room / shape.tokens).clamp(1, shape.words - 1);
    }
}

/// The server a policy runs: continuous or static batching up to the plan's batch, or one
/// request at a time; blocks for a full batch of the longest requests, so memory never limits it.
fn config(plan: &ServingPlan, policy: ServingPolicy, tokens: usize) -> ServeConfig {
    let max_batch = match policy {
        ServingPolicy::OneAtATime => 1,
        _ => plan.max_batch,
    };
    ServeConfig {
        addr: (std::net::Ipv4Addr::LOCALHOST, 0).into(),
        sched: SchedConfig {
            policy: match policy {
                ServingPolicy::Static => SchedPolicy::Static,
                _ => SchedPolicy::Continuous,
            },
            max_batch,
            kv_blocks: max_batch * (tokens.div_ceil(BLOCK_TOKENS) + 1),
            ..SchedConfig::default()
        },
    }
}

/// One policy's server on one shape, its levels in turn (the first after the warm-up).
async fn policy_run(
    engine: &Engine,
    plan: &ServingPlan,
    policy: ServingPolicy,
    shape: Shape,
    progress: &mut dyn FnMut(String),
) -> Result<PolicyRun> {
    let cfg = config(plan, policy, shape.tokens + shape.output + TAG_TOKENS);
    let server = Server::start_model(
        engine.model.clone(),
        engine.tokenizer.clone(),
        engine.info.name.clone(),
        &cfg,
        None,
    )
    .context("starting the in-process server on loopback")?;
    let target: Arc<dyn Target> = Arc::new(crate::serve::target::Http {
        client: Client::new(STALL),
        metrics: reqwest::Client::builder().no_proxy().build()?,
        endpoint: Endpoint {
            url: server.url(),
            api_key: None,
            model: None,
            api: Api::Completions,
        },
        cancel: Cancel::new(),
    });
    let mut levels = Vec::new();
    for (i, &c) in plan.concurrency.iter().enumerate() {
        let (summary, outcomes) = level(&target, plan, shape, c, i).await?;
        progress(format!(
            "{}:{} {policy} at {c} in flight: {:.1} req/s, {:.1} tok/s, TTFT p50 {:.0} ms, E2E p50 {:.0} ms",
            shape.words,
            shape.output,
            summary.req_s,
            summary.output_tok_s,
            crate::stats::millis(summary.ttft.p50),
            crate::stats::millis(summary.e2e.p50),
        ));
        if summary.ok == 0 {
            bail!(
                "serving-metrics: no request of {c} in flight under {policy} succeeded: {:?}",
                summary.errors
            );
        }
        levels.push(ServingLevel {
            concurrency: c,
            identities: identities(&summary, &outcomes),
            what_if_usd_per_mtok: usd_per_mtok(plan.what_if_usd_per_hour, summary.output_tok_s),
            summary,
        });
    }
    drop(server);
    Ok(PolicyRun {
        policy,
        max_batch: cfg.sched.max_batch,
        levels,
    })
}

/// One closed-loop level: its summary and every request's outcome.
async fn level(
    target: &Arc<dyn Target>,
    plan: &ServingPlan,
    shape: Shape,
    c: usize,
    place: usize,
) -> Result<(LevelSummary, Vec<Outcome>)> {
    let workload = workload(shape, place);
    let lp = LoadPlan {
        loads: vec![Load::Concurrency(c)],
        requests: plan.requests(c),
        duration: None,
        warmup: if place == 0 { plan.warmup } else { 0 },
        max_error_rate: 0.5,
        slo: Some(plan.slo()),
        usd_per_hour: Some(plan.usd_per_hour),
        cut: Cut::default(),
        percentiles: Vec::new(),
        search: None,
        turns: load::turns::Turns {
            turns: 1,
            think: Duration::ZERO,
        },
    };
    let mut outcomes = Vec::new();
    let mut sink = |e: ServeEvent| {
        if let ServeEvent::Done { outcome, .. } = e {
            outcomes.push(outcome);
        }
    };
    // The worker's stop (`s`) stops the level: requests in flight are cancelled.
    let stop =
        crate::engine::interrupt::current().unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let mut run = load::Run::new(&mut sink, stop.clone());
    let summary = load::run(std::slice::from_ref(target), &workload, &lp, None, &mut run).await;
    drop(run);
    // A stop wins over whatever the cut-short level made of it (nothing measured, an error).
    if stop.load(std::sync::atomic::Ordering::SeqCst) {
        bail!(crate::engine::interrupt::INTERRUPTED);
    }
    let summary = summary?.pop().context("the level measured nothing")?;
    Ok((summary, outcomes))
}

/// The synthetic prompts of the level at `place` of a shape.
fn workload(shape: Shape, place: usize) -> Workload {
    Workload {
        prompts: Prompts::Synthetic {
            mean: shape.words,
            stddev: 0,
        },
        max_tokens: shape.output,
        ignore_eos: true,
        temperature: 0.0,
        seed: shape.seed + place as u64,
        shape: Default::default(),
    }
}

/// `usd_per_hour` spread over an hour of `tok_s` output tokens, per million.
pub fn usd_per_mtok(usd_per_hour: f64, tok_s: f64) -> Option<f64> {
    (tok_s > 0.0).then(|| usd_per_hour / (3600.0 * tok_s) * 1e6)
}

/// How far the level keeps E2E = TTFT + (n − 1) · ITL (per request with its own ITL, and with
/// the level's mean) and Little's law.
pub fn identities(s: &LevelSummary, outcomes: &[Outcome]) -> Identities {
    let secs = |d: Duration| d.as_secs_f64();
    let mut tail_max = Duration::ZERO;
    let mut errors = Vec::new();
    for o in outcomes.iter().filter(|o| o.ok() && o.output_tokens > 0) {
        let (Some(ttft), Some(first), Some(last)) = (o.ttft, o.token_at.first(), o.token_at.last())
        else {
            continue;
        };
        let n = o.token_at.len();
        let own_itl = match n {
            1 => 0.0,
            _ => secs(*last - *first) / (n - 1) as f64,
        };
        let own = secs(ttft) + (n - 1) as f64 * own_itl;
        tail_max = tail_max.max(Duration::from_secs_f64((secs(o.e2e) - own).max(0.0)));
        let from_means = secs(ttft) + (o.output_tokens - 1) as f64 * secs(s.itl.mean);
        if o.e2e > Duration::ZERO {
            errors.push((secs(o.e2e) - from_means).abs() / secs(o.e2e));
        }
    }
    Identities {
        tail_max,
        from_means_error: errors.iter().sum::<f64>() / errors.len().max(1) as f64,
        little_in_flight: little(outcomes),
    }
}

/// Little's law over the whole level, first send to last end: its request rate × the mean E2E
/// of its answered requests, that is Σ E2E ÷ the level's span, the time-averaged requests in
/// flight. (A steady window's rates are too coarse for a level of a few requests sent in bursts:
/// a static batch's four answers landing at once in a window of 20 ms.)
fn little(outcomes: &[Outcome]) -> f64 {
    let good = || outcomes.iter().filter(|o| o.ok());
    let (Some(start), Some(end)) = (
        good().map(|o| o.sent).min(),
        good().map(|o| o.sent + o.e2e).max(),
    ) else {
        return 0.0;
    };
    let span = (end - start).as_secs_f64();
    let busy: f64 = good().map(|o| o.e2e.as_secs_f64()).sum();
    if span > 0.0 {
        busy / span
    } else {
        0.0
    }
}
