//! The A/B race's view, in place of the prompt and the panes: two columns, each a side's
//! numbers, inter-token latency chart and tape (the tokens from where the texts part marked on
//! both), and the summary row at the bottom.

use super::{block, label, ms, value};
use crate::protocol::FinishReason;
use crate::state::figure::Figure;
use crate::state::{AppState, RaceView, RowFigures, RunView, SideFigures};
use crate::stats::human_bytes;
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Sparkline, Wrap};

/// Rows of the summary at the bottom.
const SUMMARY_ROWS: u16 = 4;

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let Some(race) = state.store.race.as_ref() else {
        return;
    };
    let [head, cols, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(8),
        Constraint::Length(SUMMARY_ROWS),
    ])
    .areas(area);
    let how = if race.turns {
        "A/B race · one step of A, then one of B, on this machine: both see the same machine"
    } else {
        "A/B race · both sides run at once"
    };
    Paragraph::new(Line::styled(how, label())).render(head, buf);
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(cols);
    let parting = race.parting();
    // Both sparklines on one scale: the slowest gap either side shows.
    let gaps = |i: usize, n: usize| -> Vec<u64> {
        race.runs[i].as_ref().map_or(Vec::new(), |r| {
            let g = r.itl.recent().rev().take(n).rev();
            g.map(|d| d.as_micros() as u64).collect()
        })
    };
    let width = left.width.saturating_sub(2) as usize;
    let shown = [gaps(0, width), gaps(1, width)];
    let top = shown.iter().flatten().copied().max().unwrap_or(1);
    // The figures once a frame: both columns and the summary draw from them.
    let figures = race.figures();
    for (i, col) in [left, right].into_iter().enumerate() {
        let side = figures.sides[i].as_ref();
        render_side(race, (i, side), (parting, top, &shown[i]), col, buf);
    }
    render_summary(race, figures.row.as_ref(), foot, buf);
}

/// One side's column: numbers, ITL chart, tape.
/// `shared`: where the texts part, the sparklines' common top (µs), this side's gaps.
fn render_side(
    race: &RaceView,
    (i, figures): (usize, Option<&SideFigures>),
    shared: (Option<usize>, u64, &[u64]),
    area: Rect,
    buf: &mut Buffer,
) {
    let (parting, top, gaps) = shared;
    let side = &race.sides[i];
    let lane = if i == 0 { "A" } else { "B" };
    let title = format!("{lane} · {}", side.label);
    let b = block(&title, false);
    let inner = b.inner(area);
    b.render(area, buf);
    let chart_rows = if inner.height >= 30 { 6 } else { 3 };
    let [numbers, chart_label, chart, tape] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(1),
        Constraint::Length(chart_rows),
        Constraint::Min(2),
    ])
    .areas(inner);
    let Some(run) = race.runs[i].as_ref() else {
        Paragraph::new(Line::styled("preparing …", label())).render(numbers, buf);
        return;
    };
    if let Some(f) = figures {
        Paragraph::new(numbers_lines(run, f)).render(numbers, buf);
    }
    let scale = ms(std::time::Duration::from_micros(top));
    Paragraph::new(Line::styled(
        format!("inter-token latency, token by token (both: 0–{scale})"),
        label(),
    ))
    .render(chart_label, buf);
    Sparkline::default()
        .data(gaps)
        .max(top)
        .style(Style::default().fg(Color::Cyan))
        .render(chart, buf);
    render_tape(run, parting, tape, buf);
}

/// TTFT, decode speed, ITL percentiles, tokens, memory.
fn numbers_lines(run: &RunView, f: &SideFigures) -> Vec<Line<'static>> {
    let pair = |k: &str, v: String| {
        vec![
            Span::styled(k.to_string(), label()),
            Span::styled(v, value()),
        ]
    };
    let shown = |x: &Option<Figure>| x.as_ref().map_or("…".into(), Figure::shown);
    let mut l1 = pair("TTFT ", shown(&f.ttft));
    l1.extend(pair("  decode ", shown(&f.decode)));
    let mut l2 = pair("ITL p50 ", f.p50.shown());
    l2.extend(pair("  p99 ", f.p99.shown()));
    let mut l3 = pair("tokens ", run.tokens.len().to_string());
    if let Some(s) = &run.summary {
        let why = match s.reason {
            FinishReason::Eos => "end of text",
            FinishReason::MaxTokens => "max tokens",
            FinishReason::ContextFull => "context full",
            FinishReason::Stopped => "stopped",
        };
        l3.extend(pair("  ended: ", why.into()));
    }
    let mut l4 = pair("weights ", f.weights.shown());
    let kv =
        f.kv.as_ref()
            .map_or(super::kv::NOT_KNOWN.to_string(), Figure::shown);
    l4.extend(pair("  KV ", kv));
    vec![l1.into(), l2.into(), l3.into(), l4.into()]
}

/// The tape's end that fits: tokens before the parting point plain, from it on marked.
fn render_tape(run: &RunView, parting: Option<usize>, area: Rect, buf: &mut Buffer) {
    let room = (area.width as usize * area.height as usize) * 9 / 10;
    let mut used = 0;
    let mut first = run.tokens.len();
    while first > 0 && used + run.tokens[first - 1].text.chars().count() <= room {
        first -= 1;
        used += run.tokens[first].text.chars().count();
    }
    let parted = Style::default()
        .fg(super::palette::REJECTED)
        .add_modifier(Modifier::UNDERLINED);
    let spans: Vec<Span> = run.tokens[first..]
        .iter()
        .enumerate()
        .map(|(j, t)| {
            let style = match parting {
                Some(p) if first + j >= p => parted,
                _ => value(),
            };
            Span::styled(t.text.replace('\n', "↵ "), style)
        })
        .collect();
    Paragraph::new(Line::from(spans))
        .wrap(Wrap { trim: false })
        .render(area, buf);
}

/// The summary row when the race is over; the progress while it runs.
fn render_summary(race: &RaceView, row: Option<&RowFigures>, area: Rect, buf: &mut Buffer) {
    let b = block("summary", false);
    let inner = b.inner(area);
    b.render(area, buf);
    let line = match (&race.summary, &race.failed, row) {
        (Some(s), _, Some(f)) => {
            let mem = |w: u64, kv: u64| human_bytes(w + kv);
            let spread = f.spread.as_ref().map_or(String::new(), |[lo, hi]| {
                format!(
                    " ({}–{} over {} windows of {} tokens)",
                    lo.shown(),
                    hi.shown(),
                    s.windows,
                    s.window
                )
            });
            Line::from(vec![
                Span::styled("B/A decode ", label()),
                Span::styled(f.ratio.shown() + &spread, value()),
                Span::styled(" · agree ", label()),
                Span::styled(f.agreement.shown(), value()),
                Span::styled(format!(" · {}", s.parting()), label()),
                Span::styled(" · memory A ", label()),
                Span::styled(mem(s.a.weight_bytes, s.a.run.kv_bytes), value()),
                Span::styled(" B ", label()),
                Span::styled(mem(s.b.weight_bytes, s.b.run.kv_bytes), value()),
            ])
        }
        (_, Some(why), _) => Line::styled(format!("the race failed: {why}"), label()),
        _ => {
            let n = |i: usize| race.runs[i].as_ref().map_or(0, |r| r.tokens.len());
            Line::styled(
                format!("racing … A {} tokens, B {} · Esc stops", n(0), n(1)),
                label(),
            )
        }
    };
    Paragraph::new(line)
        .wrap(Wrap { trim: true })
        .render(inner, buf);
}
