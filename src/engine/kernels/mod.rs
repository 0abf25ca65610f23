//! Quantized matrix products on the CPU: the [`QWeight`] dispatch between candle's products and
//! our own kernels, one file each: [`int8`] (Q4_0, Q5_0 and Q8_0 in SIMD lanes), [`q5_0`] (Q5_0 in
//! candle's order), [`q5_1`], [`q4k`] and [`q6k`] (K-quants at decode), [`ktiles`] (K-quants at
//! prefill). What more than one of them uses is in [`common`]; no kernel file imports another.
//! Every product keeps each row of a small batch bitwise what it would be alone (the batch
//! invariance speculative verification needs).
//!
//! # Design notes
//!
//! Why the products are shaped as they are. The figures are from the two 2-core machines of
//! `docs/benchmarks.md`, one thread per core; each is a measured comparison of the two designs.
//!
//! - **Weights prefetched 4 KiB ahead.** Decode reads every weight once per token, so it is bound
//!   by how fast one core streams memory. The hardware prefetchers alone hold a core to about
//!   27 GB/s; a software prefetch 4 KiB ahead of the block being read gives the 1.5B's decode
//!   about 40 tok/s against 35 without (1, 2, 4, 8 and 16 KiB measured; 4–8 best). Threads take
//!   1 MiB of weights at a time from a shared cursor: with 64 KiB grains the two cores' streams
//!   interleave and decode falls to 26 tok/s; candle's default (an eighth of a thread's share)
//!   leaves one core waiting on the other's last grab of the 190 MB head.
//! - **Weight rows read as one stream.** Products of one to 17 activation rows read the weight
//!   rows one after the other. Reading four rows side by side (candle's `vec_dot_4`) draws
//!   17 GB/s from memory, against 56 GB/s for one row at a time.
//! - **Int8 kernels for Q4_0, Q5_0 and Q8_0** (`int8.rs`) for decode and verification: AVX-512
//!   VNNI `vpdpbusd` on 256-bit registers, sums kept in eight lanes and added once per row. The
//!   AVX2 and portable fallbacks give the same bits.
//! - **Rows as lanes from 16 activation rows** (`Lanes16` in `common/q8_0.rs`, used by `q5_0.rs`
//!   and `int8.rs`): with 512-bit VNNI the activations are laid out four bytes of sixteen rows
//!   per vector, and one `vpdpbusd` with a weight's four bytes broadcast adds four products into
//!   each of sixteen rows' exact integer sums. Candle's order for Q5_0 needs each block's integer
//!   sum per output, which an 8-row kernel gets by a tree of horizontal adds (about as many
//!   instructions as the products themselves); here every lane already is one output, so there
//!   is nothing to reduce. The lane-order int8 kernel keeps its eight lanes as eight accumulators
//!   and adds them at the end in the narrow kernel's order. Both stay bitwise the narrow kernels'
//!   results (tests compare every path and batch size); 0.5B prefill at 128 tokens runs at 303
//!   tok/s against 187 with the 8-row kernel, batched decode of 16 sequences at 128 against 102.
//! - **Work split by weight bytes times rows.** A thread takes about 1 MiB of weights at a time
//!   for one activation row, and that divided by the rows for several: a grain by bytes alone
//!   runs a 0.5B's 0.5 MB attention products on one thread at 16 decode rows (batch 4 decode 83
//!   tok/s against 72, batch 16 103 against 86).
//! - **Q4_K and Q6_K over several activation rows** (`q4k.rs`, `q6k.rs`): each weight block is
//!   unpacked once for up to eight activation rows (four without AVX-512). With AVX-512 a 512-bit
//!   register holds two of candle's 32-value chunks, against the 64 activation bytes they meet,
//!   and its two halves' integer lanes are added before they become floats: the results stay
//!   bitwise candle's one-row `vec_dot`, in about half the instructions per row (1.5B pp5 98
//!   tok/s against 76, pp8 111 against 89). Rows are split into even groups (9 as 5 + 4, not
//!   8 + 1).
//! - **Activations quantized to Q8_K in SIMD** (`common/q8k.rs`), bitwise candle's scalar
//!   `from_float`, whose `roundf` per value takes about 5% of a decode step and more of a
//!   prefill.
//! - **Exact prefill without the weight copies.** With dense prompt attention
//!   (`PrefillAttention::Dense`), prompt logits stay bitwise those of the reference
//!   (candle-transformers on the same file); the default tiled attention (`src/engine/tiled/mod.rs`)
//!   sums in its own order, and the requantized activations carry that into the logits. Activations are re-quantized at every
//!   layer, so any change of summation order moves the logits by about 1% of the largest. Long
//!   batches therefore use candle's own arithmetic, each kernel pinned by a bitwise test against
//!   candle:
//!   - Q5_0 (`q5_0.rs`): candle's scalar order, vectorised across eight activation rows instead
//!     of within one.
//!   - Q4_K and Q6_K (`ktiles.rs`): candle's 16-row tiles, unpacked per work item and dropped.
//!     candle keeps them instead, about a second copy of the weights in memory.
//!   - Decode and verification (up to 17 rows, `SMALL_BATCH`) take the batch-invariant kernels
//!     above. For Q5_0 they sum in lanes where candle's scalar product sums block by block, and
//!     attention sums in its own order, so decode logits differ from candle's in the last bits,
//!     as its own tiled K-quant decode differs from ours. Greedy output still matches the
//!     reference's, token for token.
//!
//! Outside this module, for the same reasons:
//!
//! - **Attention of decode and verification rows** (`src/engine/attention.rs`) reads in place
//!   from the KV cache, row by row and head by head, in the same operations whatever the number
//!   of rows. Through candle it is a dozen tensor operations per row and layer, mostly overhead
//!   at these sizes; prompt-lookup speculation on the rewrite prompt runs 1.62× with it against
//!   1.49× through candle.
//! - **Gemma's GELU on every core, vectorized** (`src/engine/act.rs`): candle maps it on one
//!   thread with the C library's `tanhf`. `x / (1 + e^(−2z))` is the same function, with an `exp`
//!   the compiler vectorizes (within a few units in the last place); Gemma pp128 770 tok/s
//!   against 610.
//! - GGUF tensors are read straight into their blocks (no transient second copy). The allocator
//!   is mimalloc, told to keep freed pages for reuse: a prefill allocates and frees megabytes in
//!   every layer, and handed back to the kernel they return as fresh pages it has to zero (16% of
//!   a Gemma 3 prefill). Keeping them makes prefill 20–25% faster on the 0.5B and on Gemma 3.

pub mod common;
pub mod int8;
pub mod ktiles;
pub mod q4k;
pub mod q5_0;
pub mod q5_1;
pub mod q6k;

pub(crate) use common::parallel;
#[cfg(test)]
pub(crate) use common::testing;
pub use common::QK;

/// Most activation rows a product computes row by row, exactly as a one-row (decode) product:
/// a speculative verification pass of K + 1 ≤ 17 positions then gives every position the very
/// logits a decode step would (batch invariance). Longer batches (prefill) take candle's tiles.
pub const SMALL_BATCH: usize = 17;

/// The blocks of a CPU QTensor's storage as `T`.
fn blocks_of<T>(bytes: &[u8]) -> &[T] {
    assert_eq!(bytes.as_ptr() as usize % std::mem::align_of::<T>(), 0);
    // SAFETY: the bytes are a QTensor's storage, allocated as a Vec of these repr(C) blocks.
    unsafe {
        std::slice::from_raw_parts(
            bytes.as_ptr() as *const T,
            bytes.len() / std::mem::size_of::<T>(),
        )
    }
}

/// A weight matrix: candle's quantized matmul, or our kernels where candle's CPU backend is slow
/// or where its batched products would differ from its one-row product.
#[derive(Debug, Clone)]
pub enum QWeight {
    /// Types whose candle products are batch-invariant, float weights (one row at a time in small
    /// batches) and every non-CPU device.
    Candle(candle_core::quantized::QMatMul),
    /// Q4_0, Q5_0, Q5_1 and Q8_0 on the CPU. Q4_0 and Q8_0 go through [`int8::matmul`] at every
    /// length: it sums each row in the order of candle's AVX one-row product, which candle's own
    /// long product also uses, so prompt logits match the reference engine (candle-transformers
    /// on the same file) bit for bit, while each weight tile is read once for all the rows (candle
    /// reads every weight row once per prompt token). Q5_0: up to [`SMALL_BATCH`] rows (decode,
    /// verification) through [`int8::matmul`], which sums in SIMD lanes where candle's scalar
    /// product sums block by block (2.5× the decode speed; decode logits then differ from the
    /// reference's in the last bits, as its repacked K-quant decode differs from ours); long
    /// batches from a file by [`q5_0::matmul_q5_0`] in candle's order. Q5_1:
    /// [`q5_1::matmul_q5_1`], candle's order at every length.
    Blocks {
        mm: candle_core::quantized::QMatMul,
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
        /// Q5_0's long batches in candle's order (weights from a file, checked bitwise against
        /// the reference engine), or, for weights labtui requantised itself (which no reference
        /// multiplies), through [`int8::matmul`] at every length.
        candle_order: bool,
    },
    /// Q4_K and Q6_K on the CPU: up to [`SMALL_BATCH`] rows go through our products on the
    /// compact blocks (Q4_K: [`q4k::matmul_q4k`], Q6_K: [`q6k::matmul_q6k`]), as llama.cpp's
    /// decode reads them; longer batches through [`ktiles::matmul`] (candle's tiled arithmetic,
    /// bitwise, without the tiles it keeps), or candle's own product where candle does not tile.
    Compact {
        mm: candle_core::quantized::QMatMul,
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        n: usize,
        k: usize,
    },
}

/// Whether candle's CPU backend multiplies this Q8_0 matrix through its own repacked tiles
/// rather than its one-row dot product. Those stay with candle's product, so that logits stay
/// bitwise those of the reference engine, which multiplies through candle.
fn candle_repacks_q8_0(n: usize, k: usize) -> bool {
    use ktiles::{candle_level, candle_tile_shape, CandleLevel};
    matches!(
        candle_level(),
        Some(CandleLevel::Avx512Vnni | CandleLevel::AvxVnni)
    ) && candle_tile_shape(n, k)
}

/// Activations as a flat f32 vector, the number of rows, and the output shape for `n` columns.
fn flat_rows(
    x: &candle_core::Tensor,
    k: usize,
    n: usize,
) -> candle_core::Result<(Vec<f32>, usize, Vec<usize>)> {
    let mut shape = x.dims().to_vec();
    *shape.last_mut().expect("a matrix input") = n;
    let xs = x
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?;
    let m = xs.len() / k;
    Ok((xs, m, shape))
}

impl QWeight {
    pub fn new(t: std::sync::Arc<candle_core::quantized::QTensor>) -> candle_core::Result<Self> {
        Self::with_order(t, true)
    }

    /// As [`Self::new`], for weights labtui quantised itself: Q4_0, Q5_0 and Q8_0 prefill through
    /// our products (bitwise their decode rows) instead of candle's order.
    pub fn requantised(
        t: std::sync::Arc<candle_core::quantized::QTensor>,
    ) -> candle_core::Result<Self> {
        Self::with_order(t, false)
    }

    fn with_order(
        t: std::sync::Arc<candle_core::quantized::QTensor>,
        candle_order: bool,
    ) -> candle_core::Result<Self> {
        use candle_core::quantized::GgmlDType;
        let (n, k) = t.shape().dims2()?;
        if matches!(
            t.dtype(),
            GgmlDType::Q4_0 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_0
        ) && !(t.dtype() == GgmlDType::Q8_0 && candle_repacks_q8_0(n, k))
            && t.device().is_cpu()
            && k.is_multiple_of(QK)
        {
            let mm = candle_core::quantized::QMatMul::from_arc(t.clone())?;
            return Ok(Self::Blocks {
                mm,
                t,
                n,
                k,
                candle_order,
            });
        }
        if matches!(t.dtype(), GgmlDType::Q4K | GgmlDType::Q6K)
            && t.device().is_cpu()
            && k % 256 == 0
        {
            let mm = candle_core::quantized::QMatMul::from_arc(t.clone())?;
            return Ok(Self::Compact { mm, t, n, k });
        }
        Ok(Self::Candle(candle_core::quantized::QMatMul::from_arc(t)?))
    }

    /// The weights as a dense f32 matrix `(n, k)` on `device`.
    pub fn dense_f32(
        &self,
        device: &candle_core::Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        use candle_core::quantized::QMatMul;
        match self {
            Self::Blocks { t, .. }
            | Self::Compact { t, .. }
            | Self::Candle(QMatMul::QTensor(t)) => t.dequantize(device),
            Self::Candle(QMatMul::Tensor(w) | QMatMul::TensorF16(w)) => {
                w.to_dtype(candle_core::DType::F32)?.to_device(device)
            }
        }
    }

    /// Rows of activations `x` (`(…, k)`) holds.
    fn rows(&self, x: &candle_core::Tensor) -> candle_core::Result<usize> {
        use candle_core::quantized::QMatMul;
        let k = match self {
            Self::Blocks { k, .. } | Self::Compact { k, .. } => *k,
            Self::Candle(QMatMul::QTensor(t)) => t.shape().dims2()?.1,
            Self::Candle(QMatMul::Tensor(w) | QMatMul::TensorF16(w)) => w.dim(1)?,
        };
        Ok(x.elem_count() / k.max(1))
    }

    /// `x` (`(…, k)`) times the transposed weights: `(…, n)`. Batches of up to [`SMALL_BATCH`] rows
    /// are batch-invariant: each row comes out bitwise as it would alone.
    pub fn forward(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        if self.rows(x)? <= SMALL_BATCH {
            return self.forward_each(x);
        }
        self.forward_long(x)
    }

    /// As [`Self::forward`], with every row bitwise what it would be alone at any number of rows:
    /// the decode rows of a batch, the weights read once for all of them.
    pub fn forward_each(
        &self,
        x: &candle_core::Tensor,
    ) -> candle_core::Result<candle_core::Tensor> {
        use candle_core::quantized::k_quants::{BlockQ4K, BlockQ6K};
        use candle_core::quantized::{GgmlDType, QMatMul};
        use candle_core::{Module, Tensor};
        let rows = self.rows(x)?;
        match self {
            Self::Candle(m @ (QMatMul::Tensor(w) | QMatMul::TensorF16(w))) => {
                if rows <= 1 {
                    return m.forward(x);
                }
                // Float products (gemm) pick their blocking by shape: one row at a time instead.
                let k = w.dim(1)?;
                let flat = x.reshape((rows, k))?;
                let outs = (0..rows)
                    .map(|i| m.forward(&flat.narrow(0, i, 1)?))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let mut shape = x.dims().to_vec();
                *shape.last_mut().expect("a matrix input") = w.dim(0)?;
                Tensor::cat(&outs, 0)?.reshape(shape)
            }
            Self::Candle(m) if rows > SMALL_BATCH => {
                // candle's products are batch-invariant up to SMALL_BATCH rows: in groups of it.
                let mut shape = x.dims().to_vec();
                let k = *shape.last().expect("a matrix input");
                let flat = x.reshape((rows, k))?;
                let outs = (0..rows)
                    .step_by(SMALL_BATCH)
                    .map(|i| m.forward(&flat.narrow(0, i, SMALL_BATCH.min(rows - i))?))
                    .collect::<candle_core::Result<Vec<_>>>()?;
                let out = Tensor::cat(&outs, 0)?;
                *shape.last_mut().expect("a matrix input") = out.dim(1)?;
                out.reshape(shape)
            }
            Self::Candle(m) => m.forward(x),
            Self::Compact { t, n, k, .. } => {
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let data = t.data()?;
                let out = match t.dtype() {
                    GgmlDType::Q4K => q4k::matmul_q4k(blocks_of::<BlockQ4K>(&data), *n, *k, &xs, m),
                    GgmlDType::Q6K => q6k::matmul_q6k(blocks_of::<BlockQ6K>(&data), *n, *k, &xs, m),
                    other => candle_core::bail!("no compact product for {other:?}"),
                };
                Tensor::from_vec(out, shape, x.device())
            }
            Self::Blocks { t, n, k, .. } => {
                use int8::{matmul, Format};
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let data = t.data()?;
                let out = match t.dtype() {
                    GgmlDType::Q5_1 => q5_1::matmul_q5_1(&data, *n, *k, &xs, m),
                    GgmlDType::Q4_0 => matmul(Format::Q4_0, &data, *n, *k, &xs, m),
                    GgmlDType::Q5_0 => matmul(Format::Q5_0, &data, *n, *k, &xs, m),
                    GgmlDType::Q8_0 => matmul(Format::Q8_0, &data, *n, *k, &xs, m),
                    other => candle_core::bail!("no block product for {other:?}"),
                };
                Tensor::from_vec(out, shape, x.device())
            }
        }
    }

    /// Products of more than [`SMALL_BATCH`] rows (prefill), in candle's order.
    fn forward_long(&self, x: &candle_core::Tensor) -> candle_core::Result<candle_core::Tensor> {
        use candle_core::quantized::GgmlDType;
        use candle_core::{Module, Tensor};
        match self {
            Self::Candle(m) => m.forward(x),
            Self::Compact { mm, t, n, k } => {
                use ktiles::{applies, matmul, KFormat};
                if !applies(*n, *k) {
                    return mm.forward(x);
                }
                // candle's tiled arithmetic, without the tiles kept.
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let format = match t.dtype() {
                    GgmlDType::Q4K => KFormat::Q4K,
                    _ => KFormat::Q6K,
                };
                let out = matmul(format, &t.data()?, *n, *k, &xs, m);
                Tensor::from_vec(out, shape, x.device())
            }
            // Q4_0 and Q8_0: our products sum each row in the order of candle's one-row product,
            // which candle's long product also uses, so prefill through them keeps the reference's
            // bits and reads each weight tile once for all the rows. Q5_0 sums in lanes: only for
            // weights labtui requantised itself.
            Self::Blocks { t, .. } if matches!(t.dtype(), GgmlDType::Q4_0 | GgmlDType::Q8_0) => {
                self.forward_each(x)
            }
            Self::Blocks {
                candle_order: false,
                t,
                ..
            } if t.dtype() == GgmlDType::Q5_0 => self.forward_each(x),
            Self::Blocks { t, n, k, .. } => {
                let (xs, m, shape) = flat_rows(x, *k, *n)?;
                let data = t.data()?;
                let out = match t.dtype() {
                    GgmlDType::Q5_0 => q5_0::matmul_q5_0(&data, *n, *k, &xs, m),
                    _ => q5_1::matmul_q5_1(&data, *n, *k, &xs, m),
                };
                Tensor::from_vec(out, shape, x.device())
            }
        }
    }

    /// Whether each row of a long product comes out the same whatever other rows share it, so
    /// that the long spans of different sequences may be multiplied together: our kernels and
    /// candle's quantized CPU products compute each activation row on its own (checked below);
    /// float products (gemm) pick their blocking by shape, and other devices are not checked.
    pub fn rows_independent(&self) -> bool {
        use candle_core::quantized::QMatMul;
        match self {
            Self::Blocks { .. } | Self::Compact { .. } => true,
            Self::Candle(QMatMul::QTensor(t)) => t.device().is_cpu(),
            Self::Candle(QMatMul::Tensor(_) | QMatMul::TensorF16(_)) => false,
        }
    }

    /// Bytes held for the weights.
    /// The weights' element count: rows × columns.
    pub fn elems(&self) -> u64 {
        use candle_core::quantized::QMatMul;
        match self {
            Self::Blocks { t, .. }
            | Self::Compact { t, .. }
            | Self::Candle(QMatMul::QTensor(t)) => t.shape().elem_count() as u64,
            Self::Candle(QMatMul::Tensor(t)) | Self::Candle(QMatMul::TensorF16(t)) => {
                t.elem_count() as u64
            }
        }
    }

    pub fn bytes(&self) -> u64 {
        use candle_core::quantized::QMatMul;
        match self {
            Self::Blocks { t, .. }
            | Self::Compact { t, .. }
            | Self::Candle(QMatMul::QTensor(t)) => t.storage_size_in_bytes() as u64,
            Self::Candle(QMatMul::Tensor(t)) | Self::Candle(QMatMul::TensorF16(t)) => {
                (t.elem_count() * t.dtype().size_in_bytes()) as u64
            }
        }
    }

    /// Whether these are the very weights of `other` (a head tied to the embeddings).
    pub fn shares(&self, other: &std::sync::Arc<candle_core::quantized::QTensor>) -> bool {
        match self {
            Self::Blocks { t, .. }
            | Self::Compact { t, .. }
            | Self::Candle(candle_core::quantized::QMatMul::QTensor(t)) => {
                std::sync::Arc::ptr_eq(t, other)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{candle_forward, random};
    use super::*;
    use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
    use candle_core::{Device, Tensor};

    fn qweight(dtype: GgmlDType, n: usize, k: usize, seed: u64) -> QWeight {
        let w = Tensor::from_vec(random(n * k, seed), (n, k), &Device::Cpu).unwrap();
        QWeight::new(std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap())).unwrap()
    }

    fn rows_of(w: &QWeight, x: &[f32], m: usize, k: usize) -> Vec<f32> {
        let xt = Tensor::from_vec(x.to_vec(), (1, m, k), &Device::Cpu).unwrap();
        w.forward(&xt)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    }

    /// Q5_0 weights labtui requantised prefill through the products decode uses: every row of a
    /// long batch is bitwise that row alone. Weights from a file keep candle's order, which sums
    /// block by block and so differs in the last bits. (Q4_0 and Q8_0 prefill through our products
    /// either way, bitwise candle's: the test below.)
    #[test]
    fn requantised_weights_prefill_as_their_decode_rows() {
        let (n, k) = (40, 512);
        let m = 3 * SMALL_BATCH + 2;
        for dtype in [GgmlDType::Q5_0] {
            let w = Tensor::from_vec(random(n * k, 5), (n, k), &Device::Cpu).unwrap();
            let t = std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap());
            let ours = QWeight::requantised(t.clone()).unwrap();
            assert!(matches!(ours, QWeight::Blocks { .. }), "{dtype:?}");
            let x = random(m * k, 6);
            let batch = rows_of(&ours, &x, m, k);
            for i in [0, SMALL_BATCH, m - 1] {
                let alone = rows_of(&ours, &x[i * k..(i + 1) * k], 1, k);
                assert_eq!(
                    &batch[i * n..(i + 1) * n],
                    alone.as_slice(),
                    "{dtype:?} row {i}"
                );
            }
            // The file's weights take candle's order at this length, which differs in the last bits.
            let file = rows_of(&QWeight::new(t).unwrap(), &x, m, k);
            assert_ne!(
                batch, file,
                "{dtype:?}: the two orders should differ somewhere"
            );
            let worst = batch
                .iter()
                .zip(&file)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-2, "{dtype:?}: max difference {worst}");
        }
    }

    /// Every product that says its rows are independent gives each row of a long batch the bits
    /// it gets in any other long batch: two prompt chunks multiplied together are each what they
    /// are multiplied alone. Shapes where candle tiles K-quants and Q8_0 (rows a multiple of 16)
    /// and where it does not; every type a GGUF or a requantisation brings.
    #[test]
    fn long_products_of_independent_rows_can_share_a_batch() {
        let k = 512;
        let (a, b) = (SMALL_BATCH + 8, SMALL_BATCH + 3);
        let x = random((a + b) * k, 8);
        for n in [48, 40] {
            for dtype in [
                GgmlDType::Q4_0,
                GgmlDType::Q5_0,
                GgmlDType::Q5_1,
                GgmlDType::Q8_0,
                GgmlDType::Q2K,
                GgmlDType::Q3K,
                GgmlDType::Q4K,
                GgmlDType::Q5K,
                GgmlDType::Q6K,
                GgmlDType::F16,
            ] {
                let w = qweight(dtype, n, k, 9);
                if !w.rows_independent() {
                    assert_eq!(dtype, GgmlDType::F16, "{dtype:?} should be independent");
                    continue;
                }
                let both = rows_of(&w, &x, a + b, k);
                let first = rows_of(&w, &x[..a * k], a, k);
                let second = rows_of(&w, &x[a * k..], b, k);
                assert_eq!(&both[..a * n], first.as_slice(), "{dtype:?} n {n}: first");
                assert_eq!(&both[a * n..], second.as_slice(), "{dtype:?} n {n}: second");
            }
        }
    }

    #[test]
    fn compact_products_match_candles_one_row_product() {
        let (n, k) = (64, 512);
        for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
            let ours = qweight(dtype, n, k, 3);
            assert!(matches!(ours, QWeight::Compact { .. }), "{dtype:?}");
            let QWeight::Compact { t, .. } = &ours else {
                unreachable!()
            };
            let theirs = QMatMul::from_arc(t.clone()).unwrap();
            let x = random(k, 4);
            let xt = Tensor::from_vec(x.clone(), (1, k), &Device::Cpu).unwrap();
            let a = rows_of(&ours, &x, 1, k);
            let b = candle_forward(&theirs, &xt);
            let worst = a
                .iter()
                .zip(&b)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-3, "{dtype:?}: max difference {worst}");
        }
    }

    /// The reference engine multiplies with candle's products: ours give the same bits at prefill
    /// (a long batch), and at decode (one row) for every type but Q5_0.
    #[test]
    fn products_are_bitwise_candles_at_decode_and_prefill() {
        // K-quant decode reads the compact blocks, which candle does only where it does not
        // repack (a number of rows that is not a multiple of 16): compared there.
        for (n, k) in [(40, 512), (48, 256), (24, 128)] {
            for dtype in [
                GgmlDType::Q4_0,
                GgmlDType::Q5_0,
                GgmlDType::Q5_1,
                GgmlDType::Q8_0,
                GgmlDType::Q4K,
                GgmlDType::Q6K,
            ] {
                let kquant = matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K);
                if kquant && (n % 16 == 0 || k % 256 != 0) {
                    continue;
                }
                // Q5_0 decode sums in lanes: compared at prefill only.
                let lengths: &[usize] = if dtype == GgmlDType::Q5_0 {
                    &[SMALL_BATCH + 3]
                } else {
                    &[1, SMALL_BATCH + 3]
                };
                let w = Tensor::from_vec(random(n * k, 21), (n, k), &Device::Cpu).unwrap();
                let t = std::sync::Arc::new(QTensor::quantize(&w, dtype).unwrap());
                let ours = QWeight::new(t.clone()).unwrap();
                let theirs = QMatMul::from_arc(t).unwrap();
                for &m in lengths {
                    let x = random(m * k, 22);
                    let xt = Tensor::from_vec(x.clone(), (1, m, k), &Device::Cpu).unwrap();
                    let a: Vec<u32> = rows_of(&ours, &x, m, k)
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    let b: Vec<u32> = candle_forward(&theirs, &xt)
                        .iter()
                        .map(|v| v.to_bits())
                        .collect();
                    assert_eq!(a, b, "{dtype:?} {n}x{k} m={m}");
                }
            }
        }
    }

    #[test]
    fn every_weight_type_is_batch_invariant_up_to_small_batch() {
        let (n, k) = (64, 512);
        for dtype in [
            GgmlDType::F32,
            GgmlDType::F16,
            GgmlDType::Q4_0,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q6K,
        ] {
            let w = qweight(dtype, n, k, 7);
            for m in [2, 5, 9, SMALL_BATCH] {
                let x = random(m * k, 10 + m as u64);
                let batch = rows_of(&w, &x, m, k);
                for i in 0..m {
                    let alone = rows_of(&w, &x[i * k..(i + 1) * k], 1, k);
                    assert_eq!(
                        &batch[i * n..(i + 1) * n],
                        alone.as_slice(),
                        "{dtype:?} m={m} row {i}"
                    );
                }
            }
        }
    }

    #[test]
    fn forward_each_is_batch_invariant_at_any_batch_size() {
        let (n, k) = (48, 512);
        for dtype in [
            GgmlDType::F32,
            GgmlDType::Q4_0,
            GgmlDType::Q5_0,
            GgmlDType::Q5_1,
            GgmlDType::Q8_0,
            GgmlDType::Q4K,
            GgmlDType::Q5K,
            GgmlDType::Q6K,
        ] {
            let w = qweight(dtype, n, k, 9);
            let m = 2 * SMALL_BATCH + 5;
            let x = random(m * k, 31);
            let xt = Tensor::from_vec(x.clone(), (1, m, k), &Device::Cpu).unwrap();
            let batch: Vec<f32> = w
                .forward_each(&xt)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            for i in 0..m {
                let alone = rows_of(&w, &x[i * k..(i + 1) * k], 1, k);
                assert_eq!(
                    &batch[i * n..(i + 1) * n],
                    alone.as_slice(),
                    "{dtype:?} row {i}"
                );
            }
        }
    }
}
