//! The serve view: a serving benchmark (`labtui bench serve`, live or replayed) as it runs — a
//! row per level with its progress and numbers, the running level's gauge, the throughput–latency
//! curve growing as levels finish, and the server's own metrics when they are scraped.

pub mod curve;
pub mod levels;

use super::{block, label, scraped};
use crate::state::{AppState, LevelProgress, ServeView};
use ratatui::prelude::*;
use ratatui::widgets::{LineGauge, Paragraph};
use std::time::Duration;

/// Terminals at least this wide put the server's KV view beside the curve.
const SIDE_BY_SIDE: u16 = 120;

/// `serve · http://127.0.0.1:8080 · level 2 of 4`
fn title(view: &ServeView) -> String {
    let endpoints = view.endpoints();
    let what = match endpoints.as_slice() {
        [one] => one.to_string(),
        many => format!("{} endpoints", many.len()),
    };
    let stage = match &view.current {
        Some(c) => format!("level {} of {}", c.index + 1, c.levels),
        None if view.finished() => format!("all {} levels measured", view.planned),
        None => format!("{} of {} levels measured", view.levels.len(), view.planned),
    };
    format!("serve · {what} · {stage}")
}

/// The running level as a gauge of its requests done:
/// `concurrency 2 · 12 of 32 requests · 3 in flight · 4.1 s`.
fn gauge(c: &LevelProgress, now: Duration) -> LineGauge<'static> {
    let ratio = if c.requests == 0 {
        0.0
    } else {
        (c.done as f64 / c.requests as f64).clamp(0.0, 1.0)
    };
    LineGauge::default()
        .ratio(ratio)
        .label(format!(
            "{} · {} of {} requests · {} in flight · {:.1} s ",
            levels::load_label(&c.load),
            c.done,
            c.requests,
            c.in_flight(),
            c.elapsed(now).as_secs_f64()
        ))
        .filled_style(Style::default().fg(Color::Yellow))
        .unfilled_style(Style::default().fg(Color::DarkGray))
}

/// What is said where the gauge is when no level runs.
fn between(view: &ServeView) -> Line<'static> {
    let text = if view.finished() {
        "the benchmark is done: every level measured".to_string()
    } else {
        format!(
            "no level running: {} of {} measured",
            view.levels.len(),
            view.planned
        )
    };
    Line::styled(text, label())
}

/// The server's lines and KV view, or why there are none.
fn server_metrics(state: &AppState, area: Rect, buf: &mut Buffer) {
    match &state.store.last_server {
        Some(s) => {
            // The KV line, gauge and caption, and eight rows of history.
            let [kv, throughput] =
                Layout::vertical([Constraint::Length(11), Constraint::Length(1)]).areas(area);
            scraped::kv_view(state, s, kv, buf);
            Paragraph::new(scraped::throughput_line(state)).render(throughput, buf);
        }
        None => Paragraph::new(
            "no server metrics in this session (bench serve --tui scrapes /metrics; \
             llama-server needs --metrics)",
        )
        .style(label())
        .wrap(ratatui::widgets::Wrap { trim: true })
        .render(area, buf),
    }
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let view = &state.store.serve;
    let now = state.store.now;
    let title = title(view);
    let outer = block(&title, false);
    let inner = outer.inner(area);
    outer.render(area, buf);
    let rows = (view.levels.len() + usize::from(view.current.is_some())).max(view.planned);
    // The table takes what its rows need, up to half the pane.
    let fit = rows
        .min((inner.height as usize / 2).saturating_sub(1))
        .max(1);
    let notes = levels::notes(&view.levels);
    let [table, progress, notes_area, lower] = Layout::vertical([
        Constraint::Length(fit as u16 + 1),
        Constraint::Length(1),
        Constraint::Length(notes.len().min(2) as u16),
        Constraint::Min(4),
    ])
    .areas(inner);
    Widget::render(levels::table(view, now, fit), table, buf);
    match &view.current {
        Some(c) => gauge(c, now).render(progress, buf),
        None => between(view).render(progress, buf),
    }
    Paragraph::new(notes).render(notes_area, buf);
    if lower.width >= SIDE_BY_SIDE {
        let [chart, side] =
            Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                .spacing(2)
                .areas(lower);
        curve::render(&view.levels, chart, buf);
        server_metrics(state, side, buf);
    } else {
        let server_h = if state.store.last_server.is_some() {
            2
        } else {
            1
        };
        let [server_area, chart] =
            Layout::vertical([Constraint::Length(server_h), Constraint::Min(3)]).areas(lower);
        match &state.store.last_server {
            Some(s) => Paragraph::new(vec![scraped::kv_line(s), scraped::throughput_line(state)])
                .render(server_area, buf),
            None => server_metrics(state, server_area, buf),
        }
        curve::render(&view.levels, chart, buf);
    }
}
