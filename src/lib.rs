//! labtui: an LLM inference lab in the terminal.
//!
//! Data flows one way: UI keys become [`protocol::Command`]s for the [`worker`], which owns the
//! [`engine`] and answers with stamped [`protocol::Event`]s that are drawn live and recorded.
//!
//! The modules are layers, each importing only the ones listed before it (a test checks it):
//! `protocol`, `alloc` < `stats` < `engine` < `sysmon` < `lab` < `serve` < `worker` < `record`, `preset`,
//! `catalog` < `state`
//! < `report` < `tui` < `app` < `cli`.

pub mod alloc;
pub mod app;
pub mod catalog;
pub mod cli;
pub mod engine;
pub mod lab;
pub mod preset;
pub mod protocol;
pub mod record;
pub mod report;
pub mod serve;
pub mod state;
pub mod stats;
pub mod sysmon;
pub mod tui;
pub mod worker;
