//! A level's numbers from its requests' outcomes: rates, latency distributions, errors by
//! reason, goodput under an SLO and the cost of a million output tokens.

use crate::protocol::serve::{
    Connections, Counted, LevelSummary, Load, Outcome, Percentiles, Slo, Steady, StopReason,
};
use crate::stats::{dist, percentiles, rate_dist};
use std::collections::BTreeMap;
use std::time::Duration;

/// Whether a successful request met every target of the SLO.
pub fn meets(o: &Outcome, slo: &Slo) -> bool {
    let ok = |target: Option<Duration>, got: Option<Duration>| match (target, got) {
        (Some(t), Some(g)) => g <= t,
        (Some(_), None) => false,
        (None, _) => true,
    };
    o.ok()
        && ok(slo.ttft, o.ttft)
        && ok(slo.e2e, Some(o.e2e))
        // A one-token answer has no time per output token: it meets any TPOT target.
        && (slo.tpot.is_none() || o.output_tokens <= 1 || ok(slo.tpot, o.tpot()))
}

/// The short name a failure is counted under.
pub fn reason(o: &Outcome) -> Option<String> {
    use crate::protocol::serve::FailureKind::*;
    let f = o.failure.as_ref()?;
    Some(match &f.kind {
        Refused => "refused".into(),
        Dns => "dns".into(),
        Tls => "tls".into(),
        Status(s) => format!("http {s}"),
        Malformed => "malformed".into(),
        Stalled => "stalled".into(),
        Closed => "closed".into(),
        Cancelled => "cancelled".into(),
        Other => "other".into(),
    })
}

/// What a level's outcomes add up to.
pub struct Inputs<'a> {
    pub endpoint: &'a str,
    pub load: Load,
    pub outcomes: &'a [Outcome],
    pub slo: Option<Slo>,
    pub usd_per_hour: Option<f64>,
    pub stopped_early: Option<StopReason>,
    /// The steady window on the run's clock (see [`Steady`]); latencies come from the requests
    /// sent inside it. `None` takes every request.
    pub window: Option<(Duration, Duration)>,
    /// Extra percentiles asked for (empty for none).
    pub percentiles: &'a [f64],
    /// Setup times of the connections the level opened, when the target tracks them.
    pub connections: Option<Vec<Duration>>,
}

impl<'a> Inputs<'a> {
    /// A level's outcomes and nothing else: no SLO, price, early stop, window, extra
    /// percentiles or connections (set the fields that matter after).
    pub fn plain(endpoint: &'a str, load: Load, outcomes: &'a [Outcome]) -> Self {
        Inputs {
            endpoint,
            load,
            outcomes,
            slo: None,
            usd_per_hour: None,
            stopped_early: None,
            window: None,
            percentiles: &[],
            connections: None,
        }
    }
}

/// Every output token's arrival on the run's clock.
fn arrivals<'a>(good: &'a [&'a Outcome]) -> impl Iterator<Item = Duration> + 'a {
    good.iter()
        .flat_map(|o| o.token_at.iter().map(move |t| o.sent + *t))
}

/// The steady window's rates: output tokens arriving in it and requests ending in it, per
/// second of it.
fn steady(
    good: &[&Outcome],
    sent: usize,
    (from, to): (Duration, Duration),
    start: Duration,
) -> Steady {
    let secs = (to - from).as_secs_f64();
    let inside = |t: Duration| t >= from && t <= to;
    let tokens = arrivals(good).filter(|t| inside(*t)).count();
    let ended = good.iter().filter(|o| inside(o.sent + o.e2e)).count();
    Steady {
        from: from.saturating_sub(start),
        to: to.saturating_sub(start),
        output_tok_s: tokens as f64 / secs,
        req_s: ended as f64 / secs,
        requests: sent,
    }
}

/// The most output tokens that arrived in one whole second of the level (counted from its
/// start); a level shorter than a second has no whole second, and gives `None`.
fn peak(good: &[&Outcome], start: Duration, end: Duration) -> Option<f64> {
    let whole = (end - start).as_secs();
    if whole == 0 {
        return None;
    }
    let mut buckets = vec![0usize; whole as usize];
    for t in arrivals(good) {
        let b = t.saturating_sub(start).as_secs();
        if b < whole {
            buckets[b as usize] += 1;
        }
    }
    buckets.into_iter().max().map(|m| m as f64)
}

/// Median TTFT of the last quarter of requests (by send time) over that of the first quarter.
fn ttft_growth(good: &[&Outcome]) -> Option<f64> {
    let mut by_send: Vec<(Duration, Duration)> = good
        .iter()
        .filter_map(|o| Some((o.sent, o.ttft?)))
        .collect();
    if by_send.len() < 8 {
        return None;
    }
    by_send.sort();
    let q = by_send.len() / 4;
    let median = |xs: &[(Duration, Duration)]| {
        let mut t: Vec<Duration> = xs.iter().map(|x| x.1).collect();
        t.sort();
        t[t.len() / 2].as_secs_f64()
    };
    let first = median(&by_send[..q]);
    (first > 0.0).then(|| median(&by_send[by_send.len() - q..]) / first)
}

/// The latencies of a level's requests, one list per measure.
struct Latencies {
    ttft: Vec<Duration>,
    tpot: Vec<Duration>,
    itl: Vec<Duration>,
    e2e: Vec<Duration>,
    ttst: Vec<Duration>,
}

impl Latencies {
    fn of(good: &[&Outcome]) -> Self {
        Latencies {
            ttft: good.iter().filter_map(|o| o.ttft).collect(),
            tpot: good.iter().filter_map(|o| o.tpot()).collect(),
            itl: good.iter().flat_map(|o| o.itl()).collect(),
            e2e: good.iter().map(|o| o.e2e).collect(),
            ttst: good.iter().filter_map(|o| o.ttst()).collect(),
        }
    }

    /// The percentiles asked for (none for none).
    fn asked(&self, at: &[f64]) -> Option<Percentiles> {
        (!at.is_empty()).then(|| Percentiles {
            at: at.to_vec(),
            ttft: percentiles(&self.ttft, at),
            tpot: percentiles(&self.tpot, at),
            itl: percentiles(&self.itl, at),
            e2e: percentiles(&self.e2e, at),
        })
    }
}

/// How most of the level's output tokens were counted.
fn most_counted(good: &[&Outcome]) -> Option<Counted> {
    let mut ways: BTreeMap<&'static str, (usize, Counted)> = BTreeMap::new();
    for c in good.iter().filter_map(|o| o.counted) {
        let key = match c {
            Counted::Usage => "usage",
            Counted::Tokenizer => "tokenizer",
            Counted::Chunks => "chunks",
        };
        ways.entry(key).or_insert((0, c)).0 += 1;
    }
    ways.values().max_by_key(|(n, _)| *n).map(|(_, c)| *c)
}

pub fn summarize(i: Inputs) -> LevelSummary {
    let outcomes = i.outcomes;
    let all_good: Vec<&Outcome> = outcomes.iter().filter(|o| o.ok()).collect();
    // Latencies from the requests sent inside the steady window (by default, all of them).
    let window = i.window.filter(|(from, to)| to > from);
    let in_window = |o: &&Outcome| window.is_none_or(|(from, to)| o.sent >= from && o.sent <= to);
    let good: Vec<&Outcome> = all_good.iter().copied().filter(in_window).collect();
    // The level lasts from its first send to its last end (a failure's end included).
    let start = outcomes.iter().map(|o| o.sent).min().unwrap_or_default();
    let end = outcomes
        .iter()
        .map(|o| o.sent + o.e2e)
        .max()
        .unwrap_or_default();
    let duration = end.saturating_sub(start);
    let secs = duration.as_secs_f64();
    let per_s = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
    let output_tokens: u64 = all_good.iter().map(|o| o.output_tokens as u64).sum();
    let prompt_tokens: u64 = all_good
        .iter()
        .filter_map(|o| o.prompt_tokens)
        .sum::<usize>() as u64;
    let cached: Vec<usize> = all_good.iter().filter_map(|o| o.cached_tokens).collect();
    let lat = Latencies::of(&good);
    let user: Vec<f64> = good.iter().filter_map(|o| o.user_tok_s()).collect();
    let mut errors = BTreeMap::new();
    for r in outcomes.iter().filter_map(reason) {
        *errors.entry(r).or_insert(0) += 1;
    }
    let output_tok_s = per_s(output_tokens as f64);
    let sent_in_window = outcomes.iter().filter(in_window).count();
    let met = i
        .slo
        .map(|slo| all_good.iter().filter(|o| meets(o, &slo)).count());
    LevelSummary {
        endpoint: i.endpoint.to_string(),
        load: i.load,
        requests: outcomes.len(),
        ok: all_good.len(),
        failed: outcomes.len() - all_good.len(),
        duration,
        req_s: per_s(all_good.len() as f64),
        output_tok_s,
        output_tokens,
        prompt_tokens,
        ttft: dist(&lat.ttft),
        tpot: dist(&lat.tpot),
        itl: dist(&lat.itl),
        e2e: dist(&lat.e2e),
        errors,
        goodput: met.map(|m| per_s(m as f64)),
        slo_met: met,
        usd_per_mtok: i
            .usd_per_hour
            .filter(|_| output_tok_s > 0.0)
            .map(|usd| usd / 3600.0 / output_tok_s * 1e6),
        counted: most_counted(&all_good),
        ttst: dist(&lat.ttst),
        input_tok_s: per_s(prompt_tokens as f64),
        total_tok_s: per_s((prompt_tokens + output_tokens) as f64),
        peak_output_tok_s: peak(&all_good, start, end).unwrap_or(output_tok_s),
        per_user_tok_s: rate_dist(&user),
        cached_tokens: (!cached.is_empty()).then(|| cached.iter().sum::<usize>() as u64),
        steady: window.map(|w| steady(&all_good, sent_in_window, w, start)),
        connections: i.connections.map(|c| Connections {
            opened: c.len(),
            setup: dist(&c),
        }),
        percentiles: lat.asked(i.percentiles),
        ttft_growth: ttft_growth(&all_good),
        stopped_early: i.stopped_early,
        server: None,
        eos_stops: None,
        send_lag: None,
        retried: outcomes.iter().filter(|o| o.retried).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::serve::{Failure, FailureKind};

    fn ms(x: u64) -> Duration {
        Duration::from_millis(x)
    }

    fn outcome(sent: u64, ttft: u64, gaps: &[u64]) -> Outcome {
        let mut at = vec![ms(ttft)];
        for g in gaps {
            at.push(*at.last().unwrap() + ms(*g));
        }
        Outcome {
            sent: ms(sent),
            ttft: Some(ms(ttft)),
            e2e: *at.last().unwrap(),
            output_tokens: at.len(),
            token_at: at,
            counted: Some(Counted::Usage),
            ..Outcome::default()
        }
    }

    #[test]
    fn rates_latencies_goodput_and_cost() {
        let failed = Outcome {
            sent: ms(100),
            e2e: ms(50),
            failure: Some(Failure {
                kind: FailureKind::Status(503),
                message: "overloaded".into(),
            }),
            ..Outcome::default()
        };
        let outs = vec![
            outcome(0, 100, &[10, 10, 10]),    // 4 tokens, ends at 130
            outcome(500, 300, &[20, 20]),      // 3 tokens, ends at 840
            outcome(1000, 100, &[10, 10, 10]), // ends at 1130… the last end
            failed,
        ];
        let s = summarize(Inputs {
            slo: Some(Slo {
                ttft: Some(ms(200)),
                ..Slo::default()
            }),
            usd_per_hour: Some(3.6),
            ..Inputs::plain("http://x", Load::Concurrency(2), &outs)
        });
        assert_eq!((s.requests, s.ok, s.failed), (4, 3, 1));
        assert_eq!(s.duration, ms(1130));
        assert_eq!(s.output_tokens, 11);
        assert!((s.output_tok_s - 11.0 / 1.13).abs() < 1e-9);
        assert!((s.req_s - 3.0 / 1.13).abs() < 1e-9);
        assert_eq!(s.ttft.p50, ms(100));
        assert_eq!(s.ttft.n, 3);
        assert_eq!(s.itl.n, 8);
        assert_eq!(s.tpot.p99, ms(20));
        assert_eq!(s.errors.get("http 503"), Some(&1));
        // Two of three met TTFT ≤ 200 ms.
        assert!((s.goodput.unwrap() - 2.0 / 1.13).abs() < 1e-9);
        // $3.60 an hour is $0.001 a second; at 11/1.13 tok/s a million tokens cost ≈ $102.7.
        assert!((s.usd_per_mtok.unwrap() - 0.001 / (11.0 / 1.13) * 1e6).abs() < 1e-6);
        assert_eq!(s.counted, Some(Counted::Usage));
    }

    #[test]
    fn an_empty_level_is_zeros_not_nan() {
        let s = summarize(Inputs {
            usd_per_hour: Some(1.0),
            ..Inputs::plain("e", Load::Concurrency(1), &[])
        });
        assert_eq!((s.requests, s.req_s, s.output_tok_s), (0, 0.0, 0.0));
        assert_eq!(s.usd_per_mtok, None);
    }

    #[test]
    fn the_steady_window_peak_second_second_token_and_users() {
        // Sent at 0, 1 s and 2 s; tokens 100 ms apart after a 500 ms TTFT.
        let outs = vec![
            outcome(0, 500, &[100, 100, 100]),
            outcome(1000, 500, &[100, 100, 100]),
            outcome(2000, 500, &[100, 100, 100]),
        ];
        let s = summarize(Inputs {
            window: Some((ms(1000), ms(2000))),
            percentiles: &[50.0, 100.0],
            connections: Some(vec![ms(2), ms(4)]),
            ..Inputs::plain("e", Load::Concurrency(1), &outs)
        });
        let w = s.steady.unwrap();
        // In [1 s, 2 s]: the second request's four tokens (1.5–1.8 s); it ended in the window.
        assert_eq!((w.from, w.to, w.requests), (ms(1000), ms(2000), 2));
        assert!((w.output_tok_s - 4.0).abs() < 1e-9);
        assert!((w.req_s - 1.0).abs() < 1e-9);
        // Latencies of the two sent in the window; the whole level's rate over 0–2.8 s.
        assert_eq!(s.ttft.n, 2);
        assert!((s.output_tok_s - 12.0 / 2.8).abs() < 1e-9);
        // Each whole second holds one request's four tokens.
        assert_eq!(s.peak_output_tok_s, 4.0);
        assert_eq!(s.ttst.p50, ms(100));
        // 4 tokens in 0.8 s each.
        let u = s.per_user_tok_s.unwrap();
        assert!((u.p50 - 5.0).abs() < 1e-9 && u.n == 2);
        let p = s.percentiles.unwrap();
        assert_eq!(p.e2e, [ms(800), ms(800)]);
        let c = s.connections.unwrap();
        assert_eq!((c.opened, c.setup.max, c.setup.min), (2, ms(4), ms(2)));
        assert_eq!(s.ttft.std, Duration::ZERO);
        assert_eq!(s.ttft_growth, None, "fewer than 8 requests");
        // A queue building up: TTFT grows from 100 ms to 900 ms over eight requests.
        let growing: Vec<Outcome> = (0..8)
            .map(|i| outcome(i * 100, 100 + i * 114, &[10]))
            .collect();
        let g = summarize(Inputs::plain("e", Load::Concurrency(1), &growing))
            .ttft_growth
            .unwrap();
        // Medians of the first two (214 ms) and the last two (898 ms).
        assert!((g - 898.0 / 214.0).abs() < 1e-9, "{g}");
    }
}
