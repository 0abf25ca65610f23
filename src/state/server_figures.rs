//! A served model's figures, read from its `/metrics`: its KV-cache use, its queues, its
//! throughput and its prefix-cache hits, each naming the metric it came from.

use super::figure::{figure, Figure, Measured, Recipe, Unit};
use super::Store;
use crate::protocol::{Rates, ServerSample};

const LESSON: (Measured, &str) = (Measured::Server, "demo serving-metrics");

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerFigures {
    pub kv_usage: Option<Figure>,
    pub kv_tokens: Option<Figure>,
    pub running: Option<Figure>,
    pub waiting: Option<Figure>,
    pub generation: Option<Figure>,
    pub prompt: Option<Figure>,
    pub prefix_hits: Option<Figure>,
}

impl ServerFigures {
    pub fn all(&self) -> Vec<&Figure> {
        [
            &self.kv_usage,
            &self.kv_tokens,
            &self.running,
            &self.waiting,
            &self.generation,
            &self.prompt,
            &self.prefix_hits,
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// The metric a field was read from, as the scrape recorded it.
fn metric(s: &ServerSample, field: &str) -> String {
    s.sources
        .get(field)
        .cloned()
        .unwrap_or_else(|| format!("its {field} metric"))
}

/// A gauge read as it is.
fn gauge(
    s: &ServerSample,
    (name, field): (&'static str, &str),
    (x, unit): (Option<f64>, Unit),
    definition: &'static str,
) -> Option<Figure> {
    let x = x.filter(|x| x.is_finite())?;
    Some(figure(
        name,
        (x, unit),
        definition,
        Recipe::Metric {
            how: "the server's gauge",
            metric: metric(s, field),
        },
        LESSON,
    ))
}

/// A rate from a counter's growth over the newest samples, else the server's own gauge.
fn counted(
    s: &ServerSample,
    (name, counter, gauge_field): (&'static str, &str, &str),
    (over, own): (Option<f64>, Option<f64>),
    (unit, definition): (Unit, &'static str),
    seconds: f64,
) -> Option<Figure> {
    let (x, recipe) = match (over, own) {
        (Some(x), _) => (
            x,
            Recipe::Metric {
                how: if seconds < 10.0 {
                    "the growth over the newest samples (seconds apart) of the counter"
                } else {
                    "the growth over the samples kept of the counter"
                },
                metric: metric(s, counter),
            },
        ),
        (None, Some(x)) => (
            x,
            Recipe::Metric {
                how: "the server's gauge",
                metric: metric(s, gauge_field),
            },
        ),
        (None, None) => return None,
    };
    x.is_finite()
        .then(|| figure(name, (x, unit), definition, recipe, LESSON))
}

/// The figures of the newest scrape, when there is one: its gauges and the rates of its
/// counters over the samples kept.
pub fn server_figures(store: &Store) -> Option<ServerFigures> {
    let s = store.last_server.as_ref()?;
    let now = store.server_rates().unwrap_or_default();
    let window = store.server_window().unwrap_or_default();
    let hits = window
        .prefix_hit_rate
        .or(Rates::since_start(s).prefix_hit_rate);
    Some(ServerFigures {
        generation: counted(
            s,
            ("generation", "generation_tokens", "generation_tok_s"),
            (now.generation_tok_s, s.generation_tok_s),
            (
                Unit::WholeTokPerS,
                "tokens the server generates a second, all requests",
            ),
            now.seconds,
        ),
        prompt: counted(
            s,
            ("prompt", "prompt_tokens", "prompt_tok_s"),
            (now.prompt_tok_s, s.prompt_tok_s),
            (
                Unit::WholeTokPerS,
                "prompt tokens the server prefills a second, all requests",
            ),
            now.seconds,
        ),
        prefix_hits: counted(
            s,
            ("prefix cache hits", "prefix_hits", "prefix_hit_rate"),
            (hits, s.prefix_hit_rate),
            (
                Unit::Percent,
                "prompt tokens found in the server's prefix cache over those looked up",
            ),
            window.seconds,
        ),
        ..gauges(s)
    })
}

/// The gauges of one scrape: KV-cache use and tokens, running and waiting requests.
pub fn gauges(s: &ServerSample) -> ServerFigures {
    ServerFigures {
        kv_usage: gauge(
            s,
            ("KV cache", "kv_usage"),
            (s.kv_usage, Unit::Percent),
            "the share of the server's KV cache in use",
        ),
        kv_tokens: gauge(
            s,
            ("tokens", "kv_tokens"),
            (s.kv_tokens, Unit::Count),
            "tokens the server's KV cache holds",
        ),
        running: gauge(
            s,
            ("running", "running"),
            (s.running, Unit::Count),
            "requests in the server's running batch",
        ),
        waiting: gauge(
            s,
            ("waiting", "waiting"),
            (s.waiting, Unit::Count),
            "requests queued at the server, not yet scheduled",
        ),
        ..ServerFigures::default()
    }
}

/// A served model's speculation, from its counters over the samples kept (else since it
/// started), or its own gauges.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerSpecFigures {
    pub acceptance: Option<Figure>,
    pub length: Option<Figure>,
    /// The share of drafts whose token at each position was accepted (vLLM's per-position
    /// rate: not conditional on the earlier positions).
    pub by_position: Vec<Figure>,
    /// Every position's share, for the bars.
    pub shares: Vec<f64>,
    /// Over what the counters' rates were taken: `over 12 s`, `since it started`.
    pub when: String,
}

impl ServerSpecFigures {
    pub fn all(&self) -> Vec<&Figure> {
        let mut v: Vec<&Figure> = self.acceptance.iter().chain(&self.length).collect();
        v.extend(self.by_position.iter());
        v
    }
}

/// The served model's speculation, when it reports any.
pub fn server_spec_figures(store: &Store) -> Option<ServerSpecFigures> {
    let s = store.last_server.as_ref()?;
    let (r, when) = match store
        .server_window()
        .filter(|r| r.spec_acceptance.is_some() || !r.spec_per_pos.is_empty())
    {
        Some(r) if r.seconds < 10.0 => (r.clone(), format!("over {:.1} s", r.seconds)),
        Some(r) => (r.clone(), format!("over {:.0} s", r.seconds)),
        None => (Rates::since_start(s), "since it started".to_string()),
    };
    let seconds = r.seconds.max(10.0);
    let acceptance = counted(
        s,
        ("server acceptance", "spec_accepted", "spec_accept_rate"),
        (r.spec_acceptance, s.spec_accept_rate),
        (
            Unit::Percent,
            "the server's accepted draft tokens over its drafted ones",
        ),
        seconds,
    );
    let length = counted(
        s,
        (
            "server accepted length",
            "spec_accepted",
            "spec_accept_length",
        ),
        (r.spec_mean_len, s.spec_accept_length),
        (
            Unit::Number,
            "tokens a verification step gives on the server: 1 + accepted ÷ drafts",
        ),
        seconds,
    );
    let by_position: Vec<Figure> = r
        .spec_per_pos
        .iter()
        .take(4)
        .enumerate()
        .filter(|(_, a)| a.is_finite())
        .map(|(i, &a)| {
            figure(
                format!("server position {}", i + 1),
                (a, Unit::Percent),
                "the share of the server's drafts whose token at this position was accepted",
                Recipe::Metric {
                    how: "accepted at this position ÷ drafts, from the counters",
                    metric: metric(s, "spec_accepted_per_pos"),
                },
                LESSON,
            )
        })
        .collect();
    if acceptance.is_none() && length.is_none() && by_position.is_empty() {
        return None;
    }
    Some(ServerSpecFigures {
        acceptance,
        length,
        by_position,
        shares: r.spec_per_pos.clone(),
        when,
    })
}
