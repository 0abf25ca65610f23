//! The batching scheduler's view: the running and waiting queues, one timeline row per request
//! (queued, prefill, decode, done, by step), the KV block map (which request holds how many
//! blocks, and the free ones), what the running requests' KV reserves paged against contiguous
//! allocation of their maximum lengths, and the live throughput and latencies (TTFT, E2E), all
//! from [`crate::state::SchedView`].

use super::{block, label, value};
use crate::engine::sched::{ReqState, ReqView};
use crate::state::{AppState, SchedView};
use ratatui::prelude::*;
use ratatui::widgets::{Paragraph, Wrap};

/// Timeline glyphs: waiting, prefill, decode, the step it finished.
const QUEUED: char = '·';
const PREFILL: char = '▒';
const DECODE: char = '█';
const DONE: char = '┃';
const FREE: char = '·';
const OWNER_COLORS: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::Green,
    Color::Magenta,
    Color::Blue,
    Color::Red,
];

pub fn render(state: &AppState, area: Rect, buf: &mut Buffer) {
    if state.store.model.as_ref().is_some_and(|m| m.is_remote()) && state.store.sched.step() == 0 {
        return remote(state, area, buf);
    }
    let v = &state.store.sched;
    let title = title(v);
    let b = block(&title, true);
    let inner = b.inner(area);
    b.render(area, buf);
    let [queues, right] =
        Layout::horizontal([Constraint::Length(26), Constraint::Min(20)]).areas(inner);
    let [timeline, blocks] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(block_rows(v, right))])
            .areas(right);
    queue_par(v, queues.height as usize).render(queues, buf);
    render_timeline(v, timeline, buf);
    render_blocks(v, blocks, buf);
}

/// A remote server schedules its own requests: what its metrics say of them, else that it is
/// not known.
fn remote(state: &AppState, area: Rect, buf: &mut Buffer) {
    let b = block("scheduler · the server's", true);
    let inner = b.inner(area);
    b.render(area, buf);
    let mut lines = vec![Line::styled(
        format!(
            "Queues, steps and KV blocks are the server's: {}.",
            super::kv::NOT_KNOWN
        ),
        super::label(),
    )];
    if let Some(s) = &state.store.last_server {
        lines.push(super::scraped::kv_line(s));
        lines.push(super::scraped::throughput_line(state));
    }
    Paragraph::new(lines)
        .wrap(ratatui::widgets::Wrap { trim: true })
        .render(inner, buf);
}

fn title(v: &SchedView) -> String {
    let f = v.figures();
    let prefix = f
        .prefix_hits
        .map_or(String::new(), |r| format!(" · prefix hits {}", r.shown()));
    format!(
        "scheduler · step {} · running {} · waiting {} · KV blocks {}/{} · {} · {} preempted{prefix}",
        v.step(),
        v.ids(|s| s == ReqState::Running).len(),
        v.ids(|s| s == ReqState::Waiting).len(),
        f.blocks.shown(),
        v.blocks_total(),
        f.tok_s.map_or("– tok/s".into(), |r| r.shown()),
        v.preemptions
    )
}

/// The running queue, then the waiting one, oldest first, as many as fit.
fn queue_par(v: &SchedView, height: usize) -> Paragraph<'static> {
    let running = v.ids(|s| s == ReqState::Running);
    let waiting = v.ids(|s| s == ReqState::Waiting);
    let half = height.saturating_sub(2) / 2;
    let mut lines = vec![Line::styled(
        format!("running ({})", running.len()),
        label(),
    )];
    for id in running.iter().take(half) {
        let r = &v.replay.reqs[id];
        let kv = v.kv.get(id).copied().unwrap_or(0);
        lines.push(Line::from(vec![
            Span::styled(format!(" #{id:<4}"), owner_style(*id)),
            Span::styled(
                format!("{:>4}/{:<4} kv {kv}", r.tokens.len(), r.max_tokens),
                value(),
            ),
        ]));
    }
    if running.len() > half {
        lines.push(Line::styled(format!(" +{}", running.len() - half), label()));
    }
    lines.push(Line::styled(
        format!("waiting ({})", waiting.len()),
        label(),
    ));
    let room = height.saturating_sub(lines.len());
    for id in waiting.iter().take(room) {
        let r = &v.replay.reqs[id];
        let again = if r.preemptions > 0 { " preempted" } else { "" };
        lines.push(Line::styled(
            format!(" #{id:<4} prompt {}{again}", r.prompt_tokens),
            label(),
        ));
    }
    Paragraph::new(lines)
}

fn owner_style(id: u64) -> Style {
    Style::default().fg(OWNER_COLORS[id as usize % OWNER_COLORS.len()])
}

/// The character a request's blocks are drawn with: its id's last base-36 digit.
fn owner_char(id: u64) -> char {
    char::from_digit((id % 36) as u32, 36).unwrap_or('?')
}

/// Where step `s` falls in `width` columns over steps `from..=to`.
/// The steps column `c` of `width` shows, when steps `from..=to` span the row: `lo..hi`, at least
/// one step (when the steps are fewer than the columns, a step fills several columns).
fn column_steps(c: usize, from: u64, to: u64, width: usize) -> std::ops::Range<u64> {
    let steps = (to - from + 1) as u128;
    let at = |c: usize| from + (c as u128 * steps / width as u128) as u64;
    let lo = at(c);
    lo..at(c + 1).max(lo + 1)
}

/// A request's row: the glyph at each column of steps `from..=to`.
fn timeline_row(r: &ReqView, now: u64, from: u64, to: u64, width: usize) -> Vec<Span<'static>> {
    let end = r.finished.unwrap_or(now);
    let phase = |s: u64| -> Option<(char, Color)> {
        if s < r.arrived || s > end {
            return None;
        }
        if r.finished == Some(s) {
            return Some((DONE, Color::White));
        }
        match (r.admitted, r.first_token) {
            (Some(a), _) if s < a => Some((QUEUED, Color::DarkGray)),
            (None, _) => Some((QUEUED, Color::DarkGray)),
            (Some(_), Some(f)) if s >= f => Some((DECODE, Color::Green)),
            _ => Some((PREFILL, Color::Yellow)),
        }
    };
    if width == 0 {
        return Vec::new();
    }
    (0..width)
        .map(|c| {
            // The done mark wins its column; otherwise the latest phase does.
            let steps = column_steps(c, from, to, width);
            let lo = steps.start.max(r.arrived);
            let hi = steps.end.min(end + 1);
            let mut cell = None;
            for s in lo..hi {
                cell = phase(s);
                if cell.is_some_and(|(ch, _)| ch == DONE) {
                    // One mark, in the first column of its step.
                    let before = c.checked_sub(1).map(|p| column_steps(p, from, to, width));
                    if before.is_some_and(|b| b.contains(&s)) {
                        cell = None;
                    }
                    break;
                }
            }
            cell
        })
        .map(|c| match c {
            Some((ch, color)) => Span::styled(ch.to_string(), Style::default().fg(color)),
            None => Span::raw(" "),
        })
        .collect()
}

fn render_timeline(v: &SchedView, area: Rect, buf: &mut Buffer) {
    if area.height < 2 {
        return;
    }
    let rows = area.height as usize - 1;
    let shown: Vec<(&u64, &ReqView)> = {
        let all: Vec<_> = v.replay.reqs.iter().collect();
        let skip = all.len().saturating_sub(rows);
        all.into_iter().skip(skip).collect()
    };
    let now = v.step();
    let from = shown.iter().map(|(_, r)| r.arrived).min().unwrap_or(0);
    let width = (area.width as usize).saturating_sub(7);
    let mut lines = vec![Line::styled(
        format!(
            "{:<7}steps {from}–{now} · {QUEUED} queued {PREFILL} prefill {DECODE} decode {DONE} done",
            "req"
        ),
        label(),
    )];
    for (id, r) in shown {
        let mut spans = vec![Span::styled(format!("#{id:<5} "), owner_style(*id))];
        spans.extend(timeline_row(r, now, from, now, width));
        lines.push(Line::from(spans));
    }
    Paragraph::new(lines).render(area, buf);
}

/// Rows the block map needs in `area`'s width: its cells, a legend line, the reservation and the
/// latency lines.
fn block_rows(v: &SchedView, area: Rect) -> u16 {
    let width = area.width.max(1) as usize;
    let cells = v.blocks_total().min(width * 8);
    (cells.div_ceil(width) as u16 + 4)
        .min(area.height / 2)
        .max(5)
}

/// `p50 / p99` of `xs` in milliseconds, or a dash.
fn p50_p99(xs: &crate::state::Ring<std::time::Duration>) -> String {
    let v: Vec<std::time::Duration> = xs.iter().copied().collect();
    if v.is_empty() {
        return "–".into();
    }
    let ms = |q| crate::stats::percentile(&v, q).as_secs_f64() * 1e3;
    format!("{:.0} / {:.0} ms", ms(50.0), ms(99.0))
}

/// What the running requests' KV reserves, paged against contiguous, and the latest latencies.
fn reserved_and_latency(v: &SchedView) -> [Line<'static>; 2] {
    let r = v.reserved();
    let waste = |reserved: usize| match reserved {
        0 => "–".to_string(),
        n => format!("{:.0}%", 100.0 * (n - r.used.min(n)) as f64 / n as f64),
    };
    let reserved = Line::from(vec![
        Span::styled("KV tokens of the running: ", label()),
        Span::styled(format!("{} used", r.used), value()),
        Span::styled(" · paged ", label()),
        Span::styled(format!("{} ({} unused)", r.paged, waste(r.paged)), value()),
        Span::styled(" · contiguous, max length each ", label()),
        Span::styled(
            format!("{} ({} unused)", r.contiguous, waste(r.contiguous)),
            value(),
        ),
    ]);
    let latency = Line::from(vec![
        Span::styled("TTFT p50/p99 ", label()),
        Span::styled(p50_p99(&v.ttft), value()),
        Span::styled(
            format!(" of {} started · E2E p50/p99 ", v.ttft.len()),
            label(),
        ),
        Span::styled(p50_p99(&v.e2e), value()),
        Span::styled(format!(" of {} finished", v.e2e.len()), label()),
    ]);
    [reserved, latency]
}

fn render_blocks(v: &SchedView, area: Rect, buf: &mut Buffer) {
    let total = v.blocks_total();
    let held = v.blocks();
    let used: usize = held.iter().map(|b| b.1).sum();
    let legend = Line::styled(
        format!(
            "KV blocks of 16 tokens: {used} held by {} requests, {} free of {total} ({FREE} free)",
            held.len(),
            total.saturating_sub(used)
        ),
        label(),
    );
    let width = area.width.max(1) as usize;
    let room = width * (area.height as usize).saturating_sub(3);
    let mut spans = Vec::new();
    for &(id, n) in &held {
        spans.push(Span::styled(
            owner_char(id).to_string().repeat(n),
            owner_style(id),
        ));
    }
    let shown = total.min(room);
    let free = shown.saturating_sub(used);
    spans.push(Span::styled(
        FREE.to_string().repeat(free),
        Style::default().fg(Color::DarkGray),
    ));
    let [reserved, latency] = reserved_and_latency(v);
    let mut lines = vec![latency, reserved, legend];
    lines.push(Line::from(spans));
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(area, buf);
}
