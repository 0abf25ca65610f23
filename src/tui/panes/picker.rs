//! The picker overlays: the presets found, or the models on this machine, each with its
//! description, the one under the cursor highlighted. Each takes two lines (a long description is
//! cut); when they do not all fit, the list scrolls to keep the one under the cursor in view.

use super::block;
use crate::state::{Action, ModelPicker, Picker};
use crate::tui::keys::key;
use ratatui::prelude::*;
use ratatui::widgets::{Clear, Paragraph};

/// `text` cut to `width` characters, with an ellipsis when cut.
fn cut(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The first preset shown so that `selected` is in a window of `fits` presets out of `n`.
pub fn first_shown(selected: usize, fits: usize, n: usize) -> usize {
    let fits = fits.max(1);
    if n <= fits {
        0
    } else {
        selected.saturating_sub(fits - 1).min(n - fits)
    }
}

pub fn render(picker: &Picker, area: Rect, buf: &mut Buffer) {
    let items: Vec<(&str, &str)> = picker
        .presets
        .iter()
        .map(|p| (p.name.as_str(), p.description.as_str()))
        .collect();
    let title = format!("presets · {} · {} load · {}", choose(), enter(), close());
    render_list(&title, &items, picker.selected, area, buf);
}

pub fn render_models(picker: &ModelPicker, area: Rect, buf: &mut Buffer) {
    let items: Vec<(&str, &str)> = picker
        .entries
        .iter()
        .map(|f| (f.name.as_str(), f.detail.as_str()))
        .collect();
    let title = match picker.draft {
        true => format!(
            "draft model · {} · {} use as the draft · {}",
            choose(),
            enter(),
            close()
        ),
        false => format!("models · {} · {} load · {}", choose(), enter(), close()),
    };
    render_list(&title, &items, picker.selected, area, buf);
}

/// The cursor keys' hint: `↑/↓ choose`.
fn choose() -> String {
    format!(
        "{}/{} choose",
        key(&Action::PickerUp),
        key(&Action::PickerDown)
    )
}

fn enter() -> String {
    key(&Action::PickerChoose)
}

fn close() -> String {
    format!("{} close", key(&Action::PickerClose))
}

/// A list of `(name, description)` under `title`, `selected` highlighted.
fn render_list(title: &str, items: &[(&str, &str)], selected: usize, area: Rect, buf: &mut Buffer) {
    let n = items.len();
    let r = super::centered(area, 100, n as u16 * 2 + 2);
    Clear.render(r, buf);
    let b = block(title, true);
    let inner = b.inner(r);
    b.render(r, buf);
    let fits = (inner.height / 2) as usize;
    let first = first_shown(selected, fits, n);
    let width = inner.width as usize;
    let mut lines = Vec::new();
    for (i, (name, description)) in items.iter().enumerate().skip(first).take(fits.max(1)) {
        let style = if i == selected {
            Style::default().fg(Color::Black).bg(Color::Cyan)
        } else {
            Style::default().fg(Color::Cyan)
        };
        let more = match (i == first && first > 0, i + 1 == first + fits && i + 1 < n) {
            (true, _) => "  ↑ more",
            (_, true) => "  ↓ more",
            _ => "",
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {name} "), style),
            Span::styled(more, Style::default().fg(Color::DarkGray)),
        ]));
        lines.push(Line::styled(
            cut(&format!("   {description}"), width),
            Style::default().fg(Color::Gray),
        ));
    }
    Paragraph::new(lines).render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_follows_the_cursor() {
        assert_eq!(first_shown(0, 5, 3), 0);
        assert_eq!(first_shown(4, 5, 8), 0);
        assert_eq!(first_shown(5, 5, 8), 1);
        assert_eq!(first_shown(7, 5, 8), 3);
        assert_eq!(first_shown(7, 0, 8), 7);
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
