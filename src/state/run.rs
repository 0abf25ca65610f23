//! One run as the panes see it: its tokens, and what the panes draw from them gathered as each
//! token arrives (latencies, the KV cache's growth, where the tape's lines end), so that drawing a
//! frame never walks every token of a long run.

use super::{Itl, SpecView, Thinned};
use crate::protocol::{DraftMode, Event, KPolicy, KvBlocks, RunSummary, TokenEvent};
use std::time::Duration;

/// A tape line without a newline is ended after this many bytes, so that laying out the end of a
/// run never starts further back than one such line.
pub const LINE_BYTES: usize = 4096;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunView {
    pub run: u64,
    pub prompt_tokens: usize,
    pub prefill: Option<Duration>,
    pub tokens: Vec<TokenEvent>,
    pub summary: Option<RunSummary>,
    /// Why the run ended without a summary (an error in the middle of it).
    pub failed: Option<String>,
    /// The run's speculative steps (empty when it decoded plainly).
    pub spec: SpecView,
    /// Draft mode and K the run started with.
    pub draft_mode: DraftMode,
    pub k: KPolicy,
    /// The acceptance policy it verified by.
    pub policy: crate::protocol::AcceptPolicy,
    /// Step times of the tokens after the first (the inter-token latencies).
    pub itl: Itl,
    /// KV cache tokens and bytes after each token, thinned to a bounded count.
    pub kv: Thinned<(usize, u64)>,
    /// The paged cache's blocks as last reported (none from servers and older recordings).
    pub kv_blocks: Option<KvBlocks>,
    /// Positions in `tokens` of the tokens that end a tape line: one with a newline, or one that
    /// brings a line without one to [`LINE_BYTES`].
    pub line_ends: Vec<usize>,
    /// Bytes on the tape's last line so far.
    line_bytes: usize,
}

impl RunView {
    /// A run that just started, with the prompt's length and the settings it runs with.
    pub fn new(run: u64, prompt_tokens: usize, draft_mode: DraftMode, k: KPolicy) -> Self {
        Self {
            run,
            prompt_tokens,
            draft_mode,
            k,
            ..Self::default()
        }
    }

    pub fn finished(&self) -> bool {
        self.summary.is_some() || self.failed.is_some()
    }

    /// The view a `RunStarted` event opens (`None` for any other event).
    pub fn started(event: &Event) -> Option<Self> {
        let Event::RunStarted {
            run,
            prompt_tokens,
            settings,
            ..
        } = event
        else {
            return None;
        };
        let mut v = Self::new(*run, *prompt_tokens, settings.draft_mode, settings.k);
        v.policy = settings.policy;
        Some(v)
    }

    /// Take one of the run's events after its start: its prefill, tokens, blocks, speculative
    /// steps, end.
    pub fn apply(&mut self, event: &Event) {
        match event {
            Event::PrefillDone {
                tokens, duration, ..
            } => {
                self.prefill = Some(*duration);
                // A remote run learns its prompt's tokens from the server, after it started.
                if self.prompt_tokens == 0 {
                    self.prompt_tokens = *tokens;
                }
            }
            Event::Token(t) => self.push(t),
            Event::KvBlocks { run, blocks } if *run == self.run => self.kv_blocks = Some(*blocks),
            Event::SpecStep(step) => {
                let next = self.tokens.len();
                self.spec.apply(step, next);
            }
            Event::RunFinished { summary, .. } => {
                if self.prompt_tokens == 0 {
                    self.prompt_tokens = summary.prompt_tokens;
                }
                self.summary = Some(summary.clone());
            }
            _ => {}
        }
    }

    /// Take the run's next token.
    pub fn push(&mut self, t: &TokenEvent) {
        if !self.tokens.is_empty() {
            self.itl.record(t.step);
        }
        self.kv.push((t.kv_tokens, t.kv_bytes));
        let (ends, bytes) = ends_line(self.line_bytes, &t.text);
        if ends {
            self.line_ends.push(self.tokens.len());
        }
        self.line_bytes = bytes;
        self.tokens.push(t.clone());
    }

    /// The whole text (walks every token: not for drawing a frame).
    pub fn text(&self) -> String {
        self.tokens.iter().map(|t| t.text.as_str()).collect()
    }
}

/// Whether a token's `text` ends a tape line that held `line` bytes before it, and the bytes on
/// the tape's last line after it.
pub fn ends_line(line: usize, text: &str) -> (bool, usize) {
    match text.rfind('\n') {
        Some(i) => (true, text.len() - i - 1),
        None if line + text.len() >= LINE_BYTES => (true, 0),
        None => (false, line + text.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Phase;
    use crate::stats::itl_percentiles;

    fn token(i: usize, text: &str, step_us: u64) -> TokenEvent {
        TokenEvent {
            index: i,
            id: i as u32,
            text: text.into(),
            phase: if i == 0 {
                Phase::Prefill
            } else {
                Phase::Decode
            },
            prob: 0.5,
            elapsed: Duration::from_micros(step_us * i as u64),
            step: Duration::from_micros(step_us),
            kv_tokens: 10 + i,
            kv_bytes: 100 * (10 + i) as u64,
        }
    }

    #[test]
    fn lines_end_at_newlines_and_after_line_bytes() {
        assert_eq!(ends_line(7, "ab\ncd"), (true, 2));
        assert_eq!(ends_line(7, "\n"), (true, 0));
        assert_eq!(ends_line(7, "abc"), (false, 10));
        assert_eq!(ends_line(LINE_BYTES - 2, "abc"), (true, 0));
        let mut r = RunView::default();
        for (i, text) in ["a", "b\n", "c", "\nd", "e"].iter().enumerate() {
            r.push(&token(i, text, 1000));
        }
        assert_eq!(r.line_ends, vec![1, 3]);
        assert_eq!(r.text(), "ab\nc\nde");
    }

    /// 50,000 tokens with latencies spread over two decades: the aggregates match what the whole
    /// run gives, and nothing kept for drawing grows with the run.
    #[test]
    fn fifty_thousand_tokens_keep_bounded_exact_aggregates() {
        let n = 50_000;
        let mut r = RunView::default();
        // A deterministic spread: 2 ms to 200 ms, with a slow tail.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut steps = Vec::with_capacity(n);
        for i in 0..n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let us = 2_000
                + x % 20_000
                + if x.is_multiple_of(100) {
                    x % 180_000
                } else {
                    0
                };
            steps.push(Duration::from_micros(us));
            r.push(&token(i, if i % 50 == 49 { ".\n" } else { " w" }, us));
        }
        let itl = &steps[1..];
        assert_eq!(r.itl.len(), n - 1);
        assert_eq!(r.itl.sum(), itl.iter().sum::<Duration>());
        assert_eq!(
            r.itl.range(),
            Some((*itl.iter().min().unwrap(), *itl.iter().max().unwrap()))
        );
        let exact = itl_percentiles(itl);
        for (live, exact) in r.itl.percentiles().iter().zip(exact) {
            let tolerance = exact / 1000 + Duration::from_micros(1);
            assert!(
                live.abs_diff(exact) <= tolerance,
                "{live:?} against {exact:?}"
            );
        }
        // The histogram counts every latency; its end bins hold the extremes.
        let (counts, min, _) = r.itl.histogram(8);
        assert_eq!(counts.iter().sum::<u64>(), (n - 1) as u64);
        assert_eq!(min, r.itl.range().unwrap().0);
        // Bounded series: the newest latencies, the KV points spanning the run.
        assert_eq!(r.itl.recent().len(), crate::state::itl::RECENT);
        assert_eq!(r.itl.recent().last(), itl.last());
        assert!(r.kv.len() <= crate::state::thin::POINTS);
        assert_eq!(r.kv.first(), Some(&(10, 1000)));
        assert!(n + 10 - r.kv.iter().last().unwrap().0 <= r.kv.stride());
        assert_eq!(r.line_ends.len(), n / 50);
    }
}
