//! Speculative decoding: mode, K and (once the engine speculates) acceptance and speedup.

use super::{block, label, value};
use crate::state::{AppState, DRAFT_MODES};
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let b = block("speculation · d mode · [ ] K", false);
    let inner = b.inner(area);
    b.render(area, buf);
    let chosen = DRAFT_MODES[state.draft_mode];
    Paragraph::new(vec![
        Line::from(vec![Span::styled("mode ", label()), Span::styled("off", value()), Span::styled(format!("  (chosen: {chosen}, K = {})", state.k), label())]),
        Line::from(vec![Span::styled("acceptance ", label()), Span::raw("—"), Span::styled("  accepted length ", label()), Span::raw("—"), Span::styled("  speedup ", label()), Span::raw("1.00×")]),
        Line::styled("The engine decodes one token per step until speculative decoding lands; your mode and K are kept for it.", label()),
    ])
    .wrap(Wrap { trim: true })
    .render(inner, buf);
}
