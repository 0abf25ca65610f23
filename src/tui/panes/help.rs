//! The help overlay: every key, and how the tape marks the tokens of a speculative run.

use super::{block, palette};
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

/// The tape's marks, each in its own style: they read without colour too.
fn legend() -> Vec<Line<'static>> {
    let (open, close) = palette::REJECTED_MARKS;
    let key = Style::default().fg(Color::Cyan);
    vec![
        Line::styled(" tape, in a speculative run:", key),
        Line::from(vec![
            Span::raw("   "),
            Span::styled("accepted", palette::accepted()),
            Span::raw(" draft underlined · "),
            Span::styled(format!("{open}rejected{close}"), palette::rejected()),
            Span::raw(" struck out"),
        ]),
        Line::from(vec![
            Span::raw("   "),
            Span::styled("correction", palette::correction()),
            Span::raw(" bold · "),
            Span::styled("bonus", palette::bonus()),
            Span::raw(" bold italic"),
        ]),
    ]
}

pub fn render(area: Rect, buf: &mut Buffer) {
    let legend = legend();
    let r = super::centered(area, 56, (KEYS.len() + legend.len()) as u16 + 2);
    Clear.render(r, buf);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, d)| {
            Line::from(vec![
                Span::styled(format!(" {k:<12}"), Style::default().fg(Color::Cyan)),
                Span::raw(*d),
            ])
        })
        .collect();
    lines.extend(legend);
    Paragraph::new(lines)
        .block(block("keys · ? or Esc closes", true))
        .render(r, buf);
}
