//! The banner under the status bar: an error (red), or a notice (yellow: a preset, a demo, the
//! synthetic stand-in for a model that could not be had). Its words wrap inside the screen's width
//! and it takes the rows they need, up to a fifth of the screen; what does not fit ends in "…".

use crate::state::AppState;
use ratatui::prelude::*;
use ratatui::widgets::Paragraph;

/// The fewest rows the banner may take however short the screen.
const MIN_ROWS: u16 = 3;

/// The message to show and its colour, if any.
fn message(state: &AppState) -> Option<(&str, Color)> {
    match state.error() {
        Some(e) => Some((e, Color::Red)),
        None => state.ui.banner.as_deref().map(|b| (b, Color::Yellow)),
    }
}

/// `text` broken at spaces into lines of at most `width` columns; a word longer than a line is
/// broken inside.
pub fn wrap(text: &str, width: u16) -> Vec<String> {
    let width = width.max(1) as usize;
    let cols = |s: &str| Span::raw(s).width();
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("one line at least");
        let sep = usize::from(!line.is_empty());
        if cols(line) + sep + cols(word) <= width {
            if sep == 1 {
                line.push(' ');
            }
            line.push_str(word);
            continue;
        }
        let mut rest = word;
        if !line.is_empty() {
            lines.push(String::new());
        }
        // A word wider than a line fills lines of its own, character by character.
        while cols(rest) > width {
            let (mut at, mut w) = (0, 0);
            for (i, c) in rest.char_indices() {
                let cw = cols(&rest[i..i + c.len_utf8()]);
                if w + cw > width && at > 0 {
                    break;
                }
                (at, w) = (i + c.len_utf8(), w + cw);
            }
            lines.last_mut().expect("one line").push_str(&rest[..at]);
            lines.push(String::new());
            rest = &rest[at..];
        }
        lines.last_mut().expect("one line").push_str(rest);
    }
    lines
}

/// The most rows the banner takes on a screen `height` rows tall.
fn max_rows(height: u16) -> u16 {
    (height / 5).max(MIN_ROWS)
}

/// Rows the banner needs on a screen of `area` (0 when there is none).
pub fn height(state: &AppState, area: Rect) -> u16 {
    message(state).map_or(0, |(m, _)| {
        (wrap(m, area.width).len() as u16).clamp(1, max_rows(area.height))
    })
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let Some((msg, color)) = message(state) else {
        return;
    };
    let mut lines = wrap(msg, area.width);
    let rows = area.height as usize;
    if lines.len() > rows && rows > 0 {
        lines.truncate(rows);
        let last = lines.last_mut().expect("rows > 0");
        while Span::raw(last.as_str()).width() + 1 > area.width as usize && last.pop().is_some() {}
        last.push('…');
    }
    Paragraph::new(lines.into_iter().map(Line::from).collect::<Vec<_>>())
        .style(Style::default().fg(color))
        .render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_breaks_at_spaces_and_inside_long_words() {
        assert_eq!(wrap("get real weights", 9), ["get real", "weights"]);
        assert_eq!(wrap("a abcdefgh b", 4), ["a", "abcd", "efgh", "b"]);
        assert_eq!(wrap("", 10), [""]);
        // Every word is kept, and no line is wider than asked.
        let text =
            "no real model could be loaded: cannot get qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
        for w in [1, 7, 20, 160] {
            let lines = wrap(text, w);
            assert!(lines
                .iter()
                .all(|l| Span::raw(l.as_str()).width() <= w as usize));
            assert_eq!(lines.concat().replace(' ', ""), text.replace(' ', ""));
        }
    }
}
