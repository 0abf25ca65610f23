//! What the mock server does with a request: when each chunk goes out, how many tokens it
//! carries, what usage it reports, and which fault it injects.

use std::time::Duration;

/// How one stream of the mock goes. Times are from the request's arrival; deadlines do not drift
/// (each is the sum of the delays before it).
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Delay before the first content chunk.
    pub ttft: Duration,
    /// Delay before each later content chunk, cycled (empty: none).
    pub chunk_delays: Vec<Duration>,
    /// Output tokens each content chunk carries (the last may carry fewer).
    pub tokens_per_chunk: usize,
    /// Output tokens of a stream (fewer when the request's `max_tokens` is smaller).
    pub tokens: usize,
    /// Usage on every chunk, when the request asks for `continuous_usage_stats` (as vLLM does).
    pub continuous_usage: bool,
    /// A usage chunk of its own at the end, when the request asks for `include_usage`.
    pub final_usage: bool,
    pub fault: Option<Fault>,
    /// Each content chunk's first word is its send time, `@<nanoseconds since Mock::origin>`,
    /// for measuring what the client adds.
    pub stamp: bool,
    /// Spin through the last millisecond before each deadline, for sub-millisecond timing (the
    /// tokio timer alone wakes up to a millisecond late). Costs CPU: off for load.
    pub exact: bool,
    /// Prompt tokens the usage says a prefix cache served (`prompt_tokens_details`).
    pub cached_tokens: Option<usize>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            ttft: Duration::ZERO,
            chunk_delays: Vec::new(),
            tokens_per_chunk: 1,
            tokens: 16,
            continuous_usage: true,
            final_usage: true,
            fault: None,
            stamp: false,
            exact: true,
            cached_tokens: None,
        }
    }
}

impl Script {
    /// `tokens` one per chunk, the first after `ttft`, then one every `itl`.
    pub fn paced(ttft: Duration, itl: Duration, tokens: usize) -> Self {
        Script {
            ttft,
            chunk_delays: vec![itl],
            tokens,
            ..Script::default()
        }
    }

    /// `tokens` as fast as the connection takes them.
    pub fn instant(tokens: usize) -> Self {
        Script {
            tokens,
            exact: false,
            ..Script::default()
        }
    }

    pub fn with_fault(self, fault: Fault) -> Self {
        Script {
            fault: Some(fault),
            ..self
        }
    }

    /// The delay before content chunk `i` (0-based).
    pub fn delay_before(&self, i: usize) -> Duration {
        match i {
            0 => self.ttft,
            _ if self.chunk_delays.is_empty() => Duration::ZERO,
            _ => self.chunk_delays[(i - 1) % self.chunk_delays.len()],
        }
    }

    /// The content chunks of a stream of `tokens` tokens.
    pub fn chunks(&self, tokens: usize) -> usize {
        tokens.div_ceil(self.tokens_per_chunk.max(1))
    }

    /// When content chunk `i` is due, from the request's arrival.
    pub fn due(&self, i: usize) -> Duration {
        (0..=i).map(|k| self.delay_before(k)).sum()
    }
}

/// A fault the mock injects. `after` counts content chunks sent before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and body instead of a stream.
    Status { code: u16, body: String },
    /// A `data:` line that is not JSON.
    Malformed { after: usize },
    /// Send nothing more (until the mock stops).
    Stall { after: usize },
    /// Cut the connection without ending the stream.
    Close { after: usize },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_sum_the_delays() {
        let ms = Duration::from_millis;
        let s = Script {
            ttft: ms(30),
            chunk_delays: vec![ms(50), ms(80)],
            tokens_per_chunk: 3,
            ..Script::default()
        };
        assert_eq!(
            (0..4).map(|i| s.due(i)).collect::<Vec<_>>(),
            [ms(30), ms(80), ms(160), ms(210)]
        );
        assert_eq!(s.chunks(7), 3);
    }
}
