//! Colours that carry meaning, chosen from the Okabe–Ito palette (told apart with the common
//! colour-vision deficiencies) as the nearest of the 256 terminal colours; and drawing without any
//! colour for `NO_COLOR` (https://no-color.org), where the marks each style has besides its colour
//! carry the meaning alone.

use ratatui::prelude::*;

/// A draft token the target accepted: sky blue (#56B4E9), underlined.
pub const ACCEPTED: Color = Color::Indexed(74);
/// Drafted tokens the target rejected: orange (#E69F00), struck out between ⟨ ⟩.
pub const REJECTED: Color = Color::Indexed(214);
/// The target's own token after a rejection: reddish purple (#CC79A7), bold.
pub const CORRECTION: Color = Color::Indexed(175);
/// The target's extra token after a fully accepted draft: bluish green (#009E73), bold italic.
pub const BONUS: Color = Color::Indexed(36);

/// Opening and closing marks around rejected drafts on the tape.
pub const REJECTED_MARKS: (&str, &str) = ("⟨", "⟩");

pub fn accepted() -> Style {
    Style::default()
        .fg(ACCEPTED)
        .add_modifier(Modifier::UNDERLINED)
}

pub fn rejected() -> Style {
    Style::default()
        .fg(REJECTED)
        .add_modifier(Modifier::CROSSED_OUT | Modifier::DIM)
}

pub fn correction() -> Style {
    Style::default().fg(CORRECTION).add_modifier(Modifier::BOLD)
}

pub fn bonus() -> Style {
    Style::default()
        .fg(BONUS)
        .add_modifier(Modifier::BOLD | Modifier::ITALIC)
}

/// Whether `NO_COLOR`'s value asks for no colour: set and not empty.
pub fn no_color(var: Option<&std::ffi::OsStr>) -> bool {
    var.is_some_and(|v| !v.is_empty())
}

/// Take every colour out of `area` of `buf`, keeping the symbols and their modifiers.
pub fn strip(area: Rect, buf: &mut Buffer) {
    let area = area.intersection(buf.area);
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            let cell = &mut buf[(x, y)];
            cell.set_fg(Color::Reset).set_bg(Color::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn no_color_is_any_value_but_empty() {
        assert!(no_color(Some(OsStr::new("1"))));
        assert!(no_color(Some(OsStr::new("0"))));
        assert!(!no_color(Some(OsStr::new(""))));
        assert!(!no_color(None));
    }

    #[test]
    fn strip_keeps_symbols_and_modifiers() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 1));
        buf.set_string(0, 0, "ab", accepted().bg(Color::Blue));
        strip(buf.area, &mut buf);
        let c = &buf[(0, 0)];
        assert_eq!((c.symbol(), c.fg, c.bg), ("a", Color::Reset, Color::Reset));
        assert!(c.modifier.contains(Modifier::UNDERLINED));
    }
}
