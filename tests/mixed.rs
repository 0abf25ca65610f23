//! Sensitivity and mixed precision, end to end on the synthetic model's GGUF file: the sweep's
//! command with its recording, resume and heat maps; a mix chosen from it, built in memory,
//! exported as GGUF and loaded back with the same weights and the same greedy text; the preset
//! that rebuilds it.

mod common;

use candle_core::Device;
use common::{engine::greedy_alone, labtui_cmd, OutputWithin};
use labtui::engine::quant::{part_type, parts};
use labtui::engine::synthetic::{gguf_bytes, SyntheticSpec};
use labtui::engine::Engine;
use labtui::protocol::sensitivity::{MixSpec, Part, TensorKind};
use labtui::protocol::Quant;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn model_file(dir: &Path) -> PathBuf {
    let path = dir.join("tiny.gguf");
    std::fs::write(&path, gguf_bytes(&SyntheticSpec::default()).unwrap()).unwrap();
    path
}

fn spec() -> MixSpec {
    let types: BTreeMap<String, Quant> = [
        (Part::embed(), Quant::Q4_0),
        (Part::layer(0, TensorKind::Q), Quant::Q4_0),
        (Part::layer(1, TensorKind::Down), Quant::Q2K),
        (Part::layer(1, TensorKind::Gate), Quant::Q3K),
    ]
    .into_iter()
    .map(|(p, q)| (p.gguf_name(), q))
    .collect();
    MixSpec {
        label: "mixed test".into(),
        types,
    }
}

#[test]
fn an_exported_mix_loads_with_the_weights_and_the_text_of_the_one_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let file = model_file(dir.path());
    let mut engine = Engine::open(file.to_str().unwrap(), &Device::Cpu, |_, _| {}).unwrap();
    let before: Vec<_> = parts(&engine.model)
        .into_iter()
        .map(|p| part_type(&engine.model, p))
        .collect();
    let v = engine.set_mix(&spec(), &mut |_, _| {}).unwrap();
    assert_eq!(v.mix.as_deref(), Some("mixed test"));
    assert!(v.weight_bytes < engine.loaded_model().weight_bytes());
    let out = dir.path().join("tiny.mixed.gguf");
    let e = labtui::engine::export::export(&file, &spec(), &out, &mut |_, _| {}).unwrap();
    assert_eq!(e.requantised, 4);
    let exported = Engine::open(out.to_str().unwrap(), &Device::Cpu, |_, _| {}).unwrap();
    let mut changed = 0;
    for (i, p) in parts(&engine.model).into_iter().enumerate() {
        let (mem, file) = (part_type(&engine.model, p), part_type(&exported.model, p));
        assert_eq!(mem, file, "{}", p.label());
        changed += usize::from(mem != before[i]);
    }
    assert_eq!(
        changed, 4,
        "the four matrices named, and only they, changed"
    );
    assert_eq!(exported.model.weight_bytes(), v.weight_bytes);
    let prompt: Vec<u32> = (5..40).collect();
    let ours: Vec<u32> = greedy_alone(&engine.model, &prompt, 24, 64)
        .into_iter()
        .map(|t| t.0)
        .collect();
    let theirs: Vec<u32> = greedy_alone(&exported.model, &prompt, 24, 64)
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(ours, theirs);
    // And it is not the loaded model's text by accident of a no-op: the logits moved.
    let loaded = greedy_alone(engine.loaded_model(), &prompt, 1, 64);
    let mixed = greedy_alone(&engine.model, &prompt, 1, 64);
    assert_ne!(loaded[0].1, mixed[0].1);
}

#[test]
fn a_mix_for_another_model_or_a_bad_export_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = model_file(dir.path());
    let mut engine = Engine::open(file.to_str().unwrap(), &Device::Cpu, |_, _| {}).unwrap();
    let mut far = spec();
    far.types
        .insert("blk.23.ffn_down.weight".into(), Quant::Q4_0);
    let e = engine
        .set_mix(&far, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("blk.23") && e.contains("2 layers"), "{e}");
    assert!(engine.mix.is_none() && engine.original.is_none());
    let mut odd = spec();
    odd.types
        .insert("blk.0.attn_norm.weight".into(), Quant::Q4_0);
    let e = engine
        .set_mix(&odd, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("attn_norm"), "{e}");
    let e = labtui::engine::export::export(&file, &spec(), &file, &mut |_, _| {}).unwrap_err();
    assert!(e.to_string().contains("the model itself"), "{e}");
    let e = labtui::engine::export::export(&file, &far, &dir.path().join("x.gguf"), &mut |_, _| {})
        .unwrap_err();
    assert!(e.to_string().contains("blk.23.ffn_down"), "{e}");
}

#[test]
fn the_sweep_records_resumes_draws_and_feeds_a_mix_that_a_preset_rebuilds() {
    let dir = tempfile::tempdir().unwrap();
    let file = model_file(dir.path());
    let out = dir.path().join("sens");
    let sweep = |extra: &[&str]| {
        let mut c = labtui_cmd();
        c.args(["bench", "sensitivity", "--model"])
            .arg(&file)
            .args([
                "--tokens",
                "64",
                "--ctx",
                "32",
                "--types",
                "q4_0,q2_k",
                "--out",
            ])
            .arg(&out)
            .args(extra);
        c.output_bounded()
    };
    let first = sweep(&[]);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{err}");
    for f in [
        "sensitivity.ron",
        "sensitivity.md",
        "heatmap-q4_0.png",
        "heatmap-q4_0.svg",
        "heatmap-q2_k.svg",
    ] {
        assert!(out.join(f).exists(), "{f}: {err}");
    }
    let png = std::fs::read(out.join("heatmap-q4_0.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let svg = std::fs::read_to_string(out.join("heatmap-q4_0.svg")).unwrap();
    assert!(svg.contains("L1") && svg.contains("mlp down"), "{svg}");
    let md = std::fs::read_to_string(out.join("sensitivity.md")).unwrap();
    assert!(
        md.contains("most sensitive") && md.contains("> **Machine**"),
        "{md}"
    );
    // A second sweep into the same folder must say how to go on.
    let again = sweep(&[]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    // A recording cut after the plan and two cells (as a kill leaves it) resumes: only the
    // rest is measured, and the map ends whole.
    let rec = std::fs::read_to_string(out.join("sensitivity.ron")).unwrap();
    let kept: Vec<&str> = rec.lines().take(4).collect();
    std::fs::write(out.join("sensitivity.ron"), kept.join("\n") + "\n(ev").unwrap();
    let resumed = sweep(&["--resume"]);
    let rerr = String::from_utf8_lossy(&resumed.stderr);
    assert!(resumed.status.success(), "{rerr}");
    let full = labtui::app::bench::sensitivity::recorded(&out.join("sensitivity.ron"))
        .unwrap()
        .unwrap();
    assert_eq!(full.plan.resumed, 2);
    // Resuming with another text length would mix two measurements: refused, nothing lost.
    let other = labtui_cmd()
        .args(["bench", "sensitivity", "--model"])
        .arg(&file)
        .args(["--tokens", "96", "--ctx", "32", "--resume", "--out"])
        .arg(&out)
        .output_bounded();
    let oerr = String::from_utf8_lossy(&other.stderr);
    assert!(
        !other.status.success() && oerr.contains("--force starts over"),
        "{oerr}"
    );
    let kept = labtui::app::bench::sensitivity::recorded(&out.join("sensitivity.ron"))
        .unwrap()
        .unwrap();
    assert_eq!(kept.cells.len(), full.cells.len());
    assert_eq!(full.progress().0, full.progress().1);
    assert!(full.took.is_some());

    // A mix the size of uniform Q4_0, from that map; its preset and its GGUF.
    let presets = dir.path().join("presets");
    let mixed = labtui_cmd()
        .args(["bench", "mixed", "--model"])
        .arg(&file)
        .arg("--map")
        .arg(&out)
        .args([
            "--uniform",
            "as-loaded,q4_0",
            "--tg",
            "4",
            "--pp",
            "8",
            "--ppl-tokens",
            "64",
            "--ctx",
            "32",
            "--bpw",
            "6",
        ])
        .arg("--presets")
        .arg(&presets)
        .arg("--export")
        .arg(dir.path().join("export"))
        .output_bounded();
    let merr = String::from_utf8_lossy(&mixed.stderr);
    assert!(mixed.status.success(), "{merr}");
    assert!(merr.contains("the size of 6 bits/weight"), "{merr}");
    let table = String::from_utf8_lossy(&mixed.stdout);
    assert!(table.contains("| mixed "), "{table}");
    assert!(table.contains("KL predicted"), "{table}");
    let mut preset_files: Vec<PathBuf> = std::fs::read_dir(&presets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    preset_files.sort();
    let preset_file = preset_files[0].clone();
    let preset = labtui::preset::load(preset_file.to_str().unwrap()).unwrap();
    let spec = preset.mix.clone().expect("the preset carries the mix");
    assert!(!spec.types.is_empty());
    // The preset rebuilds it through the worker, as the dashboard and `generate` apply it.
    let gen = labtui_cmd()
        .args(["generate", "--model"])
        .arg(&file)
        .args(["-n", "4", "--preset"])
        .arg(&preset_file)
        .output_bounded();
    let gerr = String::from_utf8_lossy(&gen.stderr);
    assert!(gen.status.success(), "{gerr}");
    assert!(gerr.contains(&spec.label), "{gerr}");
    let exported: Vec<PathBuf> = std::fs::read_dir(dir.path().join("export"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(exported.len(), preset_files.len(), "{exported:?}");
    Engine::open(exported[0].to_str().unwrap(), &Device::Cpu, |_, _| {}).unwrap();
}

/// The real 0.5B: a mix exported as GGUF loads in llama.cpp, and `llama-completion`'s greedy
/// text from the file is labtui's from the same mix in memory.
#[test]
fn a_real_mix_exported_generates_labtuis_text_in_llama_cpp() {
    use labtui::app::bench::mixed_llama::{ours, parting, theirs, PROMPT};
    let Some(model) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let Some(server) = common::llama_server() else {
        return;
    };
    let bin = server.parent().unwrap();
    let types: BTreeMap<String, Quant> = [
        (Part::head(), Quant::Q4_0),
        (Part::layer(0, TensorKind::Q), Quant::Q4_0),
        (Part::layer(23, TensorKind::Down), Quant::Q2K),
        (Part::layer(7, TensorKind::Down), Quant::Q3K),
    ]
    .into_iter()
    .map(|(p, q)| (p.gguf_name(), q))
    .collect();
    let spec = MixSpec {
        label: "mixed real".into(),
        types,
    };
    let mut engine = Engine::open(model.to_str().unwrap(), &Device::Cpu, |_, _| {}).unwrap();
    engine.set_mix(&spec, &mut |_, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mix.gguf");
    let e = labtui::engine::export::export(&model, &spec, &out, &mut |_, _| {}).unwrap();
    assert_eq!(e.requantised, 4);
    let mine = ours(&engine, &engine.model, PROMPT, 24).unwrap();
    let other = theirs(bin, &out, PROMPT, 24).unwrap();
    assert!(
        !mine.trim().is_empty() && other.trim().len() >= mine.trim().len() / 2,
        "{other:?}"
    );
    assert_eq!(
        parting(&mine, &other),
        None,
        "labtui {mine:?}\nllama.cpp {other:?}"
    );
}
