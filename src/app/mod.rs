//! The commands: headless generation and tokenizing, benchmarks, the demo driver, reports. Each
//! takes plain option structs (clap derives them here; `cli` only composes them), and nothing but
//! `main` imports this layer's caller.

pub mod args;
pub mod bench;
pub mod demo;
pub mod headless;
pub mod race;
pub mod report;
pub mod serve;
pub mod snapshot;
pub mod train;
