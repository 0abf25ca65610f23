//! The demo pane: the narration step on screen, then the demo's numbers as a short table and its
//! first chart, all from the run's own measurements.

use super::{block, label, value};
use crate::lab::roofline::bound_by;
use crate::protocol::DemoResult;
use crate::report::demo as report;
use crate::state::{Action, AppState, DemoView};
use crate::tui::keys::key;
use ratatui::prelude::*;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};

const COLORS: [Color; 3] = [Color::Cyan, Color::Yellow, Color::Green];

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let Some(d) = &state.ui.demo else { return };
    let title = format!(
        "demo {} · step {}/{} · {} next · {} back · {} closes",
        d.name,
        (d.step + 1).min(d.steps.len()),
        d.steps.len(),
        key(&Action::DemoNext),
        key(&Action::DemoPrev),
        key(&Action::Escape)
    );
    // The demo stands where the tokens, memory and speculation panes stand.
    let focused = matches!(
        state.ui.focus,
        crate::state::Focus::Tape | crate::state::Focus::Memory | crate::state::Focus::Spec
    );
    let b = block(&title, focused);
    let inner = b.inner(area);
    b.render(area, buf);
    let [narration, numbers] =
        Layout::vertical([Constraint::Length(4), Constraint::Min(0)]).areas(inner);
    narration_par(d).render(narration, buf);
    let Some(run) = state.demo_result() else {
        Paragraph::new(format!(
            "measuring on the loaded model … {}",
            state.ui.status
        ))
        .style(label())
        .wrap(Wrap { trim: true })
        .render(numbers, buf);
        return;
    };
    let rows = table(&run.result);
    let table_h = (rows.len() as u16).min(numbers.height);
    let [top, chart_area] =
        Layout::vertical([Constraint::Length(table_h), Constraint::Min(0)]).areas(numbers);
    Paragraph::new(rows).render(top, buf);
    if chart_area.height >= 6 {
        if let Some(c) = report::charts(&run.result).into_iter().next() {
            chart(c.1, c.2, c.3, &c.4, chart_area, buf);
        }
    }
}

fn narration_par(d: &DemoView) -> Paragraph<'_> {
    let text = d.narration().unwrap_or("(this demo has no narration)");
    Paragraph::new(Line::styled(text, value())).wrap(Wrap { trim: true })
}

fn row(cells: &[String]) -> Line<'static> {
    Line::from(
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let s = if i == 0 { label() } else { value() };
                Span::styled(format!("{c:>14}"), s)
            })
            .collect::<Vec<_>>(),
    )
}

fn ms(d: std::time::Duration) -> String {
    super::ms(d)
}

/// The numbers of a result as short aligned rows.
pub fn table(r: &DemoResult) -> Vec<Line<'static>> {
    let s = |x: &str| x.to_string();
    match r {
        DemoResult::PrefillVsDecode(x) => {
            let mut v = vec![row(&[
                s("prompt"),
                s("prefill"),
                s("prefill tok/s"),
                s("decode/token"),
                s("decode tok/s"),
            ])];
            v.extend(x.prompts.iter().map(|p| {
                row(&[
                    p.prompt_tokens.to_string(),
                    ms(p.prefill),
                    format!("{:.0}", p.prefill_tok_s),
                    ms(p.decode_step),
                    format!("{:.1}", p.decode_tok_s),
                ])
            }));
            v
        }
        DemoResult::KvCache(x) => {
            let mut v = vec![row(&[
                s("context"),
                s("with cache"),
                s("without"),
                s("ratio"),
            ])];
            let every = x.gaps.len().div_ceil(6).max(1);
            v.extend(
                x.gaps
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % every == 0 || i + 1 == x.gaps.len())
                    .map(|(_, g)| {
                        row(&[
                            g.context.to_string(),
                            ms(g.cached),
                            ms(g.no_cache),
                            format!("{:.1}×", g.ratio),
                        ])
                    }),
            );
            v.push(Line::styled(
                format!(
                    "cache {} per token, {} held · same tokens {}/{}{}",
                    crate::stats::human_bytes(x.kv_bytes_per_token),
                    crate::stats::human_bytes(x.kv_bytes),
                    x.compared - x.mismatches.len() - x.ties.len(),
                    x.compared,
                    match x.ties.len() {
                        0 => String::new(),
                        n => format!(" ({n} near tie{})", if n == 1 { "" } else { "s" }),
                    }
                ),
                label(),
            ));
            v
        }
        DemoResult::Speculation(x) => {
            let mut v = vec![
                Line::styled(format!("plain decoding {:.1} tok/s", x.plain_tok_s), label()),
                row(&[
                    s("mode · K"),
                    s("tok/s"),
                    s("acceptance"),
                    s("speedup"),
                    s("same text"),
                ]),
            ];
            v.extend(x.points.iter().map(|p| {
                row(&[
                    format!("{} {}", p.mode, p.k),
                    format!("{:.1}", p.decode_tok_s),
                    format!("{:.0}%", p.acceptance * 100.0),
                    format!("{:.2}×", p.speedup),
                    s(if p.same_text { "yes" } else { "no" }),
                ])
            }));
            v
        }
        DemoResult::Quantization(x) => {
            let mut v = vec![row(&[
                s("type"),
                s("weights"),
                s("decode tok/s"),
                s("perplexity"),
                s("mean KL"),
                s("top-1"),
            ])];
            v.extend(x.rows.iter().map(|r| {
                row(&[
                    r.variant.quant.to_string(),
                    crate::stats::human_bytes(r.variant.weight_bytes),
                    format!("{:.1}", r.decode_tok_s),
                    format!("{:.3}", r.quality.perplexity),
                    format!("{:.4}", r.quality.mean_kl),
                    format!("{:.1}%", r.quality.top1 * 100.0),
                ])
            }));
            v
        }
        DemoResult::Batching(x) => {
            let mut v = vec![row(&[s("batch"), s("step"), s("decode tok/s")])];
            v.extend(x.sweep.iter().map(|p| {
                row(&[
                    p.batch.to_string(),
                    ms(p.step),
                    format!("{:.1}", p.decode_tok_s),
                ])
            }));
            v.push(row(&[
                s("policy"),
                s("tok/s"),
                s("TTFT mean"),
                s("TTFT p99"),
                s("E2E p99"),
                s("mean batch"),
            ]));
            v.extend(x.policies.iter().map(|p| {
                row(&[
                    p.policy.to_string(),
                    format!("{:.1}", p.tok_s),
                    ms(p.ttft_mean),
                    ms(p.ttft_p99),
                    ms(p.e2e_p99),
                    format!("{:.2}", p.mean_batch),
                ])
            }));
            v
        }
        DemoResult::PagedKv(x) => {
            let (pw, cw) = x.waste();
            let (_, pp, pc) = x.peaks();
            let b = |t: usize| crate::stats::human_bytes(t as u64 * x.kv_bytes_per_token);
            vec![
                row(&[s("allocation"), s("peak"), s("unused")]),
                row(&[s("contiguous"), b(pc), format!("{:.1}%", cw * 100.0)]),
                row(&[s("paged"), b(pp), format!("{:.1}%", pw * 100.0)]),
                row(&[
                    s("KV blocks"),
                    s("preemptions"),
                    s("recomputed"),
                    s("mean running"),
                    s("tok/s"),
                ]),
                budget_row(&x.ample),
                budget_row(&x.scarce),
                Line::styled(
                    format!(
                        "same tokens with too few blocks: {}",
                        if x.same_tokens { "yes" } else { "no" }
                    ),
                    label(),
                ),
            ]
        }
        DemoResult::Roofline(x) => vec![
            Line::styled(
                format!(
                    "bandwidth {:.1} GB/s{} · matmul {:.1} GFLOP/s (f32 {:.1}, quantized {:.1})",
                    x.bandwidth_gb_s,
                    cached_bandwidth(x),
                    x.peak_gflop_s,
                    x.matmul_f32_gflop_s,
                    x.matmul_q_gflop_s
                ),
                label(),
            ),
            row(&[s(""), s("ceiling"), s("measured"), s("of ceiling")]),
            row(&[
                s("decode tok/s"),
                format!("{:.1}", x.decode_ceiling_tok_s),
                format!("{:.1}", x.decode_tok_s),
                format!("{:.0}%", x.decode_ratio * 100.0),
            ]),
            row(&[
                s("prefill tok/s"),
                format!("{:.1}", x.prefill_ceiling_tok_s),
                format!("{:.1}", x.prefill_tok_s),
                format!("{:.0}%", x.prefill_ratio * 100.0),
            ]),
            Line::styled(
                format!(
                    "FLOP per byte: machine {:.1} · decode {:.1} ({}-bound) · prefill {:.0} ({}-bound)",
                    x.machine_balance,
                    x.decode_intensity,
                    bound_by(x.decode_intensity, x.machine_balance),
                    x.prefill_intensity,
                    bound_by(x.prefill_intensity, x.machine_balance)
                ),
                label(),
            ),
        ],
    }
}

fn budget_row(r: &crate::protocol::demo::BudgetRun) -> Line<'static> {
    row(&[
        r.kv_blocks.to_string(),
        r.preemptions.to_string(),
        r.recomputed_tokens.to_string(),
        format!("{:.2}", r.mean_running),
        format!("{:.1}", r.tok_s),
    ])
}

fn chart(
    title: &str,
    x: &str,
    y: &str,
    series: &[crate::report::plot::Series],
    area: Rect,
    buf: &mut Buffer,
) {
    let max = |f: fn(&(f64, f64)) -> f64| {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(f))
            .fold(1e-9, f64::max)
    };
    let (xmax, ymax) = (max(|p| p.0), max(|p| p.1) * 1.1);
    let sets: Vec<Dataset> = series
        .iter()
        .enumerate()
        .map(|(i, s)| {
            Dataset::default()
                .name(s.name.clone())
                .marker(symbols::Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::default().fg(COLORS[i % COLORS.len()]))
                .data(&s.points)
        })
        .collect();
    let labels = |m: f64| vec![Span::raw("0"), Span::raw(format!("{m:.0}"))];
    Chart::new(sets)
        .block(ratatui::widgets::Block::default().title(Line::styled(title.to_string(), label())))
        .x_axis(
            Axis::default()
                .title(x.to_string())
                .bounds([0.0, xmax])
                .labels(labels(xmax)),
        )
        .y_axis(
            Axis::default()
                .title(y.to_string())
                .bounds([0.0, ymax])
                .labels(labels(ymax)),
        )
        .render(area, buf);
}

/// The bandwidth the decode roof uses when decode's working set fits in a cache.
fn cached_bandwidth(x: &crate::protocol::demo::Roofline) -> String {
    if x.working_set_gb_s > x.bandwidth_gb_s * 1.2 {
        format!(
            " ({:.1} GB/s at decode's {}: in cache)",
            x.working_set_gb_s,
            crate::stats::human_bytes(x.working_set_bytes)
        )
    } else {
        String::new()
    }
}
