//! The flash-attention demo's tables: dense against tiled prefill by prompt length (time per
//! token, the heap's peak, the estimate admission uses), and what the tiles are.

use crate::protocol::flash::{FlashAttention, FlashRun};
use crate::report::table::{
    yes_no,
    Cell::{self, Bytes, Count, Num, Percent, Text, Times},
    Column, Table,
};
use crate::stats::human_bytes;

/// A run's time per token, or why it did not run.
fn ms(r: &FlashRun, tokens: usize) -> Cell {
    match (r.ms_per_token(tokens), &r.skipped) {
        (Some(v), _) => Num(v, 2),
        (None, Some(_)) => Text("skipped".into()),
        (None, None) => Text("–".into()),
    }
}

/// A run's measured peak beyond the KV cache, or `–`.
fn peak(r: &FlashRun) -> Cell {
    match (r.prefill, r.peak_bytes) {
        (Some(_), b) if b > 0 => Bytes(r.scratch_bytes()),
        _ => Text("–".into()),
    }
}

/// Dense against tiled, one row per prompt length.
fn main_table(x: &FlashAttention) -> Table {
    let mut t = Table::new([
        Column::right("prompt tokens").short("tokens"),
        Column::right("dense ms/token").short("dense ms"),
        Column::right("tiled ms/token").short("tiled ms"),
        Column::right("speedup"),
        Column::right("dense peak").short("dense mem"),
        Column::right("tiled peak").short("tiled mem"),
        Column::right("dense estimate").markdown_only(),
        Column::right("tiled estimate").markdown_only(),
        Column::right("KV cache").markdown_only(),
        Column::right("attention gap").short("gap"),
        Column::left("same next token").short("same"),
        Column::right("attention FLOPs").short("attn"),
    ]);
    for r in &x.rows {
        t.row([
            Count(r.tokens as u64),
            ms(&r.dense, r.tokens),
            ms(&r.tiled, r.tokens),
            x.speedup(r).map_or(Text("–".into()), |s| Times(s, 2)),
            peak(&r.dense),
            peak(&r.tiled),
            Bytes(r.dense.predicted_bytes),
            Bytes(r.tiled.predicted_bytes),
            Bytes(r.tiled.kv_bytes),
            r.attention_diff
                .map_or(Text("–".into()), |g| Text(format!("{g:.1e}"))),
            r.same_next_token.map_or(Text("–".into()), yes_no),
            Percent(r.attention_share, 0),
        ]);
    }
    t.above(format!(
        "tiles of {} positions × {} keys: {} per thread · attention's FLOPs pass the weights' at {:.0} tokens",
        x.query_block,
        x.key_block,
        human_bytes(x.tile_bytes),
        x.crossover
    ))
}

pub(super) fn tables(x: &FlashAttention) -> Vec<Table> {
    vec![main_table(x)]
}

/// Why each skipped run did not run.
fn skipped(x: &FlashAttention) -> String {
    let mut s = String::new();
    for r in &x.rows {
        for run in [&r.dense, &r.tiled] {
            if let Some(why) = &run.skipped {
                s.push_str(&format!("- {} tokens, {}: {why}\n", r.tokens, run.kernel));
            }
        }
    }
    for n in &x.beyond_context {
        s.push_str(&format!(
            "- {n} tokens: beyond the model's context of {}\n",
            x.context
        ));
    }
    s
}

pub(super) fn markdown(x: &FlashAttention) -> String {
    let cache = x.l2_bytes.map_or("unknown".into(), human_bytes);
    let skipped = skipped(x);
    format!(
        "## Dense against tiled prefill\n\n{}\n\
         Peaks are the heap's highest point during the prefill above what was live before it, \
         less the KV cache it filled; estimates are what memory admission counts for the same \
         prefill (activations and attention scratch). The attention gap is attention alone on \
         random values of this model's shape (one KV head's group): the largest difference \
         between the tiles' outputs and the dense ones, relative to the largest output.\n\n\
         Each core's L2 cache: {cache}; one thread's tiles: {}.\n{}",
        main_table(x).markdown(),
        human_bytes(x.tile_bytes),
        match skipped.is_empty() {
            true => String::new(),
            false => format!("\n### Not run\n\n{skipped}"),
        }
    )
}
