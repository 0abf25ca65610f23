//! What a recording may hold: the numbers that size, index or add up to something in the state and
//! the panes (a model's shape, a speculative step's counts, a run's parameters, durations, the KV
//! cache's growth) are checked on load, so a crafted or damaged file is refused with its line,
//! column and field instead of panicking the replay. The limits are the ones a live session keeps:
//! the engine's and the protocol's.

use crate::engine::config::{
    MAX_CONTEXT, MAX_EMBEDDING, MAX_HEADS, MAX_HEAD_DIM, MAX_LAYERS, MAX_VOCAB,
};
use crate::protocol::sched::MAX_ARRIVALS;
use crate::protocol::{params, Event, ModelInfo, SchedEvent, SpecStep, Stamped, K_MAX};

/// Longest duration a recording may hold (136 years): sums over millions of them still fit.
pub const MAX_SECONDS: u64 = 1 << 32;

/// A value out of range: the field (as written in the file) and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Bad {
    pub field: String,
    pub why: String,
}

fn bad(field: &str, why: String) -> Bad {
    Bad {
        field: field.to_string(),
        why,
    }
}

fn within(field: &str, v: usize, max: u64) -> Result<(), Bad> {
    if v as u64 <= max {
        Ok(())
    } else {
        Err(bad(
            field,
            format!("{field} = {v} is out of range (0 to {max})"),
        ))
    }
}

/// A model's shape, as the engine would have loaded it.
pub fn model(m: &ModelInfo) -> Result<(), Bad> {
    within("layers", m.layers, MAX_LAYERS)?;
    within("heads", m.heads, MAX_HEADS)?;
    within("kv_heads", m.kv_heads, MAX_HEADS)?;
    within("head_dim", m.head_dim, MAX_HEAD_DIM)?;
    within("hidden", m.hidden, MAX_EMBEDDING)?;
    within("vocab", m.vocab, MAX_VOCAB)?;
    within("context_length", m.context_length, MAX_CONTEXT)
}

/// A speculative step: at most K drafts, one text per draft, no more accepted than drafted.
pub fn spec_step(s: &SpecStep) -> Result<(), Bad> {
    within("k", s.k, K_MAX as u64)?;
    let drafted = s.drafted.len();
    if drafted > K_MAX {
        return Err(bad(
            "drafted",
            format!("drafted holds {drafted} tokens (at most {K_MAX})"),
        ));
    }
    if s.drafted_text.len() != drafted {
        return Err(bad(
            "drafted_text",
            format!(
                "drafted_text holds {} texts for {drafted} drafted tokens",
                s.drafted_text.len()
            ),
        ));
    }
    within("accepted", s.accepted, drafted as u64)
}

/// A scheduler decision: token counts within the context, a step's queues and blocks within
/// what a scheduler holds (requests a stream may hold, blocks covering the context per request).
pub fn sched(e: &SchedEvent) -> Result<(), Bad> {
    let reqs = MAX_ARRIVALS as u64 * 16;
    let blocks = MAX_CONTEXT * 64;
    match *e {
        SchedEvent::Started {
            max_batch,
            kv_blocks,
            step_tokens,
            ..
        } => {
            within("max_batch", max_batch, reqs)?;
            within("kv_blocks", kv_blocks, blocks)?;
            within("step_tokens", step_tokens, MAX_CONTEXT * 64)
        }
        SchedEvent::Arrived {
            prompt_tokens,
            max_tokens,
            ..
        } => {
            within("prompt_tokens", prompt_tokens, MAX_CONTEXT)?;
            within("max_tokens", max_tokens, params::MAX_TOKENS as u64)
        }
        SchedEvent::Prefill { start, len, .. } => {
            within("start", start, MAX_CONTEXT)?;
            within("len", len, MAX_CONTEXT)
        }
        SchedEvent::Token { index, .. } => within("index", index, params::MAX_TOKENS as u64),
        SchedEvent::Preempted { blocks: b, .. } => within("blocks", b, blocks),
        SchedEvent::Finished { generated, .. } => {
            within("generated", generated, params::MAX_TOKENS as u64)
        }
        SchedEvent::Step {
            prefill_tokens,
            decode_rows,
            running,
            waiting,
            blocks_held,
            blocks_total,
            ..
        } => {
            within("prefill_tokens", prefill_tokens, MAX_CONTEXT * 64)?;
            within("decode_rows", decode_rows, reqs)?;
            within("running", running, reqs)?;
            within("waiting", waiting, reqs)?;
            within("blocks_total", blocks_total, blocks)?;
            within("blocks_held", blocks_held, blocks_total as u64)
        }
        SchedEvent::Admitted { .. } | SchedEvent::Resumed { .. } => Ok(()),
    }
}

/// One event's numbers.
pub fn event(e: &Event) -> Result<(), Bad> {
    match e {
        Event::ModelLoaded(m) => model(m),
        Event::SpecStep(s) => spec_step(s),
        Event::RunStarted {
            prompt_tokens,
            settings,
            ..
        } => {
            within("prompt_tokens", *prompt_tokens, MAX_CONTEXT)?;
            settings.params.validate().map_err(|why| bad("params", why))
        }
        Event::PrefillDone { tokens, .. } => within("tokens", *tokens, MAX_CONTEXT),
        Event::Token(t) => {
            within("index", t.index, params::MAX_TOKENS as u64)?;
            within("kv_tokens", t.kv_tokens, MAX_CONTEXT)
        }
        Event::Sched(e) => sched(e),
        Event::KvBlocks { blocks, .. } => {
            within("block_tokens", blocks.block_tokens, MAX_CONTEXT)?;
            within("held", blocks.held, MAX_CONTEXT)?;
            within("free", blocks.free, MAX_CONTEXT)
        }
        _ => Ok(()),
    }
}

/// Every duration in an event (any `(secs, nanos)` pair, wherever it is), at most
/// [`MAX_SECONDS`]: the panes add them up.
pub fn durations(e: &Stamped) -> Result<(), Bad> {
    fn walk(v: &serde_json::Value, key: &str) -> Result<(), Bad> {
        match v {
            serde_json::Value::Object(m) => match (m.get("secs"), m.get("nanos"), m.len()) {
                (Some(secs), Some(_), 2) => match secs.as_u64() {
                    Some(s) if s <= MAX_SECONDS => Ok(()),
                    _ => Err(bad(
                        key,
                        format!("{key} = {secs} s is out of range (at most {MAX_SECONDS} s)"),
                    )),
                },
                _ => m.iter().try_for_each(|(k, x)| walk(x, k)),
            },
            serde_json::Value::Array(a) => a.iter().try_for_each(|x| walk(x, key)),
            _ => Ok(()),
        }
    }
    match serde_json::to_value(e) {
        Ok(v) => walk(&v, "at"),
        Err(err) => Err(bad(
            "event",
            format!("the event cannot be read back: {err}"),
        )),
    }
}

/// The checks of a whole recording, line by line: each event's own numbers, and across a run's
/// tokens that the KV cache only grows (the panes subtract the first token's from the last's).
#[derive(Debug, Default)]
pub struct Checker {
    /// The current run's last token: KV tokens and bytes.
    kv: Option<(usize, u64)>,
}

impl Checker {
    pub fn stamped(&mut self, s: &Stamped) -> Result<(), Bad> {
        event(&s.event)?;
        durations(s)?;
        match &s.event {
            Event::RunStarted { .. } => self.kv = None,
            Event::Token(t) => {
                if let Some((tokens, bytes)) = self.kv {
                    let shrank = |field: &str, now: String, before: String| {
                        Err(bad(
                            field,
                            format!(
                                "{field} = {now} is less than the run's previous token's {before} \
                                 (the KV cache only grows during a run)"
                            ),
                        ))
                    };
                    if t.kv_tokens < tokens {
                        return shrank("kv_tokens", t.kv_tokens.to_string(), tokens.to_string());
                    }
                    if t.kv_bytes < bytes {
                        return shrank("kv_bytes", t.kv_bytes.to_string(), bytes.to_string());
                    }
                }
                self.kv = Some((t.kv_tokens, t.kv_bytes));
            }
            _ => {}
        }
        Ok(())
    }
}

/// The 1-based column of `field` in a RON line (where it is written `field:`), else 1.
pub fn column(line: &str, field: &str) -> usize {
    let bytes = line.as_bytes();
    line.match_indices(field)
        .find(|&(i, _)| {
            let before = i.checked_sub(1).map(|j| bytes[j]);
            let after = line[i + field.len()..].trim_start().starts_with(':');
            after && !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .map_or(1, |(i, _)| line[..i].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_found_where_it_is_written() {
        let line = "Event((at:(secs:0,nanos:0),event:SpecStep((run:1,k:2,accepted:9))))";
        assert_eq!(column(line, "accepted"), line.find("accepted").unwrap() + 1);
        assert_eq!(column(line, "k"), line.find("k:").unwrap() + 1);
        assert_eq!(column(line, "missing"), 1);
    }
}
