//! The whole screen: status bar, prompt, token tape, the measurement panes and the message line
//! (a serving benchmark's or the scheduler's view in place of prompt and panes); a short note instead when the
//! terminal is too small.

use super::panes;
use crate::state::{AppState, Focus, Overlay};
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Wrap};

pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 20;

/// The screen's rows: status bar, banner, prompt, body, message line.
fn rows(state: &AppState, area: Rect) -> [Rect; 5] {
    let banner_h = panes::banner::height(state, area);
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_h),
        Constraint::Length(4),
        Constraint::Min(10),
        Constraint::Length(1),
    ])
    .areas(area)
}

/// Whether the screen is big enough for the panes.
fn fits(area: Rect) -> bool {
    area.width >= MIN_WIDTH && area.height >= MIN_HEIGHT
}

/// Where each pane is on a screen of `area`, as it is drawn now: one pane when the focused one
/// is zoomed, none when a serving benchmark's view takes the body or the screen is too small.
/// A demo stands where the tokens, memory and speculation panes stand (as [`Focus::Tape`]).
pub fn pane_areas(state: &AppState, area: Rect) -> Vec<(Focus, Rect)> {
    if !fits(area) || whole_body(state).is_some() {
        return Vec::new();
    }
    let [_, _, prompt, body, _] = rows(state, area);
    if zoomed(state) {
        return vec![(state.ui.view.focus, prompt.union(body))];
    }
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
    let [tape, lower_left] =
        Layout::vertical([Constraint::Min(5), Constraint::Percentage(35)]).areas(left);
    let [memory, spec] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
            .areas(lower_left);
    let [timing, kv] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(right);
    let mut out = vec![(Focus::Prompt, prompt)];
    if state.ui.demo.is_some() {
        out.push((Focus::Tape, left));
    } else {
        out.extend([
            (Focus::Tape, tape),
            (Focus::Memory, memory),
            (Focus::Spec, spec),
        ]);
    }
    out.extend([(Focus::Timing, timing), (Focus::Kv, kv)]);
    out
}

/// The view that takes the whole body instead of the prompt and the panes: a serving
/// benchmark's, else the batching scheduler's (a demo on screen keeps its pane).
fn whole_body(state: &AppState) -> Option<BodyView> {
    if state.ui.demo.is_some() {
        None
    } else if state.store.serve.active() {
        Some(panes::serve::render as BodyView)
    } else if state.ui.race_shown(&state.store) {
        Some(panes::race::render as BodyView)
    } else if state.ui.sched_shown(&state.store) {
        Some(panes::sched::render as BodyView)
    } else {
        None
    }
}

type BodyView = fn(&AppState, Rect, &mut Buffer);

/// Whether the focused pane takes the whole body (the prompt is never zoomed).
fn zoomed(state: &AppState) -> bool {
    state.ui.view.zoom && state.ui.view.focus != Focus::Prompt
}

/// The pane under the cell at column `x`, row `y`, if any.
pub fn pane_at(state: &AppState, area: Rect, x: u16, y: u16) -> Option<Focus> {
    let at = Position { x, y };
    pane_areas(state, area)
        .into_iter()
        .find(|(_, r)| r.contains(at))
        .map(|(f, _)| f)
}

/// The token of the tape drawn at (`x`, `y`), when the tape pane is there (not a demo).
pub fn token_at(state: &AppState, area: Rect, x: u16, y: u16) -> Option<usize> {
    if state.ui.demo.is_some() {
        return None;
    }
    let at = Position { x, y };
    let (_, tape) = pane_areas(state, area)
        .into_iter()
        .find(|&(f, r)| f == Focus::Tape && r.contains(at))?;
    panes::tape::token_at(state, tape, x, y)
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    if !fits(area) {
        let msg = format!(
            "labtui needs at least {MIN_WIDTH}×{MIN_HEIGHT}; this terminal is {}×{}. Enlarge it \
             ({} quits).",
            area.width,
            area.height,
            super::keys::key(&crate::state::Action::Quit)
        );
        Paragraph::new(msg)
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    let [top, banner, prompt, body, bottom] = rows(state, area);
    panes::status::render_top(state, top, buf);
    panes::banner::render(state, banner, buf);
    if let Some(view) = whole_body(state) {
        // A serving benchmark or a scheduler: no prompt, no local run; its view takes the body.
        view(state, prompt.union(body), buf);
    } else {
        for (pane, r) in pane_areas(state, area) {
            render_pane(state, pane, r, buf);
        }
    }
    panes::status::render_bottom(state, bottom, buf);
    match &state.ui.overlay {
        Some(Overlay::Variants) => panes::variants::render(state, area, buf),
        Some(Overlay::Help) => panes::help::render(area, buf),
        Some(Overlay::Explain) => panes::explain::render(state, area, buf),
        Some(Overlay::Presets(p)) => panes::picker::render(p, area, buf),
        Some(Overlay::Models(m)) => panes::picker::render_models(m, area, buf),
        None => {}
    }
    if state.ui.no_color {
        panes::palette::strip(area, buf);
    }
}

/// One pane in `area` (a demo in place of the tokens, memory and speculation panes).
pub fn render_pane(state: &AppState, pane: Focus, area: Rect, buf: &mut Buffer) {
    let demo = state.ui.demo.is_some();
    match pane {
        Focus::Prompt => panes::prompt::render(state, area, buf),
        Focus::Tape | Focus::Memory | Focus::Spec if demo => panes::demo::render(state, area, buf),
        Focus::Tape => panes::tape::render(state, area, buf),
        Focus::Memory => panes::memory::render(state, area, buf),
        Focus::Spec => panes::spec::render(state, area, buf),
        Focus::Timing => panes::timing::render(state, area, buf),
        Focus::Kv => panes::kv::render(state, area, buf),
    }
}
