//! What the worker tells the status line, as facts with their numbers and names: the words are
//! made in one place, `tui::panes::status`.

use super::{Quant, SettingChange};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Something the worker did or decided that is not a measurement of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Notice {
    /// A setting was taken; it applies from the point its kind says (next step, next run, …).
    SettingTaken(SettingChange),
    /// A job stopped because it was asked to.
    Stopped(Job),
    /// A quality measurement began on these weights, over this many tokens of the reference text.
    QualityStarted { quant: Quant, tokens: usize },
    /// A quality measurement's pass `done` of `total`.
    QualityPass { done: usize, total: usize },
    /// The draft model is loading (`None`: one picked beside the target).
    DraftLoading { spec: Option<String> },
    /// The draft model is loaded and drafts for the target.
    DraftReady { draft: String, target: String },
    /// A remote server did not name its model (`why`), or not within `waited`.
    ServerUnnamed {
        why: Option<String>,
        waited: Duration,
    },
    /// A remote server runs the model: a load asked for is not made.
    RemoteModel { url: String, spec: String },
    /// What was asked does not apply to a remote server.
    NotRemote { asked: Unserved, url: String },
}

/// A worker job that `Stop` interrupts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Job {
    Loading,
    Requantizing,
    Quality,
    Stream,
    Batch,
    Race,
    /// A teaching demo, by its kind's name.
    Demo(String),
}

/// What a remote server does not do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unserved {
    Setting(SettingChange),
    Quality,
    Demos,
    Streams,
    Batches,
    Races,
}
