//! Charts of recordings as PNG and SVG: inter-token latency over tokens and KV cache growth, one
//! series per recording.

use super::run_tokens;
use anyhow::{anyhow, Result};
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

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x: &str,
    y: &str,
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {title}: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let xmax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let ymax = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .fold(1e-9, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc(x)
        .y_desc(y)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(e)?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
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
    root.present().map_err(e)?;
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
        )?;
        let svg = dir.join(format!("{stem}.svg"));
        draw(
            SVGBackend::new(&svg, (960, 540)).into_drawing_area(),
            title,
            x,
            y,
            s,
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
    )?;
    let svg = dir.join(format!("{stem}.svg"));
    draw(
        SVGBackend::new(&svg, (960, 540)).into_drawing_area(),
        title,
        x,
        y,
        series,
    )?;
    Ok(vec![png, svg])
}
