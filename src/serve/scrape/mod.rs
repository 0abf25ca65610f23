//! A server's Prometheus `/metrics`, read into a [`ServerSample`]: which engine serves (vLLM,
//! TGI, llama.cpp, SGLang, by the metrics' prefix), its KV-cache usage, running and waiting
//! requests, token counters, prefix-cache hits and speculative acceptance by position.
//!
//! - [`parse`]: one body into a sample (the text format is read by `prometheus-parse`).
//! - [`names`]: the table of metric names per engine and the field each fills.
//! - [`task`]: the loop that scrapes a URL a few times a second and sends stamped events.
//!
//! Counters become rates with [`Rates`](crate::protocol::Rates), which lives beside the sample in
//! the protocol so the store and the panes need nothing from here.

pub mod names;
pub mod task;

pub use names::{Field, Metric, Reduce, METRICS, PREFIXES};
pub use task::{metrics_url, scrape_once, spawn, ScrapeConfig, ScrapeError, Scraper};

use crate::protocol::{ServerEngine, ServerSample, MAX_SPEC_POSITIONS};
use std::borrow::Cow;
use std::collections::HashMap;

/// Why a body is not a server's metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the metrics answer is empty (no Prometheus text)")]
    Empty,
    #[error(
        "the metrics answer holds no Prometheus samples (it starts {start:?}): \
         is this the server's /metrics?"
    )]
    NoSamples { start: String },
}

/// Stands for `:` in metric names while `prometheus-parse` reads them: its name pattern is `\w+`,
/// which refuses the colons vLLM, llama.cpp and SGLang put in theirs. U+02D0 is a word
/// character there and cannot occur in a valid (ASCII) metric name, so nothing else maps back.
const COLON: char = 'ː';

/// The line with the colons of its metric name replaced by [`COLON`] (label values untouched).
fn escape_name(line: &str) -> Cow<'_, str> {
    if !line.contains(':') {
        return Cow::Borrowed(line);
    }
    let offset = |tok: &str| tok.as_ptr() as usize - line.as_ptr() as usize;
    let span = if line.trim_start().starts_with('#') {
        // `# HELP name text` and `# TYPE name type`: the third token.
        let mut toks = line.split_whitespace();
        match (toks.next(), toks.next(), toks.next()) {
            (Some("#"), Some("HELP" | "TYPE"), Some(name)) => {
                offset(name)..offset(name) + name.len()
            }
            _ => return Cow::Borrowed(line),
        }
    } else {
        let start = line.len() - line.trim_start().len();
        let end = line[start..]
            .find(|c: char| c == '{' || c.is_whitespace())
            .map_or(line.len(), |i| start + i);
        start..end
    };
    let mut out = String::with_capacity(line.len() + 4);
    out.push_str(&line[..span.start]);
    out.extend(
        line[span.clone()]
            .chars()
            .map(|c| if c == ':' { COLON } else { c }),
    );
    out.push_str(&line[span.end..]);
    Cow::Owned(out)
}

/// The engine most of the body's metrics name, or `Unknown`.
pub fn engine_of<'a>(names: impl IntoIterator<Item = &'a str>) -> ServerEngine {
    let mut counts = [0usize; PREFIXES.len()];
    for n in names {
        if let Some(i) = PREFIXES.iter().position(|(p, _)| n.starts_with(p)) {
            counts[i] += 1;
        }
    }
    match counts.iter().enumerate().max_by_key(|(_, c)| **c) {
        Some((i, &c)) if c > 0 => PREFIXES[i].1,
        _ => ServerEngine::Unknown,
    }
}

/// One scalar series: its labels and value.
type Series = Vec<(HashMap<String, String>, f64)>;

/// Read a `/metrics` body. `at` is left at zero for the caller to stamp.
///
/// Every metric of the engine's rows in [`METRICS`] that is present (and finite) fills its field;
/// histograms and summaries are read through their `_sum` and `_count` series.
pub fn parse(body: &str) -> Result<ServerSample, ParseError> {
    if body.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    let lines = body.lines().map(|l| Ok(escape_name(l).into_owned()));
    // The parser's only error is an IO error of the line source, which strings never give.
    let scrape = prometheus_parse::Scrape::parse(lines).map_err(|_| ParseError::Empty)?;
    let mut series: HashMap<String, Series> = HashMap::new();
    let mut any = false;
    for s in scrape.samples {
        any = true;
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => continue,
        };
        if !value.is_finite() {
            continue;
        }
        let labels: HashMap<String, String> = (*s.labels).clone();
        series
            .entry(s.metric.replace(COLON, ":"))
            .or_default()
            .push((labels, value));
    }
    if !any {
        let start: String = body
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        return Err(ParseError::NoSamples { start });
    }
    let engine = engine_of(series.keys().map(String::as_str));
    let mut sample = ServerSample {
        engine,
        ..ServerSample::default()
    };
    for m in METRICS.iter().filter(|m| m.engine == engine) {
        if sample.sources.contains_key(m.field.name()) {
            continue;
        }
        let Some(found) = m
            .names
            .iter()
            .map(|n| series.get(*n))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        let filled = match m.field.reduce() {
            Reduce::ByPosition => {
                sample.spec_accepted_per_pos = by_position(found.into_iter().flatten());
                !sample.spec_accepted_per_pos.is_empty()
            }
            reduce => {
                let v = found.iter().map(|s| reduce_values(s, reduce)).sum::<f64>();
                if let Some(slot) = m.field.slot(&mut sample) {
                    *slot = Some(v);
                }
                true
            }
        };
        if filled {
            sample
                .sources
                .insert(m.field.name().to_string(), m.names.join(" + "));
        }
    }
    Ok(sample)
}

fn reduce_values(series: &Series, reduce: Reduce) -> f64 {
    let sum: f64 = series.iter().map(|(_, v)| v).sum();
    match reduce {
        Reduce::Mean if !series.is_empty() => sum / series.len() as f64,
        _ => sum,
    }
}

/// Sums by the `position` label (0-based); positions past [`MAX_SPEC_POSITIONS`] are dropped, gaps
/// count zero.
fn by_position<'a>(series: impl Iterator<Item = &'a (HashMap<String, String>, f64)>) -> Vec<f64> {
    let mut out = Vec::new();
    for (labels, v) in series {
        let Some(pos) = labels.get("position").and_then(|p| p.parse::<usize>().ok()) else {
            continue;
        };
        if pos >= MAX_SPEC_POSITIONS {
            continue;
        }
        if out.len() <= pos {
            out.resize(pos + 1, 0.0);
        }
        out[pos] += v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colons_of_names_are_escaped_and_labels_kept() {
        assert_eq!(
            escape_name(r#"vllm:num_requests_running{model_name="a:b"} 3"#),
            format!(r#"vllm{COLON}num_requests_running{{model_name="a:b"}} 3"#)
        );
        assert_eq!(
            escape_name("# TYPE llamacpp:n_decode_total counter"),
            format!("# TYPE llamacpp{COLON}n_decode_total counter")
        );
        assert_eq!(escape_name("tgi_queue_size 0"), "tgi_queue_size 0");
        assert_eq!(escape_name("# a comment: fine"), "# a comment: fine");
    }

    #[test]
    fn the_parser_reads_escaped_names() {
        // prometheus-parse alone drops `vllm:` lines; escaped, they come through.
        let raw = prometheus_parse::Scrape::parse(["vllm:x 1".to_string()].into_iter().map(Ok));
        assert!(
            raw.unwrap().samples.is_empty(),
            "if this fails, the escape is no longer needed"
        );
        let s = parse("# TYPE vllm:x gauge\nvllm:num_requests_running 3\n").unwrap();
        assert_eq!(s.engine, ServerEngine::Vllm);
        assert_eq!(s.running, Some(3.0));
    }

    #[test]
    fn the_engine_is_the_most_named() {
        assert_eq!(engine_of(["vllm:a", "vllm:b", "tgi_c"]), ServerEngine::Vllm);
        assert_eq!(
            engine_of(["process_cpu_seconds_total"]),
            ServerEngine::Unknown
        );
    }

    #[test]
    fn positions_are_bounded() {
        let body = "x_total{position=\"1000000000\"} 5\nx_total{position=\"2\"} 7\n";
        let s: Vec<_> = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string())))
            .unwrap()
            .samples
            .into_iter()
            .map(|s| {
                (
                    s.labels
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    7.0,
                )
            })
            .collect::<Vec<(HashMap<String, String>, f64)>>();
        assert_eq!(by_position(s.iter()), vec![0.0, 0.0, 7.0]);
    }
}
