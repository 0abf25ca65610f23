//! A job stops when asked: a load of the real 1.5B stopped half way leaves no model and says so.

mod common;

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
    let end = Instant::now() + Duration::from_secs(120);
    let mut stopped_at = None;
    loop {
        let ev = match w.events.try_recv() {
            Ok(s) => s.event,
            Err(_) => {
                assert!(Instant::now() < end, "no answer within 2 minutes");
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        match ev {
            // The job has begun: stop it.
            Event::ModelLoading { .. } => {
                w.send(Command::Stop);
                stopped_at = Some(Instant::now());
            }
            Event::Note(Notice::Stopped(Job::Loading)) => break,
            Event::ModelLoaded(_) => panic!("the load ran to its end"),
            Event::Error { message } => panic!("{message}"),
            _ => {}
        }
    }
    // How fast is a benchmark's question (one tensor's read, here); that it stopped is the test's.
    eprintln!("stopped {:?} after Stop", stopped_at.unwrap().elapsed());
}
