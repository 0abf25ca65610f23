//! Screenshots: a drawn screen (ratatui's [`Buffer`]) as SVG, colours and styles kept, and as
//! plain text. The SVG is a grid of monospace cells: one background `<rect>` per run of cells of
//! the same background on a row, one `<text>` per run of the same style, each stretched to its
//! cells' width so that the columns line up whatever the viewer's font.

use anyhow::{Context, Result};
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::text::Span;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A cell's width and height in pixels, and the font size that fills it.
const CELL_W: u32 = 9;
const CELL_H: u32 = 18;
const FONT_SIZE: u32 = 15;
/// The text's baseline below a row's top.
const BASELINE: u32 = 14;
/// The terminal's own colours, for `Color::Reset`.
const DEFAULT_FG: &str = "#d0d0d0";
const DEFAULT_BG: &str = "#101014";
const FONTS: &str = "ui-monospace, 'DejaVu Sans Mono', 'Cascadia Mono', Menlo, Consolas, monospace";

/// The 16 ANSI colours, as xterm draws them.
const ANSI: [&str; 16] = [
    "#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
    "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff",
];

/// A colour as `#rrggbb`; `None` for the terminal's default.
fn hex(c: Color) -> Option<String> {
    let ansi = |i: usize| Some(ANSI[i].to_string());
    match c {
        Color::Reset => None,
        Color::Black => ansi(0),
        Color::Red => ansi(1),
        Color::Green => ansi(2),
        Color::Yellow => ansi(3),
        Color::Blue => ansi(4),
        Color::Magenta => ansi(5),
        Color::Cyan => ansi(6),
        Color::Gray => ansi(7),
        Color::DarkGray => ansi(8),
        Color::LightRed => ansi(9),
        Color::LightGreen => ansi(10),
        Color::LightYellow => ansi(11),
        Color::LightBlue => ansi(12),
        Color::LightMagenta => ansi(13),
        Color::LightCyan => ansi(14),
        Color::White => ansi(15),
        Color::Rgb(r, g, b) => Some(format!("#{r:02x}{g:02x}{b:02x}")),
        Color::Indexed(i) => Some(indexed(i)),
    }
}

/// xterm's 256-colour palette: the 16 ANSI colours, a 6×6×6 cube, then 24 greys.
fn indexed(i: u8) -> String {
    match i {
        0..=15 => ANSI[i as usize].to_string(),
        16..=231 => {
            let n = i - 16;
            let level = |v: u8| if v == 0 { 0 } else { 55 + 40 * v };
            let (r, g, b) = (level(n / 36), level(n / 6 % 6), level(n % 6));
            format!("#{r:02x}{g:02x}{b:02x}")
        }
        _ => {
            let v = 8 + 10 * (i - 232);
            format!("#{v:02x}{v:02x}{v:02x}")
        }
    }
}

fn escape(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
}

/// How a cell is drawn: its colours (after `REVERSED`) and the modifiers the SVG keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Look {
    fg: Option<String>,
    bg: Option<String>,
    bold: bool,
    italic: bool,
    underline: bool,
    crossed: bool,
    dim: bool,
    hidden: bool,
}

impl Look {
    fn of(cell: &ratatui::buffer::Cell) -> Self {
        let m = cell.modifier;
        let (mut fg, mut bg) = (hex(cell.fg), hex(cell.bg));
        if m.contains(Modifier::REVERSED) {
            (fg, bg) = (
                Some(bg.unwrap_or_else(|| DEFAULT_BG.into())),
                Some(fg.unwrap_or_else(|| DEFAULT_FG.into())),
            );
        }
        Look {
            fg,
            bg,
            bold: m.contains(Modifier::BOLD),
            italic: m.contains(Modifier::ITALIC),
            underline: m.contains(Modifier::UNDERLINED),
            crossed: m.contains(Modifier::CROSSED_OUT),
            dim: m.contains(Modifier::DIM),
            hidden: m.contains(Modifier::HIDDEN),
        }
    }

    /// The attributes of a `<text>` in this look.
    fn attributes(&self, out: &mut String) {
        let _ = write!(
            out,
            " fill=\"{}\"",
            self.fg.as_deref().unwrap_or(DEFAULT_FG)
        );
        if self.bold {
            out.push_str(" font-weight=\"bold\"");
        }
        if self.italic {
            out.push_str(" font-style=\"italic\"");
        }
        match (self.underline, self.crossed) {
            (true, true) => out.push_str(" text-decoration=\"underline line-through\""),
            (true, false) => out.push_str(" text-decoration=\"underline\""),
            (false, true) => out.push_str(" text-decoration=\"line-through\""),
            (false, false) => {}
        }
        if self.dim {
            out.push_str(" opacity=\"0.6\"");
        }
    }
}

/// A row's cells as (column, width in cells, symbol, look), the cells a wide symbol covers
/// folded into it.
fn cells(buf: &Buffer, y: u16) -> Vec<(u16, u16, &str, Look)> {
    let area = buf.area;
    let mut out = Vec::with_capacity(area.width as usize);
    let mut x = area.x;
    while x < area.right() {
        let cell = &buf[(x, y)];
        let sym = cell.symbol();
        let w = (Span::raw(sym).width() as u16).clamp(1, area.right() - x);
        out.push((x - area.x, w, sym, Look::of(cell)));
        x += w;
    }
    out
}

/// The screen as an SVG document.
pub fn svg(buf: &Buffer) -> String {
    let (w, h) = (
        buf.area.width as u32 * CELL_W,
        buf.area.height as u32 * CELL_H,
    );
    let mut out = String::with_capacity(256 + buf.content().len() * 24);
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\">"
    );
    let _ = writeln!(
        out,
        "<rect width=\"{w}\" height=\"{h}\" fill=\"{DEFAULT_BG}\"/>"
    );
    // Backgrounds first, then the text over them.
    for y in 0..buf.area.height {
        let row = cells(buf, buf.area.y + y);
        let mut i = 0;
        while i < row.len() {
            let bg = &row[i].3.bg;
            let mut j = i;
            let mut span = 0;
            while j < row.len() && row[j].3.bg == *bg {
                span += row[j].1 as u32;
                j += 1;
            }
            if let Some(bg) = bg {
                let _ = writeln!(
                    out,
                    "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{CELL_H}\" fill=\"{bg}\"/>",
                    row[i].0 as u32 * CELL_W,
                    y as u32 * CELL_H,
                    span * CELL_W
                );
            }
            i = j;
        }
    }
    let _ = writeln!(
        out,
        "<g font-family=\"{FONTS}\" font-size=\"{FONT_SIZE}\" xml:space=\"preserve\">"
    );
    for y in 0..buf.area.height {
        let row = cells(buf, buf.area.y + y);
        let mut i = 0;
        while i < row.len() {
            let look = &row[i].3;
            let mut j = i;
            let mut span = 0;
            let mut text = String::new();
            while j < row.len() && row[j].3 == *look {
                span += row[j].1 as u32;
                text.push_str(row[j].2);
                j += 1;
            }
            let decorated = look.underline || look.crossed;
            if !look.hidden && (decorated || !text.trim().is_empty()) {
                let _ = write!(
                    out,
                    "<text x=\"{}\" y=\"{}\" textLength=\"{}\" lengthAdjust=\"spacingAndGlyphs\"",
                    row[i].0 as u32 * CELL_W,
                    y as u32 * CELL_H + BASELINE,
                    span * CELL_W
                );
                look.attributes(&mut out);
                out.push('>');
                escape(&text, &mut out);
                out.push_str("</text>\n");
            }
            i = j;
        }
    }
    out.push_str("</g>\n</svg>\n");
    out
}

/// The screen as plain text: one line a row, trailing spaces cut.
pub fn text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        let line: String = cells(buf, buf.area.y + y)
            .into_iter()
            .map(|(_, _, sym, _)| sym)
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Write the screen as `labtui-SECONDS.svg` and `.txt` in `dir` (named as recordings are, a
/// number added when those exist); returns both paths.
pub fn write(buf: &Buffer, dir: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the screenshot folder {}", dir.display()))?;
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let stem = format!("labtui-{secs}");
    let mut n = 0;
    let (svg_path, txt_path) = loop {
        let name = if n == 0 {
            stem.clone()
        } else {
            format!("{stem}-{n}")
        };
        let (s, t) = (
            dir.join(format!("{name}.svg")),
            dir.join(format!("{name}.txt")),
        );
        if !s.exists() && !t.exists() {
            break (s, t);
        }
        n += 1;
    };
    std::fs::write(&svg_path, svg(buf))
        .with_context(|| format!("cannot write {}", svg_path.display()))?;
    std::fs::write(&txt_path, text(buf))
        .with_context(|| format!("cannot write {}", txt_path.display()))?;
    Ok((svg_path, txt_path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::style::Style;

    #[test]
    fn indexed_colours_follow_xterm() {
        assert_eq!(indexed(16), "#000000");
        assert_eq!(indexed(196), "#ff0000");
        assert_eq!(indexed(232), "#080808");
        assert_eq!(indexed(255), "#eeeeee");
    }

    #[test]
    fn wide_symbols_take_two_cells_and_text_keeps_them_once() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 6, 1));
        buf.set_string(0, 0, "a漢b", Style::default());
        assert_eq!(text(&buf), "a漢b\n");
        let row = cells(&buf, 0);
        assert_eq!(
            row.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(),
            [(0, 1), (1, 2), (3, 1), (4, 1), (5, 1)]
        );
    }
}
