//! The token tape: generated text, each token shaded by where it came from; a selected token shows
//! its id, step time and probability.

use super::{block_with, palette};
use crate::protocol::{Phase, TokenEvent};
use crate::state::{Action, AppState, Focus, RunView, TokenFigures};
use crate::tui::keys::{self, When};
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Wrap};
use std::collections::BTreeMap;

/// A token's style: a colour and, for the tokens of a speculative step, a mark that reads
/// without it (see [`palette`]); the selected token is shown reversed.
fn token_style(t: &TokenEvent, selected: bool) -> Style {
    let base = match t.phase {
        Phase::Prefill => Style::default().fg(Color::Yellow),
        Phase::Decode => Style::default().fg(Color::White),
        Phase::Draft => palette::accepted(),
        Phase::Correction => palette::correction(),
        Phase::Bonus => palette::bonus(),
    };
    if selected {
        base.add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else {
        base
    }
}

/// How the tape's tokens are painted: for the eye (the selected one reversed), or each in a colour
/// that encodes its index, so that a drawn cell tells which token it shows (see [`token_at`]).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Paint {
    Shown { selected: Option<usize> },
    Ids,
}

impl Paint {
    fn token(self, t: &TokenEvent) -> Style {
        match self {
            Paint::Shown { selected } => token_style(t, selected == Some(t.index)),
            Paint::Ids => Style::default().fg(id_colour(t.index)),
        }
    }

    fn rejected(self) -> Style {
        match self {
            Paint::Shown { .. } => palette::rejected(),
            Paint::Ids => Style::default().fg(Color::Reset),
        }
    }
}

/// Token indexes as 24-bit colours and back: a tape of up to 2²⁴ tokens (a context holds far fewer).
fn id_colour(index: usize) -> Color {
    let i = (index & 0xff_ffff) as u32;
    Color::Rgb((i >> 16) as u8, (i >> 8) as u8, i as u8)
}

fn colour_id(c: Color) -> Option<usize> {
    match c {
        Color::Rgb(r, g, b) => Some(((r as usize) << 16) | ((g as usize) << 8) | b as usize),
        _ => None,
    }
}

/// Lines of the tape: tokens as styled spans, split where the text has newlines and after the
/// tokens at the positions `ends` (those of [`RunView::line_ends`] from `tokens`' first on;
/// `first` is that token's position in the run).
fn tape_lines(
    tokens: &[TokenEvent],
    first: usize,
    ends: &[usize],
    rejected: &BTreeMap<usize, String>,
    paint: Paint,
) -> Vec<Line<'static>> {
    let mut lines = vec![Line::default()];
    let (open, close) = palette::REJECTED_MARKS;
    let mut ends = ends.iter().peekable();
    for (at, t) in (first..).zip(tokens) {
        if let Some(r) = rejected.get(&t.index) {
            let shown = format!("{open}{}{close}", r.replace('\n', "↵"));
            lines
                .last_mut()
                .unwrap()
                .spans
                .push(Span::styled(shown, paint.rejected()));
        }
        let style = paint.token(t);
        let mut parts = t.text.split('\n').peekable();
        while let Some(part) = parts.next() {
            if !part.is_empty() {
                lines
                    .last_mut()
                    .unwrap()
                    .spans
                    .push(Span::styled(part.to_string(), style));
            }
            if parts.peek().is_some() {
                // Newlines stay visible as a dim mark, then break the line.
                lines
                    .last_mut()
                    .unwrap()
                    .spans
                    .push(Span::styled("↵", style.add_modifier(Modifier::DIM)));
                lines.push(Line::default());
            }
        }
        if ends.next_if(|&&e| e <= at).is_some() && !t.text.contains('\n') {
            // A line without a newline that reached LINE_BYTES: the tape breaks it here.
            lines.push(Line::default());
        }
    }
    lines
}

/// Rows `lines` take at `width` columns, as the tape counts them to follow the end.
fn rows(lines: &[Line], width: usize) -> usize {
    lines.iter().map(|l| l.width().div_ceil(width).max(1)).sum()
}

/// The tape's lines that can be on screen, and the rows to scroll them by: the end of the run,
/// `height` rows and `scroll` more, laid out from a line end on (whole lines, wrapped as in the
/// whole tape), going back twice as many lines each time it is not enough; the whole tape, with
/// its header, only when all of it is needed.
pub fn window(
    run: &RunView,
    selected: Option<usize>,
    scroll: u16,
    width: u16,
    height: u16,
) -> (Vec<Line<'static>>, u16) {
    painted_window(run, Paint::Shown { selected }, scroll, width, height)
}

fn painted_window(
    run: &RunView,
    paint: Paint,
    scroll: u16,
    width: u16,
    height: u16,
) -> (Vec<Line<'static>>, u16) {
    let width = width.max(1) as usize;
    let need = height as usize + scroll as usize;
    let mut back = 1;
    loop {
        let from = run.line_ends.len().checked_sub(back);
        let mut lines = match from {
            Some(k) => {
                let first = run.line_ends[k];
                let mut lines = tape_lines(
                    run.tokens.get(first..).unwrap_or_default(),
                    first,
                    &run.line_ends[k..],
                    &run.spec.rejected,
                    paint,
                );
                // The first line is the end of one that started before `first`.
                lines.remove(0);
                lines
            }
            None => {
                let header = Line::styled(
                    format!(
                        "run {} · {} prompt tokens (prefilled)",
                        run.run, run.prompt_tokens
                    ),
                    Style::default().fg(Color::DarkGray),
                );
                let mut lines = vec![header];
                lines.extend(tape_lines(
                    &run.tokens,
                    0,
                    &run.line_ends,
                    &run.spec.rejected,
                    paint,
                ));
                lines
            }
        };
        if let Some(why) = &run.failed {
            lines.push(Line::styled(
                format!("✗ the run stopped with an error: {why}"),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
        let rows = rows(&lines, width);
        if rows >= need || from.is_none() {
            // Follow the end of the text unless the user scrolled.
            let top = rows.saturating_sub(height as usize + scroll as usize);
            return (lines, u16::try_from(top).unwrap_or(u16::MAX));
        }
        back = back.saturating_mul(2);
    }
}

/// The pane's inside: the text, and one line for the selected token's detail.
fn text_areas(inner: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(inner)
}

/// The token drawn at (`x`, `y`) when the tape is drawn in `area`, if a token is there: the tape
/// is drawn again off screen, the same lines wrapped the same way, each token in a colour that
/// encodes its index.
pub fn token_at(state: &AppState, area: Rect, x: u16, y: u16) -> Option<usize> {
    let run = state.store.current.as_ref()?;
    let inner = block_with(Line::default(), false).inner(area);
    let [text_area, _] = text_areas(inner);
    if !text_area.contains(Position { x, y }) {
        return None;
    }
    let (lines, scroll) = painted_window(
        run,
        Paint::Ids,
        state.ui.view.scroll,
        text_area.width,
        text_area.height,
    );
    let mut buf = Buffer::empty(text_area);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .render(text_area, &mut buf);
    let cell = buf.cell(Position { x, y })?;
    colour_id(cell.fg).filter(|&i| i < run.tokens.len())
}

fn detail(t: &TokenEvent, f: &TokenFigures) -> Line<'static> {
    let index = Span::styled(format!(" #{} ", t.index), Style::default().fg(Color::Cyan));
    let (Some(p), Some(kv)) = (&f.prob, &f.kv) else {
        // A server streams text: its token ids, probabilities and cache are its own.
        return Line::from(vec![
            index,
            Span::raw(format!(
                "{:?} · {:?} · gap {} · id, probability and KV {}",
                t.text,
                t.phase,
                f.step.shown(),
                super::kv::NOT_KNOWN
            )),
        ]);
    };
    Line::from(vec![
        index,
        Span::raw(format!(
            "id {} {:?} · {:?} · step {} · p {} · kv {}",
            t.id,
            t.text,
            t.phase,
            f.step.shown(),
            p.shown(),
            kv.shown()
        )),
    ])
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let focused = state.ui.view.focus == Focus::Tape;
    let b = block_with(legend(run_speculates(state)), focused);
    let inner = b.inner(area);
    b.render(area, buf);
    let Some(run) = &state.store.current else {
        let hint = if state.store.model.is_some() {
            "No run yet: type a prompt and press Enter."
        } else {
            "Waiting for a model …"
        };
        Paragraph::new(hint)
            .style(Style::default().fg(Color::DarkGray))
            .render(inner, buf);
        return;
    };
    let [text_area, detail_area] = text_areas(inner);
    let (lines, scroll) = window(
        run,
        state.ui.view.selected,
        state.ui.view.scroll,
        text_area.width,
        text_area.height,
    );
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .render(text_area, buf);
    let remote = state.store.model.as_ref().is_some_and(|m| m.is_remote());
    let sel = state
        .ui
        .view
        .selected
        .and_then(|i| run.tokens.get(i))
        .or(run.tokens.last());
    if let (Some(t), Some(f)) = (sel, run.token_figures(state.ui.view.selected, remote)) {
        Paragraph::new(detail(t, &f))
            .style(Style::default().fg(Color::Gray))
            .render(detail_area, buf);
    }
}

/// The tape's title: each kind of token named in its own style.
fn legend(speculates: bool) -> Line<'static> {
    let (open, close) = palette::REJECTED_MARKS;
    let mut spans = vec![Span::raw(" tokens · ")];
    if speculates {
        spans.extend([
            Span::styled("accepted", palette::accepted()),
            Span::raw(" "),
            Span::styled(format!("{open}rejected{close}"), palette::rejected()),
            Span::raw(" "),
            Span::styled("correction", palette::correction()),
            Span::raw(" "),
            Span::styled("bonus", palette::bonus()),
        ]);
    } else {
        spans.extend([
            Span::styled("from prefill", Style::default().fg(Color::Yellow)),
            Span::raw(" · "),
            Span::styled("decoded", Style::default().fg(Color::White)),
        ]);
    }
    spans.push(Span::raw(format!(
        " · {}/{} select ",
        keys::key_in(When::Anywhere, &Action::SelectPrev),
        keys::key_in(When::Anywhere, &Action::SelectNext)
    )));
    Line::from(spans)
}

fn run_speculates(state: &AppState) -> bool {
    state
        .store
        .current
        .as_ref()
        .is_some_and(|r| r.spec.counts.steps > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn run_of(texts: impl IntoIterator<Item = String>) -> RunView {
        let mut run = RunView::default();
        for (i, text) in texts.into_iter().enumerate() {
            run.push(&TokenEvent {
                index: i,
                id: i as u32,
                text,
                phase: if i == 0 {
                    Phase::Prefill
                } else {
                    Phase::Decode
                },
                prob: 0.5,
                elapsed: Duration::from_millis(i as u64),
                step: Duration::from_millis(1),
                kv_tokens: i + 1,
                kv_bytes: i as u64 + 1,
            });
        }
        run
    }

    /// The whole tape laid out, as the pane did before it laid out only what can be on screen.
    fn whole(run: &RunView, selected: Option<usize>, scroll: u16, w: u16, h: u16) -> Buffer {
        let header = Line::styled(
            format!(
                "run {} · {} prompt tokens (prefilled)",
                run.run, run.prompt_tokens
            ),
            Style::default().fg(Color::DarkGray),
        );
        let mut lines = vec![header];
        lines.extend(tape_lines(
            &run.tokens,
            0,
            &run.line_ends,
            &run.spec.rejected,
            Paint::Shown { selected },
        ));
        if let Some(why) = &run.failed {
            lines.push(Line::styled(
                format!("✗ the run stopped with an error: {why}"),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
        let follow = rows(&lines, w as usize).saturating_sub(h as usize) as u16;
        let top = if scroll == 0 {
            follow
        } else {
            follow.saturating_sub(scroll)
        };
        draw(lines, top, w, h)
    }

    fn draw(lines: Vec<Line<'static>>, top: u16, w: u16, h: u16) -> Buffer {
        let area = Rect::new(0, 0, w, h);
        let mut buf = Buffer::empty(area);
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((top, 0))
            .render(area, &mut buf);
        buf
    }

    fn text(buf: &Buffer) -> String {
        buf.content().iter().map(|c| c.symbol()).collect()
    }

    #[test]
    fn a_line_without_newlines_is_broken_and_only_its_end_laid_out() {
        let run = run_of((0..100_000).map(|i| format!("w{:03} ", i % 1000)));
        // 5 bytes a token: a line ends every LINE_BYTES / 5 tokens.
        assert_eq!(
            run.line_ends.len(),
            100_000 / (crate::state::LINE_BYTES / 5 + 1)
        );
        let (lines, top) = window(&run, None, 0, 70, 18);
        let spans: usize = lines.iter().map(|l| l.spans.len()).sum();
        assert!(
            spans <= 2 * (crate::state::LINE_BYTES / 5 + 1),
            "{spans} spans"
        );
        assert!(text(&draw(lines, top, 70, 18)).contains("w999"));
    }

    #[test]
    fn the_window_draws_what_the_whole_tape_draws() {
        // Lines shorter than the pane (so each is one row), newlines alone, at a token's end, in
        // its middle and doubled, and rejected drafts at line starts.
        let texts = (0..3000).map(|i| match i % 23 {
            7 => " ab\ncd".to_string(),
            13 => "\n\n".to_string(),
            22 => ".\n".to_string(),
            _ => format!(" w{}", i % 10),
        });
        let mut run = run_of(texts);
        run.spec.rejected.insert(2301, "x\ny".into());
        run.spec.rejected.insert(2990, "zz".into());
        for failed in [None, Some("boom".to_string())] {
            run.failed = failed;
            for (selected, scroll) in [(None, 0), (Some(2999), 1), (Some(2990), 7), (None, 60)]
                .into_iter()
                .chain([(Some(5), 300), (None, 1000), (None, u16::MAX)])
            {
                let (lines, top) = window(&run, selected, scroll, 70, 18);
                let got = draw(lines, top, 70, 18);
                let want = whole(&run, selected, scroll, 70, 18);
                assert_eq!(got, want, "selected {selected:?}, scroll {scroll}");
            }
        }
    }
}
