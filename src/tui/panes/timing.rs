//! Prefill against decode: TTFT, rates, inter-token latency (chart, percentiles, histogram), the
//! time split of the run and the last runs side by side.

use super::chart::{self, Unit};
use super::{block, label, ms, value};
use crate::state::{AppState, RunView};
use ratatui::prelude::*;
use ratatui::widgets::{Bar, BarChart, BarGroup, Paragraph, Row, Table};
use std::time::Duration;

/// The chart's points: the newest `n` latencies (at most those the run keeps), as (the token's
/// index, seconds). The latency of token `i` is the step that made it, so the newest is that of
/// the token after the first `itl.len()`.
pub fn chart_data(run: &RunView, n: usize) -> Vec<(f64, f64)> {
    let recent = run.itl.recent();
    let skip = recent.len().saturating_sub(n);
    let first = run.itl.len() + 1 - recent.len() + skip;
    recent
        .skip(skip)
        .zip(first..)
        .map(|(d, i)| (i as f64, d.as_secs_f64()))
        .collect()
}

/// Labels of `bins` bins `width` wide from `min`, as ranges in ms with the decimals that tell
/// them apart.
pub fn bin_labels(min: Duration, width: Duration, bins: usize) -> Vec<String> {
    let (lo, w) = (min.as_secs_f64() * 1e3, width.as_secs_f64() * 1e3);
    let d = match w {
        w if w >= 10.0 => 0,
        w if w >= 1.0 => 1,
        _ => 2,
    };
    (0..bins)
        .map(|i| {
            let a = lo + w * i as f64;
            format!("{a:.d$}–{:.d$}", a + w)
        })
        .collect()
}

/// The latency histogram: as many bins as fit `width`, each labelled with its range in ms.
fn histogram(run: &RunView, width: u16) -> impl Widget {
    let bar_w = 9u16;
    let bins = ((width + 1) / (bar_w + 1)).clamp(1, 8) as usize;
    let (counts, min, w) = run.itl.histogram(bins);
    let names = bin_labels(min, w, bins);
    let bar_w = names
        .iter()
        .map(|n| n.chars().count() as u16)
        .max()
        .unwrap_or(bar_w);
    let bars: Vec<Bar> = counts
        .iter()
        .zip(names)
        .map(|(c, name)| Bar::default().value(*c).label(Line::from(name)))
        .collect();
    BarChart::default()
        .data(BarGroup::default().bars(&bars))
        .bar_width(bar_w)
        .bar_gap(1)
}

fn numbers(run: &RunView) -> Vec<Line<'static>> {
    let f = run.timing_figures();
    let kv = |k: &str, v: String| {
        vec![
            Span::styled(format!("{k} "), label()),
            Span::styled(v, value()),
            Span::raw("  "),
        ]
    };
    let mut l1 = kv("TTFT", f.ttft.as_ref().map_or("—".into(), |t| t.shown()));
    l1.extend(kv(
        &f.prefill.name,
        format!("{} tok @ {}", run.prompt_tokens, f.prefill.shown()),
    ));
    let mut l2 = kv(&f.live.name, format!("{} live", f.live.shown()));
    l2.extend(kv(&f.mean.name, f.mean.shown()));
    let mut l3 = Vec::new();
    for p in &f.itl {
        l3.extend(kv(&p.name, p.shown()));
    }
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
        // Shaded apart as well as coloured, so that the split reads without colour.
        Span::styled("▒".repeat(p), Style::default().fg(Color::Yellow)),
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
    let b = block(
        "prefill vs decode",
        state.ui.view.focus == crate::state::Focus::Timing,
    );
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
        h if h >= 19 => (5, 5),
        h if h >= 12 => (5, 0),
        _ => (0, 0),
    };
    let [nums, split, chart, hist, table] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(1),
        Constraint::Min(4),
        Constraint::Length(hist_h),
        Constraint::Length(table_h),
    ])
    .areas(inner);
    Paragraph::new(numbers(run)).render(nums, buf);
    split_bar(run, split.width).render(split, buf);
    // Two points a column: a braille cell is two dots wide.
    let points = chart_data(run, 2 * chart.width as usize);
    if let Some(c) = chart::line(&points, Unit::TOKENS, Unit::MS, Color::Green, chart.height) {
        c.render(chart, buf);
    }
    if hist.height > 0 {
        let [caption, bars] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(hist);
        Paragraph::new("inter-token latency, ms: tokens in each bin")
            .style(label())
            .render(caption, buf);
        histogram(run, bars.width).render(bars, buf);
    }
    Widget::render(history(state), table, buf);
}
