//! The whole screen: status bar, prompt, token tape, the measurement panes and the message line
//! (a serving benchmark's view in place of prompt and panes); a short note instead when the
//! terminal is too small.

use super::panes;
use crate::state::AppState;
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Wrap};

pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 20;

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        let msg = format!("labtui needs at least {MIN_WIDTH}×{MIN_HEIGHT}; this terminal is {}×{}. Enlarge it (q quits).", area.width, area.height);
        Paragraph::new(msg)
            .wrap(Wrap { trim: true })
            .render(area, buf);
        return;
    }
    let banner_h = panes::banner::height(state, area);
    let [top, banner, prompt, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(banner_h),
        Constraint::Length(4),
        Constraint::Min(10),
        Constraint::Length(1),
    ])
    .areas(area);
    panes::status::render_top(state, top, buf);
    panes::banner::render(state, banner, buf);
    if state.store.serve.active() && state.ui.demo.is_none() {
        // A serving benchmark: no prompt, no local run; its view takes the whole body.
        panes::serve::render(state, prompt.union(body), buf);
    } else {
        panes::prompt::render(state, prompt, buf);
        body_panes(state, body, buf);
    }
    panes::status::render_bottom(state, bottom, buf);
    if state.ui.show_variants {
        panes::variants::render(state, area, buf);
    }
    if state.ui.help {
        panes::help::render(area, buf);
    }
    if let Some(p) = &state.ui.picker {
        panes::picker::render(p, area, buf);
    }
    if state.ui.no_color {
        panes::palette::strip(area, buf);
    }
}

/// The measurement panes of a local (or remote) run: tape or demo, memory, speculation, timing, KV.
fn body_panes(state: &AppState, body: Rect, buf: &mut Buffer) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
    let [tape, lower_left] =
        Layout::vertical([Constraint::Min(5), Constraint::Percentage(35)]).areas(left);
    let [memory, spec] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
            .areas(lower_left);
    let [timing, kv] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(right);
    if state.ui.demo.is_some() {
        panes::demo::render(state, left, buf);
    } else {
        panes::tape::render(state, tape, buf);
        panes::memory::render(state, memory, buf);
        panes::spec::render(state, spec, buf);
    }
    panes::timing::render(state, timing, buf);
    panes::kv::render(state, kv, buf);
}
