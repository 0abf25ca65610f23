//! The narration's numbers: every value a demo's steps quote, named and formatted from the run
//! itself ([`facts`]), and the steps with them filled in ([`narrate`]). A preset's `notes` are
//! templates (`{decode_tok_s}`); the text a person reads cannot drift from the numbers measured.

mod decode_roofline;
mod flash;
mod sensitivity;
mod serving;
mod streams;

use crate::protocol::demo::{Comparison, ModelCosts, QuantSweep, Roofline, SpecSweep, Sweep};
use crate::protocol::{DemoResult, DemoRun, Stamp};
use crate::stats::millis;
use std::collections::BTreeMap;

/// Named values, formatted as the narration prints them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts(BTreeMap<String, String>);

pub(super) const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = MIB * 1024.0;

impl Facts {
    pub(super) fn set(&mut self, k: &str, v: impl Into<String>) {
        self.0.insert(k.to_string(), v.into());
    }

    pub(super) fn num(&mut self, k: &str, v: f64, digits: usize) {
        self.set(k, format!("{v:.digits$}"));
    }

    pub(super) fn pct(&mut self, k: &str, share: f64) {
        self.set(k, format!("{:.0}%", share * 100.0));
    }

    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

/// The `{name}`s of `template`.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { break };
        out.push(&rest[i + 1..i + j]);
        rest = &rest[i + j + 1..];
    }
    out
}

/// `template` with each `{name}` replaced by its fact; a name without one stays as written.
pub fn fill(template: &str, facts: &Facts) -> String {
    let mut s = template.to_string();
    for name in placeholders(template) {
        if let Some(v) = facts.get(name) {
            s = s.replace(&format!("{{{name}}}"), v);
        }
    }
    s
}

/// `template` filled from `facts`, with `missing` where a name has no fact (yet).
pub fn fill_or(template: &str, facts: &Facts, missing: &str) -> String {
    let mut s = fill(template, facts);
    for name in placeholders(&s.clone()) {
        s = s.replace(&format!("{{{name}}}"), missing);
    }
    s
}

/// The steps with this run's numbers in them.
pub fn narrate(steps: &[String], run: &DemoRun) -> Vec<String> {
    let f = facts(run);
    steps.iter().map(|t| fill(t, &f)).collect()
}

/// Every fact of a run: the machine's and the model's, then the demo's own.
pub fn facts(run: &DemoRun) -> Facts {
    let mut f = Facts::default();
    f.set("model", run.model.clone());
    f.num("threads", run.threads as f64, 0);
    let (s, c) = (run.stamp.as_deref(), run.costs.as_deref());
    if let Some(s) = s {
        machine(&mut f, s);
    }
    if let Some(c) = c {
        model(&mut f, c, s);
    }
    match &run.result {
        DemoResult::PrefillVsDecode(x) => sweep(&mut f, x, s, c),
        DemoResult::KvCache(x) => kv_cache(&mut f, x, c),
        DemoResult::Roofline(x) => roofline(&mut f, x),
        DemoResult::Speculation(x) => speculation(&mut f, x),
        DemoResult::Quantization(x) => quantization(&mut f, x, c),
        DemoResult::Batching(x) => streams::batching(&mut f, x),
        DemoResult::PagedKv(x) => streams::paged_kv(&mut f, x),
        DemoResult::Sensitivity(x) => sensitivity::sensitivity(&mut f, x),
        DemoResult::FlashAttention(x) => flash::flash(&mut f, x),
        DemoResult::DecodeRoofline(x) => decode_roofline::decode_roofline(&mut f, x),
        DemoResult::ServingMetrics(x) => serving::serving(&mut f, x),
    }
    f
}

fn machine(f: &mut Facts, s: &Stamp) {
    f.set("cpu", s.machine.cpu.clone());
    f.num("bandwidth", s.bandwidth_gb_s, 1);
    f.num("f32_gflops", s.f32_gflop_s, 0);
    f.num("q_gflops", s.q_gflop_s.unwrap_or(0.0), 0);
    f.num("peak_gflops", s.peak_gflop_s(), 0);
    f.num("balance", s.balance(), 1);
}

/// Context of the narration's decode step: a short prompt and a few tokens.
const DECODE_CONTEXT: usize = 64;

fn model(f: &mut Facts, c: &ModelCosts, s: Option<&Stamp>) {
    for (k, v) in [
        ("layers", c.layers),
        ("heads", c.heads),
        ("kv_heads", c.kv_heads),
        ("head_dim", c.head_dim),
        ("hidden", c.hidden),
    ] {
        f.num(k, v as f64, 0);
    }
    f.num("gqa", c.heads as f64 / c.kv_heads.max(1) as f64, 0);
    f.set("kv_dtype", c.kv_dtype.clone());
    f.num("kv_dtype_bytes", c.kv_dtype_bytes as f64, 0);
    f.num("kv_kib", c.kv_bytes_per_token as f64 / 1024.0, 1);
    f.num("weights_read_mib", c.weight_bytes_read as f64 / MIB, 1);
    f.num("weights_mib", c.weight_bytes as f64 / MIB, 1);
    let intensity = c.decode_flops(DECODE_CONTEXT) / c.decode_bytes(DECODE_CONTEXT);
    f.num("decode_intensity", intensity, 1);
    f.num("decode_mflop", c.decode_flops(DECODE_CONTEXT) / 1e6, 0);
    if let Some(s) = s {
        f.num(
            "decode_ceiling",
            s.bandwidth_gb_s * 1e9 / c.decode_bytes(DECODE_CONTEXT),
            1,
        );
        f.num("rows_at_balance", s.balance() / intensity, 0);
        f.set(
            "decode_bound",
            crate::lab::roofline::bound_by(intensity, s.balance()).to_string() + "-bound",
        );
    }
}

fn sweep(f: &mut Facts, x: &Sweep, s: Option<&Stamp>, c: Option<&ModelCosts>) {
    let (Some(first), Some(last)) = (x.prompts.first(), x.prompts.last()) else {
        return;
    };
    let peak = x
        .prompts
        .iter()
        .max_by(|a, b| a.prefill_tok_s.total_cmp(&b.prefill_tok_s))
        .unwrap_or(first);
    let ratios = x
        .prompts
        .iter()
        .map(|p| p.prefill_tok_s / p.decode_tok_s.max(f64::MIN_POSITIVE));
    let (lo, hi) = ratios.fold((f64::MAX, 0.0f64), |(l, h), r| (l.min(r), h.max(r)));
    f.num("prompt_min", first.prompt_tokens as f64, 0);
    f.num("prompt_max", last.prompt_tokens as f64, 0);
    f.num("prompt_peak", peak.prompt_tokens as f64, 0);
    f.num("prefill_ms_min", millis(first.prefill), 0);
    f.num("prefill_ms_max", millis(last.prefill), 0);
    f.num("prefill_tok_s_first", first.prefill_tok_s, 0);
    f.num("prefill_tok_s_peak", peak.prefill_tok_s, 0);
    f.num("prefill_tok_s_last", last.prefill_tok_s, 0);
    f.num("ratio_min", lo, 1);
    f.num("ratio_max", hi, 1);
    f.num("decode_tok_s_first", first.decode_tok_s, 1);
    f.num("decode_step_first", millis(first.decode_step), 1);
    f.num("decode_step_last", millis(last.decode_step), 1);
    f.num(
        "prefill_in_steps",
        millis(last.prefill) / millis(last.decode_step).max(1e-9),
        0,
    );
    f.num(
        "prefill_token_in_steps",
        millis(peak.decode_step) / 1e3 * peak.prefill_tok_s,
        0,
    );
    if let Some(o) = x.outputs.last() {
        f.num("output_max", o.output_tokens as f64, 0);
        f.pct("decode_share_max", o.decode_share);
    }
    f.num(
        "short_prompt",
        crate::lab::prefill_decode::SHORT_PROMPT as f64,
        0,
    );
    let Some(c) = c else { return };
    f.num(
        "kv_mib_last",
        (c.kv_bytes_per_token * last.prompt_tokens as u64) as f64 / MIB,
        1,
    );
    let share = c.attention_share(last.prompt_tokens);
    f.set("attn_share_max", format!("{:.1}%", share * 100.0));
    f.set("attn_crossover", thousands(c.attention_crossover()));
    let drop = 1.0 - last.prefill_tok_s / peak.prefill_tok_s.max(f64::MIN_POSITIVE);
    f.pct("prefill_drop", drop);
    f.set(
        "long_prefill",
        if drop > share + 0.1 {
            "more than attention's share of the FLOPs explains: at long prompts attention runs \
             below the matmuls' FLOP rate (f32 tiles against quantized products, and an \
             exponential per score); the flash-attention demo sets its tiles against the dense \
             score matrix"
        } else {
            "about what attention's share of the FLOPs explains"
        },
    );
    if let Some(s) = s {
        let pf = c.prefill_flops_per_token(peak.prompt_tokens);
        let ceiling = (s.peak_gflop_s() * 1e9 / pf)
            / (s.bandwidth_gb_s * 1e9 / c.decode_bytes(first.prompt_tokens));
        f.num("ceiling_ratio", ceiling, 0);
    }
}

/// 16638.6 → "16,639".
fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "∞".into();
    }
    let s = format!("{:.0}", v);
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn kv_cache(f: &mut Facts, x: &Comparison, c: Option<&ModelCosts>) {
    let (cached, uncached) = x.totals();
    f.num("prompt_tokens", x.prompt_tokens as f64, 0);
    f.num("generated", x.generated_tokens as f64, 0);
    f.num("cache_every", x.no_cache_every as f64, 0);
    f.num("with_total_s", cached.as_secs_f64(), 1);
    f.num("without_total_s", uncached.as_secs_f64(), 0);
    if let Some(g) = x.gaps.last() {
        f.num("last_ctx", g.context as f64, 0);
        f.num("with_ms_last", millis(g.cached), 1);
        f.num("without_ms_last", millis(g.no_cache), 0);
        f.num("ratio_last", g.ratio, 0);
    }
    if let Some(g) = x.gaps.first() {
        f.num("first_ctx", g.context as f64, 0);
        f.num("ratio_first", g.ratio, 1);
    }
    let same = x.compared - x.mismatches.len() - x.ties.len();
    f.num("same", same as f64, 0);
    f.num("compared", x.compared as f64, 0);
    let held_tokens = (x.prompt_tokens + x.generated_tokens).saturating_sub(1);
    f.num("held_tokens", held_tokens as f64, 0);
    f.num("held_mib", x.kv_bytes as f64 / MIB, 1);
    f.num("allocated_mib", x.kv_reserved_bytes as f64 / MIB, 1);
    f.num(
        "allocated_tokens",
        x.kv_reserved_bytes as f64 / x.kv_bytes_per_token.max(1) as f64,
        0,
    );
    f.num(
        "grow_tokens",
        crate::engine::kv_cache::GROW_TOKENS as f64,
        0,
    );
    let Some(c) = c else { return };
    let kib = |b: u64| format!("{:.1}", b as f64 / 1024.0);
    f.set("mha_kib", kib(c.kv_bytes_with(c.heads, c.kv_dtype_bytes)));
    f.set("mqa_kib", kib(c.kv_bytes_with(1, c.kv_dtype_bytes)));
    f.set("f16_kib", kib(c.kv_bytes_with(c.kv_heads, 2)));
    let scale = |b: u64| format!("{:.1}", (b * SCALE_SEQS * SCALE_CONTEXT) as f64 / GIB);
    f.set("scale_gib", scale(c.kv_bytes_per_token));
    f.set("scale_f16_gib", scale(c.kv_bytes_with(c.kv_heads, 2)));
    f.set("scale_mha_gib", scale(c.kv_bytes_with(c.heads, 2)));
    f.num("scale_seqs", SCALE_SEQS as f64, 0);
    f.set("scale_context", thousands(SCALE_CONTEXT as f64));
}

/// The scale-up the kv-cache demo's narration quotes: a server's batch at a long context.
pub const SCALE_SEQS: u64 = 32;
pub const SCALE_CONTEXT: u64 = 32_768;

fn roofline(f: &mut Facts, x: &Roofline) {
    let roof = x.working_set_gb_s.max(x.bandwidth_gb_s);
    let bal_f32 = x.matmul_f32_gflop_s / roof;
    let bal_q = x.matmul_q_gflop_s / roof;
    f.num("r_bandwidth", x.bandwidth_gb_s, 1);
    f.num("r_buffer_mib", (x.buffer_bytes >> 20) as f64, 0);
    f.num("r_roof_gb_s", roof, 1);
    f.num("r_f32", x.matmul_f32_gflop_s, 0);
    f.num("r_q", x.matmul_q_gflop_s, 0);
    f.num("balance_f32", bal_f32, 1);
    f.num("balance_q", bal_q, 1);
    f.set(
        "roof_used",
        if x.matmul_q_gflop_s >= x.matmul_f32_gflop_s {
            "the model's own quantized product, the faster of the two: it is what prefill runs"
        } else {
            "candle's f32 matmul, the faster of the two here"
        },
    );
    f.num("d_intensity", x.decode_intensity, 1);
    f.num("p_intensity", x.prefill_intensity, 0);
    let verdict = |i: f64| {
        let (a, b) = (i < bal_f32, i < bal_q);
        match (a, b) {
            (true, true) => "memory-bound under either roof",
            (false, false) => "compute-bound under either roof",
            (true, false) => {
                "memory-bound under the f32 roof, compute-bound under the quantized one"
            }
            (false, true) => {
                "compute-bound under the f32 roof, memory-bound under the quantized one"
            }
        }
    };
    f.set("decode_verdict", verdict(x.decode_intensity));
    f.set("prefill_verdict", verdict(x.prefill_intensity));
    f.num("d_mib", x.decode_bytes_per_token / MIB, 1);
    f.num("d_ceiling", x.decode_ceiling_tok_s, 1);
    f.num("d_tok_s", x.decode_tok_s, 1);
    f.pct("d_pct", x.decode_ratio);
    f.num("p_tokens", x.prefill_tokens as f64, 0);
    f.num("p_mflop", x.prefill_flops_per_token / 1e6, 0);
    f.num("p_ceiling", x.prefill_ceiling_tok_s, 0);
    f.num(
        "p_ceiling_f32",
        x.matmul_f32_gflop_s * 1e9 / x.prefill_flops_per_token.max(1.0),
        0,
    );
    f.num("p_tok_s", x.prefill_tok_s, 0);
    f.pct("p_pct", x.prefill_ratio);
}

fn speculation(f: &mut Facts, x: &SpecSweep) {
    f.num("plain_tok_s", x.plain_tok_s, 1);
    f.num("spec_prompt", x.prompt_tokens as f64, 0);
    f.num("spec_generated", x.generated_tokens as f64, 0);
    if let Some(b) = x
        .points
        .iter()
        .max_by(|a, b| a.speedup.total_cmp(&b.speedup))
    {
        f.set("best_mode", b.mode.to_string());
        f.num("best_k", b.k as f64, 0);
        f.set("best_speedup", format!("{:.2}×", b.speedup));
        f.pct("best_acceptance", b.acceptance);
        f.set(
            "verdict",
            if b.speedup > 1.05 {
                "pays here"
            } else {
                "does not pay here"
            },
        );
    }
    for (mode, key) in [
        (crate::protocol::DraftMode::PromptLookup, "lookup"),
        (crate::protocol::DraftMode::LayerSkip, "skip"),
    ] {
        let pts: Vec<_> = x.points.iter().filter(|p| p.mode == mode).collect();
        if pts.is_empty() {
            continue;
        }
        let list = |g: &dyn Fn(&crate::protocol::demo::SpecPoint) -> String| {
            pts.iter().map(|p| g(p)).collect::<Vec<_>>().join(", ")
        };
        f.set(&format!("{key}_ks"), list(&|p| p.k.to_string()));
        f.set(
            &format!("{key}_speedups"),
            list(&|p| format!("{:.2}×", p.speedup)),
        );
        f.set(
            &format!("{key}_acceptance"),
            list(&|p| format!("{:.0}%", p.acceptance * 100.0)),
        );
        // A step that makes `mean_accepted_len` tokens at `speedup` costs this many plain steps.
        f.set(
            &format!("{key}_step_cost"),
            list(&|p| format!("{:.1}", p.mean_accepted_len / p.speedup.max(1e-9))),
        );
    }
    let all = x.points.iter().all(|p| p.same_text);
    f.set("same_text", if all { "every" } else { "not every" });
}

/// A row's fact suffix: "as loaded" → "as_loaded", "as loaded, KV f16" → "as_loaded_kv_f16",
/// "Q4_K" stays.
fn key(t: &str) -> String {
    t.replace(", KV ", "_kv_").replace(' ', "_")
}

fn quantization(f: &mut Facts, x: &QuantSweep, c: Option<&ModelCosts>) {
    for r in &x.rows {
        let t = key(&super::type_label(&r.variant));
        f.num(&format!("tok_s_{t}"), r.decode_tok_s, 1);
        f.num(&format!("read_mib_{t}"), r.read_per_token as f64 / MIB, 0);
        f.set(&format!("kl_{t}"), format!("{:.4}", r.quality.mean_kl));
        f.set(
            &format!("top1_{t}"),
            format!("{:.1}%", r.quality.top1 * 100.0),
        );
        f.num(&format!("ppl_{t}"), r.quality.perplexity, 2);
        if let Some(c) = c {
            f.num(&format!("bpw_{t}"), c.bits_per_weight(r.read_per_token), 2);
        }
        let fb: Vec<String> = r
            .variant
            .fallbacks
            .iter()
            .map(|x| format!("{} matrices fell back to {}", x.tensors, x.used))
            .collect();
        f.set(
            &format!("fb_{t}"),
            if fb.is_empty() {
                "no fallbacks".to_string()
            } else {
                fb.join(", ")
            },
        );
    }
    f.num("scored", x.scored as f64, 0);
    let mut by_bytes: Vec<_> = x.rows.iter().collect();
    by_bytes.sort_by_key(|r| r.read_per_token);
    // Rows that ran slower than a row reading more bytes.
    let off: Vec<String> = by_bytes
        .iter()
        .enumerate()
        .filter(|(i, r)| {
            by_bytes[i + 1..]
                .iter()
                .any(|b| b.decode_tok_s > r.decode_tok_s)
        })
        .map(|(_, r)| r.variant.quant.to_string())
        .collect();
    f.set(
        "follows",
        if off.is_empty() {
            "decode speed follows the bytes: each type that reads fewer bytes per token decodes faster".to_string()
        } else {
            format!(
                "decode speed mostly follows the bytes, but {} ran slower than a type that reads more bytes: {} the weights at a cost the bytes saved do not repay",
                off.join(" and "),
                if off.len() == 1 { "its product unpacks" } else { "their products unpack" }
            )
        },
    );
    let gbs = x.rows.iter().map(|r| r.decode_gb_s());
    let (lo, hi) = gbs.fold((f64::MAX, 0.0f64), |(l, h), g| (l.min(g), h.max(g)));
    f.num("gb_s_min", lo, 0);
    f.num("gb_s_max", hi, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_take_the_facts_and_keep_unknown_names() {
        let mut f = Facts::default();
        f.num("a", 1.234, 1);
        f.set("b", "two");
        assert_eq!(fill("x {a} y {b} z {c}", &f), "x 1.2 y two z {c}");
        assert_eq!(fill_or("{a} {c}", &f, "…"), "1.2 …");
        assert_eq!(placeholders("{a} and {b}"), vec!["a", "b"]);
        assert_eq!(thousands(16638.6), "16,639");
        assert_eq!(thousands(999.0), "999");
    }
}
