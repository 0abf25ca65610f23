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
