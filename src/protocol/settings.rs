//! The settings a person switches while labtui runs, typed end to end: parsed once where they
//! enter (command line, preset, key) and carried as these enums through commands, events and
//! recordings. Each enum's `ALL` is the one list of its values: the command line's possible
//! values, the presets' error messages, the keys that cycle them and the help all read it.
//!
//! On the wire (RON, JSON) each is its name, so recordings stay readable and older ones load.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A setting with a fixed list of named values.
pub trait Setting: Copy + Eq + 'static {
    /// What the setting is called in messages ("quantization", "draft mode", …).
    const WHAT: &'static str;
    /// Every value, in the order keys cycle through them.
    const ALL: &'static [Self];

    /// The name shown, recorded and parsed.
    fn name(self) -> &'static str;

    /// Other spellings a person may write for a value (matched after [`normalize`]).
    fn aliases(self) -> &'static [&'static str] {
        &[]
    }

    /// Parse a name, forgiving case, `_`, `-` and spaces; the error lists the valid names.
    fn parse(s: &str) -> Result<Self, String> {
        let want = normalize(s);
        Self::ALL
            .iter()
            .copied()
            .find(|v| normalize(v.name()) == want || v.aliases().iter().any(|a| *a == want))
            .ok_or_else(|| {
                format!(
                    "unknown {} {s:?}: valid values are {}",
                    Self::WHAT,
                    Self::names()
                )
            })
    }

    /// The valid names, comma-separated.
    fn names() -> String {
        Self::ALL
            .iter()
            .map(|v| v.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The value after this one, wrapping around.
    fn next(self) -> Self {
        let i = Self::ALL.iter().position(|v| *v == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}

/// Lower case without `_`, `-` and spaces: `Q4_K`, `q4k` and `q4-k` are one name.
pub fn normalize(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Serde as the name; `Display` and `FromStr` through [`Setting`].
macro_rules! named_setting {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t as Setting>::parse(s)
            }
        }
        impl Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$t as Setting>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A weight format the dashboard and the command line offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Quant {
    /// The weights as the file holds them.
    #[default]
    AsLoaded,
    F32,
    F16,
    BF16,
    Q8_0,
    Q6K,
    Q5K,
    Q4K,
    Q4_0,
    Q3K,
    Q2K,
}

impl Setting for Quant {
    const WHAT: &'static str = "quantization";
    const ALL: &'static [Self] = &[
        Quant::AsLoaded,
        Quant::F32,
        Quant::F16,
        Quant::BF16,
        Quant::Q8_0,
        Quant::Q6K,
        Quant::Q5K,
        Quant::Q4K,
        Quant::Q4_0,
        Quant::Q3K,
        Quant::Q2K,
    ];

    fn name(self) -> &'static str {
        match self {
            Quant::AsLoaded => "as loaded",
            Quant::F32 => "F32",
            Quant::F16 => "F16",
            Quant::BF16 => "BF16",
            Quant::Q8_0 => "Q8_0",
            Quant::Q6K => "Q6_K",
            Quant::Q5K => "Q5_K",
            Quant::Q4K => "Q4_K",
            Quant::Q4_0 => "Q4_0",
            Quant::Q3K => "Q3_K",
            Quant::Q2K => "Q2_K",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Quant::AsLoaded => &["loaded", "original"],
            _ => &[],
        }
    }
}
named_setting!(Quant);

/// Where drafts come from in speculative decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DraftMode {
    #[default]
    None,
    DraftModel,
    PromptLookup,
    LayerSkip,
    /// Medusa-lite heads trained on the target (`labtui train-draft --kind medusa`).
    Medusa,
    /// An EAGLE-lite head trained on the target (`labtui train-draft --kind eagle`).
    Eagle,
}

impl Setting for DraftMode {
    const WHAT: &'static str = "draft mode";
    const ALL: &'static [Self] = &[
        Self::None,
        Self::DraftModel,
        Self::PromptLookup,
        Self::LayerSkip,
        Self::Medusa,
        Self::Eagle,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::DraftModel => "draft-model",
            Self::PromptLookup => "prompt-lookup",
            Self::LayerSkip => "layer-skip",
            Self::Medusa => "medusa",
            Self::Eagle => "eagle",
        }
    }
}
named_setting!(DraftMode);

/// The dtype the engine's KV cache holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvDtype {
    #[default]
    F32,
    F16,
    BF16,
}

impl KvDtype {
    /// Bytes of one stored value.
    pub fn bytes(self) -> f64 {
        match self {
            Self::F32 => 4.0,
            Self::F16 | Self::BF16 => 2.0,
        }
    }
}

impl Setting for KvDtype {
    const WHAT: &'static str = "KV dtype";
    const ALL: &'static [Self] = &[Self::F32, Self::F16, Self::BF16];

    fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::BF16 => "bf16",
        }
    }
}
named_setting!(KvDtype);

/// The largest K.
pub const K_MAX: usize = 16;
/// K when nobody set it.
pub const DEFAULT_K: KPolicy = KPolicy::Fixed(4);

/// Speculation length K as the user set it: a number of drafts per step, adaptive (labtui's
/// cost model), or the acceptance-target controller: K grows by one while the share of drafts
/// accepted stays at or above `accept` percent and shrinks by one below it, within `min..=max`.
///
/// On the wire a fixed or adaptive K is a number, 0 meaning adaptive (as recordings have always
/// held it); the target controller is a struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "KWire", into = "KWire")]
pub enum KPolicy {
    Fixed(usize),
    Adaptive,
    Target { min: usize, max: usize, accept: u8 },
}

/// How [`KPolicy`] is written.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum KWire {
    Number(usize),
    Target { min: usize, max: usize, accept: u8 },
}

impl TryFrom<KWire> for KPolicy {
    type Error = String;
    fn try_from(w: KWire) -> Result<Self, String> {
        match w {
            KWire::Number(k) => Self::try_from(k),
            KWire::Target { min, max, accept } => Self::target(min, max, accept),
        }
    }
}

impl From<KPolicy> for KWire {
    fn from(k: KPolicy) -> Self {
        match k {
            KPolicy::Target { min, max, accept } => Self::Target { min, max, accept },
            k => Self::Number(k.as_number()),
        }
    }
}

impl KPolicy {
    /// The acceptance-target controller, checked: `1 ≤ min ≤ max ≤ K_MAX`, `accept` 1–99 %.
    pub fn target(min: usize, max: usize, accept: u8) -> Result<Self, String> {
        if !(1 <= min && min <= max && max <= K_MAX) {
            return Err(format!(
                "min and max K must satisfy 1 ≤ min ≤ max ≤ {K_MAX}, not {min} and {max}"
            ));
        }
        if !(1..=99).contains(&accept) {
            return Err(format!(
                "the target acceptance must be 1–99 %, not {accept}"
            ));
        }
        Ok(Self::Target { min, max, accept })
    }

    /// `auto`, a number 1–16 (0 also means adaptive), or `target=P[:MIN-MAX]` (the acceptance
    /// target P as a share, 0.7, or percent, 70; K within 1–8 unless given).
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.trim().strip_prefix("target=") {
            let (p, range) = rest.split_once(':').unwrap_or((rest, "1-8"));
            let p: f64 = p
                .parse()
                .map_err(|_| format!("`{p}` is not an acceptance"))?;
            let accept = if p < 1.0 { p * 100.0 } else { p }.round() as u8;
            let (lo, hi) = range
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
                .ok_or_else(|| format!("`{range}` is not MIN-MAX"))?;
            return Self::target(lo, hi, accept);
        }
        match s.trim() {
            "auto" | "adaptive" | "0" => Ok(Self::Adaptive),
            n => match n.parse::<usize>() {
                Ok(k) if (1..=K_MAX).contains(&k) => Ok(Self::Fixed(k)),
                _ => Err(format!("K must be 1–{K_MAX} or `auto`, not `{n}`")),
            },
        }
    }

    /// K, or 0 for a controller.
    pub fn as_number(self) -> usize {
        match self {
            Self::Fixed(k) => k,
            Self::Adaptive | Self::Target { .. } => 0,
        }
    }

    /// Whether a controller picks K (not a fixed K).
    pub fn is_controlled(self) -> bool {
        !matches!(self, Self::Fixed(_))
    }

    /// 0 is adaptive; numbers above [`K_MAX`] are [`K_MAX`].
    pub fn from_number(k: usize) -> Self {
        if k == 0 {
            Self::Adaptive
        } else {
            Self::Fixed(k.min(K_MAX))
        }
    }

    /// One more draft (adaptive steps up to 1), at most [`K_MAX`].
    pub fn up(self) -> Self {
        Self::from_number((self.as_number() + 1).min(K_MAX))
    }

    /// One draft fewer; below 1 comes adaptive, which stays.
    pub fn down(self) -> Self {
        Self::from_number(self.as_number().saturating_sub(1))
    }
}

impl Default for KPolicy {
    fn default() -> Self {
        DEFAULT_K
    }
}

impl TryFrom<usize> for KPolicy {
    type Error = String;
    fn try_from(k: usize) -> Result<Self, String> {
        if k > K_MAX {
            return Err(format!(
                "k = {k} is out of range (1 to {K_MAX}, or 0 for auto)"
            ));
        }
        Ok(Self::from_number(k))
    }
}

impl From<KPolicy> for usize {
    fn from(k: KPolicy) -> usize {
        k.as_number()
    }
}

impl std::str::FromStr for KPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

impl fmt::Display for KPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(k) => write!(f, "{k}"),
            Self::Adaptive => f.write_str("auto"),
            Self::Target { min, max, accept } => write!(f, "target {accept}% {min}–{max}"),
        }
    }
}

/// When a setting the worker has taken starts to apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Applies {
    /// At the next decode step of the run in progress.
    NextStep,
    /// From the next run.
    NextRun,
    /// Made when no run is in progress (at once when none is).
    BetweenRuns,
    /// When the setting is next used (a draft model, when its mode next runs).
    NextUse,
}

/// The one table of engine settings. Each row is a field of [`Settings`] (what a command line, a
/// preset or the dashboard asks for), a variant of [`SettingChange`] (what
/// [`super::Command::Set`] carries and the worker's notice says it took), the setting's name and
/// when it applies. The rows' order is the order [`Settings::commands`] sends them in. Adding a
/// setting is one row here.
macro_rules! settings_table {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident($ty:ty), field $field:ident, named $name:literal, applies $applies:ident;
    )*) => {
        /// One setting changed to a value: a row of the settings table.
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub enum SettingChange {
            $($(#[doc = $doc])* $variant($ty),)*
        }

        /// Engine settings a command line, a preset or the dashboard asks for; `None` leaves one
        /// as it is.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Settings {
            $($(#[doc = $doc])* pub $field: Option<$ty>,)*
        }

        impl Settings {
            /// These settings with `over`'s wherever `over` names one (a command line over a
            /// preset).
            pub fn overlaid(&self, over: &Settings) -> Settings {
                Settings {
                    $($field: over.$field.clone().or_else(|| self.$field.clone()),)*
                }
            }

            /// The commands that tell the worker, in the table's order (the draft model before
            /// the draft mode, which may load it).
            pub fn commands(&self) -> Vec<super::Command> {
                let mut commands = Vec::new();
                $(if let Some(v) = &self.$field {
                    commands.push(super::Command::Set(SettingChange::$variant(v.clone())));
                })*
                commands
            }

            /// Take one change: the newest of each setting wins.
            pub fn set(&mut self, change: SettingChange) {
                match change {
                    $(SettingChange::$variant(v) => self.$field = Some(v),)*
                }
            }
        }

        impl SettingChange {
            /// The setting's name, as messages say it.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => $name,)*
                }
            }

            /// When the worker starts to apply it.
            pub fn applies(&self) -> Applies {
                match self {
                    $(Self::$variant(_) => Applies::$applies,)*
                }
            }

            /// The value, as messages say it.
            pub fn value(&self) -> String {
                match self {
                    $(Self::$variant(v) => v.to_string(),)*
                }
            }
        }
    };
}

settings_table! {
    /// The draft model for draft-model mode (a model spec).
    DraftModel(String), field draft_model, named "draft model", applies NextUse;
    /// The trained heads file for medusa and eagle modes (default: beside the model).
    DraftHeads(String), field draft_heads, named "draft heads", applies NextUse;
    /// Layers the layer-skip draft runs before the head.
    DraftLayers(usize), field draft_layers, named "layer-skip draft layers", applies NextRun;
    /// Where drafts come from.
    DraftMode(DraftMode), field draft_mode, named "draft mode", applies NextRun;
    /// Speculation length.
    K(KPolicy), field k, named "K", applies NextStep;
    /// The rule verification keeps drafts by (lossless, or a lossy one).
    Policy(super::AcceptPolicy), field policy, named "acceptance policy", applies NextRun;
    /// Weights requantised from the loaded ones.
    Quant(Quant), field quant, named "quantization", applies BetweenRuns;
    /// A mixed-precision variant: each weight matrix's type (a sensitivity map's choice).
    Mix(super::sensitivity::MixSpec), field mix, named "mixed precision", applies BetweenRuns;
    /// The KV cache's dtype.
    KvDtype(KvDtype), field kv_dtype, named "KV cache dtype", applies NextRun;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: Setting + std::fmt::Debug + Serialize + for<'de> Deserialize<'de>>() {
        for v in T::ALL {
            assert_eq!(T::parse(v.name()), Ok(*v));
            let ron = ron::to_string(v).unwrap();
            assert_eq!(ron::from_str::<T>(&ron).unwrap(), *v, "{ron}");
        }
        let e = T::parse("nonsense").unwrap_err();
        assert!(e.contains(&T::names()), "{e}");
    }

    #[test]
    fn every_setting_round_trips_by_name_and_errors_list_the_values() {
        round_trips::<Quant>();
        round_trips::<DraftMode>();
        round_trips::<KvDtype>();
    }

    #[test]
    fn names_forgive_case_and_separators() {
        assert_eq!(Quant::parse("q4k"), Ok(Quant::Q4K));
        assert_eq!(Quant::parse("as-loaded"), Ok(Quant::AsLoaded));
        assert_eq!(Quant::parse("loaded"), Ok(Quant::AsLoaded));
        assert_eq!(KvDtype::parse("BF16"), Ok(KvDtype::BF16));
        assert_eq!(
            DraftMode::parse("prompt_lookup"),
            Ok(DraftMode::PromptLookup)
        );
    }

    #[test]
    fn k_is_a_number_on_the_wire_and_steps_through_adaptive() {
        assert_eq!(ron::to_string(&KPolicy::Adaptive).unwrap(), "0");
        assert_eq!(ron::from_str::<KPolicy>("7").unwrap(), KPolicy::Fixed(7));
        assert_eq!(KPolicy::Fixed(1).down(), KPolicy::Adaptive);
        assert_eq!(KPolicy::Adaptive.down(), KPolicy::Adaptive);
        assert_eq!(KPolicy::Adaptive.up(), KPolicy::Fixed(1));
        assert_eq!(KPolicy::Fixed(K_MAX).up(), KPolicy::Fixed(K_MAX));
        assert!(KPolicy::parse("17").is_err());
        assert!(ron::from_str::<KPolicy>("40")
            .unwrap_err()
            .to_string()
            .contains("k = 40 is out of range"));
    }

    #[test]
    fn the_acceptance_target_controller_parses_checks_and_round_trips() {
        let t = KPolicy::parse("target=0.7:2-6").unwrap();
        assert_eq!(
            t,
            KPolicy::Target {
                min: 2,
                max: 6,
                accept: 70
            }
        );
        assert_eq!(KPolicy::parse("target=80"), KPolicy::target(1, 8, 80));
        assert_eq!(t.to_string(), "target 70% 2–6");
        assert!(t.is_controlled() && KPolicy::Adaptive.is_controlled());
        assert!(!KPolicy::Fixed(3).is_controlled());
        let ron = ron::to_string(&t).unwrap();
        assert_eq!(ron::from_str::<KPolicy>(&ron).unwrap(), t, "{ron}");
        assert!(KPolicy::parse("target=0.7:6-2")
            .unwrap_err()
            .contains("min ≤ max"));
        assert!(KPolicy::parse("target=1.5").is_ok(), "1.5 reads as 2 %");
        assert!(KPolicy::parse("target=0").unwrap_err().contains("1–99"));
        assert!(KPolicy::parse("target=x").is_err());
    }

    #[test]
    fn cycling_wraps() {
        assert_eq!(DraftMode::LayerSkip.next(), DraftMode::Medusa);
        assert_eq!(DraftMode::Eagle.next(), DraftMode::None);
        assert_eq!(Quant::AsLoaded.next(), Quant::F32);
    }
}
