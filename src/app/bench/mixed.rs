//! `labtui bench mixed`: mixed-precision variants chosen from a sensitivity map, in the
//! quantization table beside uniform types and other files of the same size (llama.cpp's own
//! mixed recipes, requantised from the same file) — size, bits per weight, prefill and decode
//! tok/s, perplexity, KL and top-1 against the loaded weights, all on one text in one run. Each
//! mix can be saved as a preset that rebuilds it and exported as a GGUF llama.cpp loads.

use super::quant::MeasureArgs;
use super::sensitivity::{recorded, RECORDING};
use crate::engine::quality::Probe;
use crate::engine::{default_device, Engine};
use crate::lab::measure::{measure, speed};
use crate::lab::sensitivity::mix_at;
use crate::protocol::demo::QuantRow;
use crate::protocol::sensitivity::{MixSpec, SensMap};
use crate::protocol::{Quality, Quant};
use crate::report::demo::quant_table;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};

#[derive(Debug, Args)]
pub struct BenchMixedArgs {
    /// The sensitivity sweep to choose from: its folder or its recording.
    #[arg(long)]
    pub map: PathBuf,
    /// Uniform types to measure; a mix is built at each one's size (default: as loaded, Q4_0,
    /// Q3_K).
    #[arg(long, value_delimiter = ',', value_parser = crate::app::args::setting::<Quant>())]
    pub uniform: Vec<Quant>,
    /// Other GGUF files of the same model (llama.cpp's Q3_K_M of it, say) to measure against
    /// the same loaded weights; a mix is built at each one's size.
    #[arg(long)]
    pub like: Vec<PathBuf>,
    /// More sizes to build a mix at, in MiB of weights.
    #[arg(long, value_delimiter = ',')]
    pub size: Vec<f64>,
    /// More sizes to build a mix at, in bits per weight (over every weight of the model, the
    /// embeddings and head included).
    #[arg(long, value_delimiter = ',')]
    pub bpw: Vec<f64>,
    /// Write each mix as a GGUF file into this folder (`MODEL.mixed-SIZE.gguf`).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Write each mix as a preset into this folder (`mixed-MODEL-SIZE.ron`).
    #[arg(long)]
    pub presets: Option<PathBuf>,
    #[command(flatten)]
    pub m: MeasureArgs,
    /// Measure the --like files and the exported mixes with llama.cpp too: llama-perplexity's
    /// KL divergence on the same text, and llama-completion's greedy text beside ours (needs
    /// --export; llama.cpp's tools from $LLAMA_CPP_BIN).
    #[arg(long, requires = "export")]
    pub vs_llama_cpp: bool,
}

/// The map at `path` (a sweep's folder or its recording), checked to be of `model`.
pub fn load_map(path: &Path, model: &str) -> Result<SensMap> {
    let file = if path.is_dir() {
        path.join(RECORDING)
    } else {
        path.to_path_buf()
    };
    let map = recorded(&file)?
        .with_context(|| format!("{} holds no sensitivity sweep", file.display()))?;
    if map.plan.model != model {
        bail!(
            "the map at {} is of {}, not of {model}: sweep this model first (labtui bench sensitivity)",
            file.display(),
            map.plan.model
        );
    }
    if map.cells.is_empty() {
        bail!("the map at {} has no cell measured yet", file.display());
    }
    Ok(map)
}

/// A row for another file of the same model: its speed, and its quality against `probe`'s
/// baseline (the loaded weights of the model the bench opened).
fn file_row(path: &Path, probe: &Probe, vocab: usize, a: &BenchMixedArgs) -> Result<QuantRow> {
    let spec = path.to_string_lossy();
    let mut other = Engine::open(&spec, &default_device(), |_, _| {})?;
    if other.model.cfg.vocab != vocab {
        bail!(
            "{} has another vocabulary: it is not the same model",
            path.display()
        );
    }
    let start = std::time::Instant::now();
    let t = probe.compare(&other.model, candle_core::DType::F32, &mut |_, _| {})?;
    let quality = Quality {
        quant: Quant::AsLoaded,
        kv_dtype: other.info.kv_dtype,
        scored: t.scored,
        perplexity: t.perplexity(),
        mean_kl: t.mean_kl(),
        top1: t.top1(),
        took: start.elapsed(),
        mix: None,
    };
    let (prefill_tok_s, decode_tok_s) = speed(&mut other, a.m.pp, a.m.tg, a.m.repeats)?;
    let mut variant = other.variant(std::time::Duration::ZERO);
    variant.mix = Some(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.into_owned()),
    );
    Ok(QuantRow {
        read_per_token: other.model.bytes_read_per_token(),
        variant,
        prefill_tok_s,
        decode_tok_s,
        quality,
    })
}

/// `qwen2.5-coder-0.5b-instruct-q4_k_m` → `qwen2.5-coder-0.5b`: the model's name without its
/// tuning and file type, for a preset's name.
fn short_name(stem: &str) -> String {
    let cut = stem
        .find("-instruct")
        .or_else(|| stem.rfind("-q"))
        .unwrap_or(stem.len());
    stem[..cut].to_string()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// A mix: its spec, the KL the map predicted, the KL measured, what its size matches.
type Mix = (MixSpec, f64, f64, String);

/// A size to build a mix at: what it is the size of, and the bytes.
type Target = (String, u64);

/// The uniform types' rows and the --like files', and the sizes to build a mix at.
fn references(
    engine: &mut Engine,
    probe: &mut Probe,
    a: &BenchMixedArgs,
) -> Result<(Vec<QuantRow>, Vec<Target>)> {
    let uniform = match a.uniform.is_empty() {
        true => vec![Quant::AsLoaded, Quant::Q4_0, Quant::Q3K],
        false => a.uniform.clone(),
    };
    let mut rows = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    for q in uniform {
        let row = measure(engine, q, probe, a.m.pp, a.m.tg, a.m.repeats)?;
        eprintln!(
            "{q}: {:.1} MiB, KL {:.5}",
            mib(row.variant.weight_bytes),
            row.quality.mean_kl
        );
        if q != Quant::AsLoaded {
            targets.push((q.to_string(), row.variant.weight_bytes));
        }
        rows.push(row);
    }
    engine.set_quant(Quant::AsLoaded, &mut |_, _| {})?;
    for f in &a.like {
        let row = file_row(f, probe, engine.model.cfg.vocab, a)?;
        let name = row.variant.mix.clone().unwrap_or_default();
        eprintln!(
            "{name}: {:.1} MiB, KL {:.5}",
            mib(row.variant.weight_bytes),
            row.quality.mean_kl
        );
        targets.push((name, row.variant.weight_bytes));
        rows.push(row);
    }
    let mb = |s: &f64| (format!("{s} MiB"), (s * 1024.0 * 1024.0) as u64);
    targets.extend(a.size.iter().map(mb));
    let weights = crate::engine::quant::parameters(engine.loaded_model()) as f64;
    let bits = |b: &f64| (format!("{b} bits/weight"), (b * weights / 8.0) as u64);
    targets.extend(a.bpw.iter().map(bits));
    Ok((rows, targets))
}

/// A mix at each target size, built and measured; their rows join `rows`.
fn build_mixes(
    engine: &mut Engine,
    map: &SensMap,
    targets: &[Target],
    probe: &mut Probe,
    rows: &mut Vec<QuantRow>,
    a: &BenchMixedArgs,
) -> Result<Vec<Mix>> {
    let mut mixes = Vec::new();
    for (like, bytes) in targets {
        let m = (a.m.pp, a.m.tg, a.m.repeats);
        let (spec, predicted, row) = match mix_at(engine, map, *bytes, probe, m)? {
            Ok(x) => x,
            Err(e) => {
                eprintln!("no mix the size of {like}: {e}");
                continue;
            }
        };
        eprintln!(
            "{} (the size of {like}): {} · KL predicted {predicted:.5}, measured {:.5}",
            spec.label,
            spec.summary(),
            row.quality.mean_kl
        );
        mixes.push((spec, predicted, row.quality.mean_kl, like.clone()));
        rows.push(row);
    }
    engine.set_quant(Quant::AsLoaded, &mut |_, _| {})?;
    Ok(mixes)
}

pub fn run(model: &str, a: &BenchMixedArgs) -> Result<()> {
    let mut engine = Engine::open(model, &default_device(), |_, _| {})?;
    let map = load_map(&a.map, &engine.info.name)?;
    super::print_stamp(Some(&engine.model), false);
    let mut probe = Probe::new(&engine, a.m.ppl_tokens, a.m.ctx)?;
    let (layer_params, head_params) = crate::lab::roofline::matmul_params(&engine.model.cfg);
    let (mut rows, targets) = references(&mut engine, &mut probe, a)?;
    let mixes = build_mixes(&mut engine, &map, &targets, &mut probe, &mut rows, a)?;
    rows.sort_by_key(|r| std::cmp::Reverse(r.variant.weight_bytes));
    println!(
        "## The quantization table\n\nUniform types, the --like files and the mixes, measured alike: \
         prefill of {} tokens and decode of {} (medians of {}), quality over {} positions of the \
         reference text against {}.\n",
        a.m.pp,
        a.m.tg,
        a.m.repeats,
        rows.first().map_or(0, |r| r.quality.scored),
        engine.info.name
    );
    print!("{}", quant_table(&rows, layer_params + head_params));
    println!(
        "\n## The mixes\n\nEach is the least-KL choice of types from the map ({} cells over {} \
         positions) no larger than what it is named after. *KL predicted* adds the map's cells \
         (measured in f32); *KL measured* is the variant's own, in the engine's kernels.\n\n{}",
        map.cells.len(),
        map.plan.scored,
        predictions(&mixes)
    );
    let exported = save(model, &engine, &map, &mixes, a)?;
    if a.vs_llama_cpp {
        let likes: Vec<(String, PathBuf, f64)> = a
            .like
            .iter()
            .map(|f| {
                let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
                let row = rows.iter().find(|r| r.variant.mix == name);
                let kl = row.map_or(f64::NAN, |r| r.quality.mean_kl);
                (name.unwrap_or_default(), f.clone(), kl)
            })
            .collect();
        vs_llama_cpp(model, &mut engine, &likes, &exported, a)?;
    }
    Ok(())
}

/// The llama.cpp tables: KL by llama-perplexity of the --like files and the exported mixes,
/// and each mix's greedy text in llama-completion against ours.
fn vs_llama_cpp(
    model: &str,
    engine: &mut Engine,
    likes: &[(String, PathBuf, f64)],
    exported: &[(MixSpec, PathBuf, f64)],
    a: &BenchMixedArgs,
) -> Result<()> {
    use super::mixed_llama::{kld_table, ours, parting, theirs, PROMPT};
    let bin = super::llama_cpp_bin()?;
    let base = crate::engine::source::fetch(&crate::engine::source::resolve(model)?, |_, _| {})?
        .context("llama.cpp needs the model's GGUF file")?;
    let mut files = likes.to_vec();
    files.extend(
        exported
            .iter()
            .map(|(s, p, kl)| (s.label.clone(), p.clone(), *kl)),
    );
    let chunks = (a.m.ppl_tokens / a.m.ctx).max(1);
    println!(
        "\n## The same files in llama.cpp\n\n`llama-perplexity --kl-divergence` against {} \
         over the same text, {chunks} chunks of {} tokens.\n\n{}",
        engine.info.name,
        a.m.ctx,
        kld_table(&bin, &base, &files, a.m.ctx, chunks)?
    );
    let mut t = crate::report::table::Table::new([
        crate::report::table::Column::left("mix"),
        crate::report::table::Column::left("32 greedy tokens"),
    ]);
    for (spec, file, _) in exported {
        engine.set_mix(spec, &mut |_, _| {})?;
        let mine = ours(engine, &engine.model, PROMPT, 32)?;
        let other = theirs(&bin, file, PROMPT, 32)?;
        let verdict = match parting(&mine, &other) {
            None => "the same in labtui (in memory) and llama-completion (the file)".to_string(),
            Some(i) => format!(
                "part after {i} characters: labtui {:?}, llama.cpp {:?}",
                mine.chars().skip(i).take(24).collect::<String>(),
                other.chars().skip(i).take(24).collect::<String>()
            ),
        };
        t.row([spec.label.clone(), verdict]);
    }
    engine.set_quant(crate::protocol::Quant::AsLoaded, &mut |_, _| {})?;
    println!(
        "\n## Greedy text\n\n32 tokens after `{}` (raw, greedy), from each mix built in \
         memory by labtui and from its GGUF file in llama-completion.\n\n{}",
        PROMPT.replace('`', "'"),
        t.markdown()
    );
    Ok(())
}

/// The mixes: what each took, and the KL the map predicted (the sum of its cells) against the
/// KL measured.
fn predictions(mixes: &[Mix]) -> String {
    let mut t = crate::report::table::Table::new([
        crate::report::table::Column::left("mix"),
        crate::report::table::Column::left("the size of"),
        crate::report::table::Column::left("matrices squeezed"),
        crate::report::table::Column::right("KL predicted"),
        crate::report::table::Column::right("KL measured"),
    ]);
    for (spec, predicted, measured, like) in mixes {
        t.row([
            spec.label.clone(),
            like.clone(),
            spec.summary(),
            format!("{predicted:.5}"),
            format!("{measured:.5}"),
        ]);
    }
    t.markdown()
}

/// Presets and GGUF files of the mixes, where asked; returns the files exported with their
/// mixes and measured KL.
fn save(
    model: &str,
    engine: &Engine,
    map: &SensMap,
    mixes: &[Mix],
    a: &BenchMixedArgs,
) -> Result<Vec<(MixSpec, PathBuf, f64)>> {
    let mut exported = Vec::new();
    let stem = engine.info.name.trim_end_matches(".gguf").to_string();
    let mut used = std::collections::HashSet::new();
    for (spec, _, measured, like) in mixes {
        // Two mixes of nearly one size share a label: the second file takes a number.
        let mut size = spec.label.trim_start_matches("mixed ").replace(' ', "");
        let mut n = 1;
        while !used.insert(size.clone()) {
            n += 1;
            size = format!(
                "{}-{n}",
                spec.label.trim_start_matches("mixed ").replace(' ', "")
            );
        }
        if let Some(dir) = &a.presets {
            std::fs::create_dir_all(dir)?;
            let name = format!("mixed-{}-{size}", short_name(&stem));
            let path = dir.join(format!("{name}.ron"));
            let text = preset_text(&name, model, spec, *measured, like, map);
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
        if let Some(dir) = &a.export {
            let source =
                crate::engine::source::fetch(&crate::engine::source::resolve(model)?, |_, _| {})?
                    .context("the synthetic model has no file to export from")?;
            std::fs::create_dir_all(dir)?;
            let out = dir.join(format!("{stem}.mixed-{size}.gguf"));
            let e = crate::engine::export::export(&source, spec, &out, &mut |_, _| {})?;
            eprintln!(
                "wrote {} ({} tensors, {} requantised, {})",
                out.display(),
                e.tensors,
                e.requantised,
                crate::stats::human_bytes(e.bytes)
            );
            exported.push((spec.clone(), out, *measured));
        }
    }
    Ok(exported)
}

/// A preset that loads `model` and rebuilds `spec`.
pub fn preset_text(
    name: &str,
    model: &str,
    spec: &MixSpec,
    measured: f64,
    like: &str,
    map: &SensMap,
) -> String {
    let name = name.to_string();
    let preset = crate::preset::Preset {
        format: 1,
        name,
        description: format!(
            "{} of {}: the least-KL choice of types per matrix from a sensitivity map ({} \
             positions), the size of {like}; measured KL {measured:.5} against the loaded weights.",
            spec.label, map.plan.model, map.plan.scored
        ),
        model: Some(model.to_string()),
        prompts: vec!["Write a Rust function that checks whether a number is prime.".into()],
        mix: Some(spec.clone()),
        ..crate::preset::Preset::default()
    };
    let pretty = ron::ser::PrettyConfig::new().struct_names(false);
    format!(
        "// Written by `labtui bench mixed`: rebuilds a mixed-precision variant.\n{}\n",
        ron::ser::to_string_pretty(&preset, pretty).unwrap_or_default()
    )
}
