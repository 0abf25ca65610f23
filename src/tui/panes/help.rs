//! The help overlay: every key.

use super::block;
use ratatui::prelude::*;
use ratatui::widgets::{Clear, Paragraph};

pub const KEYS: [(&str, &str); 25] = [
    ("Enter", "run the prompt"),
    ("Esc", "stop the run / leave the prompt"),
    ("Tab", "move focus: prompt ↔ tokens"),
    ("typing", "edits the prompt while it has focus"),
    ("Ctrl-U", "clear the prompt"),
    ("q / Ctrl-C", "quit (q outside the prompt)"),
    ("s", "stop the run or the job"),
    ("r", "run (outside the prompt)"),
    ("← → / h l", "select a token"),
    ("↑ ↓ / k j", "scroll the tokens"),
    ("d", "cycle the draft mode"),
    ("[ / ]", "K down / up (1–16)"),
    ("u", "cycle the quantization (requantises)"),
    ("V", "cycle the KV cache dtype"),
    ("Q", "measure quality: perplexity, KL, top-1"),
    ("w", "table of the variants tried"),
    ("+ / -", "max tokens up / down"),
    ("t / T", "temperature down / up"),
    ("v", "what-if KV dtype"),
    ("c", "what-if context length"),
    ("b", "what-if batch"),
    ("R", "start / stop recording"),
    ("p", "pick a preset or a demo"),
    ("n / N", "demo: next / previous step (Esc closes)"),
    ("?", "this help"),
];

pub fn render(area: Rect, buf: &mut Buffer) {
    let r = super::centered(area, 56, KEYS.len() as u16 + 2);
    Clear.render(r, buf);
    let lines: Vec<Line> = KEYS
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, d)| {
            Line::from(vec![
                Span::styled(format!(" {k:<12}"), Style::default().fg(Color::Cyan)),
                Span::raw(*d),
            ])
        })
        .collect();
    Paragraph::new(lines)
        .block(block("keys · ? or Esc closes", true))
        .render(r, buf);
}
