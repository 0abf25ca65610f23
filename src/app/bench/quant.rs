//! `labtui bench quant`: every weight type side by side on one model, in one run — weight bytes,
//! prefill and decode speed, perplexity on the reference text, and the mean KL divergence and
//! top-1 agreement against the loaded weights, with the time each requantisation took.

use super::MAX_TOKENS;
use crate::app::args;
use crate::engine::quality::Probe;
use crate::engine::{default_device, Engine};
use crate::lab::measure::measure;
use crate::protocol::{KvDtype, Quant, Setting};
use crate::report::demo::quant_table;
use anyhow::Result;
use clap::Args;

pub fn run(model: &str, a: &BenchQuantArgs) -> Result<()> {
    let device = default_device();
    let mut engine = Engine::open(model, &device, |_, _| {})?;
    engine.set_kv_dtype(a.kv_dtype)?;
    super::print_stamp(Some(&engine.model), false);
    let mut probe = Probe::new(&engine, a.m.ppl_tokens, a.m.ctx)?;
    eprintln!(
        "{}: {} threads, pp{} and tg{} (median of {}), quality over {} tokens in chunks of {}",
        engine.info.name,
        crate::engine::threads(),
        a.m.pp,
        a.m.tg,
        a.m.repeats,
        probe.tokens(),
        a.m.ctx
    );
    let mut rows = Vec::new();
    let params = {
        let (l, h) = crate::lab::roofline::matmul_params(&engine.model.cfg);
        l + h
    };
    let types = if a.types.is_empty() {
        Quant::ALL.to_vec()
    } else {
        a.types.clone()
    };
    for q in types {
        let row = match measure(&mut engine, q, &mut probe, a.m.pp, a.m.tg, a.m.repeats) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{q}: {e}");
                continue;
            }
        };
        eprint!(
            "{}",
            quant_table(std::slice::from_ref(&row), params)
                .lines()
                .nth(2)
                .unwrap_or_default()
        );
        eprintln!();
        rows.push(row);
    }
    print!("{}", quant_table(&rows, params));
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchQuantArgs {
    /// Types to measure, in order (default: all, the loaded weights first).
    #[arg(long, value_delimiter = ',', value_parser = crate::app::args::setting::<Quant>())]
    pub types: Vec<Quant>,
    #[command(flatten)]
    pub m: MeasureArgs,
    /// KV cache dtype.
    #[arg(long, value_parser = crate::app::args::setting::<KvDtype>(), default_value = "f32")]
    pub kv_dtype: KvDtype,
}

/// How a variant is measured: prefill and decode speed, and quality on the reference text.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// Prompt tokens of the prefill measurement.
    #[arg(long, default_value_t = 128, value_parser = args::count(1, MAX_TOKENS))]
    pub pp: usize,
    /// Tokens of the decode measurement.
    #[arg(long, default_value_t = 64, value_parser = args::count(1, MAX_TOKENS))]
    pub tg: usize,
    /// Timed repeats of prefill and decode (the median is reported).
    #[arg(long, default_value_t = 1, value_parser = args::count(1, args::MAX_REPEATS))]
    pub repeats: usize,
    /// Tokens of the reference text the quality measurement runs.
    #[arg(long, default_value_t = 1024, value_parser = args::count(1, MAX_TOKENS))]
    pub ppl_tokens: usize,
    /// Tokens per chunk of the quality measurement (each chunk's second half is scored).
    #[arg(long, default_value_t = 256, value_parser = args::count(2, MAX_TOKENS))]
    pub ctx: usize,
}
