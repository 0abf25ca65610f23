//! Prefill against decode: TTFT, rates, inter-token latency (chart, percentiles, histogram), the
//! time split of the run and the last runs side by side.

use super::{block, label, ms, value};
use crate::state::{AppState, RunView};
use crate::stats::tok_per_s;
use ratatui::prelude::*;
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph, Row, Sparkline, Table};
use std::time::Duration;

/// The chart's latencies: the newest `width`, in µs.
pub fn chart_data(run: &RunView, width: u16) -> Vec<u64> {
    let recent = run.itl.recent();
    let skip = recent.len().saturating_sub(width as usize);
    recent.skip(skip).map(|d| d.as_micros() as u64).collect()
}

/// ITL p50, p90 and p99: the summary's exact ones once the run is done, the histogram's before.
fn percentiles(run: &RunView) -> [Duration; 3] {
    match &run.summary {
        Some(s) => [s.itl_p50, s.itl_p90, s.itl_p99],
        None => run.itl.percentiles(),
    }
}

fn numbers(run: &RunView) -> Vec<Line<'static>> {
    let prefill = run.prefill.unwrap_or_default();
    let ttft = run
        .summary
        .as_ref()
        .map(|s| s.ttft)
        .or_else(|| run.tokens.first().map(|t| t.elapsed));
    let kv = |k: &str, v: String| {
        vec![
            Span::styled(format!("{k} "), label()),
            Span::styled(v, value()),
            Span::raw("  "),
        ]
    };
    let mut l1 = kv("TTFT", ttft.map(ms).unwrap_or("—".into()));
    l1.extend(kv(
        "prefill",
        format!(
            "{} tok @ {:.1} tok/s",
            run.prompt_tokens,
            tok_per_s(run.prompt_tokens, prefill)
        ),
    ));
    let mut l2 = kv("decode", format!("{:.1} tok/s live", run.itl.live_rate(16)));
    l2.extend(kv("mean", format!("{:.1} tok/s", run.itl.mean_rate())));
    let [p50, p90, p99] = percentiles(run);
    let mut l3 = kv("ITL p50", ms(p50));
    l3.extend(kv("p90", ms(p90)));
    l3.extend(kv("p99", ms(p99)));
    vec![Line::from(l1), Line::from(l2), Line::from(l3)]
}

/// The run's wall time split prefill | decode, as a bar of `width` cells.
fn split_bar(run: &RunView, width: u16) -> Line<'static> {
    let prefill = run.prefill.unwrap_or_default().as_secs_f64();
    let decode = run.itl.sum().as_secs_f64();
    let total = (prefill + decode).max(1e-9);
    let w = width.saturating_sub(2) as usize;
    let p = ((prefill / total) * w as f64).round() as usize;
    Line::from(vec![
        Span::styled("█".repeat(p), Style::default().fg(Color::Yellow)),
        Span::styled("█".repeat(w - p.min(w)), Style::default().fg(Color::Green)),
    ])
}

fn history(state: &AppState) -> Table<'static> {
    let rows = state.store.history.iter().rev().map(|s| {
        Row::new(vec![
            format!("{}", s.prompt_tokens),
            format!("{}", s.generated_tokens),
            ms(s.ttft),
            format!("{:.1}", s.prefill_tok_s),
            format!("{:.1}", s.decode_tok_s),
        ])
    });
    let widths = [
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(8),
        Constraint::Length(8),
    ];
    Table::new(rows, widths)
        .header(Row::new(vec!["prompt", "gen", "TTFT", "pp t/s", "tg t/s"]).style(label()))
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let b = block("prefill vs decode", false);
    let inner = b.inner(area);
    b.render(area, buf);
    let Some(run) = &state.store.current else {
        Paragraph::new("TTFT, prefill and decode speed appear here during a run.")
            .style(label())
            .render(inner, buf);
        return;
    };
    // Short panes keep the numbers and the chart; the histogram and the history need room.
    let (hist_h, table_h) = match inner.height {
        h if h >= 17 => (4, 5),
        h if h >= 11 => (4, 0),
        _ => (0, 0),
    };
    let [nums, split, chart, hist, table] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(2),
        Constraint::Length(hist_h),
        Constraint::Length(table_h),
    ])
    .areas(inner);
    Paragraph::new(numbers(run)).render(nums, buf);
    split_bar(run, split.width).render(split, buf);
    Sparkline::default()
        .data(chart_data(run, chart.width))
        .style(Style::default().fg(Color::Green))
        .render(chart, buf);
    let (counts, min, width) = run.itl.histogram(8);
    let bars: Vec<Bar> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Bar::default()
                .value(*c)
                .label(Line::from(ms(min + width * i as u32)))
        })
        .collect();
    BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(8)
        .bar_gap(1)
        .render(hist, buf);
    Widget::render(history(state), table, buf);
}
