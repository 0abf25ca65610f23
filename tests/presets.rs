//! Every shipped preset parses and runs headless on the synthetic model; broken presets fail with
//! messages that say where and what.

mod common;

use common::OutputWithin;

use std::path::PathBuf;
use std::process::Command;

fn presets_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("presets")
}

#[test]
fn shipped_presets_parse_and_run_on_the_synthetic_model() {
    let files = labtui::preset::list(&presets_dir()).unwrap();
    assert!(files.len() >= 4, "presets shipped: {files:?}");
    for f in files {
        let p = labtui::preset::load(f.to_str().unwrap()).unwrap();
        assert_eq!(
            f.file_stem().unwrap().to_str().unwrap(),
            p.name,
            "file name matches the preset's name"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_labtui"))
            .args([
                "generate",
                "--model",
                "synthetic",
                "-n",
                "4",
                "--preset",
                &p.name,
            ])
            .env("LABTUI_PRESETS", presets_dir())
            .output_bounded();
        let err = String::from_utf8_lossy(&out.stderr);
        if p.mix.is_some() {
            // A mixed-precision preset names the matrices of the model it was made for: the
            // synthetic model is refused, with the reason.
            assert!(!out.status.success(), "{}: {err}", p.name);
            assert!(err.contains("made for another model"), "{}: {err}", p.name);
            continue;
        }
        assert!(out.status.success(), "{}: {err}", p.name);
        // One summary line per prompt.
        assert_eq!(
            err.lines().filter(|l| l.starts_with("ttft")).count(),
            p.prompts.len(),
            "{}: {err}",
            p.name
        );
    }
}

#[test]
fn broken_presets_say_what_is_wrong() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad_presets");
    let expect = [
        ("syntax", "syntax.ron:4:5: Expected comma"),
        ("unknown_field", "Unexpected field named `temprature`"),
        ("no_prompts", "`prompts` is empty"),
        ("bad_k", "k = 40 is out of range"),
        (
            "bad_mode",
            "unknown draft mode \"telepathy\": valid values are none, draft-model, prompt-lookup, layer-skip",
        ),
        ("future", "preset format 9 is newer"),
        (
            "bad_quant",
            "bad_quant.ron:7:25: unknown quantization \"IQ4_NL\": valid values are as loaded, F32, F16, BF16, Q8_0",
        ),
        (
            "bad_kv",
            "bad_kv.ron:7:21: unknown KV dtype \"q8_0\": valid values are f32, f16, bf16",
        ),
        (
            "demo_kind",
            "demo \"kvcache\" is not one of prefill-vs-decode, kv-cache, roofline",
        ),
        ("demo_field", "Unexpected field named `prompt_length`"),
        ("demo_no_notes", "a demo needs narration"),
        (
            "demo_range",
            "demo no_cache_every = 0 is out of range (1 to 4096)",
        ),
        (
            "params_max_tokens",
            "params max_tokens = 0 is out of range (1 to 1048576)",
        ),
        (
            "params_max_tokens_huge",
            "params max_tokens = 99999999999 is out of range (1 to 1048576)",
        ),
        (
            "params_temperature",
            "params temperature = 25 is out of range (0 to 10; 0 is greedy)",
        ),
        ("params_temperature_nan", "params temperature = NaN is out of range"),
        (
            "params_top_p",
            "params top_p = 1.5 is out of range (above 0, at most 1)",
        ),
        (
            "params_top_k",
            "params top_k = 0 is out of range (1 to 4194304)",
        ),
    ];
    for (name, needle) in expect {
        let path = dir.join(format!("{name}.ron"));
        let err = labtui::preset::load(path.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{name}: {err}");
    }
    assert_eq!(
        labtui::preset::list(&dir).unwrap().len(),
        expect.len(),
        "every broken fixture is checked"
    );
    let err = labtui::preset::load("no-such-preset")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no preset \"no-such-preset\""), "{err}");
}

/// The presets are inside the binary: a demo runs from any directory (as after `cargo install`),
/// and a presets folder there overrides a built-in preset by name.
#[test]
fn demos_run_from_any_directory_and_a_folder_overrides_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_labtui"))
        .args(["demo", "kv-cache", "--headless", "--model", "synthetic"])
        .current_dir(dir.path())
        .env_remove("LABTUI_PRESETS")
        .env("RAYON_NUM_THREADS", "1")
        .output_bounded();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let report = std::fs::read_to_string(dir.path().join("demo-kv-cache/report.md")).unwrap();
    assert!(report.contains("with cache"), "{report}");

    let list = |cwd: &std::path::Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_labtui"))
            .arg("presets")
            .current_dir(cwd)
            .env_remove("LABTUI_PRESETS")
            .output_bounded();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let builtin = list(dir.path());
    for name in ["demo-kv-cache", "prime-check", "rewrite-lookup"] {
        let line = builtin.lines().find(|l| l.starts_with(name)).unwrap();
        assert!(line.contains("built in"), "{line}");
    }
    // A folder preset of the same name wins, and a new one is added.
    let folder = dir.path().join("presets");
    std::fs::create_dir(&folder).unwrap();
    let mine = r#"(format: 1, name: "prime-check", description: "my own", prompts: ["p"])"#;
    std::fs::write(folder.join("prime-check.ron"), mine).unwrap();
    std::fs::write(folder.join("broken.ron"), "(format: 1,").unwrap();
    let listed = list(dir.path());
    let line = listed
        .lines()
        .find(|l| l.starts_with("prime-check"))
        .unwrap();
    assert!(line.contains("folder") && line.contains("my own"), "{line}");
    let line = listed.lines().find(|l| l.starts_with("broken")).unwrap();
    assert!(line.contains("broken:"), "{line}");
}
