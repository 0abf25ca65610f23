//! One file per pane: `render(state, area, buf)` draws from [`AppState`] and never changes it.

pub mod banner;
pub mod chart;
pub mod demo;
pub mod explain;
pub mod heatmap;
pub mod help;
pub mod kv;
pub mod memory;
pub mod palette;
pub mod picker;
pub mod prompt;
pub mod race;
pub mod sched;
pub mod scraped;
pub mod serve;
pub mod spec;
pub mod status;
pub mod table;
pub mod tape;
pub mod timing;
pub mod variants;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders};
use std::time::Duration;

/// A pane's frame; the focused one is highlighted, and drawn thick so it shows without colour.
pub fn block(title: &str, focused: bool) -> Block<'_> {
    block_with(Line::raw(format!(" {title} ")), focused)
}

/// A pane's frame with a styled title (spaced as [`block`] spaces its own).
pub fn block_with(title: Line<'_>, focused: bool) -> Block<'_> {
    let style = if focused {
        Style::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default().fg(Color::DarkGray)
    };
    Block::default()
        .borders(Borders::ALL)
        .border_type(if focused {
            BorderType::Thick
        } else {
            BorderType::Rounded
        })
        .border_style(style)
        .title(title)
}

/// A `w` × `h` rectangle centred in `area` (clipped to it), for overlays.
pub fn centered(area: ratatui::layout::Rect, w: u16, h: u16) -> ratatui::layout::Rect {
    let (w, h) = (w.min(area.width), h.min(area.height));
    ratatui::layout::Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A duration as a pane writes it: whole milliseconds from 100 ms, one digit below (as a
/// figure in milliseconds is shown).
pub fn ms(d: Duration) -> String {
    crate::state::figure::ms_text(d)
}

pub fn label() -> Style {
    Style::default().fg(Color::Gray)
}

pub fn value() -> Style {
    Style::default()
        .fg(Color::White)
        .add_modifier(Modifier::BOLD)
}
