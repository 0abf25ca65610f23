//! Where an event leads to a command or moves the UI: the one place the dashboard reacts to what
//! the worker says, beside the store that only records it.
//!
//! - A failed load of the default model falls back to the built-in synthetic model, once.
//! - A demo or a request stream picked before any model was loaded runs when one is.
//! - The settings the UI shows follow what the worker reports running.
//! - A prompt the worker ran (from a preset, a replay) shows in the prompt box.
//! - A quality measurement opens the variants table; a replayed demo opens the demo pane.
//! - The status line tells what the event reported.

use super::{DemoView, Happened, Status, Store, Ui};
use crate::engine::source::HOW_TO_GET;
use crate::protocol::{Command, Event, Quant, Stamped};

/// React to `ev`, which `store` has just taken; returns the commands it calls for.
pub fn follow(ui: &mut Ui, store: &Store, ev: &Stamped) -> Vec<Command> {
    if let Some(h) = Happened::of(&ev.event) {
        ui.status = Status::Worker(h);
    }
    let mut cmds = Vec::new();
    match &ev.event {
        Event::Error { message } if store.load_failed && ui.fallback_to_synthetic => {
            ui.fallback_to_synthetic = false;
            ui.errors_handled = store.errors;
            // The advice first: were the banner cut, the error's detail goes, not what to do. The
            // error's own advice says the same again, so it goes.
            let why = message.replace(&format!(" ({HOW_TO_GET})"), "");
            ui.banner = Some(format!(
                "Running the built-in synthetic model (random weights): no real model could be loaded. \
                 To run one, start with --model PATH (a .gguf file or a checkpoint folder), put a .gguf \
                 file in the models folder ($LABTUI_MODELS, else ./models), or, online, name one on the \
                 Hugging Face Hub as hf:OWNER/REPO/FILE.gguf or hf:OWNER/REPO. Why: {why}"
            ));
            ui.status = Status::Worker(Happened::FallingBack);
            ui.model_spec = "synthetic".into();
            cmds.push(Command::LoadModel {
                spec: "synthetic".into(),
            });
        }
        Event::ModelLoaded(info) => {
            ui.asked.quant = Quant::AsLoaded;
            ui.asked.kv_live = info.kv_dtype;
            if let Some((demo, prompt)) = ui.demo.as_mut().and_then(|d| d.waiting.take()) {
                cmds.push(Command::RunDemo {
                    demo: Box::new(demo),
                    prompt,
                });
            }
            if let Some(stream) = ui.stream_waiting.take() {
                cmds.push(Command::RunStream {
                    stream: Box::new(stream),
                });
            }
            cmds.extend(ui.race_waiting.take());
        }
        Event::VariantReady(v) => {
            ui.asked.quant = v.quant;
            ui.asked.kv_live = v.kv_dtype;
        }
        Event::Quality(_) => ui.open(super::Overlay::Variants),
        Event::RunStarted { prompt, .. } => {
            if !prompt.is_empty() {
                ui.prompt = prompt.clone();
            }
            ui.view.selected = None;
        }
        Event::Demo(run) if ui.demo.is_none() => {
            ui.demo = Some(DemoView {
                name: run.demo.clone(),
                ..DemoView::new(store.demos.len() - 1)
            });
        }
        _ => {}
    }
    cmds
}
