//! The attention half of a layer: queries, keys and values with RoPE, written to the paged
//! cache, then each span's attention over it; and the tree mask a tree verification runs with.

use super::{Layer, Model, Rows};
use crate::engine::attention::PagedRow;
use crate::engine::config::RopeStyle;
use crate::engine::kv_cache::{BlockTable, KvPool};
use crate::engine::step::Span;
use crate::engine::tiled::{attend_tiled, PrefillAttention, TiledSpan};
use candle_core::{Result, Tensor};

/// The rows of a tree verification pass (one sequence): row 0 is the pending token, each other
/// row a drafted candidate below its parent. A row sits at the position of its depth and sees
/// the cache, the pending token and its own ancestors, exactly what a decode step of that
/// branch would see, so each row's logits are bitwise that step's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeMask {
    /// Each row's parent row (row 0 has none).
    pub parent: Vec<Option<usize>>,
}

impl TreeMask {
    /// Each row's depth below row 0.
    pub fn depth(&self, row: usize) -> usize {
        self.path(row).len()
    }

    /// Row `row`'s ancestors below row 0, from the top down, and `row` itself (empty for row 0).
    pub fn path(&self, row: usize) -> Vec<usize> {
        let mut p = Vec::new();
        let mut r = row;
        while let Some(up) = self.parent[r] {
            p.push(r);
            r = up;
        }
        p.reverse();
        p
    }
}

impl Model {
    pub(super) fn attention(
        &self,
        index: usize,
        layer: &Layer,
        x: &Tensor,
        pool: &mut KvPool,
        rows: &Rows,
    ) -> Result<Tensor> {
        let plan = rows.plan;
        let window = self.cfg.window(index);
        let (q, k, v) = self.project_qkv(layer, x, rows, window)?;
        crate::engine::profile::timed("KV cache writes", 0, 0, || -> Result<()> {
            for s in &plan.spans {
                let table = rows.tables[s.seq];
                pool.write(
                    index,
                    table,
                    s.pos,
                    &k.narrow(0, s.row, s.len)?,
                    &v.narrow(0, s.row, s.len)?,
                )?;
            }
            Ok(())
        })?;
        let y = crate::engine::profile::timed("attention", 0, 0, || {
            self.attend(index, &q, pool, rows, window)
        })?;
        layer.o.timed("o product", &y, plan)
    }

    /// The rows' queries `(1, heads, rows, head_dim)` and keys `(rows, kv_heads, head_dim)`, both
    /// after RoPE, and values `(rows, kv_heads, head_dim)`, the layout the pool's slots take.
    fn project_qkv(
        &self,
        layer: &Layer,
        x: &Tensor,
        rows: &Rows,
        window: Option<usize>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let c = &self.cfg;
        let plan = rows.plan;
        let n = plan.rows();
        let heads = |t: Tensor, h: usize| {
            t.reshape((1, n, h, c.head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        // Gemma 3 normalises each head's query and key before RoPE.
        let head_norm = |t: Tensor, h: usize, norm: &Option<Tensor>| match norm {
            Some(w) => {
                candle_nn::ops::rms_norm(&t.reshape((1, n, h, c.head_dim))?, w, c.rms_eps as f32)
            }
            None => Ok(t),
        };
        let qkv = "q, k and v products";
        let (q, k, v) = (
            layer.q.timed(qkv, x, plan)?,
            layer.k.timed(qkv, x, plan)?,
            layer.v.timed(qkv, x, plan)?,
        );
        // Values go to the pool's slots as they come: (rows, kv_heads, head_dim).
        let v = v.reshape((n, c.kv_heads, c.head_dim))?;
        let rope = match c.rope_style {
            RopeStyle::Halves => candle_nn::rotary_emb::rope,
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i,
        };
        let (cos, sin) = match (&rows.local, window) {
            (Some((cos, sin)), Some(_)) => (cos, sin),
            _ => (rows.cos, rows.sin),
        };
        let (q, k) = crate::engine::profile::timed("RoPE and head layout", 0, 0, || {
            let q = heads(head_norm(q, c.heads, &layer.q_norm)?, c.heads)?;
            let k = heads(head_norm(k, c.kv_heads, &layer.k_norm)?, c.kv_heads)?;
            let q = rope(&q, cos, sin)?;
            let k = rope(&k, cos, sin)?
                .squeeze(0)?
                .transpose(0, 1)?
                .contiguous()?;
            Ok::<_, candle_core::Error>((q, k))
        })?;
        Ok((q, k, v))
    }

    /// Every span's attention over what the pool holds for it, `(1, rows, heads × head_dim)`:
    /// short spans paged in place when the kernel takes them, the rest dense.
    fn attend(
        &self,
        index: usize,
        q: &Tensor,
        pool: &KvPool,
        rows: &Rows,
        window: Option<usize>,
    ) -> Result<Tensor> {
        let plan = rows.plan;
        let scale = self.cfg.attn_scale;
        let mut parts = Vec::with_capacity(plan.spans.len());
        if plan.short_rows > 0 {
            // Decode rows and verification: our own attention, read in place through the tables.
            let qs = q.narrow(2, 0, plan.short_rows)?;
            // A tree's rows see their ancestors' slots after the pending token's.
            let tails: Vec<Vec<usize>> = match (rows.tree, plan.spans.first()) {
                (Some(t), Some(s)) => (0..s.len)
                    .map(|r| t.path(r).iter().map(|&a| s.pos + a).collect())
                    .collect(),
                _ => Vec::new(),
            };
            let tails = &tails;
            let paged: Vec<PagedRow> = plan
                .short()
                .flat_map(|s| {
                    (0..s.len).map(move |i| {
                        let (seen, tail) = match rows.tree {
                            Some(t) => (s.pos + t.depth(i) + 1, Some((s.pos + 1, &tails[i][..]))),
                            None => (s.pos + i + 1, None),
                        };
                        PagedRow {
                            table: rows.tables[s.seq].for_layer(window.is_some()),
                            from: window.map_or(0, |w| seen.saturating_sub(w)),
                            seen,
                            tail,
                        }
                    })
                })
                .collect();
            let (ks, vs) = pool.slots(index).expect("written above");
            match crate::engine::attention::attend_paged(&qs, ks, vs, &paged, scale)? {
                Some(y) => parts.push(y),
                None if rows.tree.is_some() => {
                    candle_core::bail!("tree verification runs on the CPU with an f32 KV cache")
                }
                None => {
                    for s in plan.short() {
                        parts.push(self.dense_attention(index, q, pool, rows.tables[s.seq], s)?);
                    }
                }
            }
        }
        for s in plan.long() {
            parts.push(self.long_attention(index, q, pool, rows.tables[s.seq], s, window)?);
        }
        Ok(match parts.len() {
            1 => parts.pop().expect("one part"),
            _ => Tensor::cat(&parts, 1)?,
        })
    }

    /// A prompt span's attention: in tiles where the model says so and the cache allows it
    /// (the CPU, f32), else candle's dense products.
    fn long_attention(
        &self,
        index: usize,
        q: &Tensor,
        pool: &KvPool,
        table: &BlockTable,
        s: &Span,
        window: Option<usize>,
    ) -> Result<Tensor> {
        if let (PrefillAttention::Tiled, Some((k, v))) = (self.prefill_attention, pool.slots(index))
        {
            let span = TiledSpan {
                table: table.for_layer(window.is_some()),
                pos: s.pos,
                row: s.row,
                len: s.len,
            };
            if let Some(y) = attend_tiled(q, k, v, span, self.cfg.attn_scale, window)? {
                return Ok(y);
            }
        }
        self.dense_attention(index, q, pool, table, s)
    }
}
