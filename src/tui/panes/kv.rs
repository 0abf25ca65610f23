//! The KV cache: bytes against tokens as they grow, the bytes-per-token formula with this model's
//! numbers beside the measured growth, context fill, and a what-if predictor.

use super::chart::{self, Unit};
use super::{block, label, scraped, value};
use crate::protocol::ModelInfo;
use crate::state::figure::Figure;
use crate::state::{AppState, KvFigures, RunView, WHAT_IF_BATCH, WHAT_IF_CONTEXTS};
use crate::stats::human_bytes;
use ratatui::prelude::*;
use ratatui::widgets::{Gauge, Paragraph};

/// Measured bytes per token: growth between the first and the last (tokens, bytes) held.
pub fn measured_per_token(first: (usize, u64), last: (usize, u64)) -> Option<f64> {
    (last.0 > first.0).then(|| (last.1 as f64 - first.1 as f64) / (last.0 - first.0) as f64)
}

/// The KV cache held after the run's last token (tokens, bytes).
fn held(run: Option<&RunView>) -> (usize, u64) {
    run.and_then(|r| r.tokens.last())
        .map_or((0, 0), |t| (t.kv_tokens, t.kv_bytes))
}

/// The chart's points: the whole run in at most `width` points evenly spaced over its tokens
/// (the thinned series, then the last token), as (tokens held, bytes held).
pub fn chart_data(run: &RunView, width: usize) -> Vec<(f64, f64)> {
    let last = held(Some(run));
    let mut points: Vec<(f64, f64)> = run.kv.iter().map(|&(t, b)| (t as f64, b as f64)).collect();
    if run.kv.pushed() > 0 && !(run.kv.pushed() - 1).is_multiple_of(run.kv.stride()) {
        points.push((last.0 as f64, last.1 as f64));
    }
    if points.len() <= width || width < 2 {
        let skip = points.len().saturating_sub(width);
        return points.split_off(skip);
    }
    let n = points.len() - 1;
    (0..width).map(|i| points[i * n / (width - 1)]).collect()
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    use crate::state::Action;
    use crate::tui::keys::key;
    let title = format!(
        "KV cache · {} dtype · {} context · {} batch",
        key(&Action::CycleKvDtype),
        key(&Action::CycleContext),
        key(&Action::CycleBatch)
    );
    let b = block(&title, state.ui.view.focus == crate::state::Focus::Kv);
    let inner = b.inner(area);
    b.render(area, buf);
    let server = state.store.last_server.as_ref();
    let Some(m) = &state.store.model else {
        match server {
            Some(s) => scraped::kv_view(state, s, inner, buf),
            None => Paragraph::new("The KV cache appears here once a model is loaded.")
                .style(label())
                .render(inner, buf),
        }
        return;
    };
    if m.is_remote() {
        return remote(state, m, server, inner, buf);
    }
    // A served model's KV cache on top, when its metrics are scraped.
    let inner = match server {
        Some(s) => {
            let [top, rest] =
                Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
            Paragraph::new(scraped::kv_line(s)).render(top, buf);
            rest
        }
        None => inner,
    };
    let run = state.store.current.as_ref();
    let held = held(run);
    let figs = crate::state::kv_figures(m, run);
    let [formula, growth, fill, chart, whatif] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(2),
    ])
    .areas(inner);
    formula_line(m, &figs.per_token).render(formula, buf);
    growth_line(run, &figs).render(growth, buf);
    fill_gauge(m, held.0).render(fill, buf);
    render_chart(run, chart, buf);
    what_if(state, m).render(whatif, buf);
}

/// Not known for a remote server: its model's shape, so its bytes per token and what-if.
pub const NOT_KNOWN: &str = "not known for a remote server";

/// A remote server's KV cache: the context it serves, and its KV use from its metrics where it
/// exports them; the bytes per token need the shape it does not say.
fn remote(
    state: &AppState,
    m: &ModelInfo,
    server: Option<&crate::protocol::ServerSample>,
    area: Rect,
    buf: &mut Buffer,
) {
    let context = match m.context_length {
        0 => Span::styled(format!("context {NOT_KNOWN}"), label()),
        n => Span::styled(
            format!("context {n} tokens a request may hold (the server's)"),
            value(),
        ),
    };
    let shape = Line::from(vec![
        Span::styled("per token ", label()),
        Span::raw(format!(
            "{NOT_KNOWN}: its layers, KV heads and head size are the server's"
        )),
    ]);
    let [top, rest] = Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(area);
    Paragraph::new(vec![Line::from(context), shape]).render(top, buf);
    match server {
        Some(s) => scraped::kv_view(state, s, rest, buf),
        None => Paragraph::new(vec![
            Line::from(Span::styled(format!("KV cache use {NOT_KNOWN}"), label())),
            Line::from(Span::raw(format!(
                "no metrics read from {}/metrics (llama-server exports them with --metrics)",
                m.source.trim_end_matches('/')
            ))),
        ])
        .render(rest, buf),
    }
}

/// The bytes-per-token formula with this model's numbers.
fn formula_line(m: &ModelInfo, per_token: &Figure) -> Paragraph<'static> {
    // The recipe's own product, its value after the `=`.
    let formula = per_token.formula();
    let product = formula.strip_suffix(&per_token.shown()).unwrap_or(&formula);
    let mut spans = vec![
        Span::styled(format!("{} ", per_token.name), label()),
        Span::raw(product.to_string()),
        Span::styled(per_token.shown(), value()),
    ];
    if let Some(w) = m.sliding {
        spans.push(Span::raw(format!(
            " · {} of {} layers slide: each keeps the last {} tokens (+ ≤ {} slack)",
            w.layers, m.layers, w.window, w.kept_beyond
        )));
    }
    Paragraph::new(Line::from(spans))
}

/// What is held now, the growth measured over the run, and the paged blocks when there are any.
fn growth_line(run: Option<&RunView>, figs: &KvFigures) -> Paragraph<'static> {
    let held_tokens = figs.tokens;
    let measured = figs.growth.as_ref().map_or("—".into(), |g| g.shown());
    let mut spans = vec![
        Span::styled(format!("{} ", figs.held.name), label()),
        Span::styled(
            format!("{} tokens = {}", held_tokens, figs.held.shown()),
            value(),
        ),
        Span::styled("   measured growth ", label()),
        Span::styled(measured, value()),
    ];
    if let Some(b) = run.and_then(|r| r.kv_blocks) {
        spans.extend([
            Span::styled(format!("   blocks of {} ", b.block_tokens), label()),
            Span::styled(
                format!(
                    "{} held · {} free · {} slots empty",
                    b.held,
                    b.free,
                    b.slack(held_tokens)
                ),
                value(),
            ),
        ]);
    }
    Paragraph::new(Line::from(spans))
}

/// How much of the model's context the cache fills.
fn fill_gauge(m: &ModelInfo, held_tokens: usize) -> Gauge<'static> {
    let ratio = (held_tokens as f64 / m.context_length.max(1) as f64).clamp(0.0, 1.0);
    Gauge::default()
        .ratio(ratio)
        .label(format!("context {held_tokens} / {}", m.context_length))
        .gauge_style(Style::default().fg(Color::Magenta))
}

/// Bytes held against tokens held over the run.
fn render_chart(run: Option<&RunView>, area: Rect, buf: &mut Buffer) {
    let points = run.map_or_else(Vec::new, |r| chart_data(r, 2 * area.width as usize));
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let kv = chart::line(
        &points,
        Unit::TOKENS,
        Unit::bytes(max),
        Color::Magenta,
        area.height,
    );
    if let Some(c) = kv {
        c.render(area, buf);
    }
}

/// The cache at the what-if dtype, context and batch, and how many tokens fit in free memory.
fn what_if(state: &AppState, m: &ModelInfo) -> Paragraph<'static> {
    let dtype = state.ui.what_if.dtype;
    let (dname, dbytes) = (dtype.name(), dtype.bytes());
    let ctx = match WHAT_IF_CONTEXTS[state.ui.what_if.context] {
        0 => m.context_length,
        c => c,
    };
    let batch = WHAT_IF_BATCH[state.ui.what_if.batch];
    let full = crate::stats::model_kv_bytes(m, dbytes, ctx, batch);
    // Past the window, a token costs the full layers only.
    let per_tok = match m.sliding {
        Some(w) if ctx > w.window => crate::stats::model_kv_bytes(m, dbytes, ctx + 1, batch) - full,
        _ => crate::stats::model_kv_bytes(m, dbytes, 1, batch),
    };
    let free = state
        .store
        .last_system
        .as_ref()
        .map(|s| s.system_total.saturating_sub(s.system_used));
    let fits = free
        .map(|f| {
            format!(
                "{:.0} tokens fit in the {} free",
                f as f64 / per_tok,
                human_bytes(f)
            )
        })
        .unwrap_or("free memory unknown".into());
    Paragraph::new(vec![
        Line::from(vec![
            Span::styled("what if ", label()),
            Span::raw(format!("{dname} · {ctx} context · batch {batch}: ")),
            Span::styled(human_bytes(full as u64), value()),
            Span::raw(" at full context"),
        ]),
        Line::from(Span::raw(fits)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_per_token_is_measured_between_the_ends() {
        assert_eq!(measured_per_token((10, 1000), (20, 3000)), Some(200.0));
        assert_eq!(measured_per_token((10, 1000), (10, 1000)), None);
        // A cache that shrank (a recording can say so) measures negative growth, not a panic.
        assert_eq!(measured_per_token((10, 3000), (20, 1000)), Some(-200.0));
    }
}
