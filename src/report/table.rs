//! Markdown tables: a header list with each column's alignment, rows of cells, and one rendering.
//!
//! ```text
//! | file | tok/s |
//! |---|---:|
//! | a.ron | 12.5 |
//! ```

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

/// A Markdown table built a row at a time.
#[derive(Debug, Clone, Default)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

/// One line: `| a | b |` and a newline.
fn line<'a>(cells: impl IntoIterator<Item = &'a str>) -> String {
    let mut s = String::from("|");
    for c in cells {
        s.push(' ');
        s.push_str(c);
        s.push_str(" |");
    }
    s.push('\n');
    s
}

impl Table {
    /// A table with these columns (header, alignment), in order.
    pub fn new<S: Into<String>>(columns: impl IntoIterator<Item = (S, Align)>) -> Self {
        Table {
            columns: columns.into_iter().map(|(h, a)| (h.into(), a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row: one cell per column.
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Self {
        let cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        debug_assert_eq!(
            cells.len(),
            self.columns.len(),
            "a row has one cell per column"
        );
        self.rows.push(cells);
        self
    }

    /// The header and separator lines. A blank header (over a column naming the rows) is `| |`.
    pub fn head(&self) -> String {
        let mut s = String::from("|");
        for (h, _) in &self.columns {
            if !h.is_empty() {
                s.push(' ');
                s.push_str(h);
            }
            s.push_str(" |");
        }
        s.push('\n');
        s.push('|');
        for (_, a) in &self.columns {
            s.push_str(a.separator());
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
            .map(|r| line(r.iter().map(String::as_str)))
            .unwrap_or_default()
    }

    /// The whole table: header, separator and every row, each line ending in a newline.
    pub fn markdown(&self) -> String {
        let mut s = self.head();
        for r in &self.rows {
            s.push_str(&line(r.iter().map(String::as_str)));
        }
        s
    }
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
