//! An A/B race's summary as a table: each side's numbers and B over A, then where the texts
//! part, the agreement and the speed ratio's spread.

use super::table::{Align, Table};
use crate::protocol::race::{RaceEvent, RaceSummary};
use crate::protocol::Event;
use crate::record::Recording;
use crate::stats::{human_bytes, millis};

/// The races a recording holds, in order.
pub fn races(r: &Recording) -> Vec<RaceSummary> {
    r.events
        .iter()
        .filter_map(|e| match &e.event {
            Event::Race(RaceEvent::Finished(s)) => Some((**s).clone()),
            _ => None,
        })
        .collect()
}

/// The summary as a Markdown table and a line of words.
pub fn markdown(s: &RaceSummary) -> String {
    let (a, b) = (&s.a.run, &s.b.run);
    let mut t = Table::new(vec![
        ("", Align::Left),
        ("A", Align::Right),
        ("B", Align::Right),
        ("B ÷ A", Align::Right),
    ]);
    let ratio = |x: f64, y: f64| {
        if x > 0.0 && y.is_finite() {
            format!("{:.2}×", y / x)
        } else {
            "–".into()
        }
    };
    let mut num = |name: &str, x: f64, y: f64, digits: usize| {
        t.row(vec![
            name.into(),
            format!("{x:.digits$}"),
            format!("{y:.digits$}"),
            ratio(x, y),
        ]);
    };
    num("TTFT ms", millis(a.ttft), millis(b.ttft), 1);
    num("prefill tok/s", a.prefill_tok_s, b.prefill_tok_s, 1);
    num("decode tok/s", a.decode_tok_s, b.decode_tok_s, 1);
    num("ITL p50 ms", millis(a.itl_p50), millis(b.itl_p50), 1);
    num("ITL p99 ms", millis(a.itl_p99), millis(b.itl_p99), 1);
    num(
        "tokens",
        a.generated_tokens as f64,
        b.generated_tokens as f64,
        0,
    );
    let mem = |w: u64, kv: u64| (w + kv) as f64;
    let (ma, mb) = (
        mem(s.a.weight_bytes, a.kv_bytes),
        mem(s.b.weight_bytes, b.kv_bytes),
    );
    t.row(vec![
        "memory (weights + KV)".into(),
        format!(
            "{} + {}",
            human_bytes(s.a.weight_bytes),
            human_bytes(a.kv_bytes)
        ),
        format!(
            "{} + {}",
            human_bytes(s.b.weight_bytes),
            human_bytes(b.kv_bytes)
        ),
        ratio(ma, mb),
    ]);
    format!(
        "A: {} · B: {}\n\n{}\nB's decode speed over A's: {}; token agreement {:.0}%; {}.\n",
        s.a.label,
        s.b.label,
        t.markdown(),
        s.ratio_text(),
        s.agreement * 100.0,
        s.parting()
    )
}
