//! Counting a stream's output tokens and giving each its arrival time, from what each chunk
//! carried: the server's per-chunk usage where it gives it, else a tokenizer, else one per chunk.

use super::CountTokens;
use crate::serve::openai::Usage;
use crate::serve::{Counted, Outcome};
use std::time::Duration;

/// The running count of one stream.
pub struct Tally<'t> {
    tokenizer: Option<&'t dyn CountTokens>,
    /// The server gives usage on the chunks themselves (vLLM's `continuous_usage_stats`), so each
    /// chunk's tokens are the difference of its count and the one before.
    continuous: bool,
    /// Output tokens counted so far.
    cumulative: usize,
    /// Arrival of the last chunk that carried tokens: a chunk's tokens are spread over the gap
    /// since then.
    last_at: Option<Duration>,
    /// Completion tokens of the usage that came at the end (not per chunk).
    final_usage: Option<usize>,
    seen: bool,
    pub out: Outcome,
}

impl<'t> Tally<'t> {
    pub fn new(tokenizer: Option<&'t dyn CountTokens>) -> Self {
        Tally {
            tokenizer,
            continuous: false,
            cumulative: 0,
            last_at: None,
            final_usage: None,
            seen: false,
            out: Outcome::default(),
        }
    }

    /// Whether the server said the stream is over (a finish reason).
    pub fn finished(&self) -> bool {
        self.out.finish.is_some()
    }

    /// One chunk that arrived `at` after the send, carrying `text` (empty for none) in its
    /// `choices` (`has_choices`), perhaps a `finish` reason and `usage`. Returns its tokens.
    pub fn chunk(
        &mut self,
        at: Duration,
        text: &str,
        has_choices: bool,
        finish: Option<&str>,
        usage: Option<Usage>,
    ) -> usize {
        self.seen = true;
        let completion = usage.and_then(|u| u.completion_tokens);
        if let Some(p) = usage.and_then(|u| u.prompt_tokens) {
            self.out.prompt_tokens = Some(p);
        }
        // Usage on a chunk that still streams makes the server's count continuous; usage on the
        // finishing chunk or on a chunk of its own is the total (llama.cpp, TGI, OpenAI).
        if completion.is_some() && has_choices && finish.is_none() {
            self.continuous = true;
        }
        let tokens = match completion {
            Some(c) if self.continuous => {
                let n = c.saturating_sub(self.cumulative);
                self.cumulative = self.cumulative.max(c);
                n
            }
            Some(c) => {
                self.final_usage = Some(c);
                self.fallback(text)
            }
            None => self.fallback(text),
        };
        if let Some(f) = finish {
            self.out.finish = Some(f.to_string());
        }
        if tokens > 0 || !text.is_empty() {
            self.out.ttft.get_or_insert(at);
        }
        self.out.text.push_str(text);
        self.spread(at, tokens);
        tokens
    }

    /// Tokens of a chunk the server did not count: the tokenizer's count of its text, else one
    /// for a chunk with text.
    fn fallback(&mut self, text: &str) -> usize {
        if text.is_empty() {
            return 0;
        }
        let n = self.tokenizer.map_or(1, |t| t.count(text).max(1));
        self.cumulative += n;
        n
    }

    /// `n` tokens that arrived together `at`: spread evenly over the gap since the last chunk
    /// that carried tokens (the first chunk's all arrive at once).
    fn spread(&mut self, at: Duration, n: usize) {
        if n == 0 {
            return;
        }
        self.out.chunk_at.push(at);
        let token_at = &mut self.out.token_at;
        token_at.reserve(n);
        match self.last_at {
            Some(prev) if n > 1 => {
                let gap = at.saturating_sub(prev);
                token_at.extend((1..=n).map(|k| prev + gap.mul_f64(k as f64 / n as f64)));
            }
            _ => token_at.extend(std::iter::repeat_n(at, n)),
        }
        self.last_at = Some(at);
    }

    /// The outcome so far, its tokens counted by the best source there was.
    pub fn finish(mut self) -> Outcome {
        let (tokens, counted) = if self.continuous {
            let total = self.final_usage.unwrap_or(0).max(self.cumulative);
            (total, Counted::Usage)
        } else if let Some(total) = self.final_usage {
            (total, Counted::Usage)
        } else if let Some(t) = self.tokenizer {
            (t.count(&self.out.text), Counted::Tokenizer)
        } else {
            (self.out.token_at.len(), Counted::Chunks)
        };
        self.out.output_tokens = tokens;
        self.out.counted = self.seen.then_some(counted);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn usage(c: usize) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: Some(4),
            completion_tokens: Some(c),
            ..Usage::default()
        })
    }

    struct Words;
    impl CountTokens for Words {
        fn count(&self, text: &str) -> usize {
            text.split_whitespace().count()
        }
    }

    #[test]
    fn continuous_usage_splits_a_chunk_over_the_gap() {
        let mut t = Tally::new(None);
        assert_eq!(t.chunk(ms(5), "", true, None, usage(0)), 0); // role chunk
        assert_eq!(t.chunk(ms(10), "a", true, None, usage(1)), 1);
        assert_eq!(t.chunk(ms(40), "b c d", true, None, usage(4)), 3);
        assert_eq!(t.chunk(ms(40), "", true, Some("length"), usage(4)), 0);
        assert_eq!(t.chunk(ms(41), "", false, None, usage(4)), 0);
        let o = t.finish();
        assert_eq!(o.ttft, Some(ms(10)));
        assert_eq!(o.token_at, vec![ms(10), ms(20), ms(30), ms(40)]);
        // ITL as vLLM's: one gap per chunk, no zero or spread gaps.
        assert_eq!(o.chunk_at, vec![ms(10), ms(40)]);
        assert_eq!(o.itl(), vec![ms(30)]);
        assert_eq!((o.output_tokens, o.counted), (4, Some(Counted::Usage)));
        assert_eq!(o.prompt_tokens, Some(4));
        assert_eq!(o.finish.as_deref(), Some("length"));
        assert_eq!(o.text, "ab c d");
    }

    #[test]
    fn usage_at_the_end_only_counts_but_does_not_split() {
        let mut t = Tally::new(None);
        t.chunk(ms(10), "a", true, None, None);
        t.chunk(ms(20), "b c", true, None, None);
        // llama.cpp's last chunk: the finish reason and the total together.
        assert_eq!(t.chunk(ms(21), "", true, Some("stop"), usage(3)), 0);
        let o = t.finish();
        assert_eq!(o.token_at, vec![ms(10), ms(20)]);
        assert_eq!((o.output_tokens, o.counted), (3, Some(Counted::Usage)));
    }

    #[test]
    fn a_tokenizer_splits_and_counts_without_usage() {
        let mut t = Tally::new(Some(&Words));
        t.chunk(ms(10), "a b", true, None, None);
        t.chunk(ms(30), " c d", true, None, None);
        let o = t.finish();
        assert_eq!(o.token_at, vec![ms(10), ms(10), ms(20), ms(30)]);
        assert_eq!((o.output_tokens, o.counted), (4, Some(Counted::Tokenizer)));
    }

    #[test]
    fn without_either_a_chunk_is_a_token() {
        let mut t = Tally::new(None);
        t.chunk(ms(10), "a b", true, None, None);
        t.chunk(ms(12), "", true, Some("stop"), None);
        let o = t.finish();
        assert_eq!((o.output_tokens, o.counted), (1, Some(Counted::Chunks)));
        assert_eq!(Tally::new(None).finish().counted, None);
    }
}
