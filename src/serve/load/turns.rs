//! Conversations of several turns (`--turns N --think-time S`): a user sends a prompt, reads the
//! reply, thinks for a while (exponential, mean S), and asks a follow-up with the whole
//! conversation as its context — as a chat client does, so a server's prefix cache sees each
//! turn's history again. While a user thinks their place under the concurrency cap stays taken.

use crate::protocol::serve::{Outcome, Request, Turn};
use rand::SeedableRng;
use rand_distr::{Distribution, Exp};
use std::time::{Duration, Instant};

/// What a user asks after each reply, in turn.
pub const FOLLOW_UPS: &[&str] = &[
    "Can you explain that in more detail?",
    "Now give a short example of it.",
    "What could go wrong with that approach?",
    "Summarise your answer in one sentence.",
    "How would you test it?",
];

/// Turns a conversation has, and the mean think time between a reply and the next question.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Turns {
    pub turns: usize,
    pub think: Duration,
}

/// The next turn of `req`'s conversation after `reply`: everything so far as context, then the
/// follow-up question of this turn.
pub fn follow_up(req: &Request, reply: &str, turn: usize) -> Request {
    let mut context = req.context.clone();
    context.push(Turn {
        role: "user".into(),
        content: req.prompt.clone(),
    });
    context.push(Turn {
        role: "assistant".into(),
        content: reply.into(),
    });
    Request {
        context,
        prompt: FOLLOW_UPS[(turn - 1) % FOLLOW_UPS.len()].into(),
        ..req.clone()
    }
}

/// Follow-up turns waiting for their users to finish thinking.
pub struct FollowUps {
    turns: Turns,
    pending: Vec<(Instant, Request, usize)>,
    rng: rand::rngs::StdRng,
}

impl FollowUps {
    pub fn new(turns: Turns, seed: u64) -> Self {
        FollowUps {
            turns,
            pending: Vec::new(),
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// Whether conversations have more than one turn (requests must then be kept to follow).
    pub fn on(&self) -> bool {
        self.turns.turns > 1
    }

    /// Turn `turn` (0 for the first) of a conversation ended: its next turn falls due after a
    /// think time, if the conversation has one and the reply came.
    pub fn after(&mut self, req: &Request, turn: usize, o: &Outcome, now: Instant) {
        if !o.ok() || turn + 1 >= self.turns.turns {
            return;
        }
        let mean = self.turns.think.as_secs_f64();
        let think = match Exp::new(1.0 / mean) {
            Ok(e) if mean > 0.0 => Duration::from_secs_f64(e.sample(&mut self.rng)),
            _ => Duration::ZERO,
        };
        self.pending
            .push((now + think, follow_up(req, &o.text, turn + 1), turn + 1));
    }

    /// A follow-up that is due by `now`, the earliest first, with its turn.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Request, usize)> {
        let i = (0..self.pending.len())
            .filter(|&i| self.pending[i].0 <= now)
            .min_by_key(|&i| self.pending[i].0)?;
        let (_, req, turn) = self.pending.swap_remove(i);
        Some((req, turn))
    }

    /// When the next follow-up falls due.
    pub fn next_due(&self) -> Option<Instant> {
        self.pending.iter().map(|p| p.0).min()
    }

    /// Users thinking now.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> Request {
        Request {
            context: vec![Turn {
                role: "system".into(),
                content: "Be brief.".into(),
            }],
            prompt: "What is a KV cache?".into(),
            max_tokens: 8,
            ignore_eos: false,
            temperature: 0.0,
        }
    }

    #[test]
    fn a_follow_up_carries_the_conversation_and_waits_its_think_time() {
        let mut f = FollowUps::new(
            Turns {
                turns: 3,
                think: Duration::from_millis(200),
            },
            7,
        );
        let t0 = Instant::now();
        let reply = Outcome {
            text: "It keeps keys and values.".into(),
            ..Outcome::default()
        };
        f.after(&req(), 0, &reply, t0);
        assert_eq!(f.len(), 1);
        let due = f.next_due().unwrap();
        assert!(
            f.pop_due(t0).is_none() || due == t0,
            "not before its think time"
        );
        let (next, turn) = f.pop_due(due).unwrap();
        assert_eq!(turn, 1);
        let roles: Vec<&str> = next.context.iter().map(|t| t.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant"]);
        assert_eq!(next.context[2].content, "It keeps keys and values.");
        assert_eq!(next.prompt, FOLLOW_UPS[0]);
        // The last turn has no follow-up; nor has a failed one.
        f.after(&next, 2, &reply, t0);
        let failed = Outcome {
            failure: Some(crate::protocol::serve::Failure::new(
                crate::protocol::serve::FailureKind::Closed,
                "x",
            )),
            ..Outcome::default()
        };
        f.after(&next, 1, &failed, t0);
        assert!(f.is_empty());
        // Think times average their mean.
        let mut g = FollowUps::new(
            Turns {
                turns: 2,
                think: Duration::from_millis(100),
            },
            1,
        );
        for _ in 0..2000 {
            g.after(&req(), 0, &reply, t0);
        }
        let mean = g
            .pending
            .iter()
            .map(|p| (p.0 - t0).as_secs_f64())
            .sum::<f64>()
            / 2000.0;
        assert!((mean - 0.1).abs() < 0.01, "{mean}");
    }
}
