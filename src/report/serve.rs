//! A serving benchmark's levels as a table (Markdown, CSV, JSON, one flat row per level) and as
//! charts: throughput against latency (one point per level, one line per endpoint) and a
//! per-request timeline.

use super::plot::{chart, register_font, Series, COLORS};
use super::table::{Align, Table};
use crate::protocol::serve::{Counted, Dist, LevelSummary, Outcome, Percentiles};
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One level, flat: what CSV and JSON carry (latencies in milliseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Row {
    pub endpoint: String,
    pub load: String,
    /// The load as numbers: `concurrency` or `rate`, and its value(s).
    pub load_kind: String,
    pub concurrency: Option<usize>,
    pub rate: Option<f64>,
    pub max_concurrency: Option<usize>,
    pub requests: usize,
    pub ok: usize,
    pub failed: usize,
    pub duration_s: f64,
    pub req_s: f64,
    pub output_tok_s: f64,
    pub output_tokens: u64,
    pub prompt_tokens: u64,
    pub ttft_mean_ms: f64,
    pub ttft_p50_ms: f64,
    pub ttft_p90_ms: f64,
    pub ttft_p99_ms: f64,
    pub tpot_mean_ms: f64,
    pub tpot_p50_ms: f64,
    pub tpot_p90_ms: f64,
    pub tpot_p99_ms: f64,
    pub itl_mean_ms: f64,
    pub itl_p50_ms: f64,
    pub itl_p90_ms: f64,
    pub itl_p99_ms: f64,
    pub e2e_mean_ms: f64,
    pub e2e_p50_ms: f64,
    pub e2e_p90_ms: f64,
    pub e2e_p99_ms: f64,
    pub goodput_req_s: Option<f64>,
    /// Requests that met every SLO target.
    pub slo_met: Option<usize>,
    pub usd_per_mtok: Option<f64>,
    /// `reason:count` pairs, `;`-separated.
    pub errors: String,
    /// How output tokens were counted: usage, tokenizer or chunks.
    pub counted: String,
    pub server_engine: Option<String>,
    pub server_output_tokens: Option<u64>,
    pub stopped_early: Option<String>,
    /// Samples behind each distribution (a p99 of fewer than 100 is their largest).
    pub ttft_n: usize,
    pub itl_n: usize,
    pub e2e_n: usize,
    /// With --ignore-eos: requests that still ended at end-of-sequence.
    pub eos_stops: Option<usize>,
    /// Open loop: how far sends ran behind their schedule.
    pub send_lag_p50_ms: Option<f64>,
    pub send_lag_p99_ms: Option<f64>,
    /// Requests sent twice after their connection closed unanswered.
    pub retried: usize,
    /// Spread of TTFT beyond its percentiles.
    pub ttft_min_ms: f64,
    pub ttft_max_ms: f64,
    pub ttft_std_ms: f64,
    /// Time from the first token to the second.
    pub ttst_p50_ms: f64,
    pub ttst_p99_ms: f64,
    pub input_tok_s: f64,
    pub total_tok_s: f64,
    pub peak_output_tok_s: f64,
    /// Each request's output tokens ÷ its E2E: median and slowest tenth.
    pub per_user_tok_s_p50: Option<f64>,
    pub per_user_tok_s_p10: Option<f64>,
    /// The steady window (ramp, warm-up, cool-down and drain cut), seconds from the level's
    /// first send.
    pub steady_from_s: Option<f64>,
    pub steady_to_s: Option<f64>,
    pub steady_output_tok_s: Option<f64>,
    pub steady_req_s: Option<f64>,
    /// Prompt tokens served from the server's prefix cache, and their share.
    pub cached_tokens: Option<u64>,
    pub prefix_hit: Option<f64>,
    /// Connections the level opened and their setup time.
    pub connections_opened: Option<usize>,
    pub connect_p50_ms: Option<f64>,
    pub connect_max_ms: Option<f64>,
    /// Extra percentiles, `Q:MS` pairs, `;`-separated (with --percentiles).
    pub ttft_percentiles_ms: String,
    pub tpot_percentiles_ms: String,
    pub itl_percentiles_ms: String,
    pub e2e_percentiles_ms: String,
    /// Median TTFT of the last quarter of requests over the first's (a queue building up).
    pub ttft_growth: Option<f64>,
}

/// `Q:MS` pairs of the asked percentiles of one latency.
fn pcts(at: &[f64], values: &[Duration]) -> String {
    at.iter()
        .zip(values)
        .map(|(q, v)| format!("{q}:{}", ms(*v)))
        .collect::<Vec<_>>()
        .join(";")
}

pub use super::table::ms;

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

pub fn counted_name(c: Option<Counted>) -> &'static str {
    match c {
        Some(Counted::Usage) => "usage",
        Some(Counted::Tokenizer) => "tokenizer",
        Some(Counted::Chunks) => "chunks",
        None => "—",
    }
}

pub fn row(l: &LevelSummary) -> Row {
    let d = |x: &Dist| [ms(x.mean), ms(x.p50), ms(x.p90), ms(x.p99)];
    let [ttft_mean_ms, ttft_p50_ms, ttft_p90_ms, ttft_p99_ms] = d(&l.ttft);
    let [tpot_mean_ms, tpot_p50_ms, tpot_p90_ms, tpot_p99_ms] = d(&l.tpot);
    let [itl_mean_ms, itl_p50_ms, itl_p90_ms, itl_p99_ms] = d(&l.itl);
    let [e2e_mean_ms, e2e_p50_ms, e2e_p90_ms, e2e_p99_ms] = d(&l.e2e);
    let (load_kind, concurrency, rate, max_concurrency) = match l.load {
        crate::protocol::serve::Load::Concurrency(c) => ("concurrency", Some(c), None, None),
        crate::protocol::serve::Load::Rate {
            rate,
            max_concurrency,
            ..
        } => ("rate", None, Some(rate), max_concurrency),
    };
    Row {
        endpoint: l.endpoint.clone(),
        load: l.load.to_string(),
        load_kind: load_kind.into(),
        concurrency,
        rate: rate.filter(|r| r.is_finite()),
        max_concurrency,
        ttft_n: l.ttft.n,
        itl_n: l.itl.n,
        e2e_n: l.e2e.n,
        eos_stops: l.eos_stops,
        send_lag_p50_ms: l.send_lag.as_ref().map(|d| ms(d.p50)),
        send_lag_p99_ms: l.send_lag.as_ref().map(|d| ms(d.p99)),
        retried: l.retried,
        requests: l.requests,
        ok: l.ok,
        failed: l.failed,
        duration_s: round(l.duration.as_secs_f64(), 3),
        req_s: round(l.req_s, 3),
        output_tok_s: round(l.output_tok_s, 2),
        output_tokens: l.output_tokens,
        prompt_tokens: l.prompt_tokens,
        ttft_mean_ms,
        ttft_p50_ms,
        ttft_p90_ms,
        ttft_p99_ms,
        tpot_mean_ms,
        tpot_p50_ms,
        tpot_p90_ms,
        tpot_p99_ms,
        itl_mean_ms,
        itl_p50_ms,
        itl_p90_ms,
        itl_p99_ms,
        e2e_mean_ms,
        e2e_p50_ms,
        e2e_p90_ms,
        e2e_p99_ms,
        goodput_req_s: l.goodput.map(|g| round(g, 3)),
        slo_met: l.slo_met,
        usd_per_mtok: l.usd_per_mtok.map(|c| round(c, 4)),
        errors: l
            .errors
            .iter()
            .map(|(r, n)| format!("{r}:{n}"))
            .collect::<Vec<_>>()
            .join(";"),
        counted: counted_name(l.counted).into(),
        server_engine: l.server.as_ref().map(|s| s.engine.key().to_string()),
        server_output_tokens: l.server.as_ref().and_then(|s| s.generation_tokens),
        stopped_early: l.stopped_early.as_ref().map(ToString::to_string),
        ..more(l)
    }
}

/// The columns beyond the main table's: spread, the steady window, rates, the prefix cache,
/// connections and the percentiles asked for.
fn more(l: &LevelSummary) -> Row {
    Row {
        ttft_min_ms: ms(l.ttft.min),
        ttft_max_ms: ms(l.ttft.max),
        ttft_std_ms: ms(l.ttft.std),
        ttst_p50_ms: ms(l.ttst.p50),
        ttst_p99_ms: ms(l.ttst.p99),
        input_tok_s: round(l.input_tok_s, 2),
        total_tok_s: round(l.total_tok_s, 2),
        peak_output_tok_s: round(l.peak_output_tok_s, 2),
        per_user_tok_s_p50: l.per_user_tok_s.map(|d| round(d.p50, 2)),
        per_user_tok_s_p10: l.per_user_tok_s.map(|d| round(d.p10, 2)),
        steady_from_s: l.steady.map(|w| round(w.from.as_secs_f64(), 3)),
        steady_to_s: l.steady.map(|w| round(w.to.as_secs_f64(), 3)),
        steady_output_tok_s: l.steady.map(|w| round(w.output_tok_s, 2)),
        steady_req_s: l.steady.map(|w| round(w.req_s, 3)),
        cached_tokens: l.cached_tokens,
        prefix_hit: l.prefix_hit().map(|h| round(h, 4)),
        connections_opened: l.connections.map(|c| c.opened),
        connect_p50_ms: l
            .connections
            .filter(|c| c.opened > 0)
            .map(|c| ms(c.setup.p50)),
        connect_max_ms: l
            .connections
            .filter(|c| c.opened > 0)
            .map(|c| ms(c.setup.max)),
        ttft_percentiles_ms: pct_field(l, |p| &p.ttft),
        tpot_percentiles_ms: pct_field(l, |p| &p.tpot),
        itl_percentiles_ms: pct_field(l, |p| &p.itl),
        e2e_percentiles_ms: pct_field(l, |p| &p.e2e),
        ttft_growth: l.ttft_growth.map(|g| round(g, 3)),
        ..Row::default()
    }
}

fn pct_field(l: &LevelSummary, of: impl Fn(&Percentiles) -> &Vec<Duration>) -> String {
    l.percentiles
        .as_ref()
        .map(|p| pcts(&p.at, of(p)))
        .unwrap_or_default()
}

/// The optional columns a set of levels needs: an endpoint column when there are several, and
/// goodput, cost and the server's own token count when any level has them.
struct Optional {
    endpoints: bool,
    goodput: bool,
    cost: bool,
    server: bool,
}

impl Optional {
    fn of(levels: &[LevelSummary]) -> Self {
        let endpoints = levels
            .iter()
            .map(|l| &l.endpoint)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        Optional {
            endpoints: endpoints > 1,
            goodput: levels.iter().any(|l| l.goodput.is_some()),
            cost: levels.iter().any(|l| l.usd_per_mtok.is_some()),
            server: levels.iter().any(|l| l.server.is_some()),
        }
    }

    fn columns(&self) -> Vec<(&'static str, Align)> {
        let mut cols: Vec<(&str, Align)> = Vec::new();
        if self.endpoints {
            cols.push(("endpoint", Align::Left));
        }
        cols.extend([
            ("load", Align::Left),
            ("ok/sent", Align::Right),
            ("req/s", Align::Right),
            ("out tok/s", Align::Right),
            ("TTFT p50/p99 ms", Align::Right),
            ("TPOT p50/p99 ms", Align::Right),
            ("ITL p50/p99 ms", Align::Right),
            ("E2E p50/p99 ms", Align::Right),
        ]);
        if self.goodput {
            cols.push(("goodput req/s", Align::Right));
        }
        if self.cost {
            cols.push(("$/M out tok", Align::Right));
        }
        if self.server {
            cols.push(("server out tok", Align::Right));
        }
        cols.push(("errors", Align::Left));
        cols
    }

    /// One level's cells, one per column of [`Optional::columns`].
    fn cells(&self, l: &LevelSummary) -> Vec<String> {
        // A p99 of fewer than 100 values is their largest: marked, and said under the table.
        let pair = |d: &Dist| {
            let few = if d.n > 0 && d.n < 100 { "*" } else { "" };
            format!("{:.1} / {:.1}{few}", ms(d.p50), ms(d.p99))
        };
        let mut cells = Vec::new();
        if self.endpoints {
            cells.push(l.endpoint.clone());
        }
        cells.extend([
            l.load.to_string(),
            format!("{}/{}", l.ok, l.requests),
            format!("{:.2}", l.req_s),
            format!("{:.1}", l.output_tok_s),
            pair(&l.ttft),
            pair(&l.tpot),
            pair(&l.itl),
            pair(&l.e2e),
        ]);
        if self.goodput {
            cells.push(l.goodput.map_or("—".into(), |g| format!("{g:.2}")));
        }
        if self.cost {
            cells.push(l.usd_per_mtok.map_or("—".into(), |c| format!("{c:.2}")));
        }
        if self.server {
            cells.push(
                l.server
                    .as_ref()
                    .and_then(|s| s.generation_tokens)
                    .map_or("—".into(), |n| n.to_string()),
            );
        }
        cells.push(errors_cell(l));
        cells
    }
}

/// A level's errors and why it stopped early, or a dash.
fn errors_cell(l: &LevelSummary) -> String {
    let mut errors = row(l).errors;
    if let Some(why) = &l.stopped_early {
        errors = if errors.is_empty() {
            why.to_string()
        } else {
            format!("{errors}; {why}")
        };
    }
    if errors.is_empty() {
        "—".into()
    } else {
        errors
    }
}

/// A send lag below this is the timer's jitter, not the cap holding requests back.
const LAG_WORTH_SAYING: std::time::Duration = std::time::Duration::from_millis(10);

/// The levels as one Markdown table, endpoints side by side on the same workload.
pub fn markdown(levels: &[LevelSummary]) -> String {
    let optional = Optional::of(levels);
    let mut t = Table::new(optional.columns());
    for l in levels {
        t.row(optional.cells(l));
    }
    let counted = levels
        .iter()
        .map(|l| counted_name(l.counted))
        .collect::<std::collections::BTreeSet<_>>();
    let mut notes = String::new();
    let few = |d: &Dist| d.n > 0 && d.n < 100;
    if levels
        .iter()
        .any(|l| few(&l.ttft) || few(&l.tpot) || few(&l.itl) || few(&l.e2e))
    {
        notes.push_str(
            "\n\\* p99 of fewer than 100 values: it is the largest of them (TTFT, TPOT and E2E have one value per ok request; the JSON gives each n).\n",
        );
    }
    for l in levels {
        if let Some(lag) = l.send_lag.as_ref().filter(|d| d.p99 > LAG_WORTH_SAYING) {
            notes.push_str(&format!(
                "\n{} at {}: sends ran behind their schedule by {:.1} ms at p50 and {:.1} ms at p99 (held by --max-concurrency or a client that fell behind): the load offered was lower than asked, and latencies under it read better than they are (coordinated omission).\n",
                l.endpoint, l.load, ms(lag.p50), ms(lag.p99)
            ));
        }
        if l.retried > 0 {
            notes.push_str(&format!(
                "\n{} at {}: {} requests were sent again after their connection closed unanswered; their TTFT and E2E include the first try, and a server that had read it served it twice.\n",
                l.endpoint, l.load, l.retried
            ));
        }
        if let Some(n) = l.eos_stops.filter(|n| *n > 0) {
            notes.push_str(&format!(
                "\n{} at {}: {n} of {} requests ended at end-of-sequence (`stop`) though --ignore-eos asked each to reach --max-tokens: the server does not honour ignore_eos, so their lengths differ.\n",
                l.endpoint, l.load, l.ok
            ));
        }
    }
    let mut more = format!(
        "\n{}\nThe steady window, in seconds from the level's first send, runs from the full load (after any --ramp-up and --warmup-secs) to the last send (before any --cooldown-secs); the drain after it is cut. Latencies above are of the requests sent in it; req/s and out tok/s above are over the whole level (first send to last end), as vLLM's benchmark counts them. Peak: the most output tokens in one whole second. TTST: first token to second. Prefix hit: the server's own counters where it exports them, else its answers' cached-token counts. New conns: connections opened during the level, whose setup is part of their requests' TTFT.\n",
        super::serve_tables::steady_table(levels, optional.endpoints)
    );
    if let Some(p) = super::serve_tables::percentile_table(levels, optional.endpoints) {
        more.push_str(&format!("\nPercentiles asked for (nearest rank):\n\n{p}"));
    }
    format!(
        "{}\nOutput tokens counted by: {}. TPOT is (E2E − TTFT) ÷ (tokens − 1) per request; ITL is every gap between chunks that carried output, as vLLM's benchmark defines it (a chunk of several tokens is one gap).\n{notes}{more}",
        t.markdown(),
        counted.into_iter().collect::<Vec<_>>().join(", ")
    )
}

pub fn csv(levels: &[LevelSummary]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for l in levels {
        w.serialize(row(l))?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The levels as JSON, after `metadata` (what ran, against what, on what machine).
pub fn json(levels: &[LevelSummary], metadata: &serde_json::Value) -> Result<String> {
    let rows: Vec<Row> = levels.iter().map(row).collect();
    Ok(serde_json::to_string_pretty(
        &serde_json::json!({ "metadata": metadata, "levels": rows }),
    )?)
}

/// One request of a detailed export: its level and every time the client measured, from its
/// send (milliseconds), its tokens and how it ended.
#[derive(Debug, Serialize)]
struct Detailed<'a> {
    level: usize,
    endpoint: &'a str,
    load: String,
    /// Send time on the run's clock, in seconds.
    sent_s: f64,
    ttft_ms: Option<f64>,
    e2e_ms: f64,
    /// Each chunk that carried output, and each token (chunks' tokens spread over their gap).
    chunk_ms: Vec<f64>,
    token_ms: Vec<f64>,
    prompt_tokens: Option<usize>,
    output_tokens: usize,
    counted: &'static str,
    finish: Option<&'a str>,
    error: Option<String>,
    retried: bool,
    /// Prompt tokens the server's prefix cache served, when it said.
    cached_tokens: Option<usize>,
}

/// `--save-detailed`: one JSON line per request, in the order they ended.
pub fn detailed_jsonl(levels: &[LevelSummary], requests: &[(usize, Outcome)]) -> Result<String> {
    let mut out = String::new();
    for (level, o) in requests {
        let l = levels.get(*level);
        let line = Detailed {
            level: *level,
            endpoint: l.map_or("", |l| l.endpoint.as_str()),
            load: l.map(|l| l.load.to_string()).unwrap_or_default(),
            sent_s: o.sent.as_secs_f64(),
            ttft_ms: o.ttft.map(ms),
            e2e_ms: ms(o.e2e),
            chunk_ms: o.chunk_at.iter().map(|d| ms(*d)).collect(),
            token_ms: o.token_at.iter().map(|d| ms(*d)).collect(),
            prompt_tokens: o.prompt_tokens,
            output_tokens: o.output_tokens,
            counted: counted_name(o.counted),
            finish: o.finish.as_deref(),
            error: o.failure.as_ref().map(|f| f.message.clone()),
            retried: o.retried,
            cached_tokens: o.cached_tokens,
        };
        out.push_str(&serde_json::to_string(&line)?);
        out.push('\n');
    }
    Ok(out)
}

/// `throughput-latency.{png,svg}` (output tok/s against E2E p50, a line per endpoint through its
/// levels) and `timeline.{png,svg}` (each request from its send to its end, by level) in `dir`.
pub fn charts(
    dir: &Path,
    levels: &[LevelSummary],
    requests: &[(usize, Outcome)],
) -> Result<Vec<PathBuf>> {
    let mut by_endpoint: Vec<Series> = Vec::new();
    for l in levels {
        let point = (l.output_tok_s, ms(l.e2e.p50));
        match by_endpoint.iter_mut().find(|s| s.name == l.endpoint) {
            Some(s) => s.points.push(point),
            None => by_endpoint.push(Series {
                name: l.endpoint.clone(),
                points: vec![point],
                labels: Vec::new(),
            }),
        }
    }
    for s in &mut by_endpoint {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let mut files = chart(
        dir,
        "throughput-latency",
        "Throughput against latency (one point per level)",
        "output tokens/s",
        "E2E p50 (ms)",
        &by_endpoint,
        super::plot::Axes::default(),
    )?;
    let png = dir.join("timeline.png");
    timeline(
        BitMapBackend::new(&png, (960, 540)).into_drawing_area(),
        requests,
    )?;
    let svg = dir.join("timeline.svg");
    timeline(
        SVGBackend::new(&svg, (960, 540)).into_drawing_area(),
        requests,
    )?;
    files.extend([png, svg]);
    Ok(files)
}

/// Each request as a bar from its send to its end (y: request, in send order), TTFT darker,
/// coloured by level; failures in red.
fn timeline<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    requests: &[(usize, Outcome)],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    register_font();
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the timeline: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let mut reqs: Vec<&(usize, Outcome)> = requests.iter().collect();
    reqs.sort_by_key(|(_, o)| o.sent);
    let end = reqs
        .iter()
        .map(|(_, o)| (o.sent + o.e2e).as_secs_f64())
        .fold(1e-3, f64::max);
    let n = reqs.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Requests over time (darker: until the first token)",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end * 1.02, 0.0..n)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc("request")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    let bars = reqs.iter().enumerate().flat_map(|(i, (level, o))| {
        let color = if o.ok() {
            COLORS[level % COLORS.len()]
        } else {
            RED
        };
        let (y0, y1) = (i as f64 + 0.1, i as f64 + 0.9);
        let sent = o.sent.as_secs_f64();
        let first = sent + o.ttft.unwrap_or(o.e2e).as_secs_f64();
        let end = sent + o.e2e.as_secs_f64();
        [
            Rectangle::new([(sent, y0), (first, y1)], color.filled()),
            Rectangle::new([(first, y0), (end, y1)], color.mix(0.45).filled()),
        ]
    });
    chart.draw_series(bars).map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}
