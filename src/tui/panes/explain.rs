//! The explain overlay (`e`): each figure the focused pane draws, with its definition, its
//! formula with this run's values, where it was measured, from how many samples, and the demo
//! that teaches it. The figures are the pane's own ([`crate::state::figure::Figure`]).

use super::{block, centered, label, value};
use crate::state::figure::Figure;
use crate::state::{server_figures, server_gauges, spec_figures, AppState, Focus};
use ratatui::prelude::*;
use ratatui::widgets::{Clear, Paragraph, Wrap};

/// The figures of the view on screen: the race's when it takes the body, else the focused
/// pane's; `None` where there are none yet.
pub fn figures(state: &AppState) -> Option<(&'static str, Vec<Figure>)> {
    let owned = |v: Vec<&Figure>| v.into_iter().cloned().collect::<Vec<_>>();
    let remote = state.store.model.as_ref().is_some_and(|m| m.is_remote());
    let served = || server_figures(&state.store).unwrap_or_default();
    // The views that take the body, in the order the screen picks them.
    if state.ui.demo.is_none() {
        if state.store.serve.active() {
            let figs = state.store.serve.figures(state.store.now);
            return Some(("serving benchmark", figs));
        }
        if state.ui.race_shown(&state.store) {
            let f = state.store.race.as_ref()?.figures();
            return Some(("A/B race", owned(f.all())));
        }
        if state.ui.sched_shown(&state.store) {
            let v = &state.store.sched;
            if remote && v.step() == 0 {
                return Some(("the server's scheduler", owned(served().all())));
            }
            return Some(("scheduler", owned(v.figures().all())));
        }
    }
    let run = state.store.current.as_ref();
    match state.ui.view.focus {
        Focus::Prompt => None,
        Focus::Tape => {
            let f = run?.token_figures(state.ui.view.selected, remote)?;
            Some(("token", owned(f.all())))
        }
        Focus::Memory => {
            let f = crate::state::memory_figures(&state.store)?;
            let mut v = owned(f.all());
            v.extend(owned(served().all()));
            Some(("memory", v))
        }
        Focus::Spec => {
            let mut v: Vec<Figure> = run
                .map(|r| &r.spec)
                .filter(|s| s.counts.steps > 0)
                .map_or(Vec::new(), |s| owned(spec_figures(s).all()));
            if let Some(f) = crate::state::server_spec_figures(&state.store) {
                v.extend(owned(f.all()));
            }
            (!v.is_empty()).then_some(("speculation", v))
        }
        Focus::Timing => Some(("prefill vs decode", owned(run?.timing_figures().all()))),
        Focus::Kv if remote => {
            let s = state.store.last_server.as_ref()?;
            Some(("the server's KV cache", owned(server_gauges(s).all())))
        }
        Focus::Kv => {
            let m = state.store.model.as_ref()?;
            Some(("KV cache", owned(crate::state::kv_figures(m, run).all())))
        }
    }
}

/// Why the view on screen has no figures to explain.
fn none_why(state: &AppState) -> String {
    let no_run = state.store.current.is_none();
    match state.ui.view.focus {
        _ if state.ui.race_shown(&state.store) => "The race has no figures yet.".into(),
        Focus::Prompt => "The prompt pane draws no figures: focus another pane (2–6).".into(),
        Focus::Kv => "The KV figures are explained once a model is loaded (a server's, once \
                      its metrics are scraped)."
            .into(),
        Focus::Memory => "The memory figures are explained once the first sample arrives.".into(),
        Focus::Spec if !no_run => {
            "This run took no speculative steps: choose a draft mode with d, then run.".into()
        }
        f => format!(
            "No run yet: the {} pane's figures are explained once a run starts.",
            f.name()
        ),
    }
}

/// One figure's lines: the value with where it was measured, from how many samples and the
/// demo that teaches it; its definition (only when the figure before had another); its formula.
fn lines(f: &Figure, before: Option<&Figure>) -> Vec<Line<'static>> {
    let samples = f
        .samples()
        .map_or("one reading".into(), |n| format!("{n} samples"));
    let samples = match &f.spread {
        Some(s) => format!("{samples}, {s}"),
        None => samples,
    };
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

/// The overlay's lines for `figs`, each with its definition where it differs from the one
/// before.
fn body(figs: &[Figure]) -> Vec<Line<'static>> {
    figs.iter()
        .enumerate()
        .flat_map(|(i, f)| lines(f, i.checked_sub(1).map(|j| &figs[j])))
        .collect()
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let r = centered(
        area,
        area.width.saturating_sub(6).min(120),
        area.height.saturating_sub(4),
    );
    Clear.render(r, buf);
    let (width, room) = (r.width.saturating_sub(2), r.height.saturating_sub(2));
    let (title, body, scroll) = match figures(state) {
        Some((name, figs)) => {
            let lines = body(&figs);
            // Scrolled no further than the last line's showing.
            let rows = Paragraph::new(lines.clone())
                .wrap(Wrap { trim: false })
                .line_count(width);
            let most = (rows.min(u16::MAX as usize) as u16).saturating_sub(room);
            let scroll = state.ui.view.explain_scroll.min(most);
            let more = match (scroll, most - scroll) {
                (0, 0) => String::new(),
                (_, 0) => " · ↑ earlier".into(),
                (_, left) => format!(" · ↓ {left} more lines"),
            };
            (
                format!("explain · {name}{more} · e or Esc closes"),
                lines,
                scroll,
            )
        }
        None => (
            "explain · e or Esc closes".into(),
            vec![Line::styled(none_why(state), label())],
            0,
        ),
    };
    let b = block(&title, true);
    let inner = b.inner(r);
    b.render(r, buf);
    Paragraph::new(body)
        .wrap(Wrap { trim: false })
        .scroll((scroll, 0))
        .render(inner, buf);
}
