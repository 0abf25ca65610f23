//! The inference engine: candle only — no tokio, no terminal.
//!
//! GGUF loading, our own forward pass and KV cache, the tokenizer and chat template, sampling and
//! the token-by-token generation loop that reports what it does as [`crate::protocol::Event`]s.

pub mod act;
pub mod attention;
pub mod chat;
pub mod config;
mod dense;
pub mod error;
pub mod export;
pub mod footprint;
pub mod generate;
pub mod header;
pub mod heads;
pub mod hf;
pub mod interrupt;
pub mod kernels;
pub mod kv_cache;
pub mod loader;
pub mod mix;
pub mod model;
pub mod profile;
pub mod quality;
pub mod quant;
pub mod race;
pub mod sampling;
pub mod sched;
pub mod sensitivity;
pub mod shapes;
pub mod source;
pub mod spec;
pub mod step;
pub mod synthetic;
pub mod tiled;
pub mod tokenizer;

pub use error::{EngineError, Result};
pub use generate::{generate, Generation, Prompt, RunRequest, StepControl};
pub use kv_cache::{BlockTable, BlockUsage, KvCache, KvPool};
pub use model::{Forward, Logits, Model};
pub use step::Seq;
pub use tokenizer::Tokenizer;

use crate::protocol::ModelInfo;
use candle_core::{DType, Device};
use std::io::{BufReader, Cursor};
use std::path::Path;
use std::time::Instant;

/// A loaded model with its tokenizer and KV cache: what the worker owns.
pub struct Engine {
    /// The weights runs use: the loaded ones or a requantised variant of them.
    pub model: Model,
    pub tokenizer: Tokenizer,
    pub cache: KvCache,
    pub info: ModelInfo,
    /// The loaded weights, kept while a variant runs so that switching back is exact.
    pub original: Option<Model>,
    pub quant: crate::protocol::Quant,
    /// The mixed-precision variant running, if one is.
    pub mix: Option<crate::protocol::sensitivity::MixSpec>,
    pub fallbacks: Vec<crate::protocol::Fallback>,
}

/// The device candle runs on: CUDA or Metal when built with them and present, else the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    #[cfg(feature = "metal")]
    if let Ok(d) = Device::new_metal(0) {
        return d;
    }
    Device::Cpu
}

pub(crate) fn device_name(d: &Device) -> String {
    match d {
        Device::Cpu => "cpu".into(),
        Device::Cuda(_) => "cuda".into(),
        Device::Metal(_) => "metal".into(),
    }
}

/// Physical cores of this machine (the default thread count).
pub fn physical_cores() -> usize {
    sysinfo::System::physical_core_count()
        .ok()
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
}

/// Threads candle's CPU kernels use.
pub fn threads() -> usize {
    candle_core::utils::get_num_threads()
}

impl Engine {
    /// Open a model named by `spec` (see [`source::resolve`]); `progress` hears download bytes.
    pub fn open(
        spec: &str,
        device: &Device,
        progress: impl Fn(u64, u64) + Send + Sync + 'static,
    ) -> Result<Self> {
        match source::fetch(&source::resolve(spec)?, progress)? {
            None => Self::synthetic(&synthetic::SyntheticSpec::default(), device),
            Some(path) => Self::from_file(&path, device),
        }
    }

    pub fn from_file(path: &Path, device: &Device) -> Result<Self> {
        let start = Instant::now();
        let shown = path.display().to_string();
        if hf::is_checkpoint(path) {
            let loaded = hf::load_dir(path, device)?;
            let name = path
                .file_name()
                .map_or(shown.clone(), |n| n.to_string_lossy().into_owned());
            return Ok(Self::assemble(loaded, name, shown, device, start));
        }
        let io = |source| EngineError::Io {
            path: shown.clone(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io)?;
        let bytes = file.metadata().map_err(io)?.len();
        let mut reader = BufReader::new(file);
        let content = loader::read_content(&mut reader, &shown)?;
        let loaded = loader::load(&content, &mut reader, &shown, bytes, device)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or(shown.clone());
        Ok(Self::assemble(loaded, name, shown, device, start))
    }

    /// The built-in synthetic model (random weights written as GGUF in memory).
    pub fn synthetic(spec: &synthetic::SyntheticSpec, device: &Device) -> Result<Self> {
        let start = Instant::now();
        let bytes = synthetic::gguf_bytes(spec)?;
        let len = bytes.len() as u64;
        let mut reader = Cursor::new(bytes);
        let content = loader::read_content(&mut reader, "synthetic")?;
        let loaded = loader::load(&content, &mut reader, "synthetic", len, device)?;
        Ok(Self::assemble(
            loaded,
            format!("synthetic-{}", spec.arch),
            "synthetic".into(),
            device,
            start,
        ))
    }

    fn assemble(
        loaded: loader::Loaded,
        name: String,
        source: String,
        device: &Device,
        start: Instant,
    ) -> Self {
        let model = loaded.model;
        let cache = model.new_cache(DType::F32);
        let c = &model.cfg;
        let info = ModelInfo {
            name,
            source,
            arch: c.arch.name().into(),
            parameters: loaded.parameters,
            file_bytes: loaded.file_bytes,
            weight_bytes: model.weight_bytes(),
            weight_types: loaded.weight_types,
            layers: c.layers,
            heads: c.heads,
            kv_heads: c.kv_heads,
            head_dim: c.head_dim,
            hidden: c.hidden,
            vocab: c.vocab,
            context_length: c.context_length,
            kv_dtype: crate::protocol::KvDtype::F32,
            kv_bytes_per_token: cache.bytes_per_token(),
            device: device_name(device),
            threads: threads(),
            load_time: start.elapsed(),
            sliding: model.sliding_layers().map(|(window, sliding)| {
                crate::protocol::SlidingLayers {
                    layers: sliding.iter().filter(|&&s| s).count(),
                    window,
                    kept_beyond: model.window_kept_beyond().unwrap_or(0),
                }
            }),
        };
        Self {
            model,
            tokenizer: loaded.tokenizer,
            cache,
            info,
            original: None,
            quant: crate::protocol::Quant::AsLoaded,
            mix: None,
            fallbacks: Vec::new(),
        }
    }

    /// A second engine on the same weights (shared, not copied) with a cache of its own: the
    /// other side of a race.
    pub fn twin(&self) -> Self {
        Self {
            model: self.model.clone(),
            tokenizer: self.tokenizer.clone(),
            cache: self.model.new_cache(self.cache.dtype()),
            info: self.info.clone(),
            original: self.original.clone(),
            quant: self.quant,
            mix: self.mix.clone(),
            fallbacks: self.fallbacks.clone(),
        }
    }

    /// The weights as loaded from the file (whatever variant runs now).
    pub fn loaded_model(&self) -> &Model {
        self.original.as_ref().unwrap_or(&self.model)
    }

    /// Switch the weights to `q`, requantised from the loaded ones; the variant running before is
    /// freed first. On an error the loaded weights run. `progress` hears (done, total) matrices.
    pub fn set_quant(
        &mut self,
        q: crate::protocol::Quant,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<crate::protocol::Variant> {
        let start = Instant::now();
        if let Some(o) = self.original.take() {
            self.model = o; // drops the old variant
        }
        self.quant = crate::protocol::Quant::AsLoaded;
        self.mix = None;
        self.fallbacks.clear();
        if q != crate::protocol::Quant::AsLoaded {
            quant::check_backend(q, self.model.device()).map_err(EngineError::Setting)?;
            let (variant, fallbacks) = quant::requantize(&self.model, q, progress)?;
            self.original = Some(std::mem::replace(&mut self.model, variant));
            self.quant = q;
            self.fallbacks = fallbacks;
        }
        let v = self.variant(start.elapsed());
        self.info.weight_bytes = v.weight_bytes;
        self.info.weight_types = v.weight_types.clone();
        Ok(v)
    }

    /// Switch the weights to the mixed-precision variant `spec` names, requantised from the
    /// loaded ones (the matrices it does not name stay as loaded). On an error the loaded
    /// weights run. `progress` hears (done, total) matrices.
    pub fn set_mix(
        &mut self,
        spec: &crate::protocol::sensitivity::MixSpec,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<crate::protocol::Variant> {
        let parts = spec.parts().map_err(EngineError::Setting)?;
        let here = quant::parts(self.loaded_model());
        if let Some(p) = parts.keys().find(|p| !here.contains(p)) {
            return Err(EngineError::Setting(format!(
                "the mix names {} but {} has {} layers{}: it was made for another model",
                p.gguf_name(),
                self.info.name,
                self.loaded_model().layers.len(),
                if p.layer.is_none() {
                    " and a head tied to its embeddings"
                } else {
                    ""
                }
            )));
        }
        for q in parts.values() {
            quant::check_backend(*q, self.model.device()).map_err(EngineError::Setting)?;
        }
        self.set_quant(crate::protocol::Quant::AsLoaded, &mut |_, _| {})?;
        let start = Instant::now();
        let choose = |p| parts.get(&p).and_then(|q| quant::ggml(*q));
        let (variant, fallbacks) =
            quant::requantize_parts(&self.model, &choose, quant::Order::AsLoaded, progress)?;
        self.original = Some(std::mem::replace(&mut self.model, variant));
        self.mix = Some(spec.clone());
        self.fallbacks = fallbacks;
        let v = self.variant(start.elapsed());
        self.info.weight_bytes = v.weight_bytes;
        self.info.weight_types = v.weight_types.clone();
        Ok(v)
    }

    /// Switch the KV cache's dtype; the cache starts empty (every run starts with an empty cache).
    pub fn set_kv_dtype(
        &mut self,
        dtype: crate::protocol::KvDtype,
    ) -> Result<crate::protocol::Variant> {
        self.cache = self.model.new_cache(quant::kv_dtype(dtype));
        self.info.kv_dtype = dtype;
        self.info.kv_bytes_per_token = self.cache.bytes_per_token();
        Ok(self.variant(std::time::Duration::ZERO))
    }

    /// What runs now: the weights' type, bytes and fallbacks, and the KV dtype.
    pub fn variant(&self, took: std::time::Duration) -> crate::protocol::Variant {
        crate::protocol::Variant {
            quant: self.quant,
            kv_dtype: quant::kv_dtype_of(self.cache.dtype()),
            weight_bytes: self.model.weight_bytes(),
            weight_types: quant::weight_types(&self.model),
            fallbacks: self.fallbacks.clone(),
            kept_bytes: self.original.as_ref().map_or(0, |m| m.weight_bytes()),
            kv_bytes_per_token: self.cache.bytes_per_token(),
            took,
            mix: self.mix.as_ref().map(|m| m.label.clone()),
        }
    }

    /// The prompt's token ids: templated unless `raw`, checked against the context.
    pub fn prompt_ids(&self, prompt: &str, raw: bool) -> Result<Vec<u32>> {
        if prompt.trim().is_empty() {
            return Err(EngineError::EmptyPrompt);
        }
        let text = if raw {
            prompt.to_string()
        } else {
            chat::apply(&self.tokenizer, prompt)?
        };
        let ids = self.tokenizer.encode_prompt(&text)?;
        if ids.len() > self.model.cfg.context_length {
            return Err(EngineError::PromptTooLong {
                tokens: ids.len(),
                context: self.model.cfg.context_length,
            });
        }
        Ok(ids)
    }
}
