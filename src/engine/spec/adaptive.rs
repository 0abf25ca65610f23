//! Choosing K before each decode step: fixed, or adaptive.
//!
//! Adaptive K works from a cost model when it has one ([`Costs`], measured once per drafter by
//! [`super::Drafter::calibrate`] and kept current by every step): the time of a plain step, of
//! drafting a token and of each verified position, and the acceptance of each draft position
//! (counts that fade, so it follows the text). Before each step it takes the K whose expected
//! speedup, 1 + Σ Πα tokens for K drafts and a verification of K + 1 positions, is largest, and
//! decodes plainly when none beats plain decoding. When even drafts that are always accepted
//! could not pay (a draft model too slow for its target on this machine), it does not speculate at
//! all; otherwise it probes now and then, with acceptance counts that have faded towards an
//! optimistic prior. Without costs it grows K after a fully accepted step, shrinks it after a
//! rejection, and stops speculating (with growing back-off) while speculative steps yield tokens
//! slower than plain steps do.
//!
//! Plain steps also serve as the baseline: the first decode step of a run and one step in every
//! [`PROBE_EVERY`] are plain, so the live speedup is measured against this run's own plain speed.

pub use crate::protocol::{KPolicy, K_MAX};
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

/// What the next decode step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecPlan {
    Plain,
    Speculate(usize),
}

/// What a speculative step costs, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Costs {
    /// One plain decode step.
    pub plain: f64,
    /// Drafting one token.
    pub draft: f64,
    /// Each verified position beyond the first (a verification of one position costs a plain
    /// step).
    pub verify_extra: f64,
    /// A draft model catching up on one token of text it has not seen (its prefill rate); 0
    /// for drafters without a cache of their own.
    pub catch_up: f64,
}

impl Costs {
    /// Seconds to verify `positions` positions.
    pub fn verify(&self, positions: usize) -> f64 {
        self.plain + self.verify_extra * positions.saturating_sub(1) as f64
    }

    /// Expected speedup of drafting `alpha.len()` tokens with per-position acceptance `alpha`.
    pub fn speedup(&self, alpha: &[f64]) -> f64 {
        super::theory::predicted_speedup(
            alpha,
            self.plain,
            self.draft,
            self.verify(alpha.len() + 1),
        )
    }

    /// The best K for `alpha` (one acceptance per position up to [`K_MAX`]) and its speedup.
    pub fn best(&self, alpha: &[f64]) -> (usize, f64) {
        (1..=alpha.len().min(K_MAX))
            .map(|k| (k, self.speedup(&alpha[..k])))
            .fold((1, 0.0), |b, x| if x.1 > b.1 { x } else { b })
    }
}

/// The optimistic prior of each position's acceptance, as pseudo-counts: accepted of reached.
const PRIOR_ACCEPTED: f64 = 1.6;
const PRIOR_REACHED: f64 = 2.0;
/// Each step keeps this share of the acceptance counts, so old text weighs less.
const FADE: f64 = 0.9;
/// Speculate only when the expected speedup is above this.
const PAY_ABOVE: f64 = 1.05;
/// Try a drafter at all only when drafts that are always accepted would beat plain decoding by
/// this much: below it, the noise of the cost estimates, a few rejections and a draft model's
/// catch-up on text it has not seen turn the small gain into a loss. The estimates are that
/// noisy: on the 1.5B/0.5B pair calibration once read a plain step 13% slower than the run's
/// own (23.3 against 20.6 ms), which lifted the draft model's ceiling from about 1.0× to 1.1–1.15×,
/// and the run then lost 19% drafting at 100% acceptance.
const CEILING_ABOVE: f64 = 1.25;
/// Weight of a new measurement in the running cost estimates (the calibration starts them).
const COST_EMA: f64 = 0.1;
/// With costs, a step in this many may probe speculation that the model expects not to pay.
const EXPLORE_EVERY: usize = 24;

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
    costs: Option<Costs>,
    /// Whether costs were asked for (and, where none could be measured, not asked again).
    calibrated: bool,
    /// Text the drafter had not seen when the last step was planned.
    unseen: usize,
    /// Per draft position: steps that reached it (every earlier draft accepted), and of those,
    /// steps that accepted it (faded counts).
    reached: [f64; K_MAX],
    accepted: [f64; K_MAX],
    since_spec: usize,
    /// The acceptance-target controller's smoothed share of drafts accepted.
    rate: Option<f64>,
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
            costs: None,
            calibrated: false,
            unseen: 0,
            reached: [0.0; K_MAX],
            accepted: [0.0; K_MAX],
            since_spec: 0,
            rate: None,
        }
        .with_k_in_range()
    }

    /// K inside the target controller's range when that is the policy.
    fn with_k_in_range(mut self) -> Self {
        if let KPolicy::Target { min, max, .. } = self.policy {
            self.k = self.k.clamp(min, max);
        }
        self
    }

    /// The acceptance-target controller's next K after a step that accepted `accepted` of
    /// `drafted`: the accepted share, smoothed over steps, at or above the target grows K by
    /// one, below it shrinks K by one, within `min..=max`.
    fn steer_to_target(&mut self, drafted: usize, accepted: usize) {
        let KPolicy::Target { min, max, accept } = self.policy else {
            return;
        };
        let rate = accepted as f64 / drafted.max(1) as f64;
        self.rate = Some(match self.rate {
            Some(r) => 0.5 * r + 0.5 * rate,
            None => rate,
        });
        let target = accept as f64 / 100.0;
        self.k = if self.rate >= Some(target) {
            self.k + 1
        } else {
            self.k.saturating_sub(1)
        }
        .clamp(min, max);
    }

    /// Whether adaptive K still lacks measured costs (see [`super::Drafter::calibrate`]).
    pub fn needs_costs(&self) -> bool {
        self.policy == KPolicy::Adaptive && !self.calibrated
    }

    /// The measured costs, or `None` where they could not be measured.
    pub fn set_costs(&mut self, costs: Option<Costs>) {
        self.costs = costs;
        self.calibrated = true;
    }

    pub fn costs(&self) -> Option<Costs> {
        self.costs
    }

    /// Each position's acceptance: the faded counts over a prior. The first position's prior is
    /// the optimistic [`PRIOR_ACCEPTED`] of [`PRIOR_REACHED`]; each later position's prior is
    /// the position before it, so positions never reached yet take the acceptance of the
    /// deepest one measured. A constant prior held them at 0.8 while lookup on a rewrite
    /// accepted the second draft 90% of the time, and K never grew past 2 (1.14× where K 4
    /// gave 1.38×).
    pub fn alpha(&self) -> [f64; K_MAX] {
        let mut alpha = [0.0; K_MAX];
        let mut prior = PRIOR_ACCEPTED / PRIOR_REACHED;
        for (i, a) in alpha.iter_mut().enumerate() {
            *a = (self.accepted[i] + prior * PRIOR_REACHED) / (self.reached[i] + PRIOR_REACHED);
            prior = *a;
        }
        alpha
    }

    /// With costs: the K to draft now, or `None` to decode plainly. `unseen` tokens of text
    /// the drafter must catch up on first; `left` tokens still to generate.
    fn model_k(&self, costs: &Costs, unseen: usize, left: usize) -> Option<usize> {
        // What a speedup `s` saves over the rest of the run, against the catch-up it costs.
        let pays = |s: f64| {
            s >= PAY_ABOVE
                && left as f64 * costs.plain * (1.0 - 1.0 / s)
                    > unseen.saturating_sub(1) as f64 * costs.catch_up
        };
        // Drafts that are always accepted set the ceiling: below it, never speculate.
        let ceiling = costs.best(&[1.0; K_MAX]).1;
        if ceiling < CEILING_ABOVE || !pays(ceiling) {
            return None;
        }
        let (k, speedup) = costs.best(&self.alpha());
        if pays(speedup) {
            return Some(k);
        }
        // Probe now and then; the counts fade towards the prior meanwhile.
        (self.since_spec >= EXPLORE_EVERY).then_some(k.min(2))
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
            // New text: what lookup found in the last one says little.
            self.reached = [0.0; K_MAX];
            self.accepted = [0.0; K_MAX];
            0
        };
        self.step = 0;
        self.episode_steps = 0;
    }

    /// A live change of K; statistics are kept.
    pub fn set_policy(&mut self, policy: KPolicy) {
        self.policy = policy;
        if let KPolicy::Target { min, max, .. } = policy {
            self.k = self.k.clamp(min, max);
        }
    }

    pub fn policy(&self) -> KPolicy {
        self.policy
    }

    /// What the next step should do, when the drafter has not seen `unseen` tokens of the text
    /// (the pending one included) and `left` tokens are still to come.
    pub fn plan(&mut self, unseen: usize, left: usize) -> SpecPlan {
        self.unseen = unseen;
        if self.step.is_multiple_of(PROBE_EVERY) {
            return SpecPlan::Plain;
        }
        match (self.policy, &self.costs) {
            (KPolicy::Fixed(k), _) => SpecPlan::Speculate(k),
            (KPolicy::Target { .. }, _) => SpecPlan::Speculate(self.k),
            // Measured speculation fell behind plain decoding: paused, whatever the model says.
            (KPolicy::Adaptive, _) if self.step < self.off_until => SpecPlan::Plain,
            (KPolicy::Adaptive, Some(costs)) => match self.model_k(costs, unseen, left) {
                Some(k) => SpecPlan::Speculate(k),
                None => SpecPlan::Plain,
            },
            (KPolicy::Adaptive, None) => SpecPlan::Speculate(self.k),
        }
    }

    /// What a step did: `drafted` tokens proposed (0 for a plain step), `accepted` of them kept,
    /// `tokens` produced; `draft` and `verify` seconds (a plain step's time is its `verify`).
    pub fn observe(
        &mut self,
        drafted: usize,
        accepted: usize,
        tokens: usize,
        draft: f64,
        verify: f64,
    ) {
        self.step += 1;
        let seconds = draft + verify;
        let per_token = seconds / tokens.max(1) as f64;
        if drafted == 0 {
            self.plain.add(per_token);
            self.since_spec += 1;
            if let Some(c) = &mut self.costs {
                c.plain += COST_EMA * (seconds - c.plain);
            }
            return;
        }
        self.since_spec = 0;
        self.spec.add(per_token);
        self.episode_steps += 1;
        for i in 0..K_MAX {
            self.reached[i] *= FADE;
            self.accepted[i] *= FADE;
        }
        for i in 0..drafted.min(accepted + 1).min(K_MAX) {
            self.reached[i] += 1.0;
            if i < accepted {
                self.accepted[i] += 1.0;
            }
        }
        if let Some(c) = &mut self.costs {
            // A step that caught up on unseen text says little about drafting itself.
            if self.unseen <= 1 {
                c.draft += COST_EMA * (draft / drafted as f64 - c.draft);
            }
            let extra = (verify - c.plain) / drafted as f64;
            c.verify_extra = (c.verify_extra + COST_EMA * (extra - c.verify_extra)).max(0.0);
        }
        self.steer_to_target(drafted, accepted);
        if self.policy != KPolicy::Adaptive {
            return;
        }
        if self.costs.is_none() {
            self.k = if accepted == drafted {
                (self.k + 1).min(K_MAX)
            } else {
                self.k.saturating_sub(1).max(1)
            };
        }
        // Whatever picked K (the cost model or the rule above), measured speed has the last
        // word: speculation slower per token than plain steps pauses, for longer each time.
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
    fn the_target_controller_grows_k_above_its_target_and_shrinks_it_below() {
        let mut c = Controller::new(KPolicy::Target {
            min: 2,
            max: 5,
            accept: 70,
        });
        assert_eq!(
            c.plan(1, 1000),
            SpecPlan::Plain,
            "the first step is the baseline"
        );
        c.observe(0, 0, 1, 0.0, 0.1);
        assert_eq!(c.plan(1, 1000), SpecPlan::Speculate(2), "it starts at min");
        let mut ks = Vec::new();
        for _ in 0..6 {
            let SpecPlan::Speculate(k) = c.plan(1, 1000) else {
                panic!("plain")
            };
            ks.push(k);
            c.observe(k, k, k + 1, 0.0, 0.1); // every draft kept
        }
        assert_eq!(ks, [2, 3, 4, 5, 5, 5], "grows by one up to max");
        let mut ks = Vec::new();
        for _ in 0..6 {
            let SpecPlan::Speculate(k) = c.plan(1, 1000) else {
                panic!("plain")
            };
            ks.push(k);
            c.observe(k, 0, 1, 0.0, 0.1); // every draft rejected
        }
        // The smoothed rate falls below 70% at once (0.5 after one rejection).
        assert_eq!(ks, [5, 4, 3, 2, 2, 2], "shrinks by one down to min");
        c.set_policy(KPolicy::Target {
            min: 3,
            max: 4,
            accept: 50,
        });
        assert_eq!(
            c.plan(1, 1000),
            SpecPlan::Speculate(3),
            "a new range clamps K"
        );
    }

    #[test]
    fn fixed_k_probes_plainly_once_in_a_while() {
        let mut c = Controller::new(KPolicy::Fixed(3));
        assert_eq!(c.plan(1, 1000), SpecPlan::Plain);
        c.observe(0, 0, 1, 0.0, 0.1);
        assert_eq!(c.plan(1, 1000), SpecPlan::Speculate(3));
        for _ in 1..PROBE_EVERY {
            c.observe(3, 1, 2, 0.0, 0.1);
        }
        assert_eq!(c.plan(1, 1000), SpecPlan::Plain);
    }

    #[test]
    fn adaptive_k_grows_on_full_acceptance_and_shrinks_on_rejection() {
        let mut c = Controller::new(KPolicy::Adaptive);
        c.observe(0, 0, 1, 0.0, 0.1);
        assert_eq!(c.plan(1, 1000), SpecPlan::Speculate(2));
        c.observe(2, 2, 3, 0.0, 0.12); // paying: 0.04 s/token against 0.1
        assert_eq!(c.plan(1, 1000), SpecPlan::Speculate(3));
        c.observe(3, 1, 2, 0.0, 0.12);
        assert_eq!(c.plan(1, 1000), SpecPlan::Speculate(2));
        c.observe(2, 0, 1, 0.0, 0.12);
        assert_eq!(c.plan(1, 1000), SpecPlan::Speculate(1));
    }

    #[test]
    fn measured_slowness_pauses_speculation_the_cost_model_expected_to_pay() {
        let mut c = Controller::new(KPolicy::Adaptive);
        // Costs under which drafting 4 pays well, and acceptance to match.
        c.set_costs(Some(Costs {
            plain: 0.1,
            draft: 0.001,
            verify_extra: 0.01,
            catch_up: 0.0,
        }));
        assert_eq!(c.plan(1, 1000), SpecPlan::Plain); // the run's first step is plain
        c.observe(0, 0, 1, 0.0, 0.1);
        assert!(matches!(c.plan(1, 1000), SpecPlan::Speculate(_)));
        // Yet every step takes 0.5 s for 4 tokens: 0.125 s a token against 0.1.
        for _ in 0..JUDGE_AFTER {
            c.observe(4, 3, 4, 0.001, 0.5);
        }
        for _ in 0..BACKOFF_MIN {
            assert_eq!(c.plan(1, 1000), SpecPlan::Plain);
            c.observe(0, 0, 1, 0.0, 0.1);
        }
        assert!(matches!(c.plan(1, 1000), SpecPlan::Speculate(_)));
    }

    #[test]
    fn positions_not_reached_take_the_deepest_measured_acceptance() {
        let mut c = Controller::new(KPolicy::Adaptive);
        // Drafts of 2: the first accepted 9 times in 10, the second whenever reached.
        for i in 0..40 {
            let accepted = if i % 10 == 0 { 0 } else { 2 };
            c.observe(2, accepted, accepted + 1, 0.0, 0.1);
        }
        let a = c.alpha();
        assert!(a[0] > 0.8 && a[0] < 0.95 && a[1] > 0.9, "{a:?}");
        // Never reached: the second position's acceptance, not the 0.8 prior.
        assert!(a[2..].iter().all(|&x| x == a[1]), "{a:?}");
    }

    #[test]
    fn a_pause_carries_over_into_the_next_run() {
        let mut c = Controller::new(KPolicy::Adaptive);
        c.observe(0, 0, 1, 0.0, 0.1);
        for _ in 0..JUDGE_AFTER {
            c.observe(2, 0, 1, 0.0, 0.15);
        }
        c.observe(0, 0, 1, 0.0, 0.1); // one step into the pause, then the run ends
        c.start_run(true);
        for _ in 0..BACKOFF_MIN - 1 {
            assert_eq!(c.plan(1, 1000), SpecPlan::Plain);
            c.observe(0, 0, 1, 0.0, 0.1);
        }
        assert!(matches!(c.plan(1, 1000), SpecPlan::Speculate(_)));
    }

    #[test]
    fn adaptive_k_stops_speculating_when_it_does_not_pay() {
        let mut c = Controller::new(KPolicy::Adaptive);
        c.observe(0, 0, 1, 0.0, 0.1);
        for _ in 0..JUDGE_AFTER {
            c.observe(2, 0, 1, 0.0, 0.15); // slower than plain
        }
        for _ in 0..BACKOFF_MIN {
            assert_eq!(c.plan(1, 1000), SpecPlan::Plain);
            c.observe(0, 0, 1, 0.0, 0.1);
        }
        assert!(matches!(c.plan(1, 1000), SpecPlan::Speculate(_)));
    }

    fn costs(draft: f64, catch_up: f64) -> Costs {
        Costs {
            plain: 0.030,
            draft,
            verify_extra: 0.015,
            catch_up,
        }
    }

    #[test]
    fn a_draft_model_that_cannot_pay_is_never_tried() {
        // Measured on this 2-core CPU: 0.5B drafts at 14 ms for a 30 ms 1.5B step, and each
        // verified position adds 15 ms: even drafts always accepted stay near 1×.
        let c = costs(0.014, 0.005);
        assert!(c.best(&[1.0; K_MAX]).1 < CEILING_ABOVE);
        // With the faster kernels: a 23.3 ms step (as calibration misread it), 12.6 ms drafts,
        // 8.4 ms per verified position.
        let fast = Costs {
            plain: 0.0233,
            draft: 0.0126,
            verify_extra: 0.0084,
            catch_up: 0.0034,
        };
        assert!(fast.best(&[1.0; K_MAX]).1 < CEILING_ABOVE);
        let mut ctl = Controller::new(KPolicy::Adaptive);
        ctl.set_costs(Some(c));
        for _ in 0..200 {
            assert_eq!(ctl.plan(1, 1000), SpecPlan::Plain);
            ctl.observe(0, 0, 1, 0.0, 0.030);
        }
    }

    #[test]
    fn free_drafts_speculate_while_accepted_and_stop_when_rejected() {
        let mut ctl = Controller::new(KPolicy::Adaptive);
        ctl.set_costs(Some(costs(0.0, 0.0)));
        ctl.observe(0, 0, 1, 0.0, 0.030); // the first step is plain
        let SpecPlan::Speculate(k) = ctl.plan(0, 1000) else {
            panic!("free drafts with an optimistic prior should be tried")
        };
        // Everything accepted: K stays worth speculating, and grows.
        for _ in 0..10 {
            ctl.observe(k, k, k + 1, 0.0, 0.030 + 0.015 * k as f64);
        }
        let SpecPlan::Speculate(grown) = ctl.plan(0, 1000) else {
            panic!("accepted drafts should keep speculation on")
        };
        assert!(grown > k, "K {grown} after full acceptance, from {k}");
        // Everything rejected: speculation stops.
        for _ in 0..20 {
            if let SpecPlan::Speculate(k) = ctl.plan(0, 1000) {
                ctl.observe(k, 0, 1, 0.0, 0.030 + 0.015 * k as f64);
            } else {
                ctl.observe(0, 0, 1, 0.0, 0.030);
            }
        }
        assert_eq!(ctl.plan(0, 1000), SpecPlan::Plain);
    }

    #[test]
    fn catching_up_costs_more_than_a_short_run_saves() {
        // A fast draft model: worth it on a long run, not for 8 tokens after a 400-token prompt.
        let c = costs(0.002, 0.005);
        assert!(c.best(&[1.0; K_MAX]).1 > CEILING_ABOVE);
        let mut ctl = Controller::new(KPolicy::Adaptive);
        ctl.set_costs(Some(c));
        ctl.observe(0, 0, 1, 0.0, 0.030);
        assert!(matches!(ctl.plan(1, 1000), SpecPlan::Speculate(_)));
        assert_eq!(ctl.plan(400, 8), SpecPlan::Plain);
    }
}
