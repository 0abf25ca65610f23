//! `labtui report`: runs from recordings side by side (Markdown, CSV or JSON), and a token-by-token
//! diff of two recordings of the same prompt.

pub mod batch;
pub mod demo;
pub mod heatmap;
pub mod plot;
pub mod race;
pub mod serve;
pub mod serve_diff;
pub mod serve_tables;
pub mod stamp;
pub mod table;

use crate::protocol::{Event, KvDtype, Quant, RunSummary, TokenEvent};
use crate::record::Recording;
use crate::stats::{human_bytes, millis};
use serde::Serialize;
use table::{Align, Table};

/// One finished run, as a report row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub file: String,
    pub run: u64,
    pub model: String,
    /// The weights and KV cache dtype the run used.
    pub quant: Quant,
    pub kv_dtype: KvDtype,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub ttft_ms: f64,
    pub prefill_tok_s: f64,
    pub decode_tok_s: f64,
    pub itl_p50_ms: f64,
    pub itl_p90_ms: f64,
    pub itl_p99_ms: f64,
    pub kv_bytes: u64,
    /// Speculation statistics arrive with speculative decoding; `None` for plain decoding.
    pub acceptance: Option<f64>,
    pub speedup: Option<f64>,
}

/// What a run ran on: model name, weights, KV dtype.
#[derive(Debug, Clone, Default)]
struct Setup {
    model: String,
    quant: Quant,
    kv_dtype: KvDtype,
}

fn row(file: &str, run: u64, setup: &Setup, s: &RunSummary) -> Row {
    Row {
        file: file.to_string(),
        run,
        model: setup.model.clone(),
        quant: setup.quant,
        kv_dtype: setup.kv_dtype,
        prompt_tokens: s.prompt_tokens,
        generated_tokens: s.generated_tokens,
        ttft_ms: millis(s.ttft),
        prefill_tok_s: s.prefill_tok_s,
        decode_tok_s: s.decode_tok_s,
        itl_p50_ms: millis(s.itl_p50),
        itl_p90_ms: millis(s.itl_p90),
        itl_p99_ms: millis(s.itl_p99),
        kv_bytes: s.kv_bytes,
        acceptance: s.spec.as_ref().map(|p| p.acceptance_rate),
        speedup: s.spec.as_ref().map(|p| p.speedup),
    }
}

/// Every finished run of a recording.
pub fn rows(file: &str, rec: &Recording) -> Vec<Row> {
    let model = rec.header.model.as_ref();
    let mut setup = Setup {
        model: model.map(|m| m.name.clone()).unwrap_or_default(),
        quant: rec.header.quantization,
        kv_dtype: model.map_or(KvDtype::F32, |m| m.kv_dtype),
    };
    let mut out = Vec::new();
    for e in &rec.events {
        match &e.event {
            Event::ModelLoaded(m) => {
                setup.model = m.name.clone();
                setup.kv_dtype = m.kv_dtype;
            }
            Event::VariantReady(v) => setup.kv_dtype = v.kv_dtype,
            Event::RunStarted { settings, .. } => setup.quant = settings.quantization,
            Event::RunFinished { run, summary } => out.push(row(file, *run, &setup, summary)),
            _ => {}
        }
    }
    out
}

/// Tokens of each run of a recording, by run id.
pub fn run_tokens(rec: &Recording) -> Vec<(u64, Vec<TokenEvent>)> {
    let mut runs: Vec<(u64, Vec<TokenEvent>)> = Vec::new();
    for e in &rec.events {
        match &e.event {
            Event::RunStarted { run, .. } => runs.push((*run, Vec::new())),
            Event::Token(t) => {
                if let Some(r) = runs.last_mut() {
                    r.1.push(t.clone())
                }
            }
            _ => {}
        }
    }
    runs
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into())
}

/// The runs side by side, a row each.
pub fn markdown(rows: &[Row]) -> String {
    let mut t = Table::new(
        [
            "file",
            "run",
            "model",
            "weights",
            "KV dtype",
            "prompt",
            "gen",
            "TTFT ms",
            "prefill tok/s",
            "decode tok/s",
            "ITL p50 ms",
            "p90",
            "p99",
            "KV",
            "acceptance",
            "speedup",
        ]
        .map(|h| (h, Align::Left)),
    );
    let f1 = |x: f64| format!("{x:.1}");
    for r in rows {
        t.row([
            r.file.clone(),
            r.run.to_string(),
            r.model.clone(),
            r.quant.to_string(),
            r.kv_dtype.to_string(),
            r.prompt_tokens.to_string(),
            r.generated_tokens.to_string(),
            f1(r.ttft_ms),
            f1(r.prefill_tok_s),
            f1(r.decode_tok_s),
            f1(r.itl_p50_ms),
            f1(r.itl_p90_ms),
            f1(r.itl_p99_ms),
            human_bytes(r.kv_bytes),
            opt(r.acceptance),
            opt(r.speedup),
        ]);
    }
    t.markdown()
}

/// The runs as CSV: a header of [`Row`]'s field names, then a line per run (none without runs).
pub fn csv(rows: &[Row]) -> anyhow::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Where two token streams part, and the speed of each side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// Tokens identical from the start.
    pub same: usize,
    pub a_tokens: usize,
    pub b_tokens: usize,
    pub a_text_after: String,
    pub b_text_after: String,
    pub a_decode_tok_s: f64,
    pub b_decode_tok_s: f64,
}

fn rate(tokens: &[TokenEvent]) -> f64 {
    let steps: std::time::Duration = tokens.iter().skip(1).map(|t| t.step).sum();
    crate::stats::tok_per_s(tokens.len().saturating_sub(1), steps)
}

pub fn diff(a: &[TokenEvent], b: &[TokenEvent]) -> Diff {
    let same = a.iter().zip(b).take_while(|(x, y)| x.id == y.id).count();
    let text = |t: &[TokenEvent]| {
        t.iter()
            .skip(same)
            .take(24)
            .map(|t| t.text.as_str())
            .collect::<String>()
    };
    Diff {
        same,
        a_tokens: a.len(),
        b_tokens: b.len(),
        a_text_after: text(a),
        b_text_after: text(b),
        a_decode_tok_s: rate(a),
        b_decode_tok_s: rate(b),
    }
}

pub fn diff_text(d: &Diff, a: &str, b: &str) -> String {
    let mut s = format!(
        "{} of {} / {} tokens identical from the start\n",
        d.same, d.a_tokens, d.b_tokens
    );
    if d.same < d.a_tokens.max(d.b_tokens) {
        s.push_str(&format!(
            "diverge at token {}:\n  {a}: {:?}\n  {b}: {:?}\n",
            d.same, d.a_text_after, d.b_text_after
        ));
    }
    s.push_str(&format!(
        "decode tok/s: {a} {:.1} · {b} {:.1}\n",
        d.a_decode_tok_s, d.b_decode_tok_s
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Phase;
    use std::time::Duration;

    fn toks(ids: &[u32], step_ms: u64) -> Vec<TokenEvent> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| TokenEvent {
                index: i,
                id,
                text: format!("<{id}>"),
                phase: if i == 0 {
                    Phase::Prefill
                } else {
                    Phase::Decode
                },
                prob: 1.0,
                elapsed: Duration::ZERO,
                step: Duration::from_millis(step_ms),
                kv_tokens: i,
                kv_bytes: 0,
            })
            .collect()
    }

    #[test]
    fn diff_finds_the_first_divergence_and_the_speeds() {
        let d = diff(&toks(&[1, 2, 3, 4], 10), &toks(&[1, 2, 9], 20));
        assert_eq!(d.same, 2);
        assert_eq!(d.a_text_after, "<3><4>");
        assert_eq!(d.b_text_after, "<9>");
        assert!((d.a_decode_tok_s - 100.0).abs() < 1e-9 && (d.b_decode_tok_s - 50.0).abs() < 1e-9);
        assert!(diff_text(&d, "a", "b").contains("diverge at token 2"));
    }

    #[test]
    fn csv_has_the_fields_as_header_and_reads_back() {
        let r = Row {
            file: "runs, \"best\".ron".into(),
            run: 1,
            model: "m".into(),
            quant: Quant::Q4K,
            kv_dtype: KvDtype::F16,
            prompt_tokens: 1,
            generated_tokens: 2,
            ttft_ms: 1.25,
            prefill_tok_s: 2.0,
            decode_tok_s: 3.0,
            itl_p50_ms: 1.0,
            itl_p90_ms: 1.0,
            itl_p99_ms: 1.0,
            kv_bytes: 10,
            acceptance: None,
            speedup: Some(1.5),
        };
        let c = csv(std::slice::from_ref(&r)).unwrap();
        assert!(
            c.starts_with("file,run,model,quant,kv_dtype,prompt_tokens,"),
            "{c}"
        );
        let mut rd = csv::Reader::from_reader(c.as_bytes());
        let head = rd.headers().unwrap().clone();
        assert_eq!(head.len(), 16);
        let rec = rd.records().next().unwrap().unwrap();
        let field = |name: &str| &rec[head.iter().position(|h| h == name).unwrap()];
        assert_eq!(field("file"), r.file);
        assert_eq!(field("quant"), "Q4_K");
        assert_eq!(field("kv_dtype"), "f16");
        assert_eq!(field("ttft_ms").parse::<f64>().unwrap(), 1.25);
        assert_eq!(field("acceptance"), "");
        assert_eq!(field("speedup"), "1.5");
        assert!(csv(&[]).unwrap().is_empty());
    }
}
