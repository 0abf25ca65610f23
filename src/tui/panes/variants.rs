//! The variants overlay: every weight type and KV dtype tried in this session, side by side —
//! weight bytes, the last plain run's prefill and decode speed, and the quality measured.

use super::block;
use crate::state::{AppState, VariantRow};
use crate::stats::human_bytes;
use ratatui::prelude::*;
use ratatui::widgets::{Cell, Clear, Paragraph, Row, Table, Wrap};

const HEADER: [&str; 10] = [
    "type",
    "KV",
    "weights",
    "KV/token",
    "fallbacks",
    "prefill",
    "decode",
    "perplexity",
    "mean KL",
    "top-1",
];

fn opt(x: Option<f64>, f: impl Fn(f64) -> String) -> String {
    x.map(f).unwrap_or_else(|| "–".into())
}

/// The table's cells for one variant.
pub fn cells(r: &VariantRow) -> [String; 10] {
    let q = r.quality.as_ref();
    [
        r.mix.clone().unwrap_or_else(|| r.quant.to_string()),
        r.kv_dtype.to_string(),
        human_bytes(r.weight_bytes),
        human_bytes(r.kv_bytes_per_token),
        if r.fallbacks == 0 {
            "–".into()
        } else {
            r.fallbacks.to_string()
        },
        opt(r.prefill_tok_s, |v| format!("{v:.1} tok/s")),
        opt(r.decode_tok_s, |v| format!("{v:.1} tok/s")),
        opt(q.map(|q| q.perplexity), |v| {
            if v < 1e4 {
                format!("{v:.3}")
            } else {
                format!("{v:.2e}")
            }
        }),
        opt(q.map(|q| q.mean_kl), |v| format!("{v:.4}")),
        opt(q.map(|q| q.top1), |v| format!("{:.1}%", v * 100.0)),
    ]
}

fn running(state: &AppState, r: &VariantRow) -> bool {
    let (q, kv) = state.store.running_variant();
    r.quant == q && r.kv_dtype == kv && r.mix == state.store.running_mix()
}

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    let r = super::centered(area, 118, state.store.variants.len() as u16 + 9);
    Clear.render(r, buf);
    let b = block(
        "variants tried · u type · V KV dtype · Q measure quality · w close",
        true,
    );
    let inner = b.inner(r);
    b.render(r, buf);
    let [table, notes_area] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(4)]).areas(inner);
    Widget::render(variants_table(state), table, buf);
    Paragraph::new(notes(state))
        .style(Style::default().fg(Color::Gray))
        .wrap(Wrap { trim: true })
        .render(notes_area, buf);
}

/// One row per variant tried, the running one highlighted.
fn variants_table(state: &AppState) -> Table<'static> {
    let rows = state.store.variants.iter().map(|v| {
        let style = if running(state, v) {
            Style::default()
                .fg(Color::Cyan)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default()
        };
        Row::new(cells(v).map(Cell::from)).style(style)
    });
    let widths = [
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(11),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(14),
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(7),
    ];
    Table::new(rows, widths).header(Row::new(HEADER).style(Style::default().fg(Color::Gray)))
}

/// The running variant's weights by type, its fallbacks, the kept weights, and where the
/// numbers come from.
fn notes(state: &AppState) -> String {
    let fallbacks = state
        .store
        .variant
        .as_ref()
        .map(|v| {
            v.fallbacks
                .iter()
                .map(|f| format!("{}→{} ×{} ({})", f.wanted, f.used, f.tensors, f.why))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|s| !s.is_empty())
        .map(|s| format!("Fallbacks now: {s}. "))
        .unwrap_or_default();
    let kept = state
        .store
        .variant
        .as_ref()
        .filter(|v| v.kept_bytes > 0)
        .map(|v| {
            format!(
                "The loaded weights ({}) are kept to switch back to. ",
                human_bytes(v.kept_bytes)
            )
        })
        .unwrap_or_default();
    let by_type = state
        .store
        .model
        .as_ref()
        .map(|m| {
            m.weight_types
                .iter()
                .map(|(t, s)| format!("{t} {} ×{}", human_bytes(s.bytes), s.tensors))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .map(|s| format!("Weights now by type: {s}. "))
        .unwrap_or_default();
    format!(
        "{by_type}{fallbacks}{kept}Speeds are the last plain run's; quality is on labtui's own sources, KL and top-1 against the loaded weights."
    )
}
