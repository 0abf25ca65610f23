//! The facts of the serving-metrics demo: each policy at the lowest and the highest concurrency
//! of the first shape, the users each fits under the SLO, the identities' worst cases, the shapes
//! side by side and the cost of a million tokens. Every name is set for every run (`–` where a
//! level is missing), so a preset's steps fill on any plan.

use super::Facts;
use crate::protocol::serving::{PolicyRun, ServingLevel, ServingMetrics, ServingPolicy, ShapeRun};
use crate::stats::millis;

const NONE: &str = "–";

const LEVEL_KEYS: [&str; 10] = [
    "tok_s", "req_s", "ttft", "ttft_p99", "itl", "e2e", "e2e_p99", "usd", "what_if", "little",
];

/// One level's numbers under `p` (`cont_1`, `naive_max`, …).
fn level(f: &mut Facts, p: &str, l: Option<&ServingLevel>) {
    let Some(l) = l else {
        for k in LEVEL_KEYS {
            f.set(&format!("{p}_{k}"), NONE);
        }
        return;
    };
    let s = &l.summary;
    f.num(&format!("{p}_tok_s"), s.output_tok_s, 1);
    f.num(&format!("{p}_req_s"), s.req_s, 2);
    f.num(&format!("{p}_ttft"), millis(s.ttft.p50), 0);
    f.num(&format!("{p}_ttft_p99"), millis(s.ttft.p99), 0);
    f.num(&format!("{p}_itl"), millis(s.itl.p50), 1);
    f.num(&format!("{p}_e2e"), millis(s.e2e.p50), 0);
    f.num(&format!("{p}_e2e_p99"), millis(s.e2e.p99), 0);
    let money = |f: &mut Facts, k: &str, v: Option<f64>| match v {
        Some(v) => f.num(k, v, 2),
        None => f.set(k, NONE),
    };
    money(f, &format!("{p}_usd"), s.usd_per_mtok);
    money(f, &format!("{p}_what_if"), l.what_if_usd_per_mtok);
    f.num(&format!("{p}_little"), l.identities.little_in_flight, 1);
}

/// A policy's lowest and highest level, the users it fits and its best level.
fn policy(f: &mut Facts, p: &str, r: Option<&PolicyRun>) {
    level(f, &format!("{p}_1"), r.and_then(|r| r.levels.first()));
    level(f, &format!("{p}_max"), r.and_then(|r| r.levels.last()));
    let best = r.and_then(|r| {
        r.levels
            .iter()
            .max_by(|a, b| a.summary.output_tok_s.total_cmp(&b.summary.output_tok_s))
    });
    level(f, &format!("{p}_best"), best);
    let users = match r {
        Some(r) => r
            .users_within_slo()
            .map_or("none".into(), |c| c.to_string()),
        None => NONE.into(),
    };
    f.set(&format!("{p}_users"), users);
    let gain = r.and_then(|r| {
        let (a, b) = (r.levels.first()?, r.levels.last()?);
        (a.summary.output_tok_s > 0.0).then(|| b.summary.output_tok_s / a.summary.output_tok_s)
    });
    match gain {
        Some(g) => f.num(&format!("{p}_gain"), g, 1),
        None => f.set(&format!("{p}_gain"), NONE),
    }
}

/// Shape `p` (`a`, `b`) at the highest concurrency under continuous batching.
fn shape(f: &mut Facts, p: &str, r: Option<&ShapeRun>) {
    let l = r
        .and_then(|r| r.policy(ServingPolicy::Continuous))
        .and_then(|r| r.levels.last());
    f.set(
        &format!("shape_{p}"),
        r.map_or(NONE.into(), ShapeRun::label),
    );
    match l {
        Some(l) => {
            f.num(&format!("{p}_req_s"), l.summary.req_s, 2);
            f.num(&format!("{p}_tok_s"), l.summary.output_tok_s, 1);
            f.num(&format!("{p}_total_tok_s"), l.summary.total_tok_s, 1);
        }
        None => {
            for k in ["req_s", "tok_s", "total_tok_s"] {
                f.set(&format!("{p}_{k}"), NONE);
            }
        }
    }
}

pub(super) fn serving(f: &mut Facts, x: &ServingMetrics) {
    let first = x.shapes.first();
    for (p, policy_kind) in [
        ("cont", ServingPolicy::Continuous),
        ("static", ServingPolicy::Static),
        ("naive", ServingPolicy::OneAtATime),
    ] {
        policy(f, p, first.and_then(|r| r.policy(policy_kind)));
    }
    shape(f, "a", first);
    shape(f, "b", x.shapes.get(1));
    let c_max = x.plan.concurrency.iter().max().copied().unwrap_or(0);
    f.num("c_max", c_max as f64, 0);
    f.num(
        "c_min",
        x.plan.concurrency.iter().min().copied().unwrap_or(0) as f64,
        0,
    );
    let all = || {
        x.shapes
            .iter()
            .flat_map(|r| &r.policies)
            .flat_map(|p| &p.levels)
    };
    let tail = all()
        .map(|l| l.identities.tail_max)
        .max()
        .unwrap_or_default();
    f.num("tail_max", millis(tail), 1);
    let worst = all()
        .map(|l| l.identities.from_means_error)
        .fold(0.0, f64::max);
    f.set("from_means_worst", format!("{:.0}%", worst * 100.0));
    let n = all().count().max(1) as f64;
    let mean = all().map(|l| l.identities.from_means_error).sum::<f64>() / n;
    f.set("from_means", format!("{:.1}%", mean * 100.0));
    let little = all()
        .map(|l| l.identities.little_in_flight / l.concurrency as f64)
        .fold((f64::MAX, 0.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    match all().next() {
        Some(_) => {
            f.pct("little_low", little.0);
            f.pct("little_high", little.1);
        }
        None => {
            f.set("little_low", NONE);
            f.set("little_high", NONE);
        }
    }
    f.num("slo_ttft", x.plan.slo_ttft_ms, 0);
    f.num("slo_tpot", x.plan.slo_tpot_ms, 0);
    f.num("usd_h", x.plan.usd_per_hour, 2);
    f.num("what_if_h", x.plan.what_if_usd_per_hour, 2);
    f.num("step_tokens", x.step_tokens as f64, 0);
}
