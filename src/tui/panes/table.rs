//! Draws a [`report::table::Table`](crate::report::table::Table) in a pane: the columns and rows
//! it shows there, each cell right-aligned in 14 columns, the row names dimmer than the numbers,
//! with the table's captions above and below.

use super::{label, value};
use crate::report::table::{Cell, Table};
use ratatui::text::{Line, Span};

const WIDTH: usize = 14;

/// A cell as the pane writes it: durations carry their unit, since the pane's headers do not.
fn text(c: &Cell) -> String {
    match c {
        Cell::Ms(d) => super::ms(*d),
        c => c.text(),
    }
}

fn row<'a>(cells: impl IntoIterator<Item = String>) -> Line<'a> {
    Line::from(
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let s = if i == 0 { label() } else { value() };
                Span::styled(format!("{c:>WIDTH$}"), s)
            })
            .collect::<Vec<_>>(),
    )
}

/// The lines of one table: its caption above, header, rows, caption below. A table the pane does
/// not show gives none.
pub fn lines<'a>(t: &Table) -> Vec<Line<'a>> {
    let Some((heads, rows)) = t.pane() else {
        return Vec::new();
    };
    let caption = |s: &str| Line::styled(s.to_string(), label());
    let mut v: Vec<Line> = t.caption_above().map(caption).into_iter().collect();
    v.push(row(heads.into_iter().map(String::from)));
    v.extend(rows.into_iter().map(|r| row(r.into_iter().map(text))));
    v.extend(t.caption_below().map(caption));
    v
}
