//! The throughput–latency curve: one point per measured level (output tok/s against E2E p50),
//! a line per endpoint, growing as levels finish; axes fitted to the points.

use super::super::label;
use crate::protocol::serve::LevelSummary;
use ratatui::prelude::*;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Wrap};

/// Colours of the endpoints, in the order they were first measured (the levels table uses them).
pub const COLORS: [Color; 4] = [Color::Cyan, Color::Yellow, Color::Magenta, Color::Green];

/// One endpoint's levels as (E2E p50 in ms, output tok/s), by latency.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub endpoint: String,
    pub points: Vec<(f64, f64)>,
}

/// The curve's points, a series per endpoint (first measured first). A level with no successful
/// request has no latency and gives no point.
pub fn series(levels: &[LevelSummary]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    for l in levels.iter().filter(|l| l.ok > 0) {
        let point = (l.e2e.p50.as_secs_f64() * 1e3, l.output_tok_s);
        match out.iter_mut().find(|s| s.endpoint == l.endpoint) {
            Some(s) => s.points.push(point),
            None => out.push(Series {
                endpoint: l.endpoint.clone(),
                points: vec![point],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// Round multiples of a power of ten an axis may end on: at most a quarter above the data.
const STEPS: [f64; 11] = [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0];

/// The smallest round number ([`STEPS`] × 10ᵏ) at or above `x` (1 for nothing to fit), so that
/// axis labels are round numbers.
pub fn nice_ceiling(x: f64) -> f64 {
    if !x.is_finite() || x <= 0.0 {
        return 1.0;
    }
    let scale = 10f64.powf(x.log10().floor());
    STEPS
        .iter()
        .map(|m| m * scale)
        .find(|v| *v >= x * (1.0 - 1e-12))
        .unwrap_or(10.0 * scale)
}

/// Axis bounds from zero to a round number above the largest x and y, with room above the top
/// point.
pub fn bounds(series: &[Series]) -> ([f64; 2], [f64; 2]) {
    let max = |f: fn(&(f64, f64)) -> f64| {
        series
            .iter()
            .flat_map(|s| s.points.iter().map(f))
            .filter(|v| v.is_finite())
            .fold(0.0, f64::max)
    };
    (
        [0.0, nice_ceiling(max(|p| p.0) * 1.05)],
        [0.0, nice_ceiling(max(|p| p.1) * 1.1)],
    )
}

/// A label of an axis value: whole above 10, else with one decimal.
fn tick(v: f64, unit: &str) -> Span<'static> {
    let n = if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    };
    Span::styled(format!("{n}{unit}"), label())
}

/// Draw the curve, or say what will be drawn while no level has finished.
pub fn render(levels: &[LevelSummary], area: Rect, buf: &mut Buffer) {
    let series = series(levels);
    if series.is_empty() {
        Paragraph::new(
            "throughput against latency: a point per level (output tok/s against E2E p50) \
             appears here as each level finishes",
        )
        .style(label())
        .wrap(Wrap { trim: true })
        .render(area, buf);
        return;
    }
    let (x, y) = bounds(&series);
    let named = series.len() > 1;
    let mut sets = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let style = Style::default().fg(COLORS[i % COLORS.len()]);
        let line = Dataset::default()
            .marker(symbols::Marker::Braille)
            .graph_type(GraphType::Line)
            .style(style)
            .data(&s.points);
        sets.push(if named {
            line.name(s.endpoint.clone())
        } else {
            line
        });
        // The levels themselves, bold over the line.
        sets.push(
            Dataset::default()
                .marker(symbols::Marker::Dot)
                .graph_type(GraphType::Scatter)
                .style(style.add_modifier(Modifier::BOLD))
                .data(&s.points),
        );
    }
    let ticks =
        |[lo, hi]: [f64; 2], unit: &str| vec![tick(lo, ""), tick(hi / 2.0, unit), tick(hi, unit)];
    Chart::new(sets)
        .x_axis(
            Axis::default()
                .title(Span::styled("E2E p50 (ms)", label()))
                .bounds(x)
                .labels(ticks(x, " ms")),
        )
        .y_axis(
            Axis::default()
                .title(Span::styled("output tok/s", label()))
                .bounds(y)
                .labels(ticks(y, "")),
        )
        .render(area, buf);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers_above_the_data() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(0.7), 0.8);
        assert_eq!(nice_ceiling(1.0), 1.0);
        assert_eq!(nice_ceiling(1.3), 1.5);
        assert_eq!(nice_ceiling(47.0), 50.0);
        assert_eq!(nice_ceiling(201.6), 250.0);
        assert_eq!(nice_ceiling(801.0), 1000.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        let s = vec![Series {
            endpoint: "a".into(),
            points: vec![(120.0, 54.8), (260.0, 66.8)],
        }];
        // 260 ms × 1.05 = 273 → 300; 66.8 tok/s × 1.1 = 73.5 → 80.
        assert_eq!(bounds(&s), ([0.0, 300.0], [0.0, 80.0]));
    }
}
