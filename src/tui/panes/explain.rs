//! The explain overlay (`e`): each figure the focused pane draws, with its definition, its
//! formula with this run's values, where it was measured, from how many samples, and the demo
//! that teaches it. The figures are the pane's own ([`crate::state::figure::Figure`]).

use super::{block, centered, label, value};
use crate::state::figure::Figure;
use crate::state::{AppState, Focus};
use ratatui::prelude::*;
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// The figures the focused pane draws and the pane's name; `None` for a pane whose figures are
/// not explained yet.
pub fn figures(state: &AppState) -> Option<(&'static str, Vec<Figure>)> {
    match state.ui.view.focus {
        Focus::Timing => {
            let run = state.store.current.as_ref()?;
            let f = run.timing_figures();
            Some(("prefill vs decode", f.all().into_iter().cloned().collect()))
        }
        Focus::Kv => {
            let m = state.store.model.as_ref().filter(|m| !m.is_remote())?;
            let f = crate::state::kv_figures(m, state.store.current.as_ref());
            Some(("KV cache", f.all().into_iter().cloned().collect()))
        }
        _ => None,
    }
}

/// One figure's lines: the value with where it was measured, from how many samples and the
/// demo that teaches it; its definition (only when the figure before had another); its formula.
fn lines(f: &Figure, before: Option<&Figure>) -> Vec<Line<'static>> {
    let samples = f
        .samples()
        .map_or("one reading".into(), |n| format!("{n} samples"));
    let mut out = vec![Line::from(vec![
        Span::styled(format!("{} = ", f.name), label()),
        Span::styled(f.shown(), value().add_modifier(Modifier::BOLD)),
        Span::styled(
            format!("   {} · {samples} · {}", f.measured.short(), f.lesson),
            label(),
        ),
    ])];
    if before.is_none_or(|b| b.definition != f.definition) {
        out.push(Line::styled(format!("  {}", f.definition), label()));
    }
    out.push(Line::from(vec![
        Span::styled("  = ", label()),
        Span::styled(f.formula(), value()),
    ]));
    out
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let r = centered(
        area,
        area.width.saturating_sub(6).min(120),
        area.height.saturating_sub(4),
    );
    Clear.render(r, buf);
    let (title, body) = match figures(state) {
        Some((name, figs)) => (
            format!("explain · {name} · e or Esc closes"),
            figs.iter()
                .enumerate()
                .flat_map(|(i, f)| lines(f, i.checked_sub(1).map(|j| &figs[j])))
                .collect::<Vec<_>>(),
        ),
        None => (
            "explain · e or Esc closes".into(),
            vec![Line::styled(
                match (state.ui.view.focus, &state.store.current) {
                    (Focus::Timing, None) => {
                        "No run yet: the timing figures are explained once a run starts.".into()
                    }
                    (Focus::Kv, _) => "The KV figures are explained once a local model is \
                                       loaded."
                        .into(),
                    (f, _) => format!(
                        "The {} pane's figures are not explained yet; the prefill-vs-decode \
                         (5) and KV (6) panes' are.",
                        f.name()
                    ),
                },
                label(),
            )],
        ),
    };
    let b = block(&title, true);
    let inner = b.inner(r);
    b.render(r, buf);
    Paragraph::new(body)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
}
