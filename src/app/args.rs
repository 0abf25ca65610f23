//! Command-line parsing of the typed settings: one parser for every [`Setting`], whose possible
//! values (in `--help` and in errors) are the setting's own list.

use crate::protocol::Setting;
use clap::builder::{PossibleValue, TypedValueParser};
use clap::error::{ContextKind, ContextValue, ErrorKind};
use std::marker::PhantomData;

/// A clap value parser for `T`: forgiving spellings, listing `T::ALL` as the possible values.
pub fn setting<T: Setting + Send + Sync>() -> SettingParser<T> {
    SettingParser(PhantomData)
}

#[derive(Clone)]
pub struct SettingParser<T>(PhantomData<fn() -> T>);

impl<T: Setting + Send + Sync> TypedValueParser for SettingParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        T::parse(&text).map_err(|_| {
            let mut e = clap::Error::new(ErrorKind::InvalidValue).with_cmd(cmd);
            if let Some(arg) = arg {
                e.insert(
                    ContextKind::InvalidArg,
                    ContextValue::String(arg.to_string()),
                );
            }
            e.insert(
                ContextKind::InvalidValue,
                ContextValue::String(text.into_owned()),
            );
            e.insert(
                ContextKind::ValidValue,
                ContextValue::Strings(T::ALL.iter().map(|v| v.name().to_string()).collect()),
            );
            e
        })
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(
            T::ALL.iter().map(|v| PossibleValue::new(v.name())),
        ))
    }
}

/// Fastest replay (a recording's hour in under four seconds); the dashboard's keys stay within 64.
pub const MAX_SPEED: f64 = 1000.0;
/// Most CPU threads the engine may be given.
pub const MAX_THREADS: u64 = 1024;
/// Most timed repeats of a benchmark.
pub const MAX_REPEATS: u64 = 10_000;
/// Most events `bench record` writes (a long session has a few hundred thousand).
pub const MAX_EVENTS: u64 = 100_000_000;

/// A clap value parser for a whole number from `lo` to `hi`: a refusal names the flag, the value
/// and the range.
pub fn count(lo: u64, hi: u64) -> impl TypedValueParser<Value = usize> {
    clap::value_parser!(u64).range(lo..=hi).map(|n| n as usize)
}

fn number<T: std::str::FromStr<Err = std::num::ParseFloatError>>(s: &str) -> Result<T, String> {
    s.trim()
        .parse()
        .map_err(|e| format!("{s:?} is not a number ({e})"))
}

/// `--temp`: finite, from 0 (greedy) to [`crate::protocol::params::MAX_TEMPERATURE`].
pub fn temperature(s: &str) -> Result<f32, String> {
    number(s).and_then(crate::protocol::params::temperature)
}

/// `--top-p`: above 0, at most 1.
pub fn top_p(s: &str) -> Result<f32, String> {
    number(s).and_then(crate::protocol::params::top_p)
}

/// Replay `--speed`: finite, above 0, at most [`MAX_SPEED`].
pub fn speed(s: &str) -> Result<f64, String> {
    let x: f64 = number(s)?;
    if x > 0.0 && x <= MAX_SPEED {
        Ok(x)
    } else {
        Err(format!(
            "{x} is out of range (above 0, at most {MAX_SPEED})"
        ))
    }
}

/// `--snapshot-at`: seconds into a recording, finite and not negative.
pub fn seconds(s: &str) -> Result<f64, String> {
    let x: f64 = number(s)?;
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err(format!("{x} is not a time in seconds (0 or more)"))
    }
}

/// A screen size, `COLSxROWS` (at least the dashboard's minimum, at most 1000×1000).
pub fn size(s: &str) -> Result<(u16, u16), String> {
    let (w, h) = s
        .split_once(['x', '×'])
        .ok_or_else(|| format!("{s:?} is not a size: give COLSxROWS, as 160x50"))?;
    let dim = |v: &str, min: u16| -> Result<u16, String> {
        let n: u16 = v
            .trim()
            .parse()
            .map_err(|e| format!("{v:?} in {s:?} is not a whole number ({e})"))?;
        if (min..=1000).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} in {s:?} is out of range ({min} to 1000)"))
        }
    };
    Ok((
        dim(w, crate::tui::view::MIN_WIDTH)?,
        dim(h, crate::tui::view::MIN_HEIGHT)?,
    ))
}
