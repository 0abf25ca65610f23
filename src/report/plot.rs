//! Charts of recordings as PNG and SVG: inter-token latency over tokens and KV cache growth, one
//! series per recording.

use super::run_tokens;
use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// The font the charts use, shipped with labtui (DejaVu Sans, see assets/fonts).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

pub(super) fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Registering a valid font cannot fail; a failure would only lose the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

pub(super) const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One named series of (x, y) points, each optionally labelled on the chart (with `labels`
/// empty, the points are only joined by a line).
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// One label per point, drawn beside it with a dot; empty for none.
    pub labels: Vec<String>,
}

/// Per recording: the decode step time (ms) by token index, and KV MiB by tokens held.
pub fn series(files: &[(String, crate::record::Recording)]) -> (Vec<Series>, Vec<Series>) {
    let (mut itl, mut kv) = (Vec::new(), Vec::new());
    for (name, rec) in files {
        let short = Path::new(name)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(name.clone());
        if let Some((_, tokens)) = run_tokens(rec).into_iter().next() {
            itl.push(Series {
                name: short.clone(),
                points: tokens
                    .iter()
                    .skip(1)
                    .map(|t| (t.index as f64, t.step.as_secs_f64() * 1e3))
                    .collect(),
                labels: Vec::new(),
            });
            kv.push(Series {
                name: short,
                points: tokens
                    .iter()
                    .map(|t| (t.kv_tokens as f64, t.kv_bytes as f64 / (1024.0 * 1024.0)))
                    .collect(),
                labels: Vec::new(),
            });
        }
    }
    (itl, kv)
}

/// Which axes are logarithmic (for values that span decades; points at or below zero are left
/// off a log axis).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Axes {
    pub log_x: bool,
    pub log_y: bool,
    /// Points only, no line joining them (their order means nothing).
    pub scatter: bool,
}

/// A linear range from zero, or a log range over the positive values, with a margin.
fn bounds(values: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let v: Vec<f64> = values
        .filter(|v| v.is_finite() && (!log || *v > 0.0))
        .collect();
    let hi = v.iter().copied().fold(f64::MIN_POSITIVE, f64::max);
    if log {
        let lo = v.iter().copied().fold(hi, f64::min);
        (lo / 1.5, hi * 1.5)
    } else {
        (0.0, hi * 1.1)
    }
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x: &str,
    y: &str,
    series: &[Series],
    axes: Axes,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {title}: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let kept: Vec<Series> = series
        .iter()
        .map(|s| {
            let keep = |p: &(f64, f64)| (!axes.log_x || p.0 > 0.0) && (!axes.log_y || p.1 > 0.0);
            let (points, labels): (Vec<_>, Vec<_>) = s
                .points
                .iter()
                .enumerate()
                .filter(|(_, p)| keep(p))
                .map(|(i, p)| (*p, s.labels.get(i).cloned()))
                .unzip();
            Series {
                name: s.name.clone(),
                points,
                labels: labels.into_iter().flatten().collect(),
            }
        })
        .collect();
    let (x0, x1) = bounds(
        kept.iter().flat_map(|s| s.points.iter().map(|p| p.0)),
        axes.log_x,
    );
    let (y0, y1) = bounds(
        kept.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
        axes.log_y,
    );
    let text = Text3 {
        title,
        x,
        y,
        scatter: axes.scatter,
    };
    match (axes.log_x, axes.log_y) {
        (false, false) => plot(&root, text, &kept, x0..x1, y0..y1),
        (true, false) => plot(&root, text, &kept, (x0..x1).log_scale(), y0..y1),
        (false, true) => plot(&root, text, &kept, x0..x1, (y0..y1).log_scale()),
        (true, true) => plot(
            &root,
            text,
            &kept,
            (x0..x1).log_scale(),
            (y0..y1).log_scale(),
        ),
    }?;
    root.present().map_err(e)?;
    Ok(())
}

/// A chart's title and axis labels.
#[derive(Clone, Copy)]
struct Text3<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
    scatter: bool,
}

/// Few points are drawn as dots too, so a line between two measurements is not read as data.
const DOTS_BELOW: usize = 40;

fn plot<DB, X, Y>(
    root: &DrawingArea<DB, Shift>,
    t: Text3,
    series: &[Series],
    xr: X,
    yr: Y,
) -> Result<()>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: AsRangedCoord<Value = f64>,
    Y: AsRangedCoord<Value = f64>,
    X::CoordDescType: ValueFormatter<f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {}: {e:?}", t.title);
    let mut chart = ChartBuilder::on(root)
        .caption(t.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(xr, yr)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(t.x)
        .y_desc(t.y)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        if t.scatter {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(e)?
                .label(s.name.clone())
                .legend(move |(x, y)| Circle::new((x + 9, y), 4, color.filled()));
        } else {
            chart
                .draw_series(LineSeries::new(
                    s.points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(e)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
        }
        if s.labels.is_empty() && s.points.len() < DOTS_BELOW {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(e)?;
        }
        chart
            .draw_series(s.points.iter().zip(&s.labels).map(|(&p, label)| {
                EmptyElement::at(p)
                    + Circle::new((0, 0), 4, color.filled())
                    + Text::new(label.clone(), (6, -16), ("sans-serif", 13))
            }))
            .map_err(e)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    Ok(())
}

/// Write `itl.png`, `itl.svg`, `kv.png` and `kv.svg` into `dir`; returns the files written.
pub fn write(
    dir: &Path,
    files: &[(String, crate::record::Recording)],
) -> Result<Vec<std::path::PathBuf>> {
    register_font();
    std::fs::create_dir_all(dir)?;
    let (itl, kv) = series(files);
    let charts = [
        (
            "itl",
            "Inter-token latency",
            "token",
            "step time (ms)",
            &itl,
        ),
        (
            "kv",
            "KV cache growth",
            "tokens held",
            "KV cache (MiB)",
            &kv,
        ),
    ];
    let mut written = Vec::new();
    for (stem, title, x, y, s) in charts {
        let png = dir.join(format!("{stem}.png"));
        draw(
            BitMapBackend::new(&png, (960, 540)).into_drawing_area(),
            title,
            x,
            y,
            s,
            Axes::default(),
        )?;
        let svg = dir.join(format!("{stem}.svg"));
        draw(
            SVGBackend::new(&svg, (960, 540)).into_drawing_area(),
            title,
            x,
            y,
            s,
            Axes::default(),
        )?;
        written.extend([png, svg]);
    }
    Ok(written)
}

/// Write one chart of `series` as `STEM.png` and `STEM.svg` into `dir`; returns the files.
pub fn chart(
    dir: &Path,
    stem: &str,
    title: &str,
    x: &str,
    y: &str,
    series: &[Series],
    axes: Axes,
) -> Result<Vec<std::path::PathBuf>> {
    register_font();
    std::fs::create_dir_all(dir)?;
    let png = dir.join(format!("{stem}.png"));
    draw(
        BitMapBackend::new(&png, (960, 540)).into_drawing_area(),
        title,
        x,
        y,
        series,
        axes,
    )?;
    let svg = dir.join(format!("{stem}.svg"));
    draw(
        SVGBackend::new(&svg, (960, 540)).into_drawing_area(),
        title,
        x,
        y,
        series,
        axes,
    )?;
    Ok(vec![png, svg])
}
