//! The levels of a serving benchmark as table rows: each measured level's numbers, the running
//! level's live ones, and the levels still to come.

use super::super::{label, value};
use super::curve::COLORS;
use crate::protocol::serve::{LevelSummary, Load};
use crate::state::figure::Figure;
use crate::state::serve_figures::{self, LevelFigures};
use crate::state::{LevelProgress, ServeView};
use ratatui::prelude::*;
use ratatui::widgets::{Cell, Row, Table};
use std::time::Duration;

pub const HEADER: [&str; 9] = [
    "level",
    "progress",
    "in flight",
    "ok/err",
    "out tok/s",
    "TTFT p50",
    "TTFT p99",
    "TPOT p50",
    "E2E p50",
];

const WIDTHS: [u16; 9] = [15, 12, 9, 8, 9, 9, 9, 9, 9];

/// A level's load, short: `concurrency 4`, `rate 1.25 req/s`.
pub fn load_label(load: &Load) -> String {
    match load {
        Load::Concurrency(c) => format!("concurrency {c}"),
        Load::Rate { rate, .. } => format!("rate {rate} req/s"),
    }
}

/// A level's throughput and latencies as cells: each figure as drawn, "—" where no request gave
/// one.
fn figure_cells(f: &LevelFigures) -> [String; 5] {
    let [a, b, c, d] = f
        .latencies
        .each_ref()
        .map(|x| x.as_ref().map_or("—".into(), Figure::shown));
    [f.tok_s.shown(), a, b, c, d]
}

/// The numbers of a measured level, in [`HEADER`]'s order.
pub fn measured(l: &LevelSummary) -> [String; 9] {
    let early = if l.stopped_early.is_some() { " *" } else { "" };
    let [tok_s, t50, t99, tpot, e2e] = figure_cells(&serve_figures::measured(l));
    [
        load_label(&l.load),
        format!("{} done{early}", l.ok + l.failed),
        "0".into(),
        format!("{}/{}", l.ok, l.failed),
        tok_s,
        t50,
        t99,
        tpot,
        e2e,
    ]
}

/// The running level's numbers so far, at `now`.
pub fn running(c: &LevelProgress, now: Duration) -> [String; 9] {
    let [tok_s, t50, t99, tpot, e2e] = figure_cells(&serve_figures::running(c, now));
    [
        load_label(&c.load),
        format!(
            "{}/{} {:.1} s",
            c.done,
            c.requests,
            c.elapsed(now).as_secs_f64()
        ),
        c.in_flight().to_string(),
        format!("{}/{}", c.done - c.failed, c.failed),
        tok_s,
        t50,
        t99,
        tpot,
        e2e,
    ]
}

/// All rows: measured levels, the running one, then one per level still to come; the last
/// `fit` of them when they do not all fit (the running level is always among them).
pub fn rows(view: &ServeView, now: Duration, fit: usize) -> Vec<Row<'static>> {
    let endpoints = view.endpoints();
    let color = |endpoint: &str| {
        let i = endpoints.iter().position(|e| *e == endpoint).unwrap_or(0);
        COLORS[i % COLORS.len()]
    };
    let row = |cells: [String; 9], first: Style, rest: Style| {
        let mut cells = cells.into_iter();
        let head = Cell::from(cells.next().unwrap_or_default()).style(first);
        Row::new(std::iter::once(head).chain(cells.map(Cell::from))).style(rest)
    };
    let mut out: Vec<Row> = view
        .levels
        .iter()
        .map(|l| {
            row(
                measured(l),
                Style::default().fg(color(&l.endpoint)),
                value(),
            )
        })
        .collect();
    if let Some(c) = &view.current {
        let live = Style::default().fg(Color::Yellow);
        out.push(row(
            running(c, now),
            live.add_modifier(Modifier::BOLD),
            live,
        ));
    }
    let waiting = Style::default().fg(Color::DarkGray);
    for i in out.len()..view.planned {
        let mut cells: [String; 9] = Default::default();
        cells[0] = format!("level {}", i + 1);
        cells[1] = "waiting".into();
        out.push(row(cells, waiting, waiting));
    }
    let skip = out.len().saturating_sub(fit);
    out.into_iter().skip(skip).collect()
}

/// The table of levels, `fit` rows under its header.
pub fn table(view: &ServeView, now: Duration, fit: usize) -> Table<'static> {
    Table::new(rows(view, now, fit), WIDTHS.map(Constraint::Length))
        .header(Row::new(HEADER).style(label()))
        .column_spacing(1)
}

/// Why levels stopped early and how their requests failed, newest first: one line per level
/// that has anything to say.
pub fn notes(levels: &[LevelSummary]) -> Vec<Line<'static>> {
    levels
        .iter()
        .rev()
        .filter_map(|l| {
            let mut parts = Vec::new();
            if let Some(why) = &l.stopped_early {
                parts.push(format!("stopped early ({why})"));
            }
            if !l.errors.is_empty() {
                let errors: Vec<String> =
                    l.errors.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
                parts.push(format!("errors: {}", errors.join(", ")));
            }
            (!parts.is_empty()).then(|| {
                Line::from(vec![
                    Span::styled(format!("* {}: ", load_label(&l.load)), label()),
                    Span::styled(parts.join(" · "), Style::default().fg(Color::Red)),
                ])
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::serve::{Failure, FailureKind, Outcome, StopReason};
    use crate::serve::load::summary::{summarize, Inputs};

    fn level(outcomes: &[Outcome], stopped_early: Option<StopReason>) -> LevelSummary {
        let load = Load::Rate {
            rate: 2.5,
            burstiness: 1.0,
            max_concurrency: None,
        };
        summarize(Inputs {
            stopped_early,
            ..Inputs::plain("http://a", load, outcomes)
        })
    }

    #[test]
    fn a_level_that_failed_says_how_and_why_it_stopped() {
        let failed = Outcome {
            e2e: Duration::from_millis(3),
            failure: Some(Failure {
                kind: FailureKind::Status(503),
                message: "overloaded".into(),
            }),
            ..Outcome::default()
        };
        let ok = Outcome {
            ttft: Some(Duration::from_millis(40)),
            e2e: Duration::from_millis(100),
            output_tokens: 7,
            ..Outcome::default()
        };
        let quiet = level(std::slice::from_ref(&ok), None);
        let bad = level(
            &[ok, failed.clone(), failed],
            Some(StopReason::Said {
                words: "errors passed 50%".into(),
            }),
        );
        let cells = measured(&bad);
        assert_eq!(cells[0], "rate 2.5 req/s");
        assert_eq!(cells[1], "3 done *", "the star points at the note");
        assert_eq!(cells[3], "1/2");
        let notes: Vec<String> = notes(&[quiet, bad]).iter().map(|l| l.to_string()).collect();
        assert_eq!(
            notes,
            ["* rate 2.5 req/s: stopped early (errors passed 50%) · errors: http 503 ×2"]
        );
    }
}
