//! `bench record`: writing and loading a long recording.

use crate::app::args;
use anyhow::Result;
use clap::Args;
use std::time::Instant;

/// Seconds to write `events` token events to a recording (one flushed line each) and to load it.
pub fn record(args: &BenchRecordArgs) -> Result<()> {
    super::print_stamp(None, false);
    use crate::protocol::{Event, Phase, Stamped, TokenEvent};
    use std::time::Duration;
    let dir = std::env::temp_dir().join(format!("labtui-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.ron");
    let t = Instant::now();
    let mut r = crate::record::Recorder::create(
        &path,
        crate::record::Header::new(
            None,
            Default::default(),
            Default::default(),
            Default::default(),
        ),
    )?;
    for i in 0..args.events {
        let token = TokenEvent {
            index: i,
            id: (i * 7919 % 151_936) as u32,
            text: " token".into(),
            phase: Phase::Decode,
            prob: 0.5,
            elapsed: Duration::from_micros(i as u64 * 30_000),
            step: Duration::from_micros(30_000),
            kv_tokens: i,
            kv_bytes: i as u64 * 24_576,
        };
        r.event(&Stamped {
            at: Duration::from_micros(i as u64 * 30_000),
            event: Event::Token(token),
        })?;
    }
    drop(r);
    let write = t.elapsed();
    let bytes = std::fs::metadata(&path)?.len();
    let t = Instant::now();
    let rec = crate::record::load(&path)?;
    let read = t.elapsed();
    anyhow::ensure!(
        rec.events.len() == args.events,
        "read back {} of {} events",
        rec.events.len(),
        args.events
    );
    println!(
        "{} events, {}: write {:.3} s, read {:.3} s",
        args.events,
        crate::stats::human_bytes(bytes),
        write.as_secs_f64(),
        read.as_secs_f64()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct BenchRecordArgs {
    #[arg(long, default_value_t = 100_000, value_parser = args::count(1, args::MAX_EVENTS))]
    pub events: usize,
}
