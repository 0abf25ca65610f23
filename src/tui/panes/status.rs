//! The status bar: model, architecture, quantization, device, threads, draft mode, K, recording,
//! and the message line with the keys that matter now.

use crate::state::{AppState, Focus};
use ratatui::prelude::*;
use ratatui::widgets::Paragraph;

pub fn render_top(state: &AppState, area: Rect, buf: &mut Buffer) {
    let model = match (&state.store.model, &state.store.loading) {
        (Some(m), _) => format!(
            " {} · {} · {} · {} thr",
            m.name, m.arch, m.device, m.threads
        ),
        (None, Some((spec, done, total))) if *total > 0 => format!(
            " loading {spec} {:.0}%",
            *done as f64 * 100.0 / *total as f64
        ),
        (None, Some((spec, _, _))) => format!(" loading {spec} …"),
        (None, None) if state.store.serve.active() => " serving benchmark".into(),
        (None, None) => " no model".into(),
    };
    let line = Line::from(vec![
        Span::styled(
            " labtui ",
            Style::default()
                .fg(Color::Black)
                .bg(Color::Cyan)
                .add_modifier(Modifier::BOLD),
        ),
        Span::styled(model, Style::default().fg(Color::White)),
        Span::styled(settings(state), Style::default().fg(Color::Gray)),
    ]);
    Paragraph::new(line)
        .style(Style::default().bg(Color::Rgb(30, 30, 40)))
        .render(area, buf);
}

/// The engine's settings and whether the session records; a serving benchmark has no engine
/// settings to show.
fn settings(state: &AppState) -> String {
    let rec = if state.ui.recording.is_some() {
        "ON"
    } else {
        "off"
    };
    if state.store.serve.active() && state.store.model.is_none() {
        return format!("  rec {rec}");
    }
    format!(
        "  quant {} · draft {} · K {} · rec {rec}",
        state.ui.quant, state.ui.draft_mode, state.ui.k
    )
}

/// The keys that matter in the current state.
pub fn hints(state: &AppState) -> &'static str {
    if state.store.serve.active() && state.ui.demo.is_none() {
        return "q quit · ? help";
    }
    match (state.ui.focus, state.store.running()) {
        (_, true) => "Esc stop · Ctrl-C quit · ? help",
        (Focus::Prompt, false) => "Enter run · Tab leave prompt · Ctrl-C quit · ? help",
        (_, false) if state.ui.zoom => "z / Esc unzoom · Tab next pane · S screenshot · q quit · ? help",
        (_, false) => "Enter run · Tab / 1–6 focus · z zoom · S shot · ←/→ token · d [ ] u + - t T v c b · q quit · ? help",
    }
}

pub fn render_bottom(state: &AppState, area: Rect, buf: &mut Buffer) {
    let line = Line::from(vec![
        Span::styled(
            format!(" {} ", state.ui.status),
            Style::default().fg(Color::White),
        ),
        Span::styled(
            format!("  {}", hints(state)),
            Style::default().fg(Color::DarkGray),
        ),
    ]);
    Paragraph::new(line)
        .style(Style::default().bg(Color::Rgb(30, 30, 40)))
        .render(area, buf);
}
