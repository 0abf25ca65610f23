//! The sensitivity heat map as PNG and SVG: one row per layer (and one for the embeddings and
//! the head), one column per kind of matrix, each cell coloured by the mean KL divergence its
//! matrix alone at the low type causes, on a log scale, with its value written in it.

use super::plot::register_font;
use crate::protocol::sensitivity::SensMap;
use crate::protocol::Quant;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

/// The colour of `t` in 0..=1 on a dark-blue → yellow ramp (viridis's end points and middle).
pub fn ramp(t: f64) -> (u8, u8, u8) {
    const STOPS: [(f64, (f64, f64, f64)); 5] = [
        (0.0, (68.0, 1.0, 84.0)),
        (0.25, (59.0, 82.0, 139.0)),
        (0.5, (33.0, 145.0, 140.0)),
        (0.75, (94.0, 201.0, 98.0)),
        (1.0, (253.0, 231.0, 37.0)),
    ];
    let t = t.clamp(0.0, 1.0);
    let i = STOPS.iter().rposition(|(s, _)| *s <= t).unwrap_or(0).min(3);
    let (s0, a) = STOPS[i];
    let (s1, b) = STOPS[i + 1];
    let f = (t - s0) / (s1 - s0);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The log10 range of the map's KLs at `quant` (lowest, highest), for the colour scale.
pub fn kl_range(map: &SensMap, quant: Quant) -> Option<(f64, f64)> {
    let logs: Vec<f64> = map
        .cells
        .iter()
        .filter(|c| c.quant == quant && c.kl > 0.0)
        .map(|c| c.kl.log10())
        .collect();
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo.is_finite()).then_some((lo, hi.max(lo + 1e-9)))
}

/// Where `kl` sits in `range`, 0..=1.
pub fn scale(kl: f64, (lo, hi): (f64, f64)) -> f64 {
    if kl <= 0.0 {
        return 0.0;
    }
    ((kl.log10() - lo) / (hi - lo)).clamp(0.0, 1.0)
}

/// `0.0123` → `12.3`: KL in thousandths of a nat, as the cells show it.
pub fn milli(kl: f64) -> String {
    let m = kl * 1e3;
    if m > 0.0 && m < 0.01 {
        format!("{m:.1e}")
    } else if m >= 100.0 {
        format!("{m:.0}")
    } else if m >= 10.0 {
        format!("{m:.1}")
    } else {
        format!("{m:.2}")
    }
}

fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    map: &SensMap,
    quant: Quant,
    subtitle: &str,
) -> Result<()> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the heat map: {e}");
    area.fill(&WHITE).map_err(e)?;
    let rows = map.rows();
    let cols = rows.iter().map(|(_, p)| p.len()).max().unwrap_or(1);
    let (w, h) = area.dim_in_pixel();
    let (left, top, right, bottom) = (110i32, 84i32, 130i32, 30i32);
    let cw = (w as i32 - left - right) / cols as i32;
    let ch = ((h as i32 - top - bottom) / rows.len().max(1) as i32).max(8);
    draw_titles(&area, map, quant, subtitle)?;
    let range = kl_range(map, quant).unwrap_or((-6.0, 0.0));
    let font = ("sans-serif", (ch - 4).clamp(8, 14));
    if let Some((_, parts)) = rows.first() {
        draw_heads(&area, parts, left, top, cw)?;
    }
    for (r, (label, parts)) in rows.iter().enumerate() {
        let y = top + r as i32 * ch;
        area.draw(&Text::new(label.clone(), (10, y + 2), font))
            .map_err(e)?;
        for (c, part) in parts.iter().enumerate() {
            let x = left + c as i32 * cw;
            let cell = map.cell(*part, quant);
            let (fill, text) = match cell {
                Some(cell) => {
                    let (r, g, b) = ramp(scale(cell.kl, range));
                    (RGBColor(r, g, b), milli(cell.kl))
                }
                None => (RGBColor(225, 225, 225), "—".to_string()),
            };
            area.draw(&Rectangle::new(
                [(x, y), (x + cw - 1, y + ch - 1)],
                fill.filled(),
            ))
            .map_err(e)?;
            let light = cell.is_some_and(|c| scale(c.kl, range) < 0.6);
            let color = if light { WHITE } else { BLACK };
            let label = if rows.len() > 1 && r + 1 == rows.len() && part.layer.is_none() {
                format!("{} {text}", part.kind.name())
            } else {
                text
            };
            area.draw(&Text::new(
                label,
                (x + 4, y + 2),
                font.into_font().color(&color),
            ))
            .map_err(e)?;
        }
    }
    draw_scale(
        &area,
        range,
        (w as i32 - right + 20, top, (rows.len() as i32 * ch).max(40)),
    )?;
    area.present().map_err(e)?;
    Ok(())
}

/// The title and the subtitle's lines.
fn draw_titles<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    map: &SensMap,
    quant: Quant,
    subtitle: &str,
) -> Result<()> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the heat map: {e}");
    let title = format!(
        "{} · mean KL (10⁻³ nats) with one matrix alone at {quant}",
        map.plan.model
    );
    let lines = std::iter::once((title.as_str(), 8, 20)).chain(
        subtitle
            .lines()
            .take(2)
            .zip([32, 47])
            .map(|(l, y)| (l, y, 12)),
    );
    for (text, y, size) in lines {
        area.draw(&Text::new(text.to_string(), (10, y), ("sans-serif", size)))
            .map_err(e)?;
    }
    Ok(())
}

/// The kinds' names over the columns.
fn draw_heads<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    parts: &[crate::protocol::sensitivity::Part],
    left: i32,
    top: i32,
    cw: i32,
) -> Result<()> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the heat map: {e}");
    for (c, part) in parts.iter().enumerate() {
        let x = left + c as i32 * cw;
        area.draw(&Text::new(
            part.kind.name(),
            (x + 4, top - 18),
            ("sans-serif", 13),
        ))
        .map_err(e)?;
    }
    Ok(())
}

/// The colour scale at (x, y), `h` pixels high, labelled at its ends and middle.
fn draw_scale<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    range: (f64, f64),
    (bx, by, bh): (i32, i32, i32),
) -> Result<()> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the heat map: {e}");
    for i in 0..bh {
        let (r, g, b) = ramp(1.0 - i as f64 / bh as f64);
        area.draw(&Rectangle::new(
            [(bx, by + i), (bx + 18, by + i + 1)],
            RGBColor(r, g, b).filled(),
        ))
        .map_err(e)?;
    }
    for (t, v) in [
        (1.0, range.1),
        (0.5, (range.0 + range.1) / 2.0),
        (0.0, range.0),
    ] {
        let y = by + ((1.0 - t) * (bh - 12) as f64) as i32;
        area.draw(&Text::new(
            milli(10f64.powf(v)),
            (bx + 24, y),
            ("sans-serif", 12),
        ))
        .map_err(e)?;
    }
    Ok(())
}

/// A heat map per type the map has cells of, `heatmap-TYPE.png` and `.svg` in `dir`, under a
/// subtitle that says the text, the loaded perplexity and weights, and the map's stamp.
pub fn write_all(dir: &Path, map: &SensMap) -> Result<Vec<PathBuf>> {
    let stamp = map
        .plan
        .stamp
        .as_deref()
        .map(crate::report::stamp::short)
        .unwrap_or_default();
    let subtitle = format!(
        "{} positions of labtui's sources · perplexity {} as loaded · weights {:.1} MiB\n{stamp}",
        map.plan.scored,
        crate::stats::sig(map.plan.perplexity),
        map.plan.weight_bytes as f64 / (1024.0 * 1024.0),
    );
    let mut files = Vec::new();
    for &q in &map.plan.types {
        if map.cells.iter().any(|c| c.quant == q) {
            let stem = format!(
                "heatmap-{}",
                crate::protocol::Setting::name(q).to_lowercase()
            );
            files.extend(write(dir, &stem, map, q, &subtitle)?);
        }
    }
    Ok(files)
}

/// Write `STEM.png` and `STEM.svg` into `dir`: the map at `quant`, with `subtitle` (the stamp's
/// line) under the title. Returns the files.
pub fn write(
    dir: &Path,
    stem: &str,
    map: &SensMap,
    quant: Quant,
    subtitle: &str,
) -> Result<Vec<PathBuf>> {
    register_font();
    std::fs::create_dir_all(dir)?;
    let rows = map.rows().len() as u32;
    let size = (1000, 124 + rows.max(4) * 22);
    let png = dir.join(format!("{stem}.png"));
    draw(
        BitMapBackend::new(&png, size).into_drawing_area(),
        map,
        quant,
        subtitle,
    )?;
    let svg = dir.join(format!("{stem}.svg"));
    draw(
        SVGBackend::new(&svg, size).into_drawing_area(),
        map,
        quant,
        subtitle,
    )?;
    Ok(vec![png, svg])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_runs_dark_to_light_and_the_scale_is_logarithmic() {
        let lum = |t| {
            let (r, g, b) = ramp(t);
            0.3 * r as f64 + 0.59 * g as f64 + 0.11 * b as f64
        };
        assert!((0..10).all(|i| lum(i as f64 / 10.0) < lum((i + 1) as f64 / 10.0)));
        assert_eq!(ramp(0.0), (68, 1, 84));
        assert_eq!(ramp(1.0), (253, 231, 37));
        let r = (-4.0, -2.0);
        assert_eq!(scale(1e-4, r), 0.0);
        assert!((scale(1e-3, r) - 0.5).abs() < 1e-9);
        assert_eq!(scale(1.0, r), 1.0);
        assert_eq!(milli(0.01234), "12.3");
        assert_eq!(milli(0.000456), "0.46");
        assert_eq!(milli(2e-9), "2.0e-6");
    }
}
