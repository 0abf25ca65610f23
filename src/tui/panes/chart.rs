//! Line charts with labelled axes, shared by the timing, memory and KV panes: the y range is fitted
//! to the data (its smallest to its largest value and a little margin, not from zero), so that a
//! few percent of variation shows as a line that moves rather than a wall of blocks.

use ratatui::prelude::*;
use ratatui::symbols::Marker;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType};

/// The share of the data's span added above and below it.
const MARGIN: f64 = 0.1;

/// The y range for values from `lo` to `hi`: the span and a tenth of it either side, never below
/// zero when the values are not; a flat series gets a span of 2% of its value (or 1) around it.
pub fn fitted(lo: f64, hi: f64) -> [f64; 2] {
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
    let pad = match hi - lo {
        span if span > 0.0 => span * MARGIN,
        _ if hi != 0.0 => hi.abs() * 0.01,
        _ => 0.5,
    };
    let floor = if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY };
    [(lo - pad).max(floor), hi + pad]
}

/// The smallest and largest of `xs`; `None` when there are none.
fn extent(xs: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    xs.fold(None, |acc, x| match acc {
        None => Some((x, x)),
        Some((lo, hi)) => Some((lo.min(x), hi.max(x))),
    })
}

/// Decimals that tell labels `step` apart.
fn decimals(step: f64) -> usize {
    match step.abs() {
        s if s >= 10.0 => 0,
        s if s >= 1.0 => 1,
        s if s >= 0.1 => 2,
        _ => 3,
    }
}

/// `n` labels evenly over `bounds`, each the value in the unit (`scale` of the data's unit)
/// and the unit's name.
pub fn labels(bounds: [f64; 2], n: usize, unit: Unit) -> Vec<String> {
    let n = n.max(2);
    let step = (bounds[1] - bounds[0]) / unit.scale / (n - 1) as f64;
    let d = if unit.whole { 0 } else { decimals(step) };
    (0..n)
        .map(|i| {
            let v = (bounds[0] + (bounds[1] - bounds[0]) * i as f64 / (n - 1) as f64) / unit.scale;
            format!("{v:.d$} {}", unit.name)
        })
        .collect()
}

/// A unit for bytes up to `max`, and bytes in it.
pub fn byte_unit(max: f64) -> (f64, &'static str) {
    const KIB: f64 = 1024.0;
    match max {
        m if m >= KIB * KIB * KIB => (KIB * KIB * KIB, "GiB"),
        m if m >= KIB * KIB => (KIB * KIB, "MiB"),
        m if m >= KIB => (KIB, "KiB"),
        _ => (1.0, "B"),
    }
}

/// How a chart's axis reads: the unit's name, how much of the data's unit it is ("ms" is 1e-3
/// of a second), and whether it counts whole things (tokens) that take no decimals.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    pub name: &'static str,
    pub scale: f64,
    pub whole: bool,
}

impl Unit {
    pub const MS: Unit = Unit::of("ms", 1e-3);
    pub const SECONDS: Unit = Unit::of("s", 1.0);
    pub const TOKENS: Unit = Unit {
        whole: true,
        ..Unit::of("tok", 1.0)
    };

    pub const fn of(name: &'static str, scale: f64) -> Unit {
        Unit {
            name,
            scale,
            whole: false,
        }
    }

    /// The unit for bytes up to `max`.
    pub fn bytes(max: f64) -> Unit {
        let (scale, name) = byte_unit(max);
        Unit::of(name, scale)
    }
}

/// A line chart of `points` (x, y), `height` rows tall, with both axes labelled in their units
/// (x only from 6 rows up), x over the points' span and y fitted to their values; `None` when
/// there are no points.
pub fn line<'a>(
    points: &'a [(f64, f64)],
    x: Unit,
    y: Unit,
    color: Color,
    height: u16,
) -> Option<Chart<'a>> {
    let (x0, x1) = extent(points.iter().map(|p| p.0))?;
    let (y0, y1) = extent(points.iter().map(|p| p.1))?;
    let xb = if x1 > x0 {
        [x0, x1]
    } else {
        [x0 - 1.0, x1 + 1.0]
    };
    let yb = fitted(y0, y1);
    // The x axis and its labels take two rows: a short chart keeps them for the line. Three y
    // labels where there are rows for them to stand apart.
    let x_labels = if height >= 6 {
        labels(xb, 2, x)
    } else {
        Vec::new()
    };
    let ny = if height >= 7 { 3 } else { 2 };
    let axis = Style::default().fg(Color::DarkGray);
    let dataset = Dataset::default()
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .style(Style::default().fg(color))
        .data(points);
    Some(
        Chart::new(vec![dataset])
            .x_axis(Axis::default().bounds(xb).style(axis).labels(x_labels))
            .y_axis(
                Axis::default()
                    .bounds(yb)
                    .style(axis)
                    .labels(labels(yb, ny, y)),
            ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_fits_the_data_not_zero() {
        let [lo, hi] = fitted(20.0, 22.0);
        assert!(
            (lo - 19.8).abs() < 1e-9 && (hi - 22.2).abs() < 1e-9,
            "{lo} {hi}"
        );
        // Values near zero are not pushed below it; negative values keep their margin.
        assert_eq!(fitted(0.0, 10.0), [0.0, 11.0]);
        assert_eq!(fitted(-10.0, 0.0), [-11.0, 1.0]);
        // A flat series has a span around it; reversed ends are sorted.
        assert_eq!(fitted(100.0, 100.0), [99.0, 101.0]);
        assert_eq!(fitted(0.0, 0.0), [0.0, 0.5]);
        assert_eq!(fitted(22.0, 20.0), fitted(20.0, 22.0));
    }

    #[test]
    fn labels_carry_the_unit_and_enough_decimals() {
        assert_eq!(
            labels([19.8e-3, 22.2e-3], 3, Unit::MS),
            ["19.8 ms", "21.0 ms", "22.2 ms"]
        );
        assert_eq!(labels([0.0, 3.0], 2, Unit::TOKENS), ["0 tok", "3 tok"]);
        assert_eq!(labels([0.0, 3.0], 2, Unit::SECONDS), ["0.0 s", "3.0 s"]);
        assert_eq!(byte_unit(3.0 * 1024.0 * 1024.0), (1024.0 * 1024.0, "MiB"));
        assert_eq!(byte_unit(2e9).1, "GiB");
        assert_eq!(byte_unit(10.0).1, "B");
    }
}
