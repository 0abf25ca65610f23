//! Writing a mixed-precision variant as a GGUF file that llama.cpp loads: the source file's
//! metadata and tensors, with each matrix the [`MixSpec`] names requantised exactly as
//! [`super::quant::requantize_parts`] does in memory (dequantized from the file's blocks, then
//! quantized to the type at its row length), so both hold the same bytes.

use super::quant::{ggml, quantize, Fallbacks};
use crate::protocol::sensitivity::{MixSpec, Part};
use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::QTensor;
use candle_core::Device;
use std::io::BufWriter;
use std::path::Path;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub tensors: usize,
    pub requantised: usize,
    pub bytes: u64,
}

/// Write `source` with the matrices of `spec` requantised to `out` (never over `source`).
/// `progress` hears (tensors done, tensors).
pub fn export(
    source: &Path,
    spec: &MixSpec,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Exported> {
    if out.exists() && same_file(source, out) {
        bail!(
            "{} is the model itself: write the variant elsewhere",
            out.display()
        );
    }
    let parts = spec.parts().map_err(anyhow::Error::msg)?;
    let mut file =
        std::fs::File::open(source).with_context(|| format!("cannot open {}", source.display()))?;
    let content = gguf_file::Content::read(&mut file)
        .with_context(|| format!("{} is not a readable GGUF file", source.display()))?;
    let mut names: Vec<(&String, u64)> = content
        .tensor_infos
        .iter()
        .map(|(n, i)| (n, i.offset))
        .collect();
    names.sort_by_key(|(_, o)| *o);
    for name in spec.types.keys() {
        if !content.tensor_infos.contains_key(name) {
            bail!("{} has no tensor {name}", source.display());
        }
    }
    let mut tensors: Vec<(String, QTensor)> = Vec::with_capacity(names.len());
    let mut requantised = 0;
    for (i, (name, _)) in names.iter().enumerate() {
        let t = content.tensor(&mut file, name, &Device::Cpu)?;
        let want = Part::from_gguf_name(name)
            .and_then(|p| parts.get(&p))
            .and_then(|q| ggml(*q));
        let t = match want {
            Some(want) => {
                requantised += 1;
                let values = t.dequantize(&Device::Cpu)?;
                // As in memory: the same quantizer, fallbacks and all.
                let q = quantize(&values, want, &mut Fallbacks::default())?;
                std::sync::Arc::try_unwrap(q).map_err(|_| anyhow::anyhow!("{name} is shared"))?
            }
            None => t,
        };
        tensors.push(((*name).clone(), t));
        progress(i + 1, names.len());
    }
    let mut metadata: Vec<(String, Value)> = content
        .metadata
        .iter()
        // candle writes 32-byte alignment; llama.cpp guesses the file type from the tensors.
        .filter(|(k, _)| !matches!(k.as_str(), "general.alignment" | "general.file_type"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    metadata.push(("labtui.mix".into(), Value::String(spec.label.clone())));
    metadata.sort_by(|a, b| a.0.cmp(&b.0));
    let tmp = out.with_extension("gguf.partial");
    {
        let f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = BufWriter::new(f);
        let md: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let ts: Vec<(&str, &QTensor)> = tensors.iter().map(|(k, t)| (k.as_str(), t)).collect();
        gguf_file::write(&mut w, &md, &ts)?;
        std::io::Write::flush(&mut w)?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Exported {
        tensors: tensors.len(),
        requantised,
        bytes: std::fs::metadata(out)?.len(),
    })
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
