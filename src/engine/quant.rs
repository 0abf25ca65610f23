//! Weight formats the user switches among, and requantising a loaded model into one of them.
//!
//! A variant is made from the loaded weights (dequantize, then quantize every matrix), so
//! switching back gives the file's weights bit for bit. Every matrix takes the asked type, as
//! llama.cpp's `llama-quantize --pure` does; norms and biases stay f32. K-quants pack 256 values
//! per super-block, so a matrix whose rows are not a multiple of 256 long takes the 32-value
//! block type llama.cpp falls back to.

use super::kernels::QWeight;
use super::loader::type_name;
use super::model::Model;
use crate::protocol::sensitivity::{Part, TensorKind};
use crate::protocol::{Fallback, KvDtype, Quant, WeightTypeStat};
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Result, Tensor};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The GGML type every matrix is asked to take for `q` (`None`: the loaded weights).
pub fn ggml(q: Quant) -> Option<GgmlDType> {
    Some(match q {
        Quant::AsLoaded => return None,
        Quant::F32 => GgmlDType::F32,
        Quant::F16 => GgmlDType::F16,
        Quant::BF16 => GgmlDType::BF16,
        Quant::Q8_0 => GgmlDType::Q8_0,
        Quant::Q6K => GgmlDType::Q6K,
        Quant::Q5K => GgmlDType::Q5K,
        Quant::Q4K => GgmlDType::Q4K,
        Quant::Q4_0 => GgmlDType::Q4_0,
        Quant::Q3K => GgmlDType::Q3K,
        Quant::Q2K => GgmlDType::Q2K,
    })
}

/// The candle dtype of a KV cache dtype.
pub fn kv_dtype(d: KvDtype) -> DType {
    match d {
        KvDtype::F32 => DType::F32,
        KvDtype::F16 => DType::F16,
        KvDtype::BF16 => DType::BF16,
    }
}

/// The KV cache dtype of a candle dtype (f32 for any other).
pub fn kv_dtype_of(d: DType) -> KvDtype {
    match d {
        DType::F16 => KvDtype::F16,
        DType::BF16 => KvDtype::BF16,
        _ => KvDtype::F32,
    }
}

/// Bytes the weights of `loaded` take once requantised to `quant`, computed from the shapes
/// (each matrix in the type it would take, fallbacks included): what admission checks before a
/// switch. Norms and biases stay f32 and are small; they are counted.
pub fn variant_bytes(loaded: &Model, quant: Quant) -> u64 {
    let Some(want) = ggml(quant) else {
        return 0; // the loaded weights run: nothing new
    };
    let c = &loaded.cfg;
    let bytes = |rows: usize, k: usize| -> u64 {
        let t = type_for(want, k);
        (rows as u64) * (k / t.block_size()) as u64 * t.type_size() as u64
    };
    let (q, kv) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let per_layer = bytes(q, c.hidden)
        + 2 * bytes(kv, c.hidden)
        + bytes(c.hidden, q)
        + 2 * bytes(c.ffn, c.hidden)
        + bytes(c.hidden, c.ffn)
        + 4 * (2 * c.hidden + q + 2 * kv) as u64;
    let embed = bytes(c.vocab, c.hidden);
    // A tied head shares the embedding's blocks, except in a float type: the product then runs
    // on a dense copy of its own.
    let float = matches!(want, GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
    let head = if loaded.head.shares(&loaded.embed) && !float {
        0
    } else {
        embed
    };
    embed + head + c.layers as u64 * per_layer + 4 * c.hidden as u64
}

/// The type a matrix with rows of `k` values takes when `want` is asked. K-quants need rows that
/// are whole 256-value super-blocks; other rows fall back as llama.cpp's quantizer does
/// (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; Q2_K and Q3_K → a 4-bit 32-value block type, Q4_0
/// here since candle has no IQ4_NL).
pub fn type_for(want: GgmlDType, k: usize) -> GgmlDType {
    if k.is_multiple_of(want.block_size()) {
        return want;
    }
    match want {
        GgmlDType::Q4K => GgmlDType::Q5_0,
        GgmlDType::Q5K => GgmlDType::Q5_1,
        GgmlDType::Q6K => GgmlDType::Q8_0,
        _ => GgmlDType::Q4_0,
    }
}

/// The float values of a matrix, whatever it is held as.
pub(crate) fn dequantize(w: &QWeight) -> Result<Tensor> {
    match w {
        QWeight::Blocks { t, .. }
        | QWeight::Compact { t, .. }
        | QWeight::Candle(QMatMul::QTensor(t)) => t.dequantize(&t.device()),
        QWeight::Candle(QMatMul::Tensor(t)) | QWeight::Candle(QMatMul::TensorF16(t)) => {
            t.to_dtype(DType::F32)
        }
    }
}

/// A matrix as a variant holds it. F32 stays a QTensor (shared with tied embeddings; candle's f32
/// dot products are vectorised). F16 becomes a dense f16 tensor multiplied by gemm, because
/// candle's quantized f16 dot product converts value by value (a 128-token prefill of the 0.5B
/// took minutes). Quantized types take our fast products.
pub(crate) fn weight_of(t: Arc<QTensor>) -> Result<QWeight> {
    weight_in(t, Order::Ours)
}

/// The order a requantised matrix's long products sum in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Our products at every length (a prefill's rows bitwise its decode rows): uniform variants.
    Ours,
    /// As a matrix loaded from a file runs: a variant that changes a few matrices and is compared
    /// with the loaded weights, or written to a file and loaded again, runs the kernels they do.
    /// (Swapping the order alone moves a Q5_0 matrix's prefill logits by a KL of about 6×10⁻⁴
    /// nats on the 0.5B, as much as squeezing it.)
    AsLoaded,
}

fn weight_in(t: Arc<QTensor>, order: Order) -> Result<QWeight> {
    match t.dtype() {
        GgmlDType::F32 | GgmlDType::BF16 => Ok(QWeight::Candle(QMatMul::QTensor(t))),
        GgmlDType::F16 => Ok(QWeight::Candle(QMatMul::TensorF16(
            t.dequantize_f16(&t.device())?,
        ))),
        _ if order == Order::AsLoaded => QWeight::new(t),
        _ => QWeight::requantised(t),
    }
}

/// Counts the fallbacks of one requantisation.
#[derive(Default)]
pub(crate) struct Fallbacks(BTreeMap<(String, String, usize), usize>);

impl Fallbacks {
    fn note(&mut self, want: GgmlDType, used: GgmlDType, k: usize) {
        if want != used {
            *self
                .0
                .entry((type_name(want), type_name(used), k))
                .or_default() += 1;
        }
    }

    pub(crate) fn list(self) -> Vec<Fallback> {
        self.0
            .into_iter()
            .map(|((wanted, used, k), tensors)| Fallback {
                why: format!("rows of {k} values are not a multiple of 256"),
                wanted,
                used,
                tensors,
            })
            .collect()
    }
}

/// Quantize one matrix's values to the type `want` calls for at its row length.
pub(crate) fn quantize(
    values: &Tensor,
    want: GgmlDType,
    fallbacks: &mut Fallbacks,
) -> Result<Arc<QTensor>> {
    let (_, k) = values.dims2()?;
    let used = type_for(want, k);
    fallbacks.note(want, used, k);
    Ok(Arc::new(QTensor::quantize(values, used)?))
}

/// Check that the model's device can make and multiply `quant` weights, on a tiny matrix, so a
/// type the backend cannot do is refused before any work with a message that says so.
pub fn check_backend(quant: Quant, device: &Device) -> std::result::Result<(), String> {
    let Some(dtype) = ggml(quant) else {
        return Ok(());
    };
    if dtype == GgmlDType::BF16 && device.is_cpu() {
        return Err(format!(
            "{quant} is not available on cpu: candle's CPU backend has no BF16 matrix multiply \
             (its tensor matmul rejects BF16 and its BF16 dot product converts value by value); \
             F16 is the two-byte type it runs"
        ));
    }
    let probe = || -> Result<()> {
        let w = Tensor::ones((4, 256), DType::F32, device)?;
        let q = Arc::new(QTensor::quantize(&w, dtype)?);
        let x = Tensor::ones((1, 256), DType::F32, device)?;
        let y = weight_of(q)?.forward(&x)?;
        y.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Ok(())
    };
    probe().map_err(|e| {
        format!(
            "{quant} is not available on {}: {}",
            super::device_name(device),
            super::error::first_line(&e)
        )
    })
}

/// Make a copy of `loaded` whose every matrix is `quant`. `progress` hears (done, total)
/// matrices. Returns the variant and the matrices that fell back to another type.
pub fn requantize(
    loaded: &Model,
    quant: Quant,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Model, Vec<Fallback>)> {
    let Some(want) = ggml(quant) else {
        return Ok((loaded.clone(), Vec::new()));
    };
    requantize_parts(loaded, &|_| Some(want), Order::Ours, progress)
}

/// Make a copy of `loaded` in which each matrix `choose` names a type for takes it (at its row
/// length, see [`type_for`]) and the others stay as loaded, shared with `loaded`. A head tied
/// to the embeddings follows them. The new matrices' products sum in `order`. `progress` hears
/// (done, total) matrices requantised.
pub fn requantize_parts(
    loaded: &Model,
    choose: &dyn Fn(Part) -> Option<GgmlDType>,
    order: Order,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Model, Vec<Fallback>)> {
    let tied = loaded.head.shares(&loaded.embed);
    let parts = parts(loaded);
    let total = parts.iter().filter(|p| choose(**p).is_some()).count();
    let mut done = 0;
    let mut fallbacks = Fallbacks::default();
    let mut redo =
        |w: &QWeight, part: Part, fallbacks: &mut Fallbacks| -> Result<Option<Arc<QTensor>>> {
            let Some(want) = choose(part) else {
                return Ok(None);
            };
            super::interrupt::check()?;
            let t = quantize(&dequantize(w)?, want, fallbacks)?;
            done += 1;
            progress(done, total);
            Ok(Some(t))
        };
    let embed_w = QWeight::Candle(QMatMul::QTensor(loaded.embed.clone()));
    let embed = redo(&embed_w, Part::embed(), &mut fallbacks)?;
    let head = match (tied, &embed) {
        (true, Some(e)) => weight_in(e.clone(), order)?,
        (true, None) => loaded.head.clone(),
        (false, _) => match redo(&loaded.head, Part::head(), &mut fallbacks)? {
            Some(t) => weight_in(t, order)?,
            None => loaded.head.clone(),
        },
    };
    let mut layers = Vec::with_capacity(loaded.layers.len());
    for (i, l) in loaded.layers.iter().enumerate() {
        let mut nl = l.clone();
        for kind in TensorKind::LAYER {
            let x = nl.linear_mut(kind);
            if let Some(t) = redo(&x.weight, Part::layer(i, kind), &mut fallbacks)? {
                x.weight = weight_in(t, order)?;
            }
        }
        layers.push(nl);
    }
    let embed = embed.unwrap_or_else(|| loaded.embed.clone());
    Ok((loaded.with_weights(embed, layers, head), fallbacks.list()))
}

/// A copy of `loaded` whose every matrix holds its values in f32 and multiplies them densely:
/// the reference a sensitivity sweep measures weight error against. In f32 every product runs
/// the same arithmetic whatever type the values came from, so a cell measures its matrix's
/// rounding alone. (In the engine's own kernels the activations are rounded as well, differently
/// by type: a Q5_0 matrix requantised to Q8_0 moves the 0.5B's logits by a KL of 6×10⁻⁴ nats,
/// as much as squeezing it to Q4_0, though its values move less than a tenth as far.)
pub fn dense_reference(loaded: &Model) -> Result<Model> {
    dense_with(loaded, None, loaded.head.shares(&loaded.embed))
}

/// `reference` (from [`dense_reference`]) with the matrix of `part` rounded to `want` (at its
/// row length) from `loaded`'s values.
pub fn dense_squeezed(
    reference: &Model,
    loaded: &Model,
    part: Part,
    want: GgmlDType,
) -> Result<Model> {
    super::interrupt::check()?;
    let values = part_values(loaded, part)?;
    let (_, k) = values.dims2()?;
    let rounded = QTensor::quantize(&values, type_for(want, k))?.dequantize(values.device())?;
    dense_with(
        reference,
        Some((part, rounded)),
        loaded.head.shares(&loaded.embed),
    )
}

/// A matrix's values, in f32.
fn part_values(model: &Model, part: Part) -> Result<Tensor> {
    match (part.layer, part.kind) {
        (None, TensorKind::Embed) => model.embed.dequantize(&model.embed.device()),
        (None, _) => dequantize(&model.head),
        (Some(l), kind) => dequantize(&model.layers[l].linear(kind).weight),
    }
}

/// `model` with every quantized matrix made dense f32 (matrices dense already are kept), and
/// `swap`'s part, if any, holding its values; with `tied`, the embeddings' values are the
/// head's too.
fn dense_with(model: &Model, swap: Option<(Part, Tensor)>, tied: bool) -> Result<Model> {
    let dense = |w: &QWeight| -> Result<QWeight> {
        Ok(match w {
            QWeight::Candle(QMatMul::Tensor(_)) => w.clone(),
            _ => QWeight::Candle(QMatMul::Tensor(dequantize(w)?)),
        })
    };
    let mut embed = match model.embed.dtype() {
        GgmlDType::F32 => model.embed.clone(),
        _ => Arc::new(QTensor::quantize(
            &part_values(model, Part::embed())?,
            GgmlDType::F32,
        )?),
    };
    let mut head = match (tied, &model.head) {
        (_, QWeight::Candle(QMatMul::Tensor(_))) => model.head.clone(),
        (true, _) => QWeight::Candle(QMatMul::Tensor(embed.dequantize(&embed.device())?)),
        (false, h) => dense(h)?,
    };
    let mut layers = Vec::with_capacity(model.layers.len());
    for l in &model.layers {
        let mut nl = l.clone();
        for kind in TensorKind::LAYER {
            let x = nl.linear_mut(kind);
            x.weight = dense(&x.weight)?;
        }
        layers.push(nl);
    }
    if let Some((part, values)) = swap {
        let w = QWeight::Candle(QMatMul::Tensor(values.clone()));
        match (part.layer, part.kind) {
            (None, TensorKind::Embed) => {
                embed = Arc::new(QTensor::quantize(&values, GgmlDType::F32)?);
                if tied {
                    head = w;
                }
            }
            (None, _) => head = w,
            (Some(l), kind) => layers[l].linear_mut(kind).weight = w,
        }
    }
    Ok(model.with_weights(embed, layers, head))
}

/// Every weight matrix of `model`: the embeddings, the head unless tied to them, and each
/// layer's seven.
pub fn parts(model: &Model) -> Vec<Part> {
    let mut out = vec![Part::embed()];
    if !model.head.shares(&model.embed) {
        out.push(Part::head());
    }
    for l in 0..model.layers.len() {
        out.extend(TensorKind::LAYER.iter().map(|&k| Part::layer(l, k)));
    }
    out
}

/// Weights of `model`: every matrix's elements (a tied head once).
pub fn parameters(model: &Model) -> u64 {
    let c = &model.cfg;
    let (q, kv) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
    let per_layer = 2 * q * c.hidden + 2 * kv * c.hidden + 3 * c.ffn * c.hidden;
    let head = if model.head.shares(&model.embed) {
        0
    } else {
        c.vocab * c.hidden
    };
    (c.vocab * c.hidden + head + c.layers * per_layer) as u64
}

/// The GGML type a matrix is held in (a dense float tensor as F32, F16 or BF16) and its bytes.
fn weight_type(w: &QWeight) -> (GgmlDType, u64) {
    let ty = match w {
        QWeight::Blocks { t, .. }
        | QWeight::Compact { t, .. }
        | QWeight::Candle(QMatMul::QTensor(t)) => t.dtype(),
        QWeight::Candle(QMatMul::TensorF16(_)) => GgmlDType::F16,
        QWeight::Candle(QMatMul::Tensor(t)) => match t.dtype() {
            DType::F16 => GgmlDType::F16,
            DType::BF16 => GgmlDType::BF16,
            _ => GgmlDType::F32,
        },
    };
    (ty, w.bytes())
}

/// A matrix's GGML type and bytes in `model`.
pub fn part_type(model: &Model, part: Part) -> (GgmlDType, u64) {
    let of = |t: &QTensor| (t.dtype(), t.storage_size_in_bytes() as u64);
    match (part.layer, part.kind) {
        (None, TensorKind::Embed) => of(&model.embed),
        (None, _) => weight_type(&model.head),
        (Some(l), kind) => weight_type(&model.layers[l].linear(kind).weight),
    }
}

/// Bytes a matrix of `part` takes at `want` (its fallback where the rows do not fit).
pub fn part_bytes_at(model: &Model, part: Part, want: GgmlDType) -> (GgmlDType, u64) {
    let (rows, k) = match (part.layer, part.kind) {
        (None, _) => (model.cfg.vocab, model.cfg.hidden),
        (Some(_), kind) => {
            let c = &model.cfg;
            let (q, kv) = (c.heads * c.head_dim, c.kv_heads * c.head_dim);
            match kind {
                TensorKind::Q => (q, c.hidden),
                TensorKind::K | TensorKind::V => (kv, c.hidden),
                TensorKind::O => (c.hidden, q),
                TensorKind::Gate | TensorKind::Up => (c.ffn, c.hidden),
                _ => (c.hidden, c.ffn),
            }
        }
    };
    let t = type_for(want, k);
    (
        t,
        (rows as u64) * (k / t.block_size()) as u64 * t.type_size() as u64,
    )
}

/// Bytes of the weights a model holds, by GGML type (f32 norms and biases as F32; a head tied
/// to the embeddings counted once).
pub fn weight_types(model: &Model) -> BTreeMap<String, WeightTypeStat> {
    let mut out: BTreeMap<String, WeightTypeStat> = BTreeMap::new();
    let mut add = |name: String, bytes: u64| {
        let s = out.entry(name).or_insert(WeightTypeStat {
            tensors: 0,
            bytes: 0,
        });
        s.tensors += 1;
        s.bytes += bytes;
    };
    let dense = |t: &Tensor| (t.elem_count() * t.dtype().size_in_bytes()) as u64;
    let dense_name = |t: &Tensor| format!("{:?}", t.dtype()).to_uppercase();
    let matrix = |w: &QWeight, add: &mut dyn FnMut(String, u64)| match w {
        QWeight::Blocks { t, .. }
        | QWeight::Compact { t, .. }
        | QWeight::Candle(QMatMul::QTensor(t)) => {
            add(type_name(t.dtype()), t.storage_size_in_bytes() as u64)
        }
        QWeight::Candle(QMatMul::Tensor(t)) | QWeight::Candle(QMatMul::TensorF16(t)) => {
            add(dense_name(t), dense(t))
        }
    };
    add(
        type_name(model.embed.dtype()),
        model.embed.storage_size_in_bytes() as u64,
    );
    if !model.head.shares(&model.embed) {
        matrix(&model.head, &mut add);
    }
    add(dense_name(&model.norm), dense(&model.norm));
    for l in &model.layers {
        for t in l.norms() {
            add(dense_name(t), dense(t));
        }
        for x in [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down] {
            matrix(&x.weight, &mut add);
            if let Some(b) = &x.bias {
                add(dense_name(b), dense(b));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_of_a_variant_is_its_weights() {
        let mut e = crate::engine::Engine::synthetic(
            &crate::engine::synthetic::SyntheticSpec::default(),
            &Device::Cpu,
        )
        .unwrap();
        for q in [Quant::Q8_0, Quant::Q4K, Quant::F16] {
            let estimate = variant_bytes(e.loaded_model(), q) as f64;
            let v = e.set_quant(q, &mut |_, _| {}).unwrap();
            let real = v.weight_bytes as f64;
            assert!(
                (estimate - real).abs() / real < 0.05,
                "{q}: estimated {estimate}, took {real}"
            );
        }
        assert_eq!(variant_bytes(e.loaded_model(), Quant::AsLoaded), 0);
    }

    #[test]
    fn k_quants_fall_back_on_short_rows_as_llama_cpp_does() {
        assert_eq!(type_for(GgmlDType::Q4K, 4864), GgmlDType::Q4K);
        assert_eq!(type_for(GgmlDType::Q4K, 896), GgmlDType::Q5_0);
        assert_eq!(type_for(GgmlDType::Q5K, 896), GgmlDType::Q5_1);
        assert_eq!(type_for(GgmlDType::Q6K, 896), GgmlDType::Q8_0);
        assert_eq!(type_for(GgmlDType::Q3K, 896), GgmlDType::Q4_0);
        assert_eq!(type_for(GgmlDType::Q2K, 896), GgmlDType::Q4_0);
        assert_eq!(type_for(GgmlDType::Q8_0, 896), GgmlDType::Q8_0);
        assert_eq!(type_for(GgmlDType::F16, 896), GgmlDType::F16);
    }

    #[test]
    fn every_type_but_bf16_runs_on_the_cpu() {
        use crate::protocol::Setting;
        for q in Quant::ALL.iter().copied().filter(|q| *q != Quant::BF16) {
            assert_eq!(check_backend(q, &Device::Cpu), Ok(()), "{q}");
        }
        let e = check_backend(Quant::BF16, &Device::Cpu).unwrap_err();
        assert!(
            e.contains("BF16 is not available on cpu") && e.contains("F16"),
            "{e}"
        );
    }
}
