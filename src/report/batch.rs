//! The chart of `labtui bench batch`: decode throughput against the step latency each sequence
//! sees, one labelled point per batch size, labtui's line beside llama.cpp's.

use super::plot::{chart, Series};
use crate::lab::batch::BatchRow;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// One batch size's decode throughput (all sequences, tok/s) and step latency (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub engine: &'static str,
    pub batch: usize,
    pub tok_s: f64,
    pub step_ms: f64,
}

impl Point {
    /// Ours, with the step's median latency.
    pub fn ours(r: &BatchRow) -> Self {
        Point {
            engine: "labtui",
            batch: r.batch,
            tok_s: r.decode_tok_s,
            step_ms: r.decode_ms_p50,
        }
    }

    /// llama-batched-bench's: it reports only throughput, so its step latency is the mean one,
    /// batch ÷ throughput.
    pub fn llama_cpp(batch: usize, tok_s: f64) -> Self {
        Point {
            engine: "llama.cpp",
            batch,
            tok_s,
            step_ms: batch as f64 / tok_s.max(1e-9) * 1e3,
        }
    }
}

/// The points as one series per engine, in batch order, each point labelled `B=n`.
pub fn series(points: &[Point]) -> Vec<Series> {
    let mut out: Vec<Series> = Vec::new();
    let mut sorted = points.to_vec();
    sorted.sort_by_key(|p| p.batch);
    for p in sorted {
        let s = match out.iter_mut().position(|s| s.name == p.engine) {
            Some(i) => &mut out[i],
            None => {
                out.push(Series {
                    name: p.engine.into(),
                    points: Vec::new(),
                    labels: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        s.points.push((p.tok_s, p.step_ms));
        s.labels.push(format!("B={}", p.batch));
    }
    out
}

/// `batch-throughput-latency.{png,svg}` in `dir`; returns the files written.
pub fn chart_files(dir: &Path, model: &str, points: &[Point]) -> Result<Vec<PathBuf>> {
    chart(
        dir,
        "batch-throughput-latency",
        &format!("{model}: decode throughput against step latency, by batch size"),
        "decode tokens/s (all sequences)",
        "step latency (ms)",
        &series(points),
        super::plot::Axes::default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_series_per_engine_in_batch_order_with_labels() {
        let points = [
            Point::llama_cpp(4, 80.0),
            Point {
                engine: "labtui",
                batch: 4,
                tok_s: 100.0,
                step_ms: 40.0,
            },
            Point::llama_cpp(1, 40.0),
            Point {
                engine: "labtui",
                batch: 1,
                tok_s: 45.0,
                step_ms: 22.0,
            },
        ];
        let s = series(&points);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].name, "llama.cpp");
        assert_eq!(s[0].points, vec![(40.0, 25.0), (80.0, 50.0)]);
        assert_eq!(s[0].labels, vec!["B=1", "B=4"]);
        assert_eq!(s[1].name, "labtui");
        assert_eq!(s[1].points, vec![(45.0, 22.0), (100.0, 40.0)]);
    }
}
