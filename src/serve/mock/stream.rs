//! One scripted SSE stream: the chunks in the shapes vLLM sends them (a role chunk, content
//! chunks with optional per-chunk usage, a finish chunk, a usage chunk, `[DONE]`), on time.

use super::script::{Fault, Script};
use super::Shared;
use crate::serve::openai::{self, Delta, Head, Usage};
use crate::serve::Api;
use axum::body::Bytes;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a request asked that shapes the stream.
#[derive(Debug, Clone, Copy)]
pub struct Asked {
    pub api: Api,
    pub max_tokens: Option<usize>,
    pub include_usage: bool,
    pub continuous_usage: bool,
    pub prompt_tokens: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Role,
    Content,
    Finish,
    Usage,
    Done,
    End,
}

/// Marks the request as processing while its stream lives (the `requests_processing` gauge).
struct Busy(Arc<Shared>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.processing.fetch_sub(1, Ordering::Relaxed);
    }
}

pub struct Gen {
    busy: Busy,
    script: Script,
    asked: Asked,
    total: usize,
    sent: usize,
    chunks: usize,
    /// When the next content chunk is due (the sum of the delays before it).
    due: Instant,
    step: Step,
    /// What every chunk of this stream carries.
    head: Head,
}

type Frame = Result<Bytes, std::io::Error>;

/// Waits longer than this also end when the mock stops.
const LONG_WAIT: Duration = Duration::from_millis(100);

impl Gen {
    pub fn new(shared: Arc<Shared>, script: Script, asked: Asked, arrived: Instant) -> Self {
        shared.processing.fetch_add(1, Ordering::Relaxed);
        shared.requests.fetch_add(1, Ordering::Relaxed);
        shared
            .prompt_tokens
            .fetch_add(asked.prompt_tokens as u64, Ordering::Relaxed);
        let total = asked
            .max_tokens
            .map_or(script.tokens, |m| m.min(script.tokens));
        let head = Head {
            api: asked.api,
            id: "mock".into(),
            created: 0,
            model: shared.model.clone(),
        };
        Gen {
            head,
            busy: Busy(shared),
            script,
            asked,
            total,
            sent: 0,
            chunks: 0,
            due: arrived,
            step: Step::Role,
        }
    }

    /// The stream of frames, for `Body::from_stream`.
    pub fn into_stream(self) -> impl futures::Stream<Item = Frame> + Send {
        futures::stream::unfold(self, |mut g| async move {
            let frame = g.next().await?;
            Some((frame, g))
        })
    }

    fn shared(&self) -> &Shared {
        &self.busy.0
    }

    async fn next(&mut self) -> Option<Frame> {
        loop {
            match self.step {
                Step::Role => {
                    self.step = Step::Content;
                    if self.asked.api == Api::Chat {
                        return Some(Ok(self.frame(Delta::assistant(""), None)));
                    }
                }
                Step::Content if self.sent >= self.total => self.step = Step::Finish,
                Step::Content => return Some(self.content().await),
                Step::Finish => {
                    self.step = Step::Usage;
                    let reason = if Some(self.total) == self.asked.max_tokens {
                        "length"
                    } else {
                        "stop"
                    };
                    return Some(Ok(self.frame(Delta::content(""), Some(reason))));
                }
                Step::Usage => {
                    self.step = Step::Done;
                    if self.asked.include_usage && self.script.final_usage {
                        return Some(Ok(self.head.usage_chunk(self.usage()).frame()));
                    }
                }
                Step::Done => {
                    self.step = Step::End;
                    return Some(Ok(Bytes::from_static(openai::DONE)));
                }
                Step::End => return None,
            }
        }
    }

    async fn content(&mut self) -> Frame {
        let cut = || std::io::Error::other("mock: connection cut mid-stream");
        match &self.script.fault {
            Some(Fault::Malformed { after }) if *after == self.chunks => {
                self.step = Step::End;
                return Ok(openai::raw_frame(r#"{"choices": [{"delta": "#));
            }
            Some(Fault::Stall { after }) if *after == self.chunks => {
                self.shared().stop.cancelled().await;
                return Err(cut());
            }
            Some(Fault::Close { after }) if *after == self.chunks => {
                self.step = Step::End;
                // hyper drops what it has not flushed when a body fails: let it flush first.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Err(cut());
            }
            _ => {}
        }
        self.due += self.script.delay_before(self.chunks);
        if !self.wait_until(self.due).await {
            return Err(cut());
        }
        let n = self
            .script
            .tokens_per_chunk
            .max(1)
            .min(self.total - self.sent);
        let mut text = String::with_capacity(8 * n + 24);
        for k in 0..n {
            if k == 0 && self.script.stamp {
                let ns = self.shared().origin.elapsed().as_nanos();
                let _ = write!(text, "@{ns} ");
            } else {
                let _ = write!(text, "w{} ", self.sent + k);
            }
        }
        self.sent += n;
        self.chunks += 1;
        let shared = self.shared();
        shared.tokens.fetch_add(n as u64, Ordering::Relaxed);
        shared.decodes.fetch_add(1, Ordering::Relaxed);
        Ok(self.frame(Delta::content(&text), None))
    }

    /// Waits until `due` (false if the mock stopped first).
    async fn wait_until(&self, due: Instant) -> bool {
        let coarse = if self.script.exact {
            due.checked_sub(Duration::from_millis(1))
        } else {
            Some(due)
        };
        let stop = &self.shared().stop;
        if let Some(c) = coarse.filter(|c| *c > Instant::now()) {
            if c - Instant::now() < LONG_WAIT {
                // Short waits skip registering for the stop signal (a lock shared by all streams).
                tokio::time::sleep_until(c.into()).await;
            } else {
                tokio::select! {
                    _ = tokio::time::sleep_until(c.into()) => {}
                    _ = stop.cancelled() => return false,
                }
            }
        }
        if self.script.exact {
            while Instant::now() < due {
                tokio::task::yield_now().await;
            }
        }
        !stop.is_cancelled()
    }

    /// One `data:` frame of `delta` and a finish reason, with usage when the request asked for
    /// it per chunk (vLLM's `continuous_usage_stats`).
    fn frame(&self, delta: Delta, finish: Option<&str>) -> Bytes {
        let chunk = self.head.chunk(delta, finish);
        if self.asked.continuous_usage && self.script.continuous_usage {
            chunk.with_usage(self.usage()).frame()
        } else {
            chunk.frame()
        }
    }

    fn usage(&self) -> Usage {
        usage(&self.script, self.asked.prompt_tokens, self.sent)
    }
}

/// The usage of `sent` tokens, with the script's cached prompt tokens.
pub fn usage(script: &Script, prompt_tokens: usize, sent: usize) -> Usage {
    let mut u = Usage::new(prompt_tokens, sent);
    u.prompt_tokens_details = script
        .cached_tokens
        .map(|c| openai::chunk::PromptTokensDetails {
            cached_tokens: Some(c),
        });
    u
}
