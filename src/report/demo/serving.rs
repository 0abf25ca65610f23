//! The serving-metrics demo's tables and charts: every level of every policy per shape (rates,
//! latency percentiles, goodput, cost, and the identities checked), how many users each policy
//! fits under the SLO, and the shapes side by side; the throughput–latency curve per shape.

use super::Chart;
use crate::protocol::serving::{ServingLevel, ServingMetrics, ServingPolicy, ShapeRun};
use crate::report::plot::{Axes, Series};
use crate::report::table::{
    Cell::{self, Count, Ms, Num, Percent, Text},
    Column, Table,
};
use crate::stats::millis;

fn money(v: Option<f64>) -> Cell {
    match v {
        Some(v) if v >= 100.0 => Num(v, 0),
        Some(v) => Num(v, 2),
        None => Text("–".into()),
    }
}

fn level_columns() -> Vec<Column> {
    let mut c = vec![
        Column::left("policy"),
        Column::right("in flight").short("c"),
        Column::right("req/s"),
        Column::right("output tok/s").short("tok/s"),
    ];
    for what in ["TTFT", "ITL", "E2E"] {
        c.push(Column::right(format!("{what} p50")));
        c.push(Column::right(format!("{what} p90")).markdown_only());
        c.push(Column::right(format!("{what} p99")));
    }
    c.extend([
        Column::right("goodput req/s").short("good/s"),
        Column::right("met SLO").short("SLO"),
        Column::right("$/1M tokens").short("$/1M"),
        Column::right("$/1M what-if").markdown_only(),
        Column::right("RPS × E2E").short("L"),
        Column::right("E2E − TTFT − (n−1)·ITL").short("tail"),
    ]);
    c
}

fn level_row(t: &mut Table, policy: ServingPolicy, l: &ServingLevel) {
    let s = &l.summary;
    let mut cells = vec![
        Text(policy.to_string()),
        Count(l.concurrency as u64),
        Num(s.req_s, 2),
        Num(s.output_tok_s, 1),
    ];
    for d in [s.ttft, s.itl, s.e2e] {
        cells.extend([Ms(d.p50), Ms(d.p90), Ms(d.p99)]);
    }
    let met = s.slo_met.map_or(Text("–".into()), |m| {
        Percent(m as f64 / s.requests.max(1) as f64, 0)
    });
    cells.extend([
        s.goodput.map_or(Text("–".into()), |g| Num(g, 2)),
        met,
        money(s.usd_per_mtok),
        money(l.what_if_usd_per_mtok),
        Num(l.identities.little_in_flight, 1),
        Ms(l.identities.tail_max),
    ]);
    t.row(cells);
}

/// Every level of every policy on one shape.
fn shape_table(x: &ServingMetrics, r: &ShapeRun) -> Table {
    let mut t = Table::new(level_columns());
    for p in &r.policies {
        for l in &p.levels {
            level_row(&mut t, p.policy, l);
        }
    }
    t.above(caption(x, r))
}

/// What a shape's requests were, and the SLO and price its levels are judged by.
fn caption(x: &ServingMetrics, r: &ShapeRun) -> String {
    let cut = match r.prompt_words < r.prompt_tokens {
        true => format!(" (cut to {} words to fit the context)", r.prompt_words),
        false => String::new(),
    };
    format!(
        "prompts of {} tokens{cut}, {} output tokens · SLO TTFT ≤ {:.0} ms, TPOT ≤ {:.0} ms · ${:.2}/h",
        r.tokens_per_prompt, r.output_tokens, x.plan.slo_ttft_ms, x.plan.slo_tpot_ms, x.plan.usd_per_hour
    )
}

/// Per shape and policy: the most users within the SLO and the best throughput.
fn fits_table(x: &ServingMetrics) -> Table {
    let mut t = Table::new([
        Column::left("shape"),
        Column::left("policy"),
        Column::right("users within SLO").short("users"),
        Column::right("best tok/s"),
        Column::right("$/1M at best").short("$/1M"),
        Column::right("what-if $/1M").markdown_only(),
    ]);
    for r in &x.shapes {
        for p in &r.policies {
            let best = p
                .levels
                .iter()
                .max_by(|a, b| a.summary.output_tok_s.total_cmp(&b.summary.output_tok_s));
            t.row([
                Text(r.label()),
                Text(p.policy.to_string()),
                p.users_within_slo()
                    .map_or(Text("none".into()), |c| Count(c as u64)),
                best.map_or(Text("–".into()), |l| Num(l.summary.output_tok_s, 1)),
                money(best.and_then(|l| l.summary.usd_per_mtok)),
                money(best.and_then(|l| l.what_if_usd_per_mtok)),
            ]);
        }
    }
    t.above(format!(
        "users: the most requests in flight with ≥ 90% of them inside the SLO · what-if at ${:.2}/h",
        x.plan.what_if_usd_per_hour
    ))
}

/// Continuous batching's req/s and tok/s per shape at each concurrency: request rates depend
/// on the lengths, token rates much less.
fn shapes_table(x: &ServingMetrics) -> Option<Table> {
    if x.shapes.len() < 2 {
        return None;
    }
    let mut cols = vec![Column::right("in flight")];
    for r in &x.shapes {
        cols.push(Column::right(format!("{} req/s", r.label())));
        cols.push(Column::right(format!("{} tok/s", r.label())));
    }
    let mut t = Table::new(cols);
    for &c in &x.plan.concurrency {
        let mut row = vec![Count(c as u64)];
        for r in &x.shapes {
            let l = r.policy(ServingPolicy::Continuous).and_then(|p| p.level(c));
            row.push(l.map_or(Text("–".into()), |l| Num(l.summary.req_s, 2)));
            row.push(l.map_or(Text("–".into()), |l| Num(l.summary.output_tok_s, 1)));
        }
        t.row(row);
    }
    Some(t.above("continuous batching, both shapes"))
}

pub(super) fn tables(x: &ServingMetrics) -> Vec<Table> {
    let mut out = vec![fits_table(x)];
    out.extend(x.shapes.iter().map(|r| shape_table(x, r)));
    out.extend(shapes_table(x));
    out
}

pub(super) fn markdown(x: &ServingMetrics) -> String {
    let mut s = format!(
        "## How many users fit\n\n{}\n\
         ## Every level\n\n\
         A closed loop: each level keeps its number of requests in flight, sending the next as \
         one ends ({} requests a level), after {} warm-up requests per server that are not counted. Prompts are \
         synthetic text of the shape's length, sent raw to `/v1/completions`, answers of exactly \
         the shape's output (`ignore_eos`). Percentiles are nearest-rank over the level's \
         requests (ITL over every gap between tokens). Goodput counts the requests that met \
         the SLO; $/1M = $/h ÷ (3600 × output tok/s) × 10⁶. RPS × E2E is Little's law: the \
         requests in flight the rates imply, against the loop's own count. The tail is the \
         largest E2E − (TTFT + (n − 1) · ITL) of a request with its own mean ITL: the time from \
         its last token to the end of its answer. Steps take at most {} tokens: decode rows \
         first, prompt chunks after.\n\n",
        fits_table(x).markdown(),
        x.plan
            .requests
            .map_or("twice the concurrency, at least 8".into(), |n| n.to_string()),
        x.plan.warmup,
        x.step_tokens,
    );
    for r in &x.shapes {
        s.push_str(&format!(
            "### {}\n\n{}.\n\n{}\n",
            r.label(),
            caption(x, r),
            shape_table(x, r).markdown()
        ));
    }
    if let Some(t) = shapes_table(x) {
        s.push_str(&format!(
            "## Request rate depends on the lengths\n\n{}\n",
            t.markdown()
        ));
    }
    s
}

/// Per shape: output tok/s against E2E p50, one line per policy, each point its concurrency.
pub(super) fn charts(x: &ServingMetrics) -> Vec<Chart> {
    x.shapes
        .iter()
        .map(|r| {
            let series = r
                .policies
                .iter()
                .map(|p| Series {
                    name: p.policy.to_string(),
                    points: p
                        .levels
                        .iter()
                        .map(|l| (l.summary.output_tok_s, millis(l.summary.e2e.p50)))
                        .collect(),
                    labels: p.levels.iter().map(|l| l.concurrency.to_string()).collect(),
                })
                .collect();
            Chart {
                stem: format!("curve-{}x{}", r.prompt_tokens, r.output_tokens),
                title: format!(
                    "Throughput against latency, {} prompt : {} output tokens (points: requests in flight)",
                    r.prompt_tokens, r.output_tokens
                ),
                x: "output tok/s",
                y: "E2E p50 (ms)",
                series,
                axes: Axes::default(),
            }
        })
        .collect()
}
