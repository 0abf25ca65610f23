//! `bench engine --profile`: where a prefill's and a decode step's time goes, by operation
//! ([`crate::engine::profile`]): calls and milliseconds per step, share of the step, and for the
//! products and the head the weight bytes and FLOPs they moved, as GB/s and GFLOP/s against the
//! machine's measured roofs (the bandwidth roof and the model's own quantized product).

use crate::engine::profile::{self, Op};
use crate::engine::{Engine, Forward};
use crate::lab::measure::bench_tokens;
use crate::protocol::Stamp;
use crate::report::table::{
    Cell::{self, Count, Num, Percent, Text},
    Column, Table,
};
use anyhow::Result;
use std::time::{Duration, Instant};

/// Profile a `pp`-token prefill and `tg` decode steps after it (each after an unprofiled
/// warm-up) and print both tables.
pub fn print(eng: &Engine, pp: usize, tg: usize, stamp: Option<&Stamp>) -> Result<()> {
    let m = &eng.model;
    let ids = bench_tokens(pp + tg + 2, eng.info.vocab);
    let mut cache = m.new_cache(eng.cache.dtype());
    m.forward(&ids[..pp], &mut cache, Forward::LAST)?;
    cache.clear();
    profile::start();
    let t = Instant::now();
    m.forward(&ids[..pp], &mut cache, Forward::LAST)?;
    let prefill = (t.elapsed(), profile::stop());
    for &id in &ids[pp..pp + 2] {
        m.forward(&[id], &mut cache, Forward::LAST)?;
    }
    profile::start();
    let t = Instant::now();
    for &id in &ids[pp + 2..] {
        m.forward(&[id], &mut cache, Forward::LAST)?;
    }
    let decode = (t.elapsed(), profile::stop());
    println!(
        "\n### Where a prefill of {pp} tokens goes\n\n{}",
        table(prefill.0, 1, &prefill.1, stamp).markdown()
    );
    println!(
        "\n### Where a decode step goes (mean of {tg} steps after {pp} tokens)\n\n{}",
        table(decode.0, tg as u64, &decode.1, stamp).markdown()
    );
    println!(
        "Each line is wall time on the thread that runs the pass (candle's pool works inside an \
         operation). The rest is what falls between the lines: the embedding gather, residual \
         adds and tensor glue. Sampling is not part of a pass."
    );
    Ok(())
}

/// A rate and its share of `roof`, or dashes. A rate under 1 keeps three digits, so that a
/// small model's (a few KiB over a slow step) does not print as 0.0.
fn rate(v: Option<f64>, roof: Option<f64>) -> [Cell; 2] {
    match v {
        Some(v) => [
            Num(v, if v < 1.0 { 3 } else { 1 }),
            roof.filter(|r| *r > 0.0)
                .map_or(Text("–".into()), |r| Percent(v / r, 0)),
        ],
        None => [Text("–".into()), Text("–".into())],
    }
}

fn table(total: Duration, steps: u64, ops: &[Op], stamp: Option<&Stamp>) -> Table {
    let mut t = Table::new([
        Column::left("operation"),
        Column::right("calls/step"),
        Column::right("ms/step"),
        Column::right("share"),
        Column::right("GB/s"),
        Column::right("of bandwidth roof"),
        Column::right("GFLOP/s"),
        Column::right("of compute roof"),
    ]);
    let steps = steps.max(1);
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / steps as f64;
    let share = |d: Duration| d.as_secs_f64() / total.as_secs_f64().max(1e-12);
    let bandwidth = stamp.map(|s| s.bandwidth_gb_s);
    let compute = stamp.map(Stamp::peak_gflop_s);
    let mut rows: Vec<&Op> = ops.iter().collect();
    rows.sort_by_key(|o| std::cmp::Reverse(o.time));
    for o in rows {
        let [gb, gb_roof] = rate(o.gb_s(), bandwidth);
        let [gf, gf_roof] = rate(o.gflop_s(), compute);
        t.row([
            Text(o.name.into()),
            Num(o.calls as f64 / steps as f64, 0),
            Num(ms(o.time), 3),
            Percent(share(o.time), 1),
            gb,
            gb_roof,
            gf,
            gf_roof,
        ]);
    }
    let counted: Duration = ops.iter().map(|o| o.time).sum();
    let rest = total.saturating_sub(counted);
    t.row([
        Text("rest".into()),
        Text("–".into()),
        Num(ms(rest), 3),
        Percent(share(rest), 1),
        Text("–".into()),
        Text("–".into()),
        Text("–".into()),
        Text("–".into()),
    ]);
    let bytes: u64 = ops.iter().map(|o| o.bytes).sum();
    let [gb, gb_roof] = rate(
        Some(bytes as f64 / total.as_secs_f64().max(1e-12) / 1e9),
        bandwidth,
    );
    t.row([
        Text("the whole pass".into()),
        Count(1),
        Num(ms(total), 3),
        Percent(1.0, 0),
        gb,
        gb_roof,
        Text("–".into()),
        Text("–".into()),
    ]);
    t
}
