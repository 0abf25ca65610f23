//! The decode-roofline demo's tables: every grid point's step, bytes, FLOPs, attained bandwidth
//! and compute (MBU, MFU), and the verification passes beside one decode step.

use crate::protocol::decode_roofline::{DecodeRoofline, StepCost};
use crate::report::table::{
    Cell::{Count, Ms, Num, Percent, Text},
    Column, Table,
};
use crate::stats::human_bytes;

fn row(t: &mut Table, x: &DecodeRoofline, p: &StepCost) {
    t.row([
        Count(p.batch as u64),
        Count(p.context as u64),
        Count(p.rows as u64),
        Ms(p.step),
        Num(p.tok_s(), 1),
        Text(human_bytes(p.bytes as u64)),
        Num(p.intensity(), 2),
        Num(p.gb_s(), 1),
        Num(p.gflop_s(), 1),
        Percent(x.mbu(p), 0),
        Percent(x.mfu(p), 1),
    ]);
}

fn columns() -> Vec<Column> {
    vec![
        Column::right("batch"),
        Column::right("context"),
        Column::right("rows per sequence")
            .short("rows")
            .markdown_only(),
        Column::right("step ms").short("ms"),
        Column::right("tok/s"),
        Column::right("bytes read").short("bytes"),
        Column::right("FLOP/byte"),
        Column::right("GB/s"),
        Column::right("GFLOP/s"),
        Column::right("MBU"),
        Column::right("MFU"),
    ]
}

fn grid_table(x: &DecodeRoofline) -> Table {
    let mut t = Table::new(columns());
    for p in &x.points {
        row(&mut t, x, p);
    }
    t.above(format!(
        "roofs: {:.1} GB/s · f32 {:.0} GFLOP/s · quantized {:.0} GFLOP/s · balance {:.1} FLOP/byte",
        x.bandwidth_gb_s,
        x.f32_gflop_s,
        x.q_gflop_s,
        x.balance()
    ))
}

fn verify_table(x: &DecodeRoofline) -> Table {
    let mut t = Table::new(columns()).report_only();
    if let Some(one) = x
        .points
        .iter()
        .find(|p| p.batch == 1 && Some(p.context) == x.verify.first().map(|v| v.context))
    {
        row(&mut t, x, one);
    }
    for p in &x.verify {
        row(&mut t, x, p);
    }
    t
}

pub(super) fn tables(x: &DecodeRoofline) -> Vec<Table> {
    vec![grid_table(x), verify_table(x)]
}

pub(super) fn markdown(x: &DecodeRoofline) -> String {
    let mut skipped = String::new();
    for (b, c, why) in &x.skipped {
        let what = match b {
            0 => format!("context {c}"),
            _ => format!("batch {b} at context {c}"),
        };
        skipped.push_str(&format!("- {what}: {why}\n"));
    }
    format!(
        "## Decode over batch and context\n\n{}\n\
         Bytes are the weights read once ({}) and every sequence's KV cache ({} per token); \
         FLOPs are 2 per weight per row and attention over the context. MBU and MFU are the \
         shares of the measured bandwidth and compute roofs a step attains.\n\n\
         ## Verification passes\n\nOne sequence, K + 1 rows in one pass, beside its one-row \
         decode step.\n\n{}{}",
        grid_table(x).markdown(),
        human_bytes(x.weight_bytes_read),
        human_bytes(x.kv_bytes_per_token),
        verify_table(x).markdown(),
        match skipped.is_empty() {
            true => String::new(),
            false => format!("\n### Not run\n\n{skipped}"),
        }
    )
}

/// The roofline, log-log: the bandwidth slope up to each compute roof, one line per context
/// through its batch sizes, and the verification passes.
pub(super) fn charts(x: &DecodeRoofline) -> Vec<super::Chart> {
    use crate::report::plot::{Axes, Series};
    let all = x.points.iter().chain(&x.verify);
    let lo = all
        .clone()
        .map(|p| p.intensity())
        .fold(f64::MAX, f64::min)
        .min(1.0)
        / 2.0;
    let hi = all
        .map(|p| p.intensity())
        .fold(0.0, f64::max)
        .max(x.balance())
        * 4.0;
    let bw = x.bandwidth_gb_s;
    let roof = |name: &str, peak: f64| Series {
        name: name.into(),
        points: vec![(lo, bw * lo), (peak / bw.max(1e-9), peak), (hi, peak)],
        labels: Vec::new(),
    };
    let mut series = vec![
        roof("roof: the model's quantized product", x.q_gflop_s),
        roof("roof: f32 matmul", x.f32_gflop_s),
    ];
    let mut contexts: Vec<usize> = x.points.iter().map(|p| p.context).collect();
    contexts.dedup();
    for c in contexts {
        let of: Vec<&StepCost> = x.points.iter().filter(|p| p.context == c).collect();
        series.push(Series {
            name: format!("decode at {c} tokens"),
            points: of.iter().map(|p| (p.intensity(), p.gflop_s())).collect(),
            labels: of.iter().map(|p| format!("B={}", p.batch)).collect(),
        });
    }
    if !x.verify.is_empty() {
        series.push(Series {
            name: "verify K + 1 rows".into(),
            points: x
                .verify
                .iter()
                .map(|p| (p.intensity(), p.gflop_s()))
                .collect(),
            labels: x
                .verify
                .iter()
                .map(|p| format!("K={}", p.rows - 1))
                .collect(),
        });
    }
    vec![super::Chart {
        stem: "roofline".into(),
        title: "Decode on the roofline: batch and context".into(),
        x: "arithmetic intensity (FLOP/byte, log)",
        y: "GFLOP/s (log)",
        series,
        axes: Axes {
            log_x: true,
            log_y: true,
            scatter: false,
        },
    }]
}
