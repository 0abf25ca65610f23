//! A job stops when asked: a load of the real 1.5B stopped half way leaves no model and says so.

mod common;

use common::worker::next_event;
use labtui::protocol::{Command, Event, Job, Notice};
use labtui::worker::{Options, Worker};
use std::time::{Duration, Instant};

#[test]
fn a_load_stops_between_tensors() {
    let Some(model) = common::real_model(common::QWEN_15B) else {
        return;
    };
    let mut w = Worker::spawn(Options {
        sample_every: None,
        ..Options::default()
    });
    w.send(Command::LoadModel {
        spec: model.display().to_string(),
    });
    let within = Duration::from_secs(120);
    // The job has begun: stop it.
    next_event(&mut w, within, |s| match s.event {
        Event::ModelLoading { .. } => Some(()),
        Event::Error { message } => panic!("{message}"),
        _ => None,
    });
    w.send(Command::Stop);
    let stopped_at = Instant::now();
    next_event(&mut w, within, |s| match s.event {
        Event::Note(Notice::Stopped(Job::Loading)) => Some(()),
        Event::ModelLoaded(_) => panic!("the load ran to its end"),
        Event::Error { message } => panic!("{message}"),
        _ => None,
    });
    // How fast is a benchmark's question (one tensor's read, here); that it stopped is the test's.
    eprintln!("stopped {:?} after Stop", stopped_at.elapsed());
}
