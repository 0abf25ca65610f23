//! The acceptance policy speculative verification keeps drafts by, as a setting: lossless (greedy
//! match, or speculative sampling when the run samples) or one of the seed's lossy rules, with
//! its parameter. Written as `lossless`, `tau=0.3`, `topk=3` or `typical=0.09`; a lossy one is
//! labelled so wherever it shows.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The rule a speculative run verifies by. Parameters are whole thousandths (tau, epsilon) or a
/// count (k), so a policy compares, hashes and records exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AcceptPolicy {
    #[default]
    Lossless,
    /// Lossy: also keep a draft the target gives at least tau (thousandths).
    Threshold(u16),
    /// Lossy: also keep a draft among the target's k likeliest tokens.
    TopK(u16),
    /// Lossy: Medusa's typical acceptance with epsilon (thousandths).
    Typical(u16),
}

impl AcceptPolicy {
    /// The values the dashboard's key cycles through.
    pub const CYCLE: [Self; 4] = [
        Self::Lossless,
        Self::Threshold(300),
        Self::TopK(3),
        Self::Typical(90),
    ];

    /// `lossless`, `tau=P`, `topk=K` or `typical=E` (P and E above 0 and at most 1).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if matches!(s, "lossless" | "greedy" | "exact") {
            return Ok(Self::Lossless);
        }
        let (name, value) = s
            .split_once('=')
            .ok_or_else(|| format!("`{s}`: write lossless, tau=P, topk=K or typical=E"))?;
        let thousandths = |v: &str| match v.trim().parse::<f64>() {
            Ok(x) if x > 0.0 && x <= 1.0 => Ok((x * 1000.0).round().max(1.0) as u16),
            _ => Err(format!(
                "`{s}`: {name} is a probability above 0 and at most 1"
            )),
        };
        match name.trim() {
            "tau" | "threshold" => Ok(Self::Threshold(thousandths(value)?)),
            "typical" | "epsilon" => Ok(Self::Typical(thousandths(value)?)),
            "topk" | "top-k" | "k" => match value.trim().parse::<u16>() {
                Ok(k) if (1..=1000).contains(&k) => Ok(Self::TopK(k)),
                _ => Err(format!("`{s}`: topk is a whole number from 1 to 1000")),
            },
            other => Err(format!(
                "`{other}` is not a policy: lossless, tau, topk or typical"
            )),
        }
    }

    /// Whether it changes the output from the target's own.
    pub fn is_lossy(self) -> bool {
        self != Self::Lossless
    }

    /// The next value of [`Self::CYCLE`] (a value off the cycle goes back to lossless).
    pub fn next(self) -> Self {
        let i = Self::CYCLE.iter().position(|p| *p == self);
        i.map_or(Self::Lossless, |i| Self::CYCLE[(i + 1) % Self::CYCLE.len()])
    }

    /// The name, and `(lossy)` after a lossy one: how panes and tables show it.
    pub fn label(self) -> String {
        if self.is_lossy() {
            format!("{self} (lossy)")
        } else {
            self.to_string()
        }
    }
}

impl fmt::Display for AcceptPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let share = |t: u16| t as f64 / 1000.0;
        match self {
            Self::Lossless => f.write_str("lossless"),
            Self::Threshold(t) => write!(f, "tau={}", share(*t)),
            Self::TopK(k) => write!(f, "topk={k}"),
            Self::Typical(e) => write!(f, "typical={}", share(*e)),
        }
    }
}

impl std::str::FromStr for AcceptPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl TryFrom<String> for AcceptPolicy {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<AcceptPolicy> for String {
    fn from(p: AcceptPolicy) -> String {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_print_and_cycle() {
        for p in AcceptPolicy::CYCLE {
            assert_eq!(AcceptPolicy::parse(&p.to_string()), Ok(p));
            let ron_text = ron::to_string(&p).unwrap();
            assert_eq!(ron::from_str::<AcceptPolicy>(&ron_text).unwrap(), p);
        }
        assert_eq!(
            AcceptPolicy::parse("tau=0.3"),
            Ok(AcceptPolicy::Threshold(300))
        );
        assert_eq!(AcceptPolicy::Threshold(300).label(), "tau=0.3 (lossy)");
        assert_eq!(AcceptPolicy::Lossless.label(), "lossless");
        assert_eq!(AcceptPolicy::Lossless.next(), AcceptPolicy::Threshold(300));
        assert_eq!(AcceptPolicy::Typical(90).next(), AcceptPolicy::Lossless);
        for bad in ["tau=0", "tau=2", "topk=0", "k=x", "fast=1", "tau"] {
            assert!(AcceptPolicy::parse(bad).is_err(), "{bad}");
        }
    }
}
