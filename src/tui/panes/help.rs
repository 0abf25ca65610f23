//! The help overlay: every key, and how the tape marks the tokens of a speculative run.

use super::{block, palette};
use ratatui::prelude::*;
use ratatui::widgets::{Clear, Paragraph};

pub const KEYS: [(&str, &str); 31] = [
    ("Enter", "run the prompt"),
    ("Esc", "stop the run / leave prompt / unzoom"),
    ("Tab / S-Tab", "focus the next / previous pane"),
    ("1–6", "focus a pane (1 prompt … 6 KV)"),
    ("z", "zoom the focused pane / unzoom"),
    ("mouse", "click focuses · wheel scrolls the tokens"),
    ("S", "screenshot: SVG and text"),
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
    ("b", "batch size: what-if and batch run"),
    ("B", "run the prompt as a batch (Esc closes)"),
    ("R", "start / stop recording"),
    ("p", "pick a preset or a demo"),
    ("m / M", "pick the model / the draft model"),
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

/// One column's width: a key and what it does.
const COLUMN: u16 = 60;

fn key_line(k: &str, d: &'static str) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!(" {k:<12}"), Style::default().fg(Color::Cyan)),
        Span::raw(d),
    ])
}

/// The keys in one column, or in two side by side when one does not fit the screen's height.
pub fn render(area: Rect, buf: &mut Buffer) {
    let legend = legend();
    let one = (KEYS.len() + legend.len()) as u16 + 2;
    let columns = if one > area.height { 2 } else { 1 };
    let per_column = KEYS.len().div_ceil(columns);
    let height = (per_column + legend.len()) as u16 + 2;
    let r = super::centered(area, COLUMN * columns as u16, height);
    Clear.render(r, buf);
    let b = block("keys · ? or Esc closes", true);
    let inner = b.inner(r);
    b.render(r, buf);
    let [keys, below] =
        Layout::vertical([Constraint::Length(per_column as u16), Constraint::Min(0)]).areas(inner);
    let cols = Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(keys);
    for (chunk, col) in KEYS.chunks(per_column).zip(cols.iter()) {
        let lines: Vec<Line> = chunk.iter().map(|(k, d)| key_line(k, d)).collect();
        Paragraph::new(lines).render(*col, buf);
    }
    Paragraph::new(legend).render(below, buf);
}
