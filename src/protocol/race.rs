//! An A/B race: one prompt under two configurations, step by step on one machine. What each
//! side runs with, its events (each a run's own, tagged with its lane) and the summary row.

use super::settings::{KvDtype, Quant, Setting, SettingChange, Settings};
use super::{AcceptPolicy, DraftMode, Event, KPolicy, RunSummary};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Which side of a race.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lane {
    A,
    B,
}

impl Lane {
    pub const BOTH: [Lane; 2] = [Lane::A, Lane::B];

    pub fn index(self) -> usize {
        self as usize
    }

    /// The other side.
    pub fn other(self) -> Lane {
        match self {
            Lane::A => Lane::B,
            Lane::B => Lane::A,
        }
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lane::A => "A",
            Lane::B => "B",
        })
    }
}

/// One side's configuration: the settings it changes from the baseline (as loaded, plain
/// decoding, f32 KV) and, when it names one, another model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RaceConfig {
    /// Another model spec than the one loaded.
    pub model: Option<String>,
    pub changes: Vec<SettingChange>,
    /// An OpenAI-compatible server's URL: this side streams from it (at the same time as the
    /// local side runs) instead of running on the local engine.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The keys a race side's `k=v,k=v` names, and what each sets.
pub const CONFIG_KEYS: &str =
    "quant, kv, draft, k, policy, draft-model, heads, layers, model, endpoint (or `baseline`)";

impl RaceConfig {
    /// Parse `quant=Q4_0,draft=prompt-lookup,k=4`; `baseline` (or nothing) changes nothing.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut c = RaceConfig::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if matches!(part, "baseline" | "plain") {
                continue;
            }
            let Some((key, value)) = part.split_once('=') else {
                return Err(format!(
                    "{part:?} in {s:?} is not key=value: the keys are {CONFIG_KEYS}"
                ));
            };
            let value = value.trim();
            let change = match super::settings::normalize(key).as_str() {
                "quant" | "q" | "quantization" => SettingChange::Quant(Quant::parse(value)?),
                "kv" | "kvdtype" => SettingChange::KvDtype(KvDtype::parse(value)?),
                "draft" | "mode" | "draftmode" => {
                    SettingChange::DraftMode(DraftMode::parse(value)?)
                }
                "k" => SettingChange::K(KPolicy::parse(value)?),
                "policy" => SettingChange::Policy(AcceptPolicy::parse(value)?),
                "draftmodel" => SettingChange::DraftModel(value.to_string()),
                "heads" | "draftheads" => SettingChange::DraftHeads(value.to_string()),
                "layers" | "draftlayers" => SettingChange::DraftLayers(
                    value
                        .parse()
                        .map_err(|_| format!("layers={value:?}: a number of layers"))?,
                ),
                "model" => {
                    c.model = Some(value.to_string());
                    continue;
                }
                "endpoint" | "url" => {
                    c.endpoint = Some(value.to_string());
                    continue;
                }
                other => {
                    return Err(format!(
                        "unknown race setting {other:?} in {s:?}: the keys are {CONFIG_KEYS}"
                    ))
                }
            };
            c.changes.retain(|old| old.name() != change.name());
            c.changes.push(change);
        }
        if c.endpoint.is_some() && (c.model.is_some() || !c.changes.is_empty()) {
            return Err(format!(
                "{s:?}: a side with an endpoint runs as its server is set up; it takes no \
                 model or engine settings (put those on the other side)"
            ));
        }
        Ok(c)
    }

    /// The settings this side runs with.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::default();
        for c in &self.changes {
            s.set(c.clone());
        }
        s
    }

    /// A side from settings asked for elsewhere (the dashboard's): every one they name.
    pub fn from_settings(s: &Settings) -> Self {
        let changes = s
            .commands()
            .into_iter()
            .filter_map(|c| match c {
                super::Command::Set(change) => Some(change),
                _ => None,
            })
            .filter(|c| !matches!(c, SettingChange::Mix(_)))
            .collect();
        RaceConfig {
            model: None,
            changes,
            endpoint: None,
        }
    }

    /// What the side runs, in a few words: `Q4_0 · prompt lookup K=4`, or `baseline`.
    pub fn label(&self) -> String {
        if let Some(url) = &self.endpoint {
            return format!("server {url}");
        }
        let mut parts: Vec<String> = self.model.iter().map(|m| short_model(m)).collect();
        let s = self.settings();
        if let Some(q) = s.quant.filter(|q| *q != Quant::AsLoaded) {
            parts.push(q.to_string());
        }
        if let Some(kv) = s.kv_dtype.filter(|d| *d != KvDtype::default()) {
            parts.push(format!("KV {kv}"));
        }
        if let Some(mode) = s.draft_mode.filter(|m| *m != DraftMode::None) {
            let k = s.k.map(|k| format!(" K={k}")).unwrap_or_default();
            parts.push(format!("{mode}{k}"));
        }
        if let Some(p) = s.policy.filter(|p| *p != AcceptPolicy::default()) {
            parts.push(p.to_string());
        }
        if parts.is_empty() {
            "baseline".into()
        } else {
            parts.join(" · ")
        }
    }
}

/// A model spec's file name without its directories.
fn short_model(spec: &str) -> String {
    spec.rsplit(['/', '\\']).next().unwrap_or(spec).to_string()
}

/// A side as the race announces it, once its engine is ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceSide {
    pub label: String,
    pub config: RaceConfig,
    pub model: String,
    /// Bytes of the weights it runs with.
    pub weight_bytes: u64,
}

/// A race's progress: its start, each side's run events, its summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RaceEvent {
    Started {
        a: Box<RaceSide>,
        b: Box<RaceSide>,
        /// The two take turns step by step on this machine (else they run at once).
        turns: bool,
    },
    /// One of a side's run events (`RunStarted` … `RunFinished`).
    Lane {
        lane: Lane,
        event: Box<Event>,
    },
    Finished(Box<RaceSummary>),
}

/// One side's numbers at the end of a race.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceSideSummary {
    pub label: String,
    pub run: RunSummary,
    pub weight_bytes: u64,
}

/// The race's summary row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaceSummary {
    pub a: RaceSideSummary,
    pub b: RaceSideSummary,
    /// Index of the first token whose text differs (`None`: the texts agree as far as the
    /// shorter goes).
    pub first_diff: Option<usize>,
    /// Positions with the same token text, over the longer side's tokens.
    pub agreement: f64,
    /// B's decode speed over A's, from their total decode times.
    pub speed_ratio: f64,
    /// The ratio's spread: its lowest and highest over windows of `window` decode tokens.
    pub ratio_low: f64,
    pub ratio_high: f64,
    pub windows: usize,
    pub window: usize,
}

/// Decode tokens in each window the speed ratio's spread is taken over.
pub const RATIO_WINDOW: usize = 16;

/// The summary of two finished sides from their token texts and decode step times.
pub fn summarize(
    a: RaceSideSummary,
    b: RaceSideSummary,
    texts: [&[String]; 2],
    itl: [&[Duration]; 2],
) -> RaceSummary {
    let [ta, tb] = texts;
    let common = ta.len().min(tb.len());
    let first_diff = (0..common)
        .find(|&i| ta[i] != tb[i])
        .or((ta.len() != tb.len()).then_some(common));
    let longer = ta.len().max(tb.len());
    let same = (0..common).filter(|&i| ta[i] == tb[i]).count();
    let agreement = if longer == 0 {
        1.0
    } else {
        same as f64 / longer as f64
    };
    let rate = |d: &[Duration]| {
        let s: f64 = d.iter().map(Duration::as_secs_f64).sum();
        (s > 0.0).then(|| d.len() as f64 / s)
    };
    let speed_ratio = match (rate(itl[0]), rate(itl[1])) {
        (Some(ra), Some(rb)) => rb / ra,
        _ => f64::NAN,
    };
    // Windows of RATIO_WINDOW tokens over both sides' common length, the last taking the rest:
    // the overall ratio is a weighted mean of theirs, so it lies between the lowest and highest.
    let common_itl = itl[0].len().min(itl[1].len());
    let windows = common_itl / RATIO_WINDOW;
    let ratios: Vec<f64> = (0..windows)
        .filter_map(|w| {
            let end = if w + 1 == windows {
                common_itl
            } else {
                (w + 1) * RATIO_WINDOW
            };
            let r = w * RATIO_WINDOW..end;
            Some(rate(&itl[1][r.clone()])? / rate(&itl[0][r])?)
        })
        .collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    RaceSummary {
        a,
        b,
        first_diff,
        agreement,
        speed_ratio,
        ratio_low: if ratios.is_empty() { speed_ratio } else { low },
        ratio_high: if ratios.is_empty() { speed_ratio } else { high },
        windows: ratios.len(),
        window: RATIO_WINDOW,
    }
}

impl RaceSummary {
    /// `1.42× (1.31×–1.55× over 6 windows of 16 tokens)`.
    pub fn ratio_text(&self) -> String {
        if self.windows == 0 {
            return format!("{:.2}×", self.speed_ratio);
        }
        format!(
            "{:.2}× ({:.2}×–{:.2}× over {} windows of {} tokens)",
            self.speed_ratio, self.ratio_low, self.ratio_high, self.windows, self.window
        )
    }

    /// Where the texts part, in words.
    pub fn parting(&self) -> String {
        match self.first_diff {
            None => "the texts agree".into(),
            Some(i) => format!("they part at token {i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_side_parses_from_key_values_and_names_itself() {
        let c = RaceConfig::parse("quant=q4_0, draft=prompt-lookup,k=4").unwrap();
        assert_eq!(c.settings().quant, Some(Quant::Q4_0));
        assert_eq!(c.settings().draft_mode, Some(DraftMode::PromptLookup));
        assert_eq!(c.label(), "Q4_0 · prompt-lookup K=4");
        assert_eq!(RaceConfig::parse("baseline").unwrap().label(), "baseline");
        assert_eq!(RaceConfig::parse("").unwrap(), RaceConfig::default());
        let m = RaceConfig::parse("model=models/a.gguf,k=2,k=3").unwrap();
        assert_eq!(m.model.as_deref(), Some("models/a.gguf"));
        assert_eq!(m.changes, vec![SettingChange::K(KPolicy::Fixed(3))]);
        assert!(RaceConfig::parse("speed=9")
            .unwrap_err()
            .contains("quant, kv"));
        assert!(RaceConfig::parse("q4").unwrap_err().contains("key=value"));
        assert!(RaceConfig::parse("quant=q9").unwrap_err().contains("Q4_0"));
    }

    fn side(label: &str) -> RaceSideSummary {
        RaceSideSummary {
            label: label.into(),
            run: RunSummary {
                reason: super::super::FinishReason::MaxTokens,
                prompt_tokens: 0,
                generated_tokens: 0,
                ttft: Duration::ZERO,
                prefill: Duration::ZERO,
                prefill_tok_s: 0.0,
                decode: Duration::ZERO,
                decode_tok_s: 0.0,
                itl_p50: Duration::ZERO,
                itl_p90: Duration::ZERO,
                itl_p99: Duration::ZERO,
                end_to_end: Duration::ZERO,
                kv_tokens: 0,
                kv_bytes: 0,
                text: String::new(),
                spec: None,
            },
            weight_bytes: 0,
        }
    }

    #[test]
    fn the_summary_finds_where_texts_part_and_the_ratio_with_its_spread() {
        let t = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        let (a, b) = (t("a b c d e"), t("a b x d"));
        let ms = Duration::from_millis;
        // A: 32 steps of 10 ms; B: 16 of 5 ms then 16 of 10 ms.
        let ia = vec![ms(10); 32];
        let ib: Vec<_> = (0..32).map(|i| ms(if i < 16 { 5 } else { 10 })).collect();
        let s = summarize(side("a"), side("b"), [&a, &b], [&ia, &ib]);
        assert_eq!(s.first_diff, Some(2));
        assert!((s.agreement - 3.0 / 5.0).abs() < 1e-9);
        assert!((s.speed_ratio - 320.0 / 240.0).abs() < 1e-9);
        assert_eq!((s.windows, s.ratio_low, s.ratio_high), (2, 1.0, 2.0));
        assert!(s
            .ratio_text()
            .starts_with("1.33× (1.00×–2.00× over 2 windows"));
        let same = summarize(side("a"), side("b"), [&a, &a], [&ia, &ia]);
        assert_eq!((same.first_diff, same.agreement), (None, 1.0));
        assert_eq!(same.parting(), "the texts agree");
        let shorter = summarize(side("a"), side("b"), [&a, &a[..3]], [&ia, &ia]);
        assert_eq!(shorter.first_diff, Some(3));
    }

    #[test]
    fn the_windows_cover_every_token_so_the_ratio_lies_within_its_spread() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let t = vec![String::new(); 1];
        for n in [16, 40, 47, 100] {
            let mut gaps = || -> Vec<Duration> {
                (0..n)
                    .map(|_| Duration::from_micros(rng.random_range(5_000..60_000)))
                    .collect()
            };
            let (ia, ib) = (gaps(), gaps());
            let s = summarize(side("a"), side("b"), [&t, &t], [&ia, &ib]);
            assert_eq!(s.windows, n / RATIO_WINDOW);
            assert!(
                s.ratio_low <= s.speed_ratio + 1e-12 && s.speed_ratio <= s.ratio_high + 1e-12,
                "{n}: {}",
                s.ratio_text()
            );
        }
    }
}
