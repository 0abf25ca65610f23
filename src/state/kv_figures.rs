//! The KV pane's figures, each with its recipe: the bytes a token costs, the bytes held, and the
//! growth measured over the run.

use super::figure::{Figure, Measured, Recipe, Unit};
use super::RunView;
use crate::protocol::ModelInfo;

#[derive(Debug, Clone, PartialEq)]
pub struct KvFigures {
    pub per_token: Figure,
    pub held: Figure,
    /// Measured once the cache has grown.
    pub growth: Option<Figure>,
    /// Tokens held.
    pub tokens: usize,
}

impl KvFigures {
    pub fn all(&self) -> Vec<&Figure> {
        let mut v = vec![&self.per_token, &self.held];
        v.extend(self.growth.iter());
        v
    }
}

fn figure(
    name: &'static str,
    value: f64,
    unit: Unit,
    definition: &'static str,
    recipe: Recipe,
) -> Figure {
    super::figure::figure(
        name,
        (value, unit),
        definition,
        recipe,
        (Measured::Engine, "demo kv-cache"),
    )
}

/// The figures for `m` and the run on screen, if any.
pub fn kv_figures(m: &ModelInfo, run: Option<&RunView>) -> KvFigures {
    let per_token = m.kv_bytes_per_token;
    let dtype_bytes = per_token / (2 * m.layers * m.kv_heads * m.head_dim).max(1) as u64;
    let per_token_fig = figure(
        "per token",
        per_token as f64,
        Unit::WholeBytes,
        "bytes one token adds to the cache: a key and a value vector per layer and KV head",
        Recipe::Product(vec![
            (2.0, ""),
            (m.layers as f64, "layers"),
            (m.kv_heads as f64, "KV heads"),
            (m.head_dim as f64, "dims"),
            (dtype_bytes as f64, "B"),
        ]),
    );
    let last = run.and_then(|r| r.tokens.last());
    let (tokens, bytes) = last.map_or((0, 0), |t| (t.kv_tokens, t.kv_bytes));
    let held_recipe = match m.sliding {
        // Sliding layers keep only their window: the engine's count is the recipe.
        Some(_) => Recipe::Direct {
            how: "the cache's bytes after the last token, sliding layers' windows only",
        },
        None => Recipe::Product(vec![
            (tokens as f64, "tokens"),
            (per_token as f64, "B a token"),
        ]),
    };
    let held = figure(
        "held",
        bytes as f64,
        Unit::Bytes,
        "the cache's bytes after the newest token: prompt and generated tokens",
        held_recipe,
    );
    let growth = run
        .and_then(|r| r.kv.first())
        .filter(|first| tokens > first.0)
        .map(|&(t0, b0)| {
            let recipe = Recipe::Slope {
                rise: (b0 as f64, bytes as f64),
                rise_what: "B",
                run: (t0 as f64, tokens as f64),
                run_what: "tokens",
            };
            let value = (bytes as f64 - b0 as f64) / (tokens - t0) as f64;
            figure(
                "measured growth",
                value,
                Unit::BytesPerToken,
                "bytes the cache grew by a token over this run, from its first token to its last",
                recipe,
            )
        });
    KvFigures {
        per_token: per_token_fig,
        held,
        growth,
        tokens,
    }
}
