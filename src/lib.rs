//! labtui: an LLM inference lab in the terminal.
//!
//! Data flows one way: UI keys become [`protocol::Command`]s for the [`worker`], which owns the
//! [`engine`] and answers with stamped [`protocol::Event`]s that are drawn live and recorded.

pub mod bench;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod headless;
pub mod metrics;
pub mod plot;
pub mod preset;
pub mod protocol;
pub mod record;
pub mod report;
pub mod state;
pub mod stats;
pub mod tui;
pub mod worker;
