//! Tables of results: columns with a header and an alignment, rows of typed cells. One table
//! value is written as Markdown here ([`Table::markdown`]) and drawn by the demo pane
//! (`tui::panes::table`), so a number is formatted in one place for both.
//!
//! ```text
//! | file | tok/s |
//! |---|---:|
//! | a.ron | 12.5 |
//! ```
//!
//! The pane is narrower than a report: a column or a row can be [`Show::Markdown`] only (or
//! [`Show::Pane`] only, where the pane wants a shorter spelling), and a column has a short header
//! for the pane.

use crate::stats::{fmt_ms, human_bytes};
use std::time::Duration;

/// How a column's cells line up when the Markdown is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// `---`: the Markdown default (left).
    Left,
    /// `---:`: for numbers.
    Right,
}

impl Align {
    fn separator(self) -> &'static str {
        match self {
            Align::Left => "---",
            Align::Right => "---:",
        }
    }
}

/// Where a column or a row is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Show {
    #[default]
    Both,
    /// In the Markdown report only: the pane has no room for it.
    Markdown,
    /// In the pane only: its shorter spelling of what the report says at length.
    Pane,
}

impl Show {
    pub fn in_markdown(self) -> bool {
        self != Show::Pane
    }

    pub fn in_pane(self) -> bool {
        self != Show::Markdown
    }

    /// Where a row shown when `markdown` and when `pane` is; `None` when in neither.
    pub fn of(markdown: bool, pane: bool) -> Option<Show> {
        match (markdown, pane) {
            (true, true) => Some(Show::Both),
            (true, false) => Some(Show::Markdown),
            (false, true) => Some(Show::Pane),
            (false, false) => None,
        }
    }
}

/// One column: its header, the pane's shorter header, alignment and where it is shown.
#[derive(Debug, Clone)]
pub struct Column {
    pub head: String,
    pub short: String,
    pub align: Align,
    pub show: Show,
}

impl Column {
    pub fn new(head: impl Into<String>, align: Align) -> Self {
        let head = head.into();
        Column {
            short: head.clone(),
            head,
            align,
            show: Show::Both,
        }
    }

    pub fn left(head: impl Into<String>) -> Self {
        Column::new(head, Align::Left)
    }

    pub fn right(head: impl Into<String>) -> Self {
        Column::new(head, Align::Right)
    }

    /// The pane's header for this column.
    pub fn short(mut self, short: impl Into<String>) -> Self {
        self.short = short.into();
        self
    }

    /// In the Markdown report only.
    pub fn markdown_only(mut self) -> Self {
        self.show = Show::Markdown;
        self
    }

    /// In the pane only.
    pub fn pane_only(mut self) -> Self {
        self.show = Show::Pane;
        self
    }
}

impl<S: Into<String>> From<(S, Align)> for Column {
    fn from((head, align): (S, Align)) -> Self {
        Column::new(head, align)
    }
}

/// A cell: a value that knows how it is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    /// A count, written whole.
    Count(u64),
    /// A number with this many digits after the point.
    Num(f64, usize),
    /// A fraction written as a percentage with this many digits: `0.5` → `50%`.
    Percent(f64, usize),
    /// A ratio with this many digits and a `×`.
    Times(f64, usize),
    /// A duration: the Markdown writes milliseconds with two digits under a header that says
    /// "ms"; the pane writes the unit in the cell.
    Ms(Duration),
    /// Bytes in a human unit: `1.5 MiB`.
    Bytes(u64),
}

impl Cell {
    /// The cell as the Markdown report writes it.
    pub fn text(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Num(v, d) => format!("{v:.d$}"),
            Cell::Percent(v, d) => format!("{:.d$}%", v * 100.0),
            Cell::Times(v, d) => format!("{v:.d$}×"),
            Cell::Ms(t) => fmt_ms(*t, 2),
            Cell::Bytes(b) => human_bytes(*b),
        }
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Cell::Text(s)
    }
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Cell::Text(s.into())
    }
}

impl From<&String> for Cell {
    fn from(s: &String) -> Self {
        Cell::Text(s.clone())
    }
}

/// `yes` or `no`.
pub fn yes_no(b: bool) -> Cell {
    Cell::from(if b { "yes" } else { "no" })
}

/// A row of cells, one per column, and where it is shown.
#[derive(Debug, Clone)]
pub struct Row {
    pub cells: Vec<Cell>,
    pub show: Show,
}

/// A table built a row at a time, with the pane's one-line captions above and below it (the
/// report says the same in prose around its tables).
#[derive(Debug, Clone, Default)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Row>,
    above: Option<String>,
    below: Option<String>,
}

/// One line: `| a | b |` and a newline.
fn line(cells: impl IntoIterator<Item = String>) -> String {
    let mut s = String::from("|");
    for c in cells {
        s.push(' ');
        s.push_str(&c);
        s.push_str(" |");
    }
    s.push('\n');
    s
}

impl Table {
    /// A table with these columns (a [`Column`], or a pair of header and alignment), in order.
    pub fn new<C: Into<Column>>(columns: impl IntoIterator<Item = C>) -> Self {
        Table {
            columns: columns.into_iter().map(Into::into).collect(),
            ..Table::default()
        }
    }

    /// Adds a row shown everywhere: one cell per column.
    pub fn row<C: Into<Cell>>(&mut self, cells: impl IntoIterator<Item = C>) -> &mut Self {
        self.row_in(Show::Both, cells)
    }

    /// Adds a row shown where `show` says.
    pub fn row_in<C: Into<Cell>>(
        &mut self,
        show: Show,
        cells: impl IntoIterator<Item = C>,
    ) -> &mut Self {
        let cells: Vec<Cell> = cells.into_iter().map(Into::into).collect();
        debug_assert_eq!(
            cells.len(),
            self.columns.len(),
            "a row has one cell per column"
        );
        self.rows.push(Row { cells, show });
        self
    }

    /// Every column in the Markdown report only: a table the pane does not draw.
    pub fn report_only(mut self) -> Self {
        for c in &mut self.columns {
            c.show = Show::Markdown;
        }
        self
    }

    /// The pane's caption over the table.
    pub fn above(mut self, s: impl Into<String>) -> Self {
        self.above = Some(s.into());
        self
    }

    /// The pane's caption under the table.
    pub fn below(mut self, s: impl Into<String>) -> Self {
        self.below = Some(s.into());
        self
    }

    pub fn caption_above(&self) -> Option<&str> {
        self.above.as_deref()
    }

    pub fn caption_below(&self) -> Option<&str> {
        self.below.as_deref()
    }

    /// The columns and rows the pane shows: (short headers, rows of cells), or `None` when the
    /// table is the report's alone.
    pub fn pane(&self) -> Option<(Vec<&str>, Vec<Vec<&Cell>>)> {
        let keep: Vec<usize> = (0..self.columns.len())
            .filter(|&i| self.columns[i].show.in_pane())
            .collect();
        if keep.is_empty() {
            return None;
        }
        let heads = keep.iter().map(|&i| &*self.columns[i].short).collect();
        let rows = self
            .rows
            .iter()
            .filter(|r| r.show.in_pane())
            .map(|r| keep.iter().map(|&i| &r.cells[i]).collect())
            .collect();
        Some((heads, rows))
    }

    /// The Markdown line of one row: the report's columns.
    fn markdown_line(&self, r: &Row) -> String {
        line(
            self.columns
                .iter()
                .zip(&r.cells)
                .filter(|(c, _)| c.show.in_markdown())
                .map(|(_, cell)| cell.text()),
        )
    }

    /// The header and separator lines. A blank header (over a column naming the rows) is `| |`.
    pub fn head(&self) -> String {
        let shown = || self.columns.iter().filter(|c| c.show.in_markdown());
        let mut s = String::from("|");
        for c in shown() {
            if !c.head.is_empty() {
                s.push(' ');
                s.push_str(&c.head);
            }
            s.push_str(" |");
        }
        s.push('\n');
        s.push('|');
        for c in shown() {
            s.push_str(c.align.separator());
            s.push('|');
        }
        s.push('\n');
        s
    }

    /// The line of the last row added (empty before any): for a table printed as it is measured,
    /// after [`Table::head`].
    pub fn last_row(&self) -> String {
        self.rows
            .last()
            .map(|r| self.markdown_line(r))
            .unwrap_or_default()
    }

    /// The whole table: header, separator and every row the report shows, each line ending in a
    /// newline.
    pub fn markdown(&self) -> String {
        let mut s = self.head();
        for r in self.rows.iter().filter(|r| r.show.in_markdown()) {
            s.push_str(&self.markdown_line(r));
        }
        s
    }
}

/// Milliseconds rounded to the microsecond, as a number for tables, CSV and JSON.
pub fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_separator_and_rows_with_alignments() {
        let mut t = Table::new([("file", Align::Left), ("tok/s", Align::Right)]);
        t.row(["a.ron", "12.5"])
            .row(["b.ron".to_string(), format!("{:.1}", 3.0)]);
        assert_eq!(
            t.markdown(),
            "| file | tok/s |\n|---|---:|\n| a.ron | 12.5 |\n| b.ron | 3.0 |\n"
        );
    }

    #[test]
    fn a_blank_header_is_one_space_and_blank_cells_keep_theirs() {
        let mut t = Table::new([("", Align::Left), ("bytes", Align::Right)]);
        t.row(["per token", ""]);
        assert_eq!(t.markdown(), "| | bytes |\n|---|---:|\n| per token |  |\n");
    }

    #[test]
    fn head_and_last_row_print_a_table_a_row_at_a_time() {
        let mut t = Table::new([("test", Align::Left), ("tok/s", Align::Right)]);
        assert_eq!(t.last_row(), "");
        let mut printed = t.head();
        for (name, v) in [("pp128", "10.0"), ("tg128", "2.5")] {
            t.row([name, v]);
            printed += &t.last_row();
        }
        assert_eq!(printed, t.markdown());
        assert_eq!(t.last_row(), "| tg128 | 2.5 |\n");
    }

    #[test]
    fn no_rows_is_the_header_alone() {
        let t = Table::new([("a", Align::Left)]);
        assert_eq!(t.markdown(), "| a |\n|---|\n");
    }
}
