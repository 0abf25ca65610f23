//! Speculative decoding: mode and K, acceptance (overall and by draft position), the histogram
//! of accepted lengths, and the speedup measured beside the one theory predicts.

use super::{block, label, palette, value};
use crate::protocol::DraftMode;
use crate::state::figure::Figure;
use crate::state::{server_spec_figures, spec_figures, AppState, SpecFigures, SpecView};
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Wrap};

/// A row of one-character bars, one per value in 0..=1.
fn bars(xs: &[f64]) -> String {
    const LEVELS: [char; 9] = [' ', '▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    xs.iter()
        .map(|x| LEVELS[(x.clamp(0.0, 1.0) * 8.0).round() as usize])
        .collect()
}

fn stats_lines(v: &SpecView) -> Vec<Line<'static>> {
    let c = &v.counts;
    let f = spec_figures(v);
    let max_hist = c.hist.iter().copied().max().unwrap_or(1).max(1) as f64;
    let hist: Vec<f64> = c.hist.iter().map(|&h| h as f64 / max_hist).collect();
    let shown = |x: &Option<Figure>| x.as_ref().map_or("—".into(), Figure::shown);
    let mut speedups = vec![
        Span::styled("speedup ", label()),
        Span::styled(shown(&f.measured), value()),
        Span::styled(" measured · ", label()),
        Span::styled(shown(&f.theory), value()),
        Span::styled(" theory", label()),
    ];
    if let Some(one) = &f.one_alpha {
        speedups.extend([
            Span::styled(" · ", label()),
            Span::styled(one.shown(), value()),
            Span::styled(" one α", label()),
        ]);
    }
    vec![
        Line::from(vec![
            Span::styled("acceptance ", label()),
            Span::styled(f.acceptance.shown(), value()),
            Span::styled(format!(" ({}/{})", c.accepted, c.drafted), label()),
            Span::styled("  accepted length ", label()),
            Span::styled(f.length.shown(), value()),
            Span::styled(format!("  {} steps", c.steps), label()),
        ]),
        Line::from(speedups),
        Line::from(vec![
            Span::styled("by position ", label()),
            Span::styled(
                bars(&c.per_position()),
                Style::default().fg(palette::ACCEPTED),
            ),
            Span::styled(
                format!(
                    "  {}",
                    f.by_position
                        .iter()
                        .map(Figure::shown)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                label(),
            ),
        ]),
        Line::from(vec![
            Span::styled("accepted 0.. ", label()),
            Span::styled(bars(&hist), Style::default().fg(palette::ACCEPTED)),
        ]),
        cost_line(v, &f),
    ]
}

/// What a speculative step costs: drafting, and verifying its positions in one pass.
fn cost_line(v: &SpecView, f: &SpecFigures) -> Line<'static> {
    let positions = v.verified as f64 / v.counts.steps.max(1) as f64;
    Line::from(vec![
        Span::styled("per step ", label()),
        Span::styled(format!("draft {}", f.draft.shown()), value()),
        Span::styled(" · ", label()),
        Span::styled(format!("verify {}", f.verify.shown()), value()),
        Span::styled(format!(" ({positions:.1} positions)"), label()),
    ])
}

/// The served model's speculation, when it reports any: acceptance and mean accepted length, and
/// by draft position the share of drafts whose token there was accepted (vLLM's per-position
/// rate, so unlike the run's above it is not conditional on the earlier positions). Over the
/// samples kept, else since the server started.
fn server_lines(state: &AppState) -> Option<Vec<Line<'static>>> {
    let s = state.store.last_server.as_ref()?;
    let f = server_spec_figures(&state.store)?;
    let shown = |x: &Option<Figure>| x.as_ref().map_or("—".into(), Figure::shown);
    let mut lines = vec![Line::from(vec![
        Span::styled("server ", label()),
        Span::styled(s.engine.to_string(), value()),
        Span::styled(" acceptance ", label()),
        Span::styled(shown(&f.acceptance), value()),
        Span::styled("  accepted length ", label()),
        Span::styled(shown(&f.length), value()),
        Span::styled(format!("  ({})", f.when), label()),
    ])];
    if !f.shares.is_empty() {
        lines.push(Line::from(vec![
            Span::styled("server by position ", label()),
            Span::styled(bars(&f.shares), Style::default().fg(palette::ACCEPTED)),
            Span::styled(
                format!(
                    "  {} of drafts",
                    f.by_position
                        .iter()
                        .map(Figure::shown)
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                label(),
            ),
        ]));
    }
    Some(lines)
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let b = block(
        "speculation · d mode · [ ] K (below 1: auto)",
        state.ui.view.focus == crate::state::Focus::Spec,
    );
    let inner = b.inner(area);
    b.render(area, buf);
    let chosen = state.ui.asked.draft_mode;
    let run = state.store.current.as_ref();
    let mode = run.map_or(DraftMode::None, |r| r.draft_mode);
    let mut lines = vec![Line::from(vec![
        Span::styled("run ", label()),
        Span::styled(mode.to_string(), value()),
        Span::styled(
            format!(
                " K {}  · next: {chosen}, K {}",
                run.map_or("—".into(), |r| r.k.to_string()),
                state.ui.asked.k
            ),
            label(),
        ),
    ])];
    // A lossy rule changes the text: said on its own line, in the warning colour.
    let policy = state.ui.asked.policy;
    if policy.is_lossy() {
        lines.push(Line::styled(
            format!(
                "acceptance {}: the text may differ from the target's own",
                policy.label()
            ),
            Style::default().fg(Color::Yellow),
        ));
    }
    let remote = state.store.model.as_ref().is_some_and(|m| m.is_remote());
    match run.map(|r| &r.spec).filter(|v| v.counts.steps > 0) {
        Some(v) => lines.extend(stats_lines(v)),
        None if remote => lines.push(Line::styled(
            "A remote server drafts (or not) as it was started: labtui's draft modes do not apply; its own counters show below when its metrics have them.",
            label(),
        )),
        None => lines.push(Line::styled(
            "No speculative steps in this run: choose a draft mode with d, then run.",
            label(),
        )),
    }
    lines.extend(server_lines(state).unwrap_or_default());
    Paragraph::new(lines)
        .wrap(Wrap { trim: true })
        .render(inner, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_zero_to_one() {
        assert_eq!(bars(&[0.0, 0.5, 1.0]), " ▄█");
    }
}
