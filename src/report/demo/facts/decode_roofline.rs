//! The facts of the decode-roofline demo: the roofs and the balance point, batch 1 and the
//! largest batch at the shortest context, how a long context slides the point, and the
//! verification passes. Every name is set for every run (`–` where a point is missing).

use super::Facts;
use crate::protocol::decode_roofline::{DecodeRoofline, StepCost};
use crate::stats::millis;

const NONE: &str = "–";

fn point(f: &mut Facts, p: &str, x: &DecodeRoofline, s: Option<&StepCost>) {
    let Some(s) = s else {
        for k in [
            "batch",
            "context",
            "ms",
            "tok_s",
            "intensity",
            "gb_s",
            "gflop_s",
            "mbu",
            "mfu",
        ] {
            f.set(&format!("{p}_{k}"), NONE);
        }
        return;
    };
    f.num(&format!("{p}_batch"), s.batch as f64, 0);
    f.num(&format!("{p}_context"), s.context as f64, 0);
    f.num(&format!("{p}_ms"), millis(s.step), 2);
    f.num(&format!("{p}_tok_s"), s.tok_s(), 1);
    f.num(&format!("{p}_intensity"), s.intensity(), 2);
    f.num(&format!("{p}_gb_s"), s.gb_s(), 1);
    f.num(&format!("{p}_gflop_s"), s.gflop_s(), 1);
    f.pct(&format!("{p}_mbu"), x.mbu(s));
    f.set(&format!("{p}_mfu"), format!("{:.1}%", x.mfu(s) * 100.0));
}

pub(super) fn decode_roofline(f: &mut Facts, x: &DecodeRoofline) {
    f.num("r_bandwidth", x.bandwidth_gb_s, 1);
    f.num("r_f32", x.f32_gflop_s, 0);
    f.num("r_q", x.q_gflop_s, 0);
    f.num("r_balance", x.balance(), 1);
    f.num("kv_equals_weights", x.kv_equals_weights(), 0);
    let short = x.points.iter().map(|p| p.context).min();
    let at_short: Vec<&StepCost> = x
        .points
        .iter()
        .filter(|p| Some(p.context) == short)
        .collect();
    point(f, "one", x, at_short.iter().find(|p| p.batch == 1).copied());
    point(
        f,
        "most",
        x,
        at_short.iter().max_by_key(|p| p.batch).copied(),
    );
    // Batch 1 at the longest context measured.
    let long = x
        .points
        .iter()
        .filter(|p| p.batch == 1)
        .max_by_key(|p| p.context);
    point(f, "long", x, long);
    // The largest batch at the longest context it ran.
    let wide = x.points.iter().max_by_key(|p| (p.context, p.batch));
    point(f, "wide", x, wide);
    let one = at_short.iter().find(|p| p.batch == 1);
    match (one, x.verify.last()) {
        (Some(one), Some(v)) => {
            f.num("verify_k", (v.rows - 1) as f64, 0);
            f.num("verify_ms", millis(v.step), 2);
            f.num(
                "verify_ratio",
                v.step.as_secs_f64() / one.step.as_secs_f64().max(1e-12),
                2,
            );
        }
        _ => {
            for k in ["verify_k", "verify_ms", "verify_ratio"] {
                f.set(k, NONE);
            }
        }
    }
    // Attention's FLOPs per cached token over the bytes that token holds in the cache.
    let kv_intensity = x.attention_flops_per_token / x.kv_bytes_per_token.max(1) as f64;
    f.num("kv_intensity", kv_intensity, 1);
    let verdict = match wide {
        Some(p) if x.mbu(p) < 0.3 && x.mfu(p) < 0.3 => format!(
            "neither roof sets that step: {:.0}% of the bandwidth roof and {:.1}% of the compute \
             roof. Decode attention here reads each cached row and dots it with each query row \
             in turn, and that kernel, not memory, takes the time: the gap to \
             the roof is what is left to gain",
            x.mbu(p) * 100.0,
            x.mfu(p) * 100.0
        ),
        Some(p) if x.mbu(p) >= x.mfu(p) => format!(
            "that step runs at {:.0}% of the bandwidth roof: memory sets it",
            x.mbu(p) * 100.0
        ),
        Some(p) => format!(
            "that step runs at {:.1}% of the compute roof: arithmetic sets it",
            x.mfu(p) * 100.0
        ),
        None => NONE.into(),
    };
    f.set("wide_verdict", verdict);
    let skipped = x.skipped.len();
    f.set(
        "skipped",
        match skipped {
            0 => "every point of the grid ran".into(),
            1 => "1 point did not fit the KV budget or the context and is listed under the tables".into(),
            n => format!("{n} points did not fit the KV budget or the context and are listed under the tables"),
        },
    );
}
