//! The worker: a dedicated OS thread that owns the engine. Commands come in and stamped events go
//! out over unbounded tokio channels, so it never waits on the UI. It never touches the terminal,
//! and a panic inside it becomes an error event.
//!
//! Stopping: a run stops between tokens when `Stop` arrives. A job (a load, a weight switch, a
//! quality measurement, a demo) is interrupted through a flag the handle sets at once, which the
//! engine checks before every layer and every requantised matrix. Dropping the handle interrupts
//! whatever runs and waits at most [`SHUTDOWN_WAIT`] for the thread.
//!
//! For tests of those paths, `LABTUI_FAULT` injects a fault into every run: `worker-panic`
//! (a panic on the worker thread), `pool-panic` (a panic on one of candle's pool threads, where
//! our kernels run) or `sampler-panic` (a panic on the system sampler's thread).

use crate::engine;
use crate::protocol::{Command, Event, Quant, Stamped};
use candle_core::Device;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

mod admit;
mod drafter;
mod jobs;
mod race;
mod race_remote;
pub mod remote;
mod route;
pub mod stamp;

use jobs::Local;

/// Name of the worker's thread.
pub const THREAD_NAME: &str = "labtui-worker";

/// The longest a dropped handle waits for the worker thread before leaving it to the process's end.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(1);

/// What the handle and the thread share to stop work without a message.
#[derive(Clone, Default)]
struct Flags {
    /// Stop the job in progress (the engine checks it; see [`engine::interrupt`]).
    pub(super) interrupt: Arc<AtomicBool>,
    /// A job that `Stop` interrupts is in progress (a run stops between tokens instead).
    pub(super) in_job: Arc<AtomicBool>,
    /// The handle is gone: take no more commands.
    pub(super) shutdown: Arc<AtomicBool>,
}

/// Marks a job in progress for as long as it lives (a panic included).
struct Job<'a>(&'a AtomicBool);

impl<'a> Job<'a> {
    pub(super) fn start(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::SeqCst);
        Self(flag)
    }
}

impl Drop for Job<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// A panic injected for tests (`LABTUI_FAULT`), by the thread it happens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Worker,
    Pool,
    Sampler,
}

impl Fault {
    fn from_env() -> Option<Self> {
        match std::env::var("LABTUI_FAULT").ok()?.as_str() {
            "worker-panic" => Some(Self::Worker),
            "pool-panic" => Some(Self::Pool),
            "sampler-panic" => Some(Self::Sampler),
            _ => None,
        }
    }
}

/// The UI's (or a headless command's) end of the worker.
pub struct Worker {
    pub commands: UnboundedSender<Command>,
    pub events: UnboundedReceiver<Stamped>,
    thread: Option<std::thread::JoinHandle<()>>,
    flags: Flags,
}

pub struct Options {
    pub device: Device,
    /// How often the system sampler reports; `None` runs no sampler.
    pub sample_every: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            device: engine::default_device(),
            sample_every: Some(Duration::from_millis(250)),
        }
    }
}

impl Worker {
    pub fn spawn(opts: Options) -> Self {
        let (cmd_tx, cmd_rx) = unbounded_channel();
        let (ev_tx, ev_rx) = unbounded_channel();
        let clock = Instant::now();
        let fault = Fault::from_env();
        if let Some(every) = opts.sample_every {
            let panic_after = (fault == Some(Fault::Sampler)).then_some(2);
            crate::sysmon::spawn(ev_tx.clone(), clock, every, panic_after);
        }
        let flags = Flags::default();
        let thread_flags = flags.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                engine::interrupt::install(thread_flags.interrupt.clone());
                let out = Outbox(crate::protocol::Stamper { tx: ev_tx, clock });
                let mut local = Local::new(opts.device, out, cmd_rx, thread_flags);
                local.fault = fault;
                local.run()
            })
            .expect("spawn the worker thread");
        Self {
            commands: cmd_tx,
            events: ev_rx,
            thread: Some(thread),
            flags,
        }
    }

    pub fn send(&self, c: Command) {
        // A job only hears Stop through the flag: it reads no commands while it works.
        if c == Command::Stop && self.flags.in_job.load(Ordering::SeqCst) {
            self.flags.interrupt.store(true, Ordering::SeqCst);
        }
        // The worker only goes away after Shutdown; a send after that has nobody to tell.
        let _ = self.commands.send(c);
    }

    pub fn send_all(&self, cs: impl IntoIterator<Item = Command>) {
        cs.into_iter().for_each(|c| self.send(c));
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.flags.shutdown.store(true, Ordering::SeqCst);
        self.flags.interrupt.store(true, Ordering::SeqCst);
        let _ = self.commands.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            // The engine stops within a layer; a step that still runs past the wait (a huge
            // matrix, a read from a slow disk) is left to end with the process.
            let deadline = Instant::now() + SHUTDOWN_WAIT;
            while !t.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
    }
}

/// The worker's end of the event channel: stamps each event with the session's clock.
#[derive(Clone)]
struct Outbox(crate::protocol::Stamper);

impl Outbox {
    pub(super) fn send(&self, event: Event) {
        // The UI only goes away at the end of the session; an event after that has nobody to tell.
        let _ = self.0.send(event);
    }

    /// A requantisation's progress callback: every eighth matrix (and the last) is told, enough
    /// for a progress bar.
    pub(super) fn requantizing(&self, quant: Quant) -> impl FnMut(usize, usize) + '_ {
        move |done, total| {
            if done % 8 == 0 || done == total {
                self.send(Event::Requantizing { quant, done, total });
            }
        }
    }
}

impl std::ops::Deref for Outbox {
    type Target = crate::protocol::Stamper;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}
