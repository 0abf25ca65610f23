//! Memory: GPU memory through NVML when an NVIDIA GPU is present, else process RSS and system memory;
//! split into weights / KV / other, over time.

use super::chart::{self, Unit};
use super::{block, label, scraped, value};
use crate::protocol::SystemSample;
use crate::state::{memory_figures, AppState, MemoryFigures};
use crate::stats::human_bytes;
use ratatui::prelude::*;
use ratatui::widgets::Paragraph;

/// The chart's points: the process's resident memory, the newest `n` samples (at most those the
/// store keeps), as (seconds into the session, bytes).
pub fn chart_data(state: &AppState, n: usize) -> Vec<(f64, f64)> {
    let system = &state.store.system;
    system
        .iter()
        .skip(system.len().saturating_sub(n))
        .map(|(at, s)| (at.as_secs_f64(), s.process_rss as f64))
        .collect()
}

/// Which weights run, and the loaded ones kept beside a variant.
fn weights_note(state: &AppState) -> String {
    match &state.store.variant {
        Some(v) if v.kept_bytes > 0 => format!(
            "weights: {} {} + loaded {} kept",
            v.quant,
            human_bytes(v.weight_bytes),
            human_bytes(v.kept_bytes)
        ),
        Some(v) => format!("weights: {}", v.quant),
        None => String::new(),
    }
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let b = block("memory", state.ui.view.focus == crate::state::Focus::Memory);
    let inner = b.inner(area);
    b.render(area, buf);
    // A served model's numbers at the bottom, when its metrics are scraped.
    let inner = match &state.store.last_server {
        Some(srv) => {
            let [rest, bottom] =
                Layout::vertical([Constraint::Min(0), Constraint::Length(2)]).areas(inner);
            Paragraph::new(vec![scraped::kv_line(srv), scraped::throughput_line(state)])
                .render(bottom, buf);
            rest
        }
        None => inner,
    };
    let Some(s) = &state.store.last_system else {
        Paragraph::new("Waiting for the first memory sample …")
            .style(label())
            .render(inner, buf);
        return;
    };
    let [text, chart] = Layout::vertical([Constraint::Length(4), Constraint::Min(1)]).areas(inner);
    numbers(state, s).render(text, buf);
    render_chart(state, chart, buf);
}

/// The GPU's memory, or why none is shown.
fn gpu_line(s: &SystemSample, f: &MemoryFigures) -> String {
    match (&s.gpu, &f.gpu) {
        (Some(g), Some(used)) => format!(
            "GPU {}: {} / {} used{}",
            g.name,
            used.shown(),
            human_bytes(g.total),
            f.gpu_process
                .as_ref()
                .map(|p| format!(", this process {}", p.shown()))
                .unwrap_or_default()
        ),
        _ => "GPU: none found (no NVIDIA driver): CPU memory shown".into(),
    }
}

/// Process RSS, the live heap when counted, and the system's memory.
fn rss_line(s: &SystemSample, f: &MemoryFigures) -> Line<'static> {
    let mut spans = vec![
        Span::styled("process RSS ", label()),
        Span::styled(f.rss.shown(), value()),
    ];
    // Live heap: what is allocated and not freed; RSS also holds what the allocator keeps for
    // reuse. Recordings from before it was counted carry 0.
    if let Some(h) = &f.heap {
        spans.extend([Span::styled("  heap ", label()), Span::raw(h.shown())]);
    }
    spans.extend([
        Span::styled("  system ", label()),
        Span::raw(format!(
            "{} / {}",
            f.system.shown(),
            human_bytes(s.system_total)
        )),
    ]);
    Line::from(spans)
}

/// The four lines over the chart: GPU, RSS, its split into weights, KV and the rest, CPU.
fn numbers(state: &AppState, s: &SystemSample) -> Paragraph<'static> {
    let Some(f) = memory_figures(&state.store) else {
        return Paragraph::default();
    };
    if let Some(m) = state.store.model.as_ref().filter(|m| m.is_remote()) {
        return remote_numbers(s, m, &f);
    }
    let bytes =
        |x: &Option<crate::state::figure::Figure>| x.as_ref().map_or(String::new(), |x| x.shown());
    Paragraph::new(vec![
        Line::styled(gpu_line(s, &f), label()),
        rss_line(s, &f),
        Line::from(vec![
            Span::styled("weights ", Style::default().fg(Color::Blue)),
            Span::raw(f.weights.shown()),
            Span::styled("  KV ", Style::default().fg(Color::Magenta)),
            Span::raw(bytes(&f.kv)),
            Span::styled("  other ", Style::default().fg(Color::Gray)),
            Span::raw(bytes(&f.other)),
        ]),
        Line::styled(
            format!("CPU {}  {}", f.cpu.shown(), weights_note(state)),
            label(),
        ),
    ])
}

/// A remote server's model: this process is the client, so its memory is not the model's; the
/// server's weights are what it said of its file, its KV cache is in its metrics below.
fn remote_numbers(
    s: &SystemSample,
    m: &crate::protocol::ModelInfo,
    f: &MemoryFigures,
) -> Paragraph<'static> {
    let weights = match m.weight_bytes {
        0 => format!("weights on the server {}", super::kv::NOT_KNOWN),
        _ => format!("weights on the server {} (as it says)", f.weights.shown()),
    };
    Paragraph::new(vec![
        Line::styled(gpu_line(s, f), label()),
        rss_line(s, f),
        Line::from(vec![
            Span::styled(weights, Style::default().fg(Color::Blue)),
            Span::styled("  · the RSS above is labtui's, the client's", label()),
        ]),
        Line::styled(format!("CPU {} (this machine)", f.cpu.shown()), label()),
    ])
}

/// RSS over time.
fn render_chart(state: &AppState, area: Rect, buf: &mut Buffer) {
    let points = chart_data(state, 2 * area.width as usize);
    let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
    let rss = chart::line(
        &points,
        Unit::SECONDS,
        Unit::bytes(max),
        Color::Blue,
        area.height,
    );
    if let Some(c) = rss {
        c.render(area, buf);
    }
}
