//! The facts of the flash-attention demo: the shortest and the longest prompt measured, what
//! each kernel took there, where dense could not run, and the tiles' shape. Every name is set
//! for every run (`–` where a number is missing), so a preset's steps fill on any model.

use super::Facts;
use crate::protocol::flash::{FlashAttention, FlashRow, FlashRun};
use crate::stats::human_bytes;

const NONE: &str = "–";

fn ms(f: &mut Facts, k: &str, r: &FlashRun, tokens: usize) {
    match r.ms_per_token(tokens) {
        Some(v) => f.num(k, v, 2),
        None => f.set(k, NONE),
    }
}

fn peak(f: &mut Facts, k: &str, r: &FlashRun) {
    match r.prefill.is_some() && r.peak_bytes > 0 {
        true => f.set(k, human_bytes(r.scratch_bytes())),
        false => f.set(k, NONE),
    }
}

/// The facts of one row under `p` (`short`, `long`, `longest`).
fn row(f: &mut Facts, p: &str, x: &FlashAttention, r: Option<&FlashRow>) {
    let Some(r) = r else {
        for k in [
            "tokens",
            "dense_ms",
            "tiled_ms",
            "speedup",
            "dense_peak",
            "tiled_peak",
        ] {
            f.set(&format!("{p}_{k}"), NONE);
        }
        for k in ["dense_estimate", "tiled_estimate", "share", "kv"] {
            f.set(&format!("{p}_{k}"), NONE);
        }
        return;
    };
    f.num(&format!("{p}_tokens"), r.tokens as f64, 0);
    ms(f, &format!("{p}_dense_ms"), &r.dense, r.tokens);
    ms(f, &format!("{p}_tiled_ms"), &r.tiled, r.tokens);
    match x.speedup(r) {
        Some(s) => f.num(&format!("{p}_speedup"), s, 2),
        None => f.set(&format!("{p}_speedup"), NONE),
    }
    peak(f, &format!("{p}_dense_peak"), &r.dense);
    peak(f, &format!("{p}_tiled_peak"), &r.tiled);
    f.set(
        &format!("{p}_dense_estimate"),
        human_bytes(r.dense.predicted_bytes),
    );
    f.set(
        &format!("{p}_tiled_estimate"),
        human_bytes(r.tiled.predicted_bytes),
    );
    f.set(&format!("{p}_kv"), human_bytes(r.tiled.kv_bytes));
    f.pct(&format!("{p}_share"), r.attention_share);
}

pub(super) fn flash(f: &mut Facts, x: &FlashAttention) {
    let both = |r: &&FlashRow| r.dense.prefill.is_some() && r.tiled.prefill.is_some();
    row(f, "short", x, x.rows.first());
    row(f, "long", x, x.rows.iter().rfind(both));
    let longest = x.rows.last();
    row(f, "longest", x, longest);
    let status = match longest.map(|r| (&r.dense.skipped, r.dense.prefill)) {
        Some((Some(why), _)) => format!("did not run: {why}"),
        Some((None, Some(_))) => "ran".into(),
        _ => NONE.into(),
    };
    f.set("longest_dense_status", status);
    let gap = x
        .rows
        .iter()
        .filter_map(|r| r.attention_diff)
        .fold(None, |m: Option<f64>, g| Some(m.map_or(g, |m| m.max(g))));
    f.set("max_gap", gap.map_or(NONE.into(), |g| format!("{g:.1e}")));
    let differ: Vec<String> = x
        .rows
        .iter()
        .filter(|r| r.same_next_token == Some(false))
        .map(|r| r.tokens.to_string())
        .collect();
    f.set(
        "same_tokens",
        match differ.is_empty() {
            true => "the same next token at every length both ran".into(),
            false => format!("a different next token at {} tokens", differ.join(", ")),
        },
    );
    f.num("qblock", x.query_block as f64, 0);
    f.num("kblock", x.key_block as f64, 0);
    f.set("tile_bytes", human_bytes(x.tile_bytes));
    f.set("l2", x.l2_bytes.map_or("unknown".into(), human_bytes));
    f.num("crossover", x.crossover, 0);
    f.num("context", x.context as f64, 0);
}
