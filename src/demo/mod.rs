//! Teaching demos: presets with a `demo` section that measure one idea of LLM inference on the
//! loaded model — prefill against decode, the KV cache, the roofline, speculation — and narrate it
//! step by step.
//!
//! A demo runs on the worker's [`Engine`] (measured where the work happens, through
//! [`crate::engine::Model::forward`] and the [`crate::engine::KvCache`]) and answers with a
//! [`DemoRun`]: plain serde data that travels as an [`crate::protocol::Event::Demo`], is recorded,
//! drawn by the dashboard's demo pane and written out as a Markdown report.

pub mod headless;
pub mod kv_cache;
pub mod measure;
pub mod prefill_decode;
pub mod quant;
pub mod report;
pub mod roofline;
pub mod speculation;

use crate::engine::Engine;
use anyhow::Result;
use serde::{Deserialize, Serialize};

/// The demos labtui knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoKind {
    PrefillVsDecode,
    KvCache,
    Roofline,
    Quantization,
    Speculation,
}

impl DemoKind {
    pub const ALL: [DemoKind; 5] = [
        DemoKind::PrefillVsDecode,
        DemoKind::KvCache,
        DemoKind::Roofline,
        DemoKind::Quantization,
        DemoKind::Speculation,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DemoKind::PrefillVsDecode => "prefill-vs-decode",
            DemoKind::KvCache => "kv-cache",
            DemoKind::Roofline => "roofline",
            DemoKind::Quantization => "quantization",
            DemoKind::Speculation => "speculation",
        }
    }

    /// Parse a demo name; the error lists the valid ones.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "demo {s:?} is not one of {}",
                    Self::ALL.map(|k| k.name()).join(", ")
                )
            })
    }
}

/// A preset's `demo` section: which demo and its sweep; absent fields take the defaults in code.
/// The narration steps are the preset's `notes`, one per step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoSection {
    /// prefill-vs-decode, kv-cache, roofline, speculation (quantization: not yet).
    pub kind: String,
    /// prefill-vs-decode: the prompt lengths to prefill (default 16, 64, 256, 1024).
    #[serde(default)]
    pub prompt_lengths: Vec<usize>,
    /// prefill-vs-decode: decode steps timed after each prompt length (default 16).
    #[serde(default)]
    pub decode_tokens: Option<usize>,
    /// Tokens generated: prefill-vs-decode's output-length run (default 256), kv-cache's
    /// generation (default 256), roofline's decode measurement (default 64).
    #[serde(default)]
    pub output_tokens: Option<usize>,
    /// kv-cache: recompute without the cache at every context length divisible by this
    /// (default 1: every step), and at the last step.
    #[serde(default)]
    pub no_cache_every: Option<usize>,
    /// roofline: the buffer streamed to measure memory bandwidth, in MiB (default 256).
    #[serde(default)]
    pub buffer_mib: Option<usize>,
    /// roofline: the prompt length of the prefill measurement and of the matmul shape (default 256).
    #[serde(default)]
    pub prefill_tokens: Option<usize>,
    /// speculation: the Ks to run each draft mode at (default 2, 4, 8).
    #[serde(default)]
    pub ks: Vec<usize>,
    /// quantization: the weight types to visit, in order (default as loaded, F16, Q8_0, Q4_K,
    /// Q4_0, Q2_K).
    #[serde(default)]
    pub types: Vec<String>,
    /// quantization: tokens of the reference text each quality measurement runs (default 512).
    #[serde(default)]
    pub quality_tokens: Option<usize>,
}

impl DemoSection {
    pub fn new(kind: DemoKind) -> Self {
        Self {
            kind: kind.name().into(),
            ..Self::default()
        }
    }

    pub fn kind(&self) -> std::result::Result<DemoKind, String> {
        DemoKind::parse(&self.kind)
    }

    /// Check the values a person wrote; errors say which field and what is allowed.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.kind()?;
        if let Some(&bad) = self
            .prompt_lengths
            .iter()
            .find(|&&n| !(1..=32_768).contains(&n))
        {
            return Err(format!(
                "demo prompt_lengths: {bad} is out of range (1 to 32768)"
            ));
        }
        if let Some(&bad) = self.ks.iter().find(|&&k| !(1..=16).contains(&k)) {
            return Err(format!("demo ks: {bad} is out of range (1 to 16)"));
        }
        for t in &self.types {
            crate::engine::quant::Quant::parse(t).map_err(|e| format!("demo types: {e}"))?;
        }
        for (name, v, lo, hi) in [
            ("decode_tokens", self.decode_tokens, 1, 4096),
            ("output_tokens", self.output_tokens, 1, 32_768),
            ("no_cache_every", self.no_cache_every, 1, 4096),
            ("buffer_mib", self.buffer_mib, 16, 16_384),
            ("prefill_tokens", self.prefill_tokens, 1, 32_768),
            ("quality_tokens", self.quality_tokens, 16, 65_536),
        ] {
            if let Some(v) = v.filter(|v| !(lo..=hi).contains(v)) {
                return Err(format!("demo {name} = {v} is out of range ({lo} to {hi})"));
            }
        }
        Ok(())
    }

    pub fn prompt_lengths(&self) -> Vec<usize> {
        if self.prompt_lengths.is_empty() {
            vec![16, 64, 256, 1024]
        } else {
            self.prompt_lengths.clone()
        }
    }

    pub fn output_tokens(&self, kind: DemoKind) -> usize {
        self.output_tokens.unwrap_or(match kind {
            DemoKind::Roofline => 64,
            DemoKind::Speculation => 96,
            DemoKind::Quantization => 32,
            _ => 256,
        })
    }
}

/// What a demo measured, by demo.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DemoResult {
    PrefillVsDecode(prefill_decode::Sweep),
    KvCache(kv_cache::Comparison),
    Roofline(roofline::Roofline),
    Speculation(speculation::SpecSweep),
    Quantization(quant::QuantSweep),
}

/// A finished demo: what ran, on what, and its numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemoRun {
    pub demo: String,
    pub model: String,
    pub threads: usize,
    pub result: DemoResult,
}

/// Run `section`'s demo on `engine`; `prompt` is the text the generation demos start from and
/// `progress` hears a line after each measurement.
pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    prompt: &str,
    progress: &mut dyn FnMut(String),
) -> Result<DemoRun> {
    let kind = section.kind().map_err(anyhow::Error::msg)?;
    let result = match kind {
        DemoKind::PrefillVsDecode => {
            DemoResult::PrefillVsDecode(prefill_decode::run(engine, section, progress)?)
        }
        DemoKind::KvCache => DemoResult::KvCache(kv_cache::run(engine, section, prompt, progress)?),
        DemoKind::Roofline => DemoResult::Roofline(roofline::run(engine, section, progress)?),
        DemoKind::Speculation => {
            DemoResult::Speculation(speculation::run(engine, section, prompt, progress)?)
        }
        DemoKind::Quantization => DemoResult::Quantization(quant::run(engine, section, progress)?),
    };
    Ok(DemoRun {
        demo: kind.name().into(),
        model: engine.info.name.clone(),
        threads: engine.info.threads,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_errors_list_the_demos() {
        for k in DemoKind::ALL {
            assert_eq!(DemoKind::parse(k.name()), Ok(k));
        }
        let e = DemoKind::parse("kvcache").unwrap_err();
        assert!(e.contains("prefill-vs-decode, kv-cache, roofline"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let mut s = DemoSection::new(DemoKind::KvCache);
        assert_eq!(s.validate(), Ok(()));
        s.no_cache_every = Some(0);
        assert!(s.validate().unwrap_err().contains("no_cache_every = 0"));
        s.no_cache_every = None;
        s.prompt_lengths = vec![16, 0];
        assert!(s.validate().unwrap_err().contains("prompt_lengths: 0"));
    }
}
