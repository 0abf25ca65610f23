//! The preset picker overlay: the presets found, their descriptions, the one under the cursor.

use super::block;
use crate::state::Picker;
use ratatui::prelude::*;
use ratatui::widgets::{Clear, Paragraph, Wrap};

pub fn render(picker: &Picker, area: Rect, buf: &mut Buffer) {
    let r = super::centered(area, 90, picker.presets.len() as u16 * 2 + 4);
    Clear.render(r, buf);
    let mut lines = Vec::new();
    for (i, p) in picker.presets.iter().enumerate() {
        let style = if i == picker.selected {
            Style::default().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::default().fg(Color::Cyan)
        };
        lines.push(Line::from(Span::styled(format!(" {} ", p.name), style)));
        lines.push(Line::styled(
            format!("   {}", p.description),
            Style::default().fg(Color::Gray),
        ));
    }
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .block(block("presets · ↑/↓ choose · Enter load · Esc close", true))
        .render(r, buf);
}
