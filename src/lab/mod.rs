//! What the teaching demos measure, on the engine: one idea of LLM inference each — prefill
//! against decode, the KV cache, the roofline, quantization, speculation, batching, paged KV — plus the timed
//! primitives and the reference model the benchmarks share.
//!
//! A demo runs on the worker's [`Engine`] (measured where the work happens, through
//! [`crate::engine::Model::forward`] and the [`crate::engine::KvCache`]) and answers with a
//! [`DemoRun`]: plain serde data that travels as an [`crate::protocol::Event::Demo`], is recorded,
//! drawn by the dashboard's demo pane and written out as a Markdown report.

pub mod arrivals;
pub mod batch;
pub mod batching;
pub mod decode_roofline;
pub mod flash;
pub mod kv_cache;
pub mod machine;
pub mod measure;
pub mod paged_kv;
pub mod prefill_decode;
pub mod quant;
pub mod reference;
pub mod roofline;
pub mod sensitivity;
pub mod speculation;
pub mod stream;

use crate::engine::Engine;
use crate::protocol::{DemoKind, DemoResult, DemoRun, DemoSection};
use anyhow::Result;

/// Run `section`'s demo on `engine`; `prompt` is the text the generation demos start from,
/// `progress` hears a line after each measurement and `live` the events a demo streams as it
/// measures (the sensitivity map's cells).
pub fn run(
    engine: &mut Engine,
    section: &DemoSection,
    prompt: &str,
    progress: &mut dyn FnMut(String),
    live: &mut dyn FnMut(crate::protocol::Event),
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
        DemoKind::Batching => DemoResult::Batching(batching::run(engine, section, progress)?),
        DemoKind::PagedKv => DemoResult::PagedKv(paged_kv::run(engine, section, progress)?),
        DemoKind::Sensitivity => {
            DemoResult::Sensitivity(Box::new(sensitivity::run(engine, section, progress, live)?))
        }
        DemoKind::FlashAttention => {
            DemoResult::FlashAttention(flash::run(engine, section, progress)?)
        }
        DemoKind::DecodeRoofline => {
            DemoResult::DecodeRoofline(decode_roofline::run(engine, section, progress)?)
        }
        DemoKind::ServingMetrics => anyhow::bail!(
            "the serving-metrics demo starts a server: the serving layer's lesson::run_demo runs it"
        ),
    };
    Ok(finish(engine, kind, result))
}

/// A demo's answer with what it ran on: the model, its threads and its costs (no stamp yet).
pub fn finish(engine: &Engine, kind: DemoKind, result: DemoResult) -> DemoRun {
    DemoRun {
        demo: kind.name().into(),
        model: engine.info.name.clone(),
        threads: engine.info.threads,
        result,
        stamp: None,
        costs: Some(Box::new(costs(engine))),
    }
}

/// The loaded model's shape and per-token costs.
pub fn costs(engine: &Engine) -> crate::protocol::demo::ModelCosts {
    let m = &engine.model;
    let kv_dtype_bytes = engine.info.kv_dtype.bytes() as u64;
    crate::protocol::demo::ModelCosts {
        tied: m.head.shares(&m.embed),
        weight_bytes: m.weight_bytes(),
        weight_bytes_read: m.bytes_read_per_token(),
        kv_dtype: engine.info.kv_dtype.to_string(),
        kv_dtype_bytes,
        kv_bytes_per_token: engine.info.kv_bytes_per_token,
        ..roofline::shape_costs(&m.cfg)
    }
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
