//! Our forward pass over GGUF weights: embeddings, RMSNorm, RoPE, grouped-query attention with a
//! causal mask, SwiGLU MLP and the output head; for Gemma 3 also the scaled embeddings, query and
//! key norms, norms after attention and MLP, sliding-window layers with their own RoPE base, and
//! the GELU-gated MLP.
//!
//! The model is immutable; all state lives in the [`KvCache`] (or the [`KvPool`] and block tables)
//! passed in, so one set of weights can serve several caches (a target and its own shallow draft)
//! and many sequences at once ([`Model::forward_batch`]). A forward pass can stop after the first L
//! layers and can return logits for every position.

use super::config::{Activation, ModelConfig};
use super::kernels::QWeight;
use super::kv_cache::{BlockTable, KvCache, KvPool};
use super::step::{RowPlan, Seq};
use crate::protocol::sensitivity::TensorKind;
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Result, Tensor, D};
use std::sync::Arc;

mod attn;
mod cache;
pub use attn::TreeMask;
pub use cache::MIN_PREFILL_CHUNK;

/// Which logits a forward pass returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// Only the last position's: `(1, vocab)`.
    Last,
    /// Every position's: `(seq, vocab)` (speculative verification).
    All,
    /// No logits: every position's last hidden state after the final norm, `(seq, hidden)`,
    /// what the head multiplies ([`Model::head_logits`] gives the logits of [`Self::All`] from
    /// it, bitwise). Draft heads read it.
    Hidden,
}

/// Options of one forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub logits: Logits,
    /// Run only this many layers before the head (self-speculative drafting); `None` runs all.
    pub layers: Option<usize>,
}

impl Forward {
    pub const LAST: Forward = Forward {
        logits: Logits::Last,
        layers: None,
    };
    pub const ALL: Forward = Forward {
        logits: Logits::All,
        layers: None,
    };
}

/// A linear layer over quantized weights, with an optional bias.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: QWeight,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// [`Self::forward`], profiled as `name` ([`super::profile`]).
    fn timed(&self, name: &'static str, x: &Tensor, plan: &RowPlan) -> Result<Tensor> {
        if !super::profile::enabled() {
            return self.forward(x, plan);
        }
        let flops = 2 * plan.rows() as u64 * self.weight.elems();
        super::profile::timed(name, self.weight.bytes(), flops, || self.forward(x, plan))
    }

    /// `x`'s rows (in `plan`'s run order) through the weights, grouped as the plan says.
    fn forward(&self, x: &Tensor, plan: &RowPlan) -> Result<Tensor> {
        let y = plan.product(x, self.weight.rows_independent(), |x, each| match each {
            true => self.weight.forward_each(x),
            false => self.weight.forward(x),
        })?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Layer {
    pub attn_norm: Tensor,
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
    pub ffn_norm: Tensor,
    pub gate: Linear,
    pub up: Linear,
    pub down: Linear,
    /// Gemma 3's extra norms: of each head's query and key, and of the attention's and the MLP's
    /// outputs before they join the residual stream.
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
    pub post_attn_norm: Option<Tensor>,
    pub post_ffn_norm: Option<Tensor>,
}

impl Layer {
    /// The gated MLP, `down(act(gate(x)) * up(x))`, as candle-transformers' `Mlp::forward`.
    pub fn mlp(&self, x: &Tensor, plan: &RowPlan, activation: Activation) -> Result<Tensor> {
        let gate = self.gate.timed("gate and up products", x, plan)?;
        let up = self.up.timed("gate and up products", x, plan)?;
        let act = super::profile::timed("activation", 0, 0, || {
            let act = match activation {
                Activation::Silu => candle_nn::ops::silu(&gate)?,
                // candle's `gelu` is the tanh approximation.
                Activation::GeluTanh => super::act::gelu_tanh(&gate)?,
            };
            act * up
        })?;
        self.down.timed("down product", &act, plan)
    }

    /// The layer's matrix of `kind` (a layer has no embeddings or head: those give `q`).
    pub fn linear(&self, kind: TensorKind) -> &Linear {
        match kind {
            TensorKind::K => &self.k,
            TensorKind::V => &self.v,
            TensorKind::O => &self.o,
            TensorKind::Gate => &self.gate,
            TensorKind::Up => &self.up,
            TensorKind::Down => &self.down,
            _ => &self.q,
        }
    }

    /// As [`Self::linear`], to replace it.
    pub fn linear_mut(&mut self, kind: TensorKind) -> &mut Linear {
        match kind {
            TensorKind::K => &mut self.k,
            TensorKind::V => &mut self.v,
            TensorKind::O => &mut self.o,
            TensorKind::Gate => &mut self.gate,
            TensorKind::Up => &mut self.up,
            TensorKind::Down => &mut self.down,
            _ => &mut self.q,
        }
    }

    /// Every dense (f32) tensor of the layer: its norms.
    pub fn norms(&self) -> impl Iterator<Item = &Tensor> {
        [&self.attn_norm, &self.ffn_norm].into_iter().chain(
            [
                &self.q_norm,
                &self.k_norm,
                &self.post_attn_norm,
                &self.post_ffn_norm,
            ]
            .into_iter()
            .flatten(),
        )
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub cfg: ModelConfig,
    /// Token embeddings, kept quantized: only the rows looked up are dequantized.
    pub embed: Arc<QTensor>,
    pub layers: Vec<Layer>,
    pub norm: Tensor,
    pub head: QWeight,
    cos: Tensor,
    sin: Tensor,
    /// The sliding-window layers' RoPE tables, where their base differs.
    local: Option<(Tensor, Tensor)>,
    device: Device,
    /// How prompt spans attend: in tiles (the default) or densely (the reference).
    pub prefill_attention: super::tiled::PrefillAttention,
}

/// What every layer of a step shares: the plan, each sequence's table (in the order given), and
/// each row's RoPE angles (and the sliding-window layers' own).
struct Rows<'a> {
    plan: &'a RowPlan,
    tables: &'a [&'a BlockTable],
    cos: &'a Tensor,
    sin: &'a Tensor,
    local: Option<(Tensor, Tensor)>,
    tree: Option<&'a TreeMask>,
}

/// RoPE tables `(positions, head_dim / 2)`; `scale` multiplies the positions (linear scaling).
fn rope_tables(
    head_dim: usize,
    base: f32,
    scale: f32,
    positions: usize,
    device: &Device,
) -> Result<(Tensor, Tensor)> {
    let inv_freq: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| scale / base.powf(i as f32 / head_dim as f32))
        .collect();
    let inv_freq = Tensor::new(inv_freq.as_slice(), device)?;
    let pos = Tensor::arange(0, positions as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((positions, 1))?;
    let angles = pos.matmul(&inv_freq.reshape((1, head_dim / 2))?)?;
    Ok((angles.cos()?, angles.sin()?))
}

impl Model {
    pub fn new(
        cfg: ModelConfig,
        embed: Arc<QTensor>,
        layers: Vec<Layer>,
        norm: Tensor,
        head: QWeight,
        device: &Device,
    ) -> Result<Self> {
        let tables =
            |base, scale| rope_tables(cfg.head_dim, base, scale, cfg.context_length, device);
        let (cos, sin) = tables(cfg.rope_base, cfg.rope_scale)?;
        // Local layers are not scaled (llama.cpp's gemma3).
        let local = match cfg.sliding {
            Some(s) if s.rope_base != cfg.rope_base || cfg.rope_scale != 1.0 => {
                Some(tables(s.rope_base, 1.0)?)
            }
            _ => None,
        };
        Ok(Self {
            cfg,
            embed,
            layers,
            norm,
            head,
            cos,
            sin,
            local,
            device: device.clone(),
            prefill_attention: Default::default(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The same model with other matrices (a requantised variant); norms, biases and the RoPE
    /// tables are shared.
    pub fn with_weights(&self, embed: Arc<QTensor>, layers: Vec<Layer>, head: QWeight) -> Self {
        Self {
            embed,
            layers,
            head,
            ..self.clone()
        }
    }

    /// Run `tokens` after what `cache` holds; the cache grows by `tokens.len()`.
    /// Returns f32 logits, `(1, vocab)` or `(seq, vocab)` as `opts.logits` asks.
    /// A prompt longer than [`Self::prefill_chunk`] runs in chunks of it.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache, opts: Forward) -> Result<Tensor> {
        if let (Logits::Last, Some(chunk)) = (opts.logits, self.prefill_chunk()) {
            if tokens.len() > chunk {
                let (head, last) = tokens.split_at((tokens.len() - 1) / chunk * chunk);
                for piece in head.chunks(chunk) {
                    self.forward_pass(piece, cache, opts)?;
                }
                return self.forward_pass(last, cache, opts);
            }
        }
        self.forward_pass(tokens, cache, opts)
    }

    /// One pass over `tokens`, however many.
    fn forward_pass(&self, tokens: &[u32], cache: &mut KvCache, opts: Forward) -> Result<Tensor> {
        let (pool, table) = cache.parts_mut();
        let mut out = self.forward_batch(pool, &mut [Seq { tokens, table }], opts)?;
        Ok(out.pop().expect("one sequence, one result"))
    }

    /// Run each sequence's tokens after what its table holds, all in one pass over the weights:
    /// prefill chunks and decode rows together, each at its own position. Every table grows by
    /// its tokens. Returns each sequence's logits in the order given, as [`Self::forward`] does;
    /// each is bitwise what that sequence would get alone (see [`super::step`]).
    pub fn forward_batch(
        &self,
        pool: &mut KvPool,
        seqs: &mut [Seq],
        opts: Forward,
    ) -> Result<Vec<Tensor>> {
        self.forward_rows(pool, seqs, opts, None)
    }

    /// Verify a tree of drafts in one pass: `tokens` (the pending token, then the candidates,
    /// each after its parent) laid out as `tree` says; the cache grows by all of them, at
    /// consecutive slots ([`KvCache::keep_path`] then keeps one branch). Runs on the CPU with
    /// an f32 cache (our paged attention), else it is an error.
    pub fn forward_tree(
        &self,
        tokens: &[u32],
        cache: &mut KvCache,
        tree: &TreeMask,
        opts: Forward,
    ) -> Result<Tensor> {
        if tree.parent.len() != tokens.len() || tokens.len() > super::kernels::SMALL_BATCH {
            candle_core::bail!(
                "a tree of {} rows for {} tokens",
                tree.parent.len(),
                tokens.len()
            )
        }
        let (pool, table) = cache.parts_mut();
        let mut out = self.forward_rows(pool, &mut [Seq { tokens, table }], opts, Some(tree))?;
        Ok(out.pop().expect("one sequence, one result"))
    }

    fn forward_rows(
        &self,
        pool: &mut KvPool,
        seqs: &mut [Seq],
        opts: Forward,
        tree: Option<&TreeMask>,
    ) -> Result<Vec<Tensor>> {
        if seqs.is_empty() || seqs.iter().any(|s| s.tokens.is_empty()) {
            candle_core::bail!("forward pass over no tokens")
        }
        for s in seqs.iter() {
            let end = s.table.len() + s.tokens.len();
            if end > self.cfg.context_length {
                candle_core::bail!(
                    "{end} tokens exceed the context of {}",
                    self.cfg.context_length
                )
            }
        }
        let plan = RowPlan::new(seqs.iter().map(|s| (s.tokens.len(), s.table.len())));
        let mut reserved = Ok(());
        for s in seqs.iter_mut() {
            reserved = reserved.and_then(|_| pool.reserve(s.table, s.table.len() + s.tokens.len()));
        }
        let out = reserved.and_then(|_| self.run(pool, seqs, &plan, opts, tree));
        for s in seqs.iter_mut() {
            match out {
                // A shallow (draft) pass leaves the deeper layers behind; the length is the same
                // for every layer it touched.
                Ok(_) => s.table.commit(s.tokens.len()),
                // Nothing held past what was committed.
                Err(_) => pool.truncate(s.table, s.table.len()),
            }
        }
        out
    }

    fn run(
        &self,
        pool: &mut KvPool,
        seqs: &[Seq],
        plan: &RowPlan,
        opts: Forward,
        tree: Option<&TreeMask>,
    ) -> Result<Vec<Tensor>> {
        let mut h = self.embed_rows(seqs, plan)?;
        let (cos, sin, local) = self.rope_rows(plan, tree)?;
        let tables: Vec<&BlockTable> = seqs.iter().map(|s| &*s.table).collect();
        let rows = Rows {
            plan,
            tables: &tables,
            cos: &cos,
            sin: &sin,
            local,
            tree,
        };
        let n_layers = opts
            .layers
            .unwrap_or(self.layers.len())
            .min(self.layers.len());
        let eps = self.cfg.rms_eps as f32;
        for (i, layer) in self.layers[..n_layers].iter().enumerate() {
            super::interrupt::check()?;
            let norm = |x: &Tensor, w: &Tensor| {
                super::profile::timed("norms", 0, 0, || candle_nn::ops::rms_norm(x, w, eps))
            };
            let post = |x: Tensor, w: &Option<Tensor>| match w {
                Some(w) => norm(&x, w),
                None => Ok(x),
            };
            let x = norm(&h, &layer.attn_norm)?;
            let attn = self.attention(i, layer, &x, pool, &rows)?;
            h = (post(attn, &layer.post_attn_norm)? + h)?;
            let x = norm(&h, &layer.ffn_norm)?;
            let mlp = layer.mlp(&x, plan, self.cfg.activation)?;
            h = (post(mlp, &layer.post_ffn_norm)? + h)?;
        }
        self.logits(&h.squeeze(0)?, seqs.len(), plan, opts.logits)
    }

    /// The step's token embeddings, `(1, rows, hidden)`.
    fn embed_rows(&self, seqs: &[Seq], plan: &RowPlan) -> Result<Tensor> {
        let ids: Vec<u32> = plan
            .spans
            .iter()
            .flat_map(|s| seqs[s.seq].tokens.iter().copied())
            .collect();
        self.embed_tokens(&ids)?.unsqueeze(0)
    }

    /// Each row's RoPE angles, and the sliding-window layers' own where they differ.
    #[allow(clippy::type_complexity)]
    fn rope_rows(
        &self,
        plan: &RowPlan,
        tree: Option<&TreeMask>,
    ) -> Result<(Tensor, Tensor, Option<(Tensor, Tensor)>)> {
        let positions = match (&plan.spans[..], tree) {
            ([one], Some(t)) => {
                let p: Vec<u32> = (0..one.len)
                    .map(|r| (one.pos + t.depth(r)) as u32)
                    .collect();
                Some(Tensor::new(p.as_slice(), &self.device)?)
            }
            ([_], None) => None,
            _ => Some(Tensor::new(plan.positions().as_slice(), &self.device)?),
        };
        let select = |cos: &Tensor, sin: &Tensor| -> Result<(Tensor, Tensor)> {
            match (&plan.spans[..], &positions) {
                ([one], None) => Ok((
                    cos.narrow(0, one.pos, one.len)?,
                    sin.narrow(0, one.pos, one.len)?,
                )),
                (_, Some(p)) => Ok((cos.index_select(p, 0)?, sin.index_select(p, 0)?)),
                (_, None) => unreachable!("positions of several spans"),
            }
        };
        let (cos, sin) = select(&self.cos, &self.sin)?;
        let local = match &self.local {
            Some((c, s)) => Some(select(c, s)?),
            None => None,
        };
        Ok((cos, sin, local))
    }

    /// Each sequence's logits from the last hidden states `h` `(rows, hidden)`: of its last row,
    /// or of all its rows.
    fn logits(&self, h: &Tensor, n: usize, plan: &RowPlan, which: Logits) -> Result<Vec<Tensor>> {
        let eps = self.cfg.rms_eps as f32;
        let mut out: Vec<Option<Tensor>> = vec![None; n];
        match which {
            Logits::Last => {
                let last: Vec<u32> = plan
                    .spans
                    .iter()
                    .map(|s| (s.row + s.len - 1) as u32)
                    .collect();
                let h = match &last[..] {
                    [one] => h.narrow(0, *one as usize, 1)?,
                    _ => h.index_select(&Tensor::new(last.as_slice(), &self.device)?, 0)?,
                };
                let h = candle_nn::ops::rms_norm(&h, &self.norm, eps)?;
                let logits = match super::profile::enabled() {
                    false => self.head.forward_each(&h)?,
                    true => {
                        let flops = 2 * last.len() as u64 * self.head.elems();
                        super::profile::timed("head", self.head.bytes(), flops, || {
                            self.head.forward_each(&h)
                        })?
                    }
                };
                for (j, s) in plan.spans.iter().enumerate() {
                    out[s.seq] = Some(logits.narrow(0, j, 1)?);
                }
            }
            Logits::Hidden => {
                let h = candle_nn::ops::rms_norm(h, &self.norm, eps)?;
                for s in &plan.spans {
                    out[s.seq] = Some(h.narrow(0, s.row, s.len)?);
                }
            }
            Logits::All => {
                let h = candle_nn::ops::rms_norm(h, &self.norm, eps)?.unsqueeze(0)?;
                let logits = plan
                    .product(&h, self.head.rows_independent(), |x, each| match each {
                        true => self.head.forward_each(x),
                        false => self.head.forward(x),
                    })?
                    .squeeze(0)?;
                for s in &plan.spans {
                    out[s.seq] = Some(logits.narrow(0, s.row, s.len)?);
                }
            }
        }
        Ok(out
            .into_iter()
            .map(|t| t.expect("every sequence ran"))
            .collect())
    }

    /// The logits of normed hidden states `h` (`(rows, hidden)`, from [`Logits::Hidden`]):
    /// bitwise what [`Logits::All`] gives for one sequence's rows, and [`Logits::Last`] for one.
    pub fn head_logits(&self, h: &Tensor) -> Result<Tensor> {
        self.head.forward(h)
    }

    /// The output head as a dense f32 matrix `(vocab, hidden)` (training draft heads on it).
    pub fn dense_head(&self) -> Result<Tensor> {
        self.head.dense_f32(&self.device)
    }

    /// The embeddings of `ids` as the first layer takes them (scaled where the model scales
    /// them): `(ids, hidden)`.
    pub fn embed_tokens(&self, ids: &[u32]) -> Result<Tensor> {
        let t = Tensor::new(ids, &self.device)?;
        let h = self.embed.embedding(&t)?;
        match self.cfg.embed_scale {
            Some(scale) => h * scale as f64,
            None => Ok(h),
        }
    }

    /// Bytes of every weight held in memory.
    pub fn weight_bytes(&self) -> u64 {
        fn qm(m: &QWeight) -> u64 {
            m.bytes()
        }
        fn tb(t: &Tensor) -> u64 {
            (t.elem_count() * t.dtype().size_in_bytes()) as u64
        }
        fn lin(l: &Linear) -> u64 {
            qm(&l.weight) + l.bias.as_ref().map(tb).unwrap_or(0)
        }
        let tied = self.head.shares(&self.embed);
        let mut total = self.embed.storage_size_in_bytes() as u64 + tb(&self.norm);
        if !tied {
            total += qm(&self.head);
        }
        for l in &self.layers {
            total += l.norms().map(tb).sum::<u64>();
            total += [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                .into_iter()
                .map(lin)
                .sum::<u64>();
        }
        total
    }

    /// Bytes of weights one decode step reads: every matrix once, but of the token embeddings only
    /// the row looked up, unless the head is tied to them (then the head reads them all).
    pub fn bytes_read_per_token(&self) -> u64 {
        let all = self.weight_bytes();
        if self.head.shares(&self.embed) {
            return all;
        }
        let embed = self.embed.storage_size_in_bytes() as u64;
        let rows = self
            .embed
            .shape()
            .dims()
            .first()
            .copied()
            .unwrap_or(1)
            .max(1) as u64;
        all - embed + embed / rows
    }

    /// Last-position logits as a vector (the common decode case).
    pub fn last_logits(logits: &Tensor) -> Result<Vec<f32>> {
        let l = logits.to_dtype(DType::F32)?;
        let n = l.dim(0)?;
        l.get(n - 1)?.to_vec1()
    }

    /// Index of the largest logit in each row.
    pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
        logits.argmax(D::Minus1)?.to_vec1()
    }
}
