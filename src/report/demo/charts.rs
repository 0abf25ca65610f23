//! A demo's charts: one function per result, each a list of [`Chart`]s that the report writes as
//! PNG and SVG and the demo pane draws (its first).

use crate::protocol::demo::{
    Batching, Comparison, PagedKv, QuantSweep, Roofline, SpecSweep, Sweep,
};
use crate::protocol::{DemoResult, Setting};
use crate::report::plot::{Axes, Series};
use crate::stats::millis as ms;
use std::path::{Path, PathBuf};

/// One chart: the file stem, its title, the axes' labels and the lines.
pub struct Chart {
    pub stem: String,
    pub title: String,
    pub x: &'static str,
    pub y: &'static str,
    pub series: Vec<Series>,
    pub axes: Axes,
}

impl Chart {
    fn log(mut self, log_x: bool, log_y: bool) -> Self {
        self.axes = Axes {
            log_x,
            log_y,
            ..Axes::default()
        };
        self
    }
}

fn chart(stem: &str, title: &str, x: &'static str, y: &'static str, series: Vec<Series>) -> Chart {
    Chart {
        stem: stem.into(),
        title: title.into(),
        x,
        y,
        series,
        axes: Axes::default(),
    }
}

fn series(name: &str, points: impl IntoIterator<Item = (f64, f64)>) -> Series {
    Series {
        name: name.into(),
        points: points.into_iter().collect(),
        labels: Vec::new(),
    }
}

const MIB: f64 = 1024.0 * 1024.0;

/// The charts of a result.
pub fn charts(r: &DemoResult) -> Vec<Chart> {
    match r {
        DemoResult::PrefillVsDecode(x) => sweep(x),
        DemoResult::KvCache(x) => comparison(x),
        DemoResult::Roofline(x) => roofline(x),
        DemoResult::Batching(x) => batching(x),
        DemoResult::PagedKv(x) => paged_kv(x),
        DemoResult::Quantization(x) => quantization(x),
        DemoResult::Speculation(x) => speculation(x),
        // The heat maps are drawn by `heatmap` (see `write_charts`).
        DemoResult::Sensitivity(_) => Vec::new(),
        DemoResult::FlashAttention(x) => flash(x),
        DemoResult::DecodeRoofline(x) => super::decode_roofline::charts(x),
        DemoResult::ServingMetrics(x) => super::serving::charts(x),
    }
}

fn flash(x: &crate::protocol::flash::FlashAttention) -> Vec<Chart> {
    use crate::protocol::flash::FlashRun;
    let line = |name: &str,
                run: fn(&crate::protocol::flash::FlashRow) -> &FlashRun,
                y: fn(&FlashRun, usize) -> Option<f64>| {
        series(
            name,
            x.rows
                .iter()
                .filter_map(|r| y(run(r), r.tokens).map(|v| (r.tokens as f64, v))),
        )
    };
    let mib = |r: &FlashRun, _: usize| {
        (r.prefill.is_some() && r.peak_bytes > 0).then(|| r.scratch_bytes() as f64 / MIB)
    };
    let estimate = |r: &FlashRun, _: usize| Some(r.predicted_bytes as f64 / MIB);
    vec![
        chart(
            "time",
            "Prefill time per prompt token: dense against tiled attention",
            "prompt tokens",
            "ms per prompt token",
            vec![
                line("dense", |r| &r.dense, FlashRun::ms_per_token),
                line("tiled", |r| &r.tiled, FlashRun::ms_per_token),
            ],
        )
        .log(true, false),
        chart(
            "memory",
            "Prefill memory beyond the KV cache: measured peak and estimate",
            "prompt tokens",
            "MiB",
            vec![
                line("dense, measured", |r| &r.dense, mib),
                line("tiled, measured", |r| &r.tiled, mib),
                line("dense, estimate", |r| &r.dense, estimate),
                line("tiled, estimate", |r| &r.tiled, estimate),
            ],
        )
        .log(true, true),
    ]
}

fn sweep(x: &Sweep) -> Vec<Chart> {
    vec![
        chart(
            "prefill",
            "Prefill time by prompt length",
            "prompt tokens",
            "prefill (ms)",
            vec![series(
                "prefill",
                x.prompts
                    .iter()
                    .map(|p| (p.prompt_tokens as f64, ms(p.prefill))),
            )],
        )
        .log(true, true),
        chart(
            "decode",
            "Decode time per token by context length",
            "context tokens",
            "decode step (ms)",
            vec![
                series(
                    "long run",
                    x.decode_curve
                        .iter()
                        .map(|p| (p.context as f64, ms(p.step))),
                ),
                series(
                    "after each prompt",
                    x.prompts
                        .iter()
                        .map(|p| (p.prompt_tokens as f64, ms(p.decode_step))),
                ),
            ],
        ),
    ]
}

fn comparison(x: &Comparison) -> Vec<Chart> {
    vec![
        chart(
            "per-token",
            "Per-token time with and without the KV cache",
            "context tokens",
            "step (ms)",
            vec![
                series(
                    "with the cache",
                    x.cached.iter().map(|p| (p.context as f64, ms(p.step))),
                ),
                series(
                    "without",
                    x.no_cache.iter().map(|p| (p.context as f64, ms(p.step))),
                ),
            ],
        )
        .log(false, true),
        chart(
            "kv-bytes",
            "KV cache size",
            "context tokens",
            "KV cache (MiB)",
            vec![series(
                "held",
                x.cached.iter().map(|p| {
                    (
                        p.context as f64,
                        p.context as f64 * x.kv_bytes_per_token as f64 / MIB,
                    )
                }),
            )],
        ),
    ]
}

fn batching(x: &Batching) -> Vec<Chart> {
    // Throughput against latency, one labelled point per batch size: both matter, and they have
    // different units.
    vec![chart(
        "batch",
        "Decode throughput against time between tokens, by batch size",
        "time between tokens: one decode step (ms)",
        "decode tok/s, all sequences",
        vec![Series {
            name: "batch size".into(),
            points: x
                .sweep
                .iter()
                .map(|p| (ms(p.step), p.decode_tok_s))
                .collect(),
            labels: x.sweep.iter().map(|p| format!("B={}", p.batch)).collect(),
        }],
    )]
}

/// The roofline, log-log: attainable GFLOP/s against arithmetic intensity under each compute
/// roof, and decode and prefill where they measured.
fn roofline(x: &Roofline) -> Vec<Chart> {
    let bw = x.working_set_gb_s.max(x.bandwidth_gb_s);
    let roof = |peak: f64| {
        let knee = peak / bw.max(1e-9);
        let lo = (x.decode_intensity / 4.0).min(knee / 4.0).max(1e-3);
        let hi = (x.prefill_intensity * 4.0).max(knee * 4.0);
        vec![(lo, bw * lo), (knee, peak), (hi, peak)]
    };
    let point = |i: f64, flops_per_token: f64, tok_s: f64| (i, flops_per_token * tok_s / 1e9);
    vec![chart(
        "roofline",
        "Roofline: attainable GFLOP/s against FLOPs per byte",
        "arithmetic intensity (FLOP/byte, log)",
        "GFLOP/s (log)",
        vec![
            series(
                "roof: the model's quantized product",
                roof(x.matmul_q_gflop_s),
            ),
            series("roof: f32 matmul", roof(x.matmul_f32_gflop_s)),
            // One series a point: measurements are not joined by a line.
            Series {
                name: "decode, measured".into(),
                points: vec![point(
                    x.decode_intensity,
                    x.decode_flops_per_token,
                    x.decode_tok_s,
                )],
                labels: vec![format!("decode {:.0} tok/s", x.decode_tok_s)],
            },
            Series {
                name: "prefill, measured".into(),
                points: vec![point(
                    x.prefill_intensity,
                    x.prefill_flops_per_token,
                    x.prefill_tok_s,
                )],
                labels: vec![format!(
                    "prefill {} tokens, {:.0} tok/s",
                    x.prefill_tokens, x.prefill_tok_s
                )],
            },
        ],
    )
    .log(true, true)]
}

fn paged_kv(x: &PagedKv) -> Vec<Chart> {
    let mib = |t: usize| (t as u64 * x.kv_bytes_per_token) as f64 / MIB;
    let line = |name: &str, f: fn(&crate::protocol::demo::KvPoint) -> usize| {
        series(name, x.points.iter().map(|k| (k.step as f64, mib(f(k)))))
    };
    vec![chart(
        "memory",
        "KV memory reserved per step: contiguous against paged",
        "step",
        "KV (MiB)",
        vec![
            line("contiguous", |k| k.contiguous),
            line("paged", |k| k.paged),
            line("used", |k| k.used),
        ],
    )]
}

fn quantization(x: &QuantSweep) -> Vec<Chart> {
    let mib = |b: u64| b as f64 / MIB;
    // Lines join the points left to right.
    let sorted = |mut v: Vec<(f64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    };
    vec![
        chart(
            "decode",
            "Decode speed by weight bytes read per token",
            "MiB read per token",
            "decode tok/s",
            vec![series(
                "decode",
                sorted(
                    x.rows
                        .iter()
                        .map(|r| (mib(r.read_per_token), r.decode_tok_s))
                        .collect(),
                ),
            )],
        ),
        chart(
            "kl",
            "KL divergence from the loaded weights by weight bytes",
            "weights (MiB)",
            "mean KL (nats)",
            vec![series(
                "KL",
                sorted(
                    x.rows
                        .iter()
                        .map(|r| (mib(r.variant.weight_bytes), r.quality.mean_kl))
                        .collect(),
                ),
            )],
        )
        .log(false, true),
    ]
}

fn speculation(x: &SpecSweep) -> Vec<Chart> {
    vec![chart(
        "speedup",
        "Speedup over plain decoding by K",
        "K (drafted tokens per step)",
        "speedup (×)",
        crate::lab::speculation::MODES
            .iter()
            .map(|m| {
                series(
                    m.name(),
                    x.points
                        .iter()
                        .filter(|p| p.mode == *m)
                        .map(|p| (p.k as f64, p.speedup)),
                )
            })
            .collect(),
    )]
}

/// Write the charts of `r` into `dir`; returns the files written.
pub fn write_charts(dir: &Path, r: &DemoResult) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    if let DemoResult::Sensitivity(x) = r {
        out.extend(crate::report::heatmap::write_all(dir, &x.map)?);
    }
    for c in charts(r) {
        out.extend(crate::report::plot::chart(
            dir, &c.stem, &c.title, c.x, c.y, &c.series, c.axes,
        )?);
    }
    Ok(out)
}
