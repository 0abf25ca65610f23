//! The facts of the two demos that run a request stream: batching and paged KV.

use super::{Facts, MIB};
use crate::protocol::demo::{Batching, PagedKv};
use crate::protocol::SchedPolicy;
use crate::stats::millis;

pub(super) fn batching(f: &mut Facts, x: &Batching) {
    if let (Some(a), Some(b)) = (x.sweep.first(), x.sweep.last()) {
        f.num("b_first", a.batch as f64, 0);
        f.num("b_last", b.batch as f64, 0);
        f.num("b_tok_s_first", a.decode_tok_s, 1);
        f.num("b_tok_s_last", b.decode_tok_s, 1);
        f.num("b_gain", b.decode_tok_s / a.decode_tok_s.max(1e-9), 1);
        f.num("b_step_first", millis(a.step), 1);
        f.num("b_step_last", millis(b.step), 1);
        f.num(
            "b_step_growth",
            millis(b.step) / millis(a.step).max(1e-9),
            1,
        );
    }
    f.num("requests", x.arrivals.requests as f64, 0);
    f.num("rate", x.arrivals.rate, 1);
    for p in &x.policies {
        let k = match p.policy {
            SchedPolicy::Static => "static",
            SchedPolicy::Continuous => "cont",
        };
        f.num(&format!("{k}_tok_s"), p.tok_s, 1);
        f.num(&format!("{k}_ttft"), millis(p.ttft_mean), 0);
        f.num(&format!("{k}_ttft_p99"), millis(p.ttft_p99), 0);
        f.num(&format!("{k}_e2e_p99"), millis(p.e2e_p99), 0);
        f.num(&format!("{k}_steps"), p.steps as f64, 0);
        f.num(&format!("{k}_batch"), p.mean_batch, 2);
    }
    f.set(
        "b_same",
        if x.same_tokens {
            "the same"
        } else {
            "different"
        },
    );
}

pub(super) fn paged_kv(f: &mut Facts, x: &PagedKv) {
    memory(f, x);
    preemption(f, x);
}

/// What each allocation reserved, on average over the steps, and how much of it held nothing.
fn memory(f: &mut Facts, x: &PagedKv) {
    let steps = x.points.len().max(1) as f64;
    let mib = |token_steps: u64| {
        format!(
            "{:.1}",
            token_steps as f64 * x.kv_bytes_per_token as f64 / steps / MIB
        )
    };
    let (u, p, c) = x.totals();
    let (cap, ctx) = x.coarse_totals();
    let (wp, wc) = x.waste();
    let (wcap, wctx) = x.coarse_waste();
    f.set("used_mib", mib(u));
    f.set("paged_mib", mib(p));
    f.set("own_mib", mib(c));
    f.set("cap_mib", mib(cap));
    f.set("ctx_mib", mib(ctx));
    f.set("paged_waste", format!("{:.1}%", wp * 100.0));
    f.pct("own_waste", wc);
    f.pct("cap_waste", wcap);
    f.set("ctx_waste", format!("{:.1}%", wctx * 100.0));
    f.set("ctx_used", format!("{:.1}%", (1.0 - wctx) * 100.0));
    f.num("max_model_len", x.max_model_len as f64, 0);
    f.num("cap", x.max_tokens_cap as f64, 0);
    f.num("block_tokens", x.block_tokens as f64, 0);
}

/// The run with too few blocks against the run with enough: what preemption cost, and why.
fn preemption(f: &mut Facts, x: &PagedKv) {
    let (a, s) = (&x.ample, &x.scarce);
    f.num("ample_blocks", a.kv_blocks as f64, 0);
    f.num("scarce_blocks", s.kv_blocks as f64, 0);
    f.num("scarce_tokens", (s.kv_blocks * x.block_tokens) as f64, 0);
    f.set(
        "preemptions",
        match s.preemptions {
            1 => "1 preemption".to_string(),
            n => format!("{n} preemptions"),
        },
    );
    f.num("recomputed", s.recomputed_tokens as f64, 0);
    f.num("ample_running", a.mean_running, 2);
    f.num("scarce_running", s.mean_running, 2);
    f.num("ample_tok_s", a.tok_s, 1);
    f.num("scarce_tok_s", s.tok_s, 1);
    f.num("ample_steps", a.steps as f64, 0);
    f.num("scarce_steps", s.steps as f64, 0);
    f.num("ample_step_ms", millis(a.step_mean()), 1);
    f.num("scarce_step_ms", millis(s.step_mean()), 1);
    f.num("recompute_ms", millis(s.recompute), 0);
    f.num("ample_busy_s", a.busy.as_secs_f64(), 2);
    f.num("scarce_busy_s", s.busy.as_secs_f64(), 2);
    let recompute_share = s.recompute.as_secs_f64() / s.busy.as_secs_f64().max(1e-9);
    f.pct("recompute_share", recompute_share);
    let drop = 1.0 - s.tok_s / a.tok_s.max(1e-9);
    f.pct("tok_s_drop", drop);
    // Recomputation's share of the busy time against the throughput lost: which explains it.
    f.set(
        "drop_cause",
        if drop <= 0.0 {
            "no throughput was lost".to_string()
        } else if recompute_share >= 0.75 * drop {
            format!(
                "recomputation accounts for about all of the {:.0}% lost: the batches themselves \
                 were as full ({:.2} requests running on average against {:.2})",
                drop * 100.0,
                s.mean_running,
                a.mean_running
            )
        } else {
            format!(
                "recomputation accounts for part of the {:.0}% lost; the rest is smaller batches: \
                 {:.2} requests running on average against {:.2}, in {} steps of {:.1} ms \
                 against {} of {:.1} ms",
                drop * 100.0,
                s.mean_running,
                a.mean_running,
                s.steps,
                millis(s.step_mean()),
                a.steps,
                millis(a.step_mean())
            )
        },
    );
    f.set(
        "p_same",
        if x.same_tokens {
            "exactly the"
        } else {
            "not the"
        },
    );
    let per_seq_cap = (x.max_tokens_cap as f64)
        + (x.arrivals.prompt_tokens.0 + x.arrivals.prompt_tokens.1) as f64 / 2.0;
    let budget = (s.kv_blocks * x.block_tokens) as f64;
    f.set("cap_fit", sequences(budget / per_seq_cap));
    f.set("ctx_fit", sequences(budget / x.max_model_len.max(1) as f64));
}

/// Whole sequences that fit: "none", "1 sequence", "3 sequences".
fn sequences(fit: f64) -> String {
    match fit.floor() as u64 {
        0 => "none".into(),
        1 => "1 sequence".into(),
        n => format!("{n} sequences"),
    }
}
