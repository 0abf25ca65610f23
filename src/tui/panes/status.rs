//! The status bar: model, architecture, quantization, device, threads, draft mode, K, recording,
//! and the message line with the keys that matter now.

use crate::state::{Action, AppState, Focus};
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

/// The keys that matter in the current state, named from the binding table.
pub fn hints(state: &AppState) -> String {
    use crate::tui::keys::{key, key_in, When::*};
    let help = format!("{} help", key(&Action::ToggleHelp));
    let quit = format!("{} quit", key(&Action::Quit));
    let ctrl_quit = format!("{} quit", key_in(Anywhere, &Action::Quit));
    let run = format!("{} run", key_in(Anywhere, &Action::Run));
    let next = key(&Action::FocusNext);
    if state.store.serve.active() && state.ui.demo.is_none() {
        return format!("{quit} · {help}");
    }
    match (state.ui.focus, state.store.running()) {
        (_, true) => format!("{} stop · {ctrl_quit} · {help}", key(&Action::Escape)),
        (Focus::Prompt, false) => format!("{run} · {next} leave prompt · {ctrl_quit} · {help}"),
        (_, false) if state.ui.zoom => format!(
            "{} / {} unzoom · {next} next pane · {} screenshot · {quit} · {help}",
            key(&Action::ToggleZoom),
            key_in(Zoomed, &Action::ToggleZoom),
            key(&Action::Screenshot),
        ),
        (_, false) => format!(
            "{run} · {next} / {} focus · {} zoom · {} shot · {}/{} token · {} · {quit} · {help}",
            key(&Action::Focus(Focus::Tape)),
            key(&Action::ToggleZoom),
            key(&Action::Screenshot),
            key_in(Anywhere, &Action::SelectPrev),
            key_in(Anywhere, &Action::SelectNext),
            SETTINGS.map(|a| key(&a)).join(" "),
        ),
    }
}

/// The settings' keys, named together in the hints.
const SETTINGS: [Action; 11] = [
    Action::CycleDraftMode,
    Action::KDown,
    Action::KUp,
    Action::CycleQuant,
    Action::MaxTokensUp,
    Action::MaxTokensDown,
    Action::TempDown,
    Action::TempUp,
    Action::CycleKvDtype,
    Action::CycleContext,
    Action::CycleBatch,
];

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
