//! The race job: two engines on one machine (the second shares the loaded weights unless its
//! side names another model or requantises), each with its side's settings, stepped in turn.

use super::drafter::{self, DrafterKey};
use super::{admit, Job, Outbox};
use crate::engine::race::{race, Side};
use crate::engine::spec::accept::Acceptance;
use crate::engine::spec::Speculator;
use crate::engine::{Engine, Prompt, RunRequest};
use crate::protocol::race::{summarize, Lane, RaceConfig, RaceEvent, RaceSide, RaceSideSummary};
use crate::protocol::{Event, GenParams, Quant, RunSettings, DEFAULT_K};
use anyhow::Context;
use candle_core::Device;
use std::sync::atomic::AtomicBool;

/// One side ready to race: its engine, speculator, and how it is announced.
pub(super) struct Ready {
    pub engine: Engine,
    pub spec: Speculator,
    pub side: RaceSide,
}

/// Build the side `config` asks for from the loaded engine `base`.
pub(super) fn prepare(
    base: &Engine,
    config: &RaceConfig,
    device: &Device,
    out: &Outbox,
) -> anyhow::Result<Ready> {
    let label = config.label();
    let mut engine = match &config.model {
        Some(spec) => {
            out.send(Event::Notice {
                message: format!("race: loading {spec} for side {label}"),
            });
            Engine::open(spec, device, |_, _| {}).with_context(|| format!("loading {spec}"))?
        }
        None => base.twin(),
    };
    let s = config.settings();
    let quant = s.quant.unwrap_or(Quant::AsLoaded);
    if quant != Quant::AsLoaded {
        out.send(Event::Notice {
            message: format!("race: requantising to {quant} for side {label}"),
        });
    }
    engine.set_quant(quant, &mut |_, _| {})?;
    engine.set_kv_dtype(s.kv_dtype.unwrap_or_default())?;
    let drafter = drafter::build(&engine, &DrafterKey::of(&s), device, out)
        .map_err(|e| anyhow::anyhow!("{e}; choose another draft mode for side {label}"))?;
    let mut spec = Speculator::new(drafter, s.k.unwrap_or(DEFAULT_K));
    spec.policy = Acceptance::of_policy(s.policy.unwrap_or_default());
    let side = RaceSide {
        label,
        config: config.clone(),
        model: engine.info.name.clone(),
        weight_bytes: engine.model.weight_bytes(),
    };
    Ok(Ready { engine, spec, side })
}

/// The run `r` makes of the race's prompt, as run `run`.
pub(super) fn request(r: &Ready, job: &RaceJob, run: u64) -> RunRequest {
    let settings = RunSettings {
        params: job.params.clone(),
        quantization: r.engine.quant,
        draft_mode: r.spec.drafter.mode(),
        k: r.spec.controller.policy(),
        policy: r.side.config.settings().policy.unwrap_or_default(),
    };
    RunRequest::new(run, Prompt::Text(job.prompt.into()), settings)
}

/// What the race asks of the worker.
pub(super) struct RaceJob<'a> {
    pub prompt: &'a str,
    pub params: &'a GenParams,
    pub configs: [&'a RaceConfig; 2],
    /// The run ids the two sides take.
    pub runs: [u64; 2],
}

/// The lane of the side that names a server, if one does (both may not): that race runs in
/// `race_remote`.
pub(super) fn server_lane(job: &RaceJob) -> anyhow::Result<Option<Lane>> {
    match job.configs.map(|c| c.endpoint.is_some()) {
        [true, true] => anyhow::bail!(
            "both sides name an endpoint: a race pits the local engine against one server \
             (for two servers, run `labtui bench serve` against each)"
        ),
        [true, false] => Ok(Some(Lane::A)),
        [false, true] => Ok(Some(Lane::B)),
        [false, false] => Ok(None),
    }
}

/// Set up both sides (a job that `Stop` interrupts: `in_job` is set meanwhile), race them,
/// and send the summary. `stop` is asked between steps.
pub(super) fn run(
    base: &Engine,
    job: RaceJob,
    device: &Device,
    out: &Outbox,
    in_job: &AtomicBool,
    stop: &mut dyn FnMut() -> bool,
) -> anyhow::Result<()> {
    let setup = Job::start(in_job);
    let mut ready = Vec::with_capacity(2);
    for config in job.configs {
        ready.push(prepare(base, config, device, out)?);
    }
    drop(setup);
    let [mut a, mut b]: [Ready; 2] = ready.try_into().map_err(|_| anyhow::anyhow!("two sides"))?;
    let tokens = |e: &Engine| {
        e.prompt_ids(job.prompt, job.params.raw)
            .map_or(job.prompt.len(), |ids| ids.len())
    };
    let need = admit::run_bytes(&a.engine, tokens(&a.engine), job.params.max_tokens)
        + admit::run_bytes(&b.engine, tokens(&b.engine), job.params.max_tokens);
    admit::available_or_unknown("a race's two KV caches", need, 0).map_err(anyhow::Error::msg)?;
    out.send(Event::Race(RaceEvent::Started {
        a: Box::new(a.side.clone()),
        b: Box::new(b.side.clone()),
        turns: true,
    }));
    let (ra, rb) = (
        request(&a, &job, job.runs[0]),
        request(&b, &job, job.runs[1]),
    );
    let mut emit = |lane: Lane, event: Event| {
        out.send(Event::Race(RaceEvent::Lane {
            lane,
            event: Box::new(event),
        }))
    };
    let raced = race(
        Side {
            engine: &mut a.engine,
            spec: &mut a.spec,
            request: &ra,
        },
        Side {
            engine: &mut b.engine,
            spec: &mut b.spec,
            request: &rb,
        },
        &mut emit,
        stop,
    )?;
    let [sa, sb] = raced.summaries;
    let summary = summarize(
        RaceSideSummary {
            label: a.side.label.clone(),
            run: sa,
            weight_bytes: a.side.weight_bytes,
        },
        RaceSideSummary {
            label: b.side.label.clone(),
            run: sb,
            weight_bytes: b.side.weight_bytes,
        },
        [&raced.texts[0], &raced.texts[1]],
        [&raced.itl[0], &raced.itl[1]],
    );
    out.send(Event::Race(RaceEvent::Finished(Box::new(summary))));
    Ok(())
}
