//! The demo pane: the narration step on screen, then the demo's numbers as a short table and its
//! first chart, all from the run's own measurements.

use super::{block, label, value};
use crate::protocol::DemoResult;
use crate::report::demo as report;
use crate::state::{Action, AppState};
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
        state.ui.view.focus,
        crate::state::Focus::Tape | crate::state::Focus::Memory | crate::state::Focus::Spec
    );
    let b = block(&title, focused);
    let inner = b.inner(area);
    b.render(area, buf);
    let text = d
        .narration_filled(&state.store.demos, fill)
        .unwrap_or_else(|| "(this demo has no narration)".into());
    // The step's text wraps: as many lines as it takes, up to half the pane.
    let width = inner.width.max(1) as usize;
    let lines =
        (text.chars().count().div_ceil(width) as u16 + 1).clamp(2, (inner.height / 2).max(2));
    let [narration, numbers] =
        Layout::vertical([Constraint::Length(lines), Constraint::Min(0)]).areas(inner);
    Paragraph::new(Line::styled(text, value()))
        .wrap(Wrap { trim: true })
        .render(narration, buf);
    let sweep = state.store.sensitivity.as_ref().filter(|_| {
        d.kind == "sensitivity"
            || matches!(
                state.demo_result().map(|r| &r.result),
                Some(DemoResult::Sensitivity(_))
            )
    });
    let Some(run) = state.demo_result() else {
        if let Some(map) = sweep {
            super::heatmap::render(map, numbers, buf);
            return;
        }
        Paragraph::new(format!(
            "measuring on the loaded model … {}",
            super::status::words(&state.ui.status)
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
    if let (Some(map), true) = (sweep, chart_area.height >= 6) {
        super::heatmap::render(map, chart_area, buf);
    } else if chart_area.height >= 6 {
        if let Some(c) = report::charts(&run.result).first() {
            chart(c, chart_area, buf);
        }
    }
}

/// The steps with a result's numbers in them, an ellipsis for each number until it is measured.
fn fill(run: Option<&crate::protocol::DemoRun>, steps: &[String]) -> Vec<String> {
    let facts = run.map(report::facts).unwrap_or_default();
    steps
        .iter()
        .map(|t| report::facts::fill_or(t, &facts, "…"))
        .collect()
}

/// The numbers of a result as short aligned rows: every table the pane shows, one after another.
pub fn table(r: &DemoResult) -> Vec<Line<'static>> {
    report::result_tables(r)
        .iter()
        .flat_map(super::table::lines)
        .collect()
}

fn chart(c: &report::Chart, area: Rect, buf: &mut Buffer) {
    let series = &c.series;
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
        .block(ratatui::widgets::Block::default().title(Line::styled(c.title.as_str(), label())))
        .x_axis(
            Axis::default()
                .title(c.x)
                .bounds([0.0, xmax])
                .labels(labels(xmax)),
        )
        .y_axis(
            Axis::default()
                .title(c.y)
                .bounds([0.0, ymax])
                .labels(labels(ymax)),
        )
        .render(area, buf);
}
