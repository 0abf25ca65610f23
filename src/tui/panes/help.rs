//! The help overlay: every key, and how the tape marks the tokens of a speculative run.

use super::{block, palette};
use crate::state::Action;
use crate::tui::keys::{self, When};
use ratatui::prelude::*;
use ratatui::widgets::{Clear, Paragraph};

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
    let rows: Vec<_> = keys::overlay().collect();
    let legend = legend();
    let one = (rows.len() + legend.len()) as u16 + 2;
    let columns = if one > area.height { 2 } else { 1 };
    let per_column = rows.len().div_ceil(columns);
    let height = (per_column + legend.len()) as u16 + 2;
    let r = super::centered(area, COLUMN * columns as u16, height);
    Clear.render(r, buf);
    let title = format!(
        "keys · {} or {} closes",
        keys::key(&Action::ToggleHelp),
        keys::key_in(When::Help, &Action::ToggleHelp)
    );
    let b = block(&title, true);
    let inner = b.inner(r);
    b.render(r, buf);
    let [keys, below] =
        Layout::vertical([Constraint::Length(per_column as u16), Constraint::Min(0)]).areas(inner);
    let cols = Layout::horizontal(vec![Constraint::Ratio(1, columns as u32); columns]).split(keys);
    for (chunk, col) in rows.chunks(per_column).zip(cols.iter()) {
        let lines: Vec<Line> = chunk.iter().map(|r| key_line(r.keys, r.help)).collect();
        Paragraph::new(lines).render(*col, buf);
    }
    Paragraph::new(legend).render(below, buf);
}
