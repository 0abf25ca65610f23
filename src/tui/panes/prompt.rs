//! The editable prompt and the generation settings beside it.

use super::block;
use crate::state::{AppState, Focus};
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Wrap};

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let focused = state.ui.view.focus == Focus::Prompt;
    let p = &state.ui.params;
    let temp = if p.temperature == 0.0 {
        "greedy".to_string()
    } else {
        format!("temp {:.1}", p.temperature)
    };
    let title = format!("prompt · max {} tokens · {temp}", p.max_tokens);
    let mut spans = vec![Span::raw(state.ui.prompt.clone())];
    if focused {
        spans.push(Span::styled("▏", Style::default().fg(Color::Cyan)));
    }
    Paragraph::new(Line::from(spans))
        .wrap(Wrap { trim: false })
        .block(block(&title, focused))
        .render(area, buf);
}
