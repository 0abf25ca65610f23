//! A served model's own numbers (its `/metrics`, scraped into [`ServerSample`]s) as the KV,
//! memory and speculation panes show them: lines and a view that draw from the store only.

use super::{label, value};
use crate::protocol::ServerSample;
use crate::state::figure::Figure;
use crate::state::AppState;
use crate::state::{server_figures, server_gauges as gauges};
use ratatui::prelude::*;
use ratatui::widgets::{Gauge, Paragraph, Sparkline};

/// A share 0 to 1 as a percentage; "—" for what cannot be one.
pub fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}%", x.clamp(0.0, 1.0) * 100.0)
    } else {
        "—".into()
    }
}

/// A count or a rate, whole.
pub fn whole(x: f64) -> String {
    if x.is_finite() {
        format!("{:.0}", x.max(0.0))
    } else {
        "—".into()
    }
}

/// A figure as drawn, or `—` where the server exports none.
fn shown(f: &Option<Figure>) -> String {
    f.as_ref().map_or("—".into(), Figure::shown)
}

/// `server vLLM · KV cache 42% · 1234 tokens · running 3 · waiting 1`
pub fn kv_line(s: &ServerSample) -> Line<'static> {
    let f = gauges(s);
    let mut spans = vec![
        Span::styled("server ", label()),
        Span::styled(s.engine.to_string(), value()),
        Span::styled(" · KV cache ", label()),
        Span::styled(
            f.kv_usage.as_ref().map_or("n/a".into(), Figure::shown),
            Style::default().fg(Color::Magenta),
        ),
    ];
    if let Some(t) = &f.kv_tokens {
        spans.push(Span::styled(format!(" · {} tokens", t.shown()), label()));
    }
    spans.extend([
        Span::styled(" · running ", label()),
        Span::styled(shown(&f.running), value()),
        Span::styled(" · waiting ", label()),
        Span::styled(shown(&f.waiting), value()),
    ]);
    Line::from(spans)
}

/// `generation 1234 tok/s · prompt 567 tok/s · prefix cache hits 43%`: counters' rates over the
/// last seconds, else the server's own gauges.
pub fn throughput_line(state: &AppState) -> Line<'static> {
    let f = server_figures(&state.store).unwrap_or_default();
    Line::from(vec![
        Span::styled("generation ", label()),
        Span::styled(shown(&f.generation), value()),
        Span::styled(" · prompt ", label()),
        Span::styled(shown(&f.prompt), value()),
        Span::styled(" · prefix cache hits ", label()),
        Span::styled(shown(&f.prefix_hits), value()),
    ])
}

/// The KV pane of a session with no local model: the server's KV-cache use, now and over time
/// (its running requests where it exports no KV usage), on the session's clock.
pub fn kv_view(state: &AppState, s: &ServerSample, area: Rect, buf: &mut Buffer) {
    let [line, gauge, caption, chart] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(1),
    ])
    .areas(area);
    Paragraph::new(kv_line(s)).render(line, buf);
    let samples = state
        .store
        .server
        .iter()
        .rev()
        .take(chart.width as usize)
        .rev();
    let (data, max, what): (Vec<u64>, Option<u64>, &str) = match s.kv_usage {
        Some(u) => {
            Gauge::default()
                .ratio(if u.is_finite() {
                    u.clamp(0.0, 1.0)
                } else {
                    0.0
                })
                .label(format!("server KV cache {}", pct(u)))
                .gauge_style(Style::default().fg(Color::Magenta))
                .render(gauge, buf);
            let data = samples
                .map(|x| (x.kv_usage.unwrap_or(0.0).clamp(0.0, 1.0) * 1000.0) as u64)
                .collect();
            (
                data,
                Some(1000),
                "KV cache use over time (full height: 100%)",
            )
        }
        None => {
            Paragraph::new(format!(
                "{} exports no KV-cache usage: running requests shown",
                s.engine
            ))
            .style(label())
            .render(gauge, buf);
            let data = samples
                .map(|x| {
                    x.running
                        .filter(|r| r.is_finite())
                        .map_or(0, |r| r.max(0.0) as u64)
                })
                .collect();
            (data, None, "running requests over time")
        }
    };
    Paragraph::new(what).style(label()).render(caption, buf);
    let mut spark = Sparkline::default()
        .data(&data)
        .style(Style::default().fg(Color::Magenta));
    if let Some(max) = max {
        spark = spark.max(max);
    }
    spark.render(chart, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_counts_never_print_nonsense() {
        assert_eq!(pct(0.426), "43%");
        assert_eq!(pct(1.7), "100%");
        assert_eq!(pct(f64::NAN), "—");
        assert_eq!(whole(-3.0), "0");
        assert_eq!(whole(f64::INFINITY), "—");
    }
}
