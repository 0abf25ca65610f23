//! Memory admission: a load, a weight switch and a run that need more memory than the machine has
//! are refused with the numbers, and the model that runs keeps running. `LABTUI_MEMORY_LIMIT`
//! stands in for the machine's available memory (this file holds one test: the variable is the
//! process's).

mod common;

use labtui::engine::synthetic::{gguf_bytes, SyntheticSpec};
use labtui::protocol::{Command, Event, GenParams, Quant, SettingChange};
use labtui::worker::{Options, Worker};
use std::time::Duration;

/// The next event that `pick` accepts, within a minute.
fn next<T>(w: &mut Worker, pick: impl Fn(&Event) -> Option<T>) -> T {
    common::worker::next_event(w, Duration::from_secs(60), |s| pick(&s.event))
}

fn error(e: &Event) -> Option<String> {
    match e {
        Event::Error { message } => Some(message.clone()),
        _ => None,
    }
}

#[test]
fn what_does_not_fit_is_refused_with_the_numbers_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny.gguf");
    std::fs::write(&file, gguf_bytes(&SyntheticSpec::default()).unwrap()).unwrap();
    let spec = file.display().to_string();
    let mut w = Worker::spawn(Options {
        sample_every: None,
        ..Options::default()
    });

    // 1 MiB of memory: the file does not fit.
    std::env::set_var("LABTUI_MEMORY_LIMIT", (1u64 << 20).to_string());
    w.send(Command::LoadModel { spec: spec.clone() });
    let m = next(&mut w, error);
    assert!(
        m.contains("loading")
            && m.contains("needs about")
            && m.contains("1.0 MiB of memory is available"),
        "{m}"
    );

    // Room for the weights but not for an F32 copy of them.
    std::env::set_var("LABTUI_MEMORY_LIMIT", (300u64 << 20).to_string());
    w.send(Command::LoadModel { spec });
    let info = next(&mut w, |e| match e {
        Event::ModelLoaded(i) => Some(i.clone()),
        _ => None,
    });
    std::env::set_var(
        "LABTUI_MEMORY_LIMIT",
        ((256u64 << 20) + info.weight_bytes).to_string(),
    );
    w.send(Command::Set(SettingChange::Quant(Quant::F32)));
    let m = next(&mut w, error);
    assert!(m.contains("requantising to F32 needs about"), "{m}");

    // A run whose KV cache could not grow to its length is refused; a short one runs.
    let long = GenParams {
        max_tokens: 100_000,
        ..GenParams::default()
    };
    std::env::set_var("LABTUI_MEMORY_LIMIT", ((256u64 << 20) + 1000).to_string());
    w.send(Command::Generate {
        prompt: "hi".into(),
        params: long,
    });
    let m = next(&mut w, error);
    assert!(m.contains("prompt tokens and up to 100000 more"), "{m}");
    std::env::remove_var("LABTUI_MEMORY_LIMIT");
    w.send(Command::Generate {
        prompt: "hi".into(),
        params: GenParams {
            max_tokens: 4,
            ..GenParams::default()
        },
    });
    let s = next(&mut w, |e| match e {
        Event::RunFinished { summary, .. } => Some(summary.clone()),
        Event::Error { message } => panic!("{message}"),
        _ => None,
    });
    assert_eq!(s.generated_tokens, 4);
}
