//! The sensitivity heat map in the terminal: a progress line (cells, ETA, the worst so far),
//! then one row per layer and one column per kind of matrix, each cell coloured by its KL on
//! the same log scale as the PNG and SVG, its value written in it. It fills in as the sweep's
//! events arrive.

use super::label;
use crate::protocol::sensitivity::{SensMap, TensorKind};
use crate::protocol::Quant;
use crate::report::heatmap::{kl_range, milli, ramp, scale};
use ratatui::prelude::*;

/// The type the map is drawn at: the first of the sweep's types with a cell measured.
pub fn shown_type(map: &SensMap) -> Option<Quant> {
    map.plan
        .types
        .iter()
        .copied()
        .find(|q| map.cells.iter().any(|c| c.quant == *q))
        .or(map.plan.types.first().copied())
}

/// The progress line: cells done, time left, the most sensitive matrix so far.
pub fn progress_line(map: &SensMap) -> String {
    let (done, total) = map.progress();
    let eta = match (map.took, map.eta()) {
        (Some(t), _) => format!("done in {}", crate::stats::human_secs(t)),
        (None, Some(e)) => format!("ETA {}", crate::stats::human_secs(e)),
        (None, None) => "measuring …".into(),
    };
    let worst = map
        .cells
        .iter()
        .max_by(|a, b| a.kl.total_cmp(&b.kl))
        .map(|c| {
            format!(
                " · worst {} at {} ({})",
                c.part.label(),
                c.quant,
                milli(c.kl)
            )
        })
        .unwrap_or_default();
    format!("cells {done}/{total} · {eta}{worst}")
}

pub fn render(map: &SensMap, area: Rect, buf: &mut Buffer) {
    if area.height < 3 || area.width < 20 {
        return;
    }
    let Some(q) = shown_type(map) else { return };
    let (done, total) = map.progress();
    let bar_w = area.width.saturating_sub(2) as usize;
    let filled = (bar_w * done).checked_div(total).unwrap_or(0);
    let bar = format!("{}{}", "█".repeat(filled), "░".repeat(bar_w - filled));
    buf.set_string(area.x, area.y, progress_line(map), label());
    buf.set_string(area.x, area.y + 1, bar, Style::default().fg(Color::Cyan));
    let range = kl_range(map, q).unwrap_or((-6.0, 0.0));
    let lab_w = 12u16;
    let cols = TensorKind::LAYER.len() as u16;
    let cw = ((area.width.saturating_sub(lab_w)) / cols).clamp(4, 10);
    let head_y = area.y + 2;
    buf.set_string(
        area.x,
        head_y,
        format!("{q} ×10⁻³"),
        label().add_modifier(Modifier::BOLD),
    );
    for (i, k) in TensorKind::LAYER.iter().enumerate() {
        let x = area.x + lab_w + i as u16 * cw;
        let name: String = k.name().chars().take(cw as usize - 1).collect();
        buf.set_string(x, head_y, name, label());
    }
    let rows = map.rows();
    let room = area.height.saturating_sub(3) as usize;
    for (r, (name, parts)) in rows.iter().enumerate().take(room) {
        let y = head_y + 1 + r as u16;
        let more = r + 1 == room && rows.len() > room;
        let name = if more {
            format!("+{} rows", rows.len() - room + 1)
        } else {
            name.clone()
        };
        buf.set_string(
            area.x,
            y,
            name.chars().take(lab_w as usize - 1).collect::<String>(),
            label(),
        );
        if more {
            continue;
        }
        for (i, p) in parts.iter().enumerate() {
            let x = area.x + lab_w + i as u16 * cw;
            let (style, text) = match map.cell(*p, q) {
                Some(c) => {
                    let t = scale(c.kl, range);
                    let (r, g, b) = ramp(t);
                    let fg = if t < 0.6 { Color::White } else { Color::Black };
                    (Style::default().bg(Color::Rgb(r, g, b)).fg(fg), milli(c.kl))
                }
                None => (Style::default().fg(Color::DarkGray), "·".into()),
            };
            let text = if p.layer.is_none() {
                format!("{} {text}", &p.kind.name()[..1])
            } else {
                text
            };
            let cell: String = format!("{text:<w$}", w = cw as usize - 1)
                .chars()
                .take(cw as usize - 1)
                .collect();
            buf.set_string(x, y, cell, style);
        }
    }
}
