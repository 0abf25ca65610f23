//! Choosing K before each decode step: fixed, or adaptive — grow after a fully accepted step,
//! shrink after a rejection, and stop speculating (with growing back-off) while speculative
//! steps yield tokens slower than plain steps do.
//!
//! Plain steps also serve as the baseline: the first decode step of a run and one step in every
//! [`PROBE_EVERY`] are plain, so the live speedup is measured against this run's own plain speed.

/// The largest K.
pub const K_MAX: usize = 16;
/// One decode step in this many is plain, to keep the baseline current.
pub const PROBE_EVERY: usize = 64;
/// Plain steps after the first unprofitable speculation; grows fourfold each time, up to
/// [`BACKOFF_MAX`]. Each return costs a few losing steps (and a draft model's catch-up on the text
/// it missed), so the pauses grow fast.
const BACKOFF_MIN: usize = 16;
const BACKOFF_MAX: usize = 1024;
/// Speculative steps an episode gets before it is judged.
const JUDGE_AFTER: usize = 3;
/// Speculation must keep at least this fraction of the plain speed.
const KEEP_ABOVE: f64 = 0.98;

/// K as the user set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KPolicy {
    Fixed(usize),
    Adaptive,
}

impl KPolicy {
    /// `auto` or a number 1–16; 0 in the protocol also means adaptive.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "auto" | "adaptive" | "0" => Ok(Self::Adaptive),
            n => match n.parse::<usize>() {
                Ok(k) if (1..=K_MAX).contains(&k) => Ok(Self::Fixed(k)),
                _ => Err(format!("K must be 1–{K_MAX} or `auto`, not `{n}`")),
            },
        }
    }

    /// The protocol's number: K, or 0 for adaptive.
    pub fn as_number(self) -> usize {
        match self {
            Self::Fixed(k) => k,
            Self::Adaptive => 0,
        }
    }

    pub fn from_number(k: usize) -> Self {
        if k == 0 {
            Self::Adaptive
        } else {
            Self::Fixed(k.min(K_MAX))
        }
    }
}

impl std::fmt::Display for KPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(k) => write!(f, "{k}"),
            Self::Adaptive => f.write_str("auto"),
        }
    }
}

/// What the next decode step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Plain,
    Speculate(usize),
}

/// Exponential moving average of seconds per token.
#[derive(Debug, Clone, Copy, Default)]
struct Ema(Option<f64>);

impl Ema {
    fn add(&mut self, x: f64) {
        self.0 = Some(match self.0 {
            Some(m) => 0.7 * m + 0.3 * x,
            None => x,
        });
    }
}

#[derive(Debug, Clone)]
pub struct Controller {
    policy: KPolicy,
    k: usize,
    step: usize,
    plain: Ema,
    spec: Ema,
    episode_steps: usize,
    off_until: usize,
    backoff: usize,
}

impl Controller {
    pub fn new(policy: KPolicy) -> Self {
        Self {
            policy,
            k: 2,
            step: 0,
            plain: Ema::default(),
            spec: Ema::default(),
            episode_steps: 0,
            off_until: 0,
            backoff: BACKOFF_MIN,
        }
    }

    /// A new run with the same drafter. With `carry_pause`, a pause in speculation that the last
    /// run had not finished carries over, so a draft model found too slow for its target is not
    /// tried again at every run; without it (prompt lookup, whose worth depends on the text) the
    /// new run starts speculating afresh.
    pub fn start_run(&mut self, carry_pause: bool) {
        self.off_until = if carry_pause {
            self.off_until.saturating_sub(self.step)
        } else {
            self.backoff = BACKOFF_MIN;
            0
        };
        self.step = 0;
        self.episode_steps = 0;
    }

    /// A live change of K; statistics are kept.
    pub fn set_policy(&mut self, policy: KPolicy) {
        self.policy = policy;
    }

    pub fn policy(&self) -> KPolicy {
        self.policy
    }

    /// What the next step should do.
    pub fn plan(&self) -> Plan {
        if self.step % PROBE_EVERY == 0 {
            return Plan::Plain;
        }
        match self.policy {
            KPolicy::Fixed(k) => Plan::Speculate(k),
            KPolicy::Adaptive if self.step < self.off_until => Plan::Plain,
            KPolicy::Adaptive => Plan::Speculate(self.k),
        }
    }

    /// What a step did: `drafted` tokens proposed (0 for a plain step), `accepted` of them kept,
    /// `tokens` produced, in `seconds`.
    pub fn observe(&mut self, drafted: usize, accepted: usize, tokens: usize, seconds: f64) {
        self.step += 1;
        let per_token = seconds / tokens.max(1) as f64;
        if drafted == 0 {
            self.plain.add(per_token);
            return;
        }
        self.spec.add(per_token);
        self.episode_steps += 1;
        if self.policy != KPolicy::Adaptive {
            return;
        }
        self.k = if accepted == drafted {
            (self.k + 1).min(K_MAX)
        } else {
            self.k.saturating_sub(1).max(1)
        };
        if let (Some(plain), Some(spec)) = (self.plain.0, self.spec.0) {
            if self.episode_steps >= JUDGE_AFTER && plain / spec < KEEP_ABOVE {
                self.off_until = self.step + self.backoff;
                self.backoff = (self.backoff * 4).min(BACKOFF_MAX);
                self.episode_steps = 0;
                self.spec = Ema::default();
                self.k = 2;
            } else if self.episode_steps >= 8 && plain / spec >= 1.0 {
                self.backoff = BACKOFF_MIN;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_k_and_lists_the_valid_values() {
        assert_eq!(KPolicy::parse("4"), Ok(KPolicy::Fixed(4)));
        assert_eq!(KPolicy::parse("auto"), Ok(KPolicy::Adaptive));
        let e = KPolicy::parse("17").unwrap_err();
        assert!(e.contains("1–16") && e.contains("auto"), "{e}");
        assert_eq!(KPolicy::from_number(0), KPolicy::Adaptive);
    }

    #[test]
    fn fixed_k_probes_plainly_once_in_a_while() {
        let mut c = Controller::new(KPolicy::Fixed(3));
        assert_eq!(c.plan(), Plan::Plain);
        c.observe(0, 0, 1, 0.1);
        assert_eq!(c.plan(), Plan::Speculate(3));
        for _ in 1..PROBE_EVERY {
            c.observe(3, 1, 2, 0.1);
        }
        assert_eq!(c.plan(), Plan::Plain);
    }

    #[test]
    fn adaptive_k_grows_on_full_acceptance_and_shrinks_on_rejection() {
        let mut c = Controller::new(KPolicy::Adaptive);
        c.observe(0, 0, 1, 0.1);
        assert_eq!(c.plan(), Plan::Speculate(2));
        c.observe(2, 2, 3, 0.12); // paying: 0.04 s/token against 0.1
        assert_eq!(c.plan(), Plan::Speculate(3));
        c.observe(3, 1, 2, 0.12);
        assert_eq!(c.plan(), Plan::Speculate(2));
        c.observe(2, 0, 1, 0.12);
        assert_eq!(c.plan(), Plan::Speculate(1));
    }

    #[test]
    fn a_pause_carries_over_into_the_next_run() {
        let mut c = Controller::new(KPolicy::Adaptive);
        c.observe(0, 0, 1, 0.1);
        for _ in 0..JUDGE_AFTER {
            c.observe(2, 0, 1, 0.15);
        }
        c.observe(0, 0, 1, 0.1); // one step into the pause, then the run ends
        c.start_run(true);
        for _ in 0..BACKOFF_MIN - 1 {
            assert_eq!(c.plan(), Plan::Plain);
            c.observe(0, 0, 1, 0.1);
        }
        assert!(matches!(c.plan(), Plan::Speculate(_)));
    }

    #[test]
    fn adaptive_k_stops_speculating_when_it_does_not_pay() {
        let mut c = Controller::new(KPolicy::Adaptive);
        c.observe(0, 0, 1, 0.1);
        for _ in 0..JUDGE_AFTER {
            c.observe(2, 0, 1, 0.15); // slower than plain
        }
        for _ in 0..BACKOFF_MIN {
            assert_eq!(c.plan(), Plan::Plain);
            c.observe(0, 0, 1, 0.1);
        }
        assert!(matches!(c.plan(), Plan::Speculate(_)));
    }
}
