//! The roofline demo's tables: this machine's two roofs, the model against them, and the pane's
//! short version of both.

use crate::lab::roofline::bound_by;
use crate::protocol::demo::Roofline;
use crate::report::table::{
    Cell::{Num, Percent},
    Column, Table,
};
use crate::stats::human_bytes;

/// What was measured on this machine: bandwidth, matmul speed, their balance.
fn machine_table(x: &Roofline) -> Table {
    let (m, k, n) = x.matmul_shape;
    let mut machine = Table::new([Column::left("measured"), Column::right("value")]).report_only();
    machine
        .row([
            format!(
                "read bandwidth ({} MiB, {} threads)",
                x.buffer_bytes >> 20,
                x.threads
            ),
            format!("{:.1} GB/s", x.bandwidth_gb_s),
        ])
        .row([
            format!("f32 matmul {m}×{k}×{n}"),
            format!("{:.1} GFLOP/s", x.matmul_f32_gflop_s),
        ])
        .row([
            "the model's quantized FFN gate, same shape".into(),
            format!("{:.1} GFLOP/s", x.matmul_q_gflop_s),
        ])
        .row([
            "machine balance (peak FLOP/s ÷ bytes/s)".into(),
            format!("{:.1} FLOP/byte", x.machine_balance),
        ]);
    if x.working_set_bytes > 0 {
        machine.row([
            format!(
                "read bandwidth at decode's working set ({}): the decode roof",
                human_bytes(x.working_set_bytes)
            ),
            format!("{:.1} GB/s", x.working_set_gb_s),
        ]);
    }
    machine
}

/// Decode and prefill against the roofs: cost, intensity, ceiling and measured speed.
fn model_table(x: &Roofline) -> Table {
    let mut model = Table::new([
        Column::left(""),
        Column::right("decode"),
        Column::right(format!("prefill ({} tokens)", x.prefill_tokens)),
    ])
    .report_only();
    let bound = |i| bound_by(i, x.machine_balance).to_string();
    let tok_s = |v: f64| format!("{v:.1} tok/s");
    model
        .row([
            "cost per token".into(),
            format!(
                "{} read ({:.1} MFLOP)",
                human_bytes(x.decode_bytes_per_token as u64),
                x.decode_flops_per_token / 1e6
            ),
            format!("{:.1} MFLOP", x.prefill_flops_per_token / 1e6),
        ])
        .row([
            "arithmetic intensity".into(),
            format!("{:.1} FLOP/byte", x.decode_intensity),
            format!("{:.1} FLOP/byte", x.prefill_intensity),
        ])
        .row([
            "bound by".into(),
            bound(x.decode_intensity),
            bound(x.prefill_intensity),
        ])
        .row([
            "ceiling".into(),
            tok_s(x.decode_ceiling_tok_s),
            tok_s(x.prefill_ceiling_tok_s),
        ])
        .row([
            "measured".into(),
            tok_s(x.decode_tok_s),
            tok_s(x.prefill_tok_s),
        ])
        .row([
            "fraction of the ceiling".into(),
            format!("{:.0}%", x.decode_ratio * 100.0),
            format!("{:.0}%", x.prefill_ratio * 100.0),
        ]);
    model
}

/// The pane's roofline: ceilings against measured speed, between a line on each roof and one on
/// the intensities.
fn pane_table(x: &Roofline) -> Table {
    let mut t = Table::new(
        [
            Column::left(""),
            Column::right("ceiling"),
            Column::right("measured"),
            Column::right("of ceiling"),
        ]
        .map(Column::pane_only),
    );
    t.row([
        "decode tok/s".into(),
        Num(x.decode_ceiling_tok_s, 1),
        Num(x.decode_tok_s, 1),
        Percent(x.decode_ratio, 0),
    ])
    .row([
        "prefill tok/s".into(),
        Num(x.prefill_ceiling_tok_s, 1),
        Num(x.prefill_tok_s, 1),
        Percent(x.prefill_ratio, 0),
    ]);
    t.above(format!(
        "bandwidth {:.1} GB/s{} · matmul {:.1} GFLOP/s (f32 {:.1}, quantized {:.1})",
        x.bandwidth_gb_s,
        cached_bandwidth(x),
        x.peak_gflop_s,
        x.matmul_f32_gflop_s,
        x.matmul_q_gflop_s
    ))
    .below(format!(
        "FLOP per byte: machine {:.1} · decode {:.1} ({}-bound) · prefill {:.0} ({}-bound)",
        x.machine_balance,
        x.decode_intensity,
        bound_by(x.decode_intensity, x.machine_balance),
        x.prefill_intensity,
        bound_by(x.prefill_intensity, x.machine_balance)
    ))
}

/// The bandwidth the decode roof uses when decode's working set fits in a cache.
fn cached_bandwidth(x: &Roofline) -> String {
    if x.working_set_gb_s > x.bandwidth_gb_s * 1.2 {
        format!(
            " ({:.1} GB/s at decode's {}: in cache)",
            x.working_set_gb_s,
            human_bytes(x.working_set_bytes)
        )
    } else {
        String::new()
    }
}

pub(super) fn tables(x: &Roofline) -> [Table; 3] {
    [machine_table(x), model_table(x), pane_table(x)]
}

pub(super) fn markdown(x: &Roofline) -> String {
    format!(
        "## This machine\n\n{}\n## The model against the roofs\n\n{}\n\
         Decode bytes per token: {} of weights + {} of KV cache per token × {} tokens of context.\n",
        machine_table(x).markdown(),
        model_table(x).markdown(),
        human_bytes(x.weight_bytes_read),
        human_bytes(x.kv_bytes_per_token),
        x.decode_context,
    )
}
