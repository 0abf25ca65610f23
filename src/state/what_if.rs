//! The KV cache what-if predictor's toggles: a dtype, a context length and a batch size.

use crate::protocol::{KvDtype, Setting};

/// A what-if KV dtype: one the engine's cache stores, or q8_0 (a what-if only: the engine has no
/// such cache).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhatIfDtype {
    Cache(KvDtype),
    Q8_0,
}

impl Default for WhatIfDtype {
    fn default() -> Self {
        WhatIfDtype::Cache(KvDtype::F32)
    }
}

impl WhatIfDtype {
    /// In the order `v` cycles through them.
    pub const ALL: [WhatIfDtype; 4] = [
        WhatIfDtype::Cache(KvDtype::F32),
        WhatIfDtype::Cache(KvDtype::F16),
        WhatIfDtype::Cache(KvDtype::BF16),
        WhatIfDtype::Q8_0,
    ];

    pub fn name(self) -> &'static str {
        match self {
            WhatIfDtype::Cache(d) => d.name(),
            WhatIfDtype::Q8_0 => "q8_0",
        }
    }

    /// Bytes of one stored value (q8_0: 32 one-byte values and a 2-byte scale).
    pub fn bytes(self) -> f64 {
        match self {
            WhatIfDtype::Cache(d) => d.bytes(),
            WhatIfDtype::Q8_0 => 34.0 / 32.0,
        }
    }

    /// The one after this, round.
    pub fn next(self) -> Self {
        let i = Self::ALL.iter().position(|&d| d == self).unwrap_or(0);
        Self::ALL[(i + 1) % Self::ALL.len()]
    }
}
pub const WHAT_IF_CONTEXTS: [usize; 5] = [0, 2048, 8192, 32768, 131072];
pub const WHAT_IF_BATCH: [usize; 6] = [1, 2, 4, 8, 16, 32];

/// The KV what-if predictor's toggles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WhatIf {
    pub dtype: WhatIfDtype,
    /// Index into [`WHAT_IF_CONTEXTS`]; 0 means the model's own context.
    pub context: usize,
    /// Index into [`WHAT_IF_BATCH`].
    pub batch: usize,
}
