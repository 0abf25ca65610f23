//! The metric names each engine exports and the [`ServerSample`] field each one fills: one row
//! per name, so an engine's rename or a newly captured body is a row added here.
//!
//! Matched against the engines' own sources:
//! - vLLM v1 (`vllm/v1/metrics/loggers.py`, `vllm/v1/spec_decode/metrics.py`, 0.9–0.11): counters
//!   are `prometheus_client` counters, exposed with a `_total` suffix and the labels
//!   `model_name`, `engine` (one series per data-parallel engine); `vllm:gpu_cache_usage_perc`,
//!   `vllm:gpu_prefix_cache_*` are the names deprecated in 0.9; `vllm:gpu_prefix_cache_hit_rate`
//!   and `vllm:spec_decode_draft_acceptance_rate` are v0's gauges.
//! - TGI (`router/src/server.rs`, `docs/source/reference/metrics.md`, 3.x): the `metrics` crate's
//!   exporter; `tgi_request_input_length` and `tgi_request_generated_tokens` are histograms
//!   observed when a request ends, so their `_sum` grows in steps. TGI exports no KV-cache usage.
//! - llama.cpp `llama-server --metrics` (`tools/server/server-task.cpp`, the source vendored by
//!   llama-cpp-python 0.3.36): `prompt_tokens_total` excludes cached prompt tokens, which
//!   `prompt_tokens_cached_total` counts; values are printed with 6 significant digits, so a
//!   counter past a million moves in steps of ten or more. `kv_cache_usage_ratio` and
//!   `kv_cache_tokens` are older builds' gauges (gone since the KV cache was unified).
//! - SGLang (`python/sglang/srt/metrics/collector.py`, 0.5): token counters grow when a request
//!   finishes; `sglang:token_usage`, `cache_hit_rate`, `gen_throughput` and the `spec_accept_*`
//!   gauges are the scheduler's own.
//! - labtui (`src/serve/server/metrics.rs`): vLLM's names under `labtui:`.

use crate::protocol::{ServerEngine, ServerSample};

/// Which series of a family a field takes, when labels split it (data-parallel engines,
/// tensor-parallel ranks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduce {
    /// Counts and throughputs add up.
    Sum,
    /// Shares (usage, hit rate, acceptance) are averaged.
    Mean,
    /// One sum per value of the `position` label (speculative acceptance by draft position).
    ByPosition,
}

/// A field of [`ServerSample`] a metric can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    KvUsage,
    KvTokens,
    Running,
    Waiting,
    PromptTokens,
    GenerationTokens,
    PrefixHits,
    PrefixQueries,
    SpecDrafts,
    SpecDraftTokens,
    SpecAccepted,
    SpecAcceptedPerPos,
    GenerationTokS,
    PromptTokS,
    PrefixHitRate,
    SpecAcceptLength,
    SpecAcceptRate,
}

impl Field {
    /// The field's name in [`ServerSample`] (and in its `sources`).
    pub fn name(self) -> &'static str {
        match self {
            Field::KvUsage => "kv_usage",
            Field::KvTokens => "kv_tokens",
            Field::Running => "running",
            Field::Waiting => "waiting",
            Field::PromptTokens => "prompt_tokens",
            Field::GenerationTokens => "generation_tokens",
            Field::PrefixHits => "prefix_hits",
            Field::PrefixQueries => "prefix_queries",
            Field::SpecDrafts => "spec_drafts",
            Field::SpecDraftTokens => "spec_draft_tokens",
            Field::SpecAccepted => "spec_accepted",
            Field::SpecAcceptedPerPos => "spec_accepted_per_pos",
            Field::GenerationTokS => "generation_tok_s",
            Field::PromptTokS => "prompt_tok_s",
            Field::PrefixHitRate => "prefix_hit_rate",
            Field::SpecAcceptLength => "spec_accept_length",
            Field::SpecAcceptRate => "spec_accept_rate",
        }
    }

    pub fn reduce(self) -> Reduce {
        match self {
            Field::KvUsage
            | Field::PrefixHitRate
            | Field::SpecAcceptLength
            | Field::SpecAcceptRate => Reduce::Mean,
            Field::SpecAcceptedPerPos => Reduce::ByPosition,
            _ => Reduce::Sum,
        }
    }

    /// The scalar slot of a sample this field fills (`None` for the per-position vector).
    pub fn slot(self, s: &mut ServerSample) -> Option<&mut Option<f64>> {
        Some(match self {
            Field::KvUsage => &mut s.kv_usage,
            Field::KvTokens => &mut s.kv_tokens,
            Field::Running => &mut s.running,
            Field::Waiting => &mut s.waiting,
            Field::PromptTokens => &mut s.prompt_tokens,
            Field::GenerationTokens => &mut s.generation_tokens,
            Field::PrefixHits => &mut s.prefix_hits,
            Field::PrefixQueries => &mut s.prefix_queries,
            Field::SpecDrafts => &mut s.spec_drafts,
            Field::SpecDraftTokens => &mut s.spec_draft_tokens,
            Field::SpecAccepted => &mut s.spec_accepted,
            Field::SpecAcceptedPerPos => return None,
            Field::GenerationTokS => &mut s.generation_tok_s,
            Field::PromptTokS => &mut s.prompt_tok_s,
            Field::PrefixHitRate => &mut s.prefix_hit_rate,
            Field::SpecAcceptLength => &mut s.spec_accept_length,
            Field::SpecAcceptRate => &mut s.spec_accept_rate,
        })
    }
}

/// One row: an engine's metric (or metrics added together) that fills a field. For one field the
/// first row whose metrics are all present wins, so a current name comes before an older one.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub engine: ServerEngine,
    pub field: Field,
    /// Metric names as exposed (a counter's `_total` included); more than one are added up.
    pub names: &'static [&'static str],
}

/// The prefix that names each engine's metrics.
pub const PREFIXES: [(&str, ServerEngine); 5] = [
    ("vllm:", ServerEngine::Vllm),
    ("tgi_", ServerEngine::Tgi),
    ("llamacpp:", ServerEngine::LlamaCpp),
    ("sglang:", ServerEngine::Sglang),
    ("labtui:", ServerEngine::Labtui),
];

const fn row(engine: ServerEngine, field: Field, names: &'static [&'static str]) -> Metric {
    Metric {
        engine,
        field,
        names,
    }
}

use Field::*;
use ServerEngine::{Labtui, LlamaCpp, Sglang, Tgi, Vllm};

#[rustfmt::skip]
pub const METRICS: &[Metric] = &[
    // labtui serve (vLLM's names under its own prefix)
    row(Labtui, KvUsage, &["labtui:kv_cache_usage_perc"]),
    row(Labtui, Running, &["labtui:num_requests_running"]),
    row(Labtui, Waiting, &["labtui:num_requests_waiting"]),
    row(Labtui, PromptTokens, &["labtui:prompt_tokens_total"]),
    row(Labtui, GenerationTokens, &["labtui:generation_tokens_total"]),
    row(Labtui, PrefixHits, &["labtui:prefix_cache_hits_total"]),
    row(Labtui, PrefixQueries, &["labtui:prefix_cache_queries_total"]),
    // vLLM
    row(Vllm, KvUsage, &["vllm:kv_cache_usage_perc"]),
    row(Vllm, KvUsage, &["vllm:gpu_cache_usage_perc"]),
    row(Vllm, Running, &["vllm:num_requests_running"]),
    row(Vllm, Waiting, &["vllm:num_requests_waiting"]),
    row(Vllm, PromptTokens, &["vllm:prompt_tokens_total"]),
    row(Vllm, GenerationTokens, &["vllm:generation_tokens_total"]),
    row(Vllm, PrefixHits, &["vllm:prefix_cache_hits_total"]),
    row(Vllm, PrefixHits, &["vllm:gpu_prefix_cache_hits_total"]),
    row(Vllm, PrefixQueries, &["vllm:prefix_cache_queries_total"]),
    row(Vllm, PrefixQueries, &["vllm:gpu_prefix_cache_queries_total"]),
    row(Vllm, PrefixHitRate, &["vllm:gpu_prefix_cache_hit_rate"]),
    row(Vllm, SpecDrafts, &["vllm:spec_decode_num_drafts_total"]),
    row(Vllm, SpecDraftTokens, &["vllm:spec_decode_num_draft_tokens_total"]),
    row(Vllm, SpecAccepted, &["vllm:spec_decode_num_accepted_tokens_total"]),
    row(Vllm, SpecAcceptedPerPos, &["vllm:spec_decode_num_accepted_tokens_per_pos_total"]),
    row(Vllm, SpecAcceptRate, &["vllm:spec_decode_draft_acceptance_rate"]),
    // TGI
    row(Tgi, Running, &["tgi_batch_current_size"]),
    row(Tgi, Waiting, &["tgi_queue_size"]),
    row(Tgi, PromptTokens, &["tgi_request_input_length_sum"]),
    row(Tgi, GenerationTokens, &["tgi_request_generated_tokens_sum"]),
    // llama.cpp
    row(LlamaCpp, KvUsage, &["llamacpp:kv_cache_usage_ratio"]),
    row(LlamaCpp, KvTokens, &["llamacpp:kv_cache_tokens"]),
    row(LlamaCpp, Running, &["llamacpp:requests_processing"]),
    row(LlamaCpp, Waiting, &["llamacpp:requests_deferred"]),
    row(LlamaCpp, PromptTokens, &["llamacpp:prompt_tokens_total"]),
    row(LlamaCpp, GenerationTokens, &["llamacpp:tokens_predicted_total"]),
    row(LlamaCpp, PrefixHits, &["llamacpp:prompt_tokens_cached_total"]),
    row(LlamaCpp, PrefixQueries, &["llamacpp:prompt_tokens_total", "llamacpp:prompt_tokens_cached_total"]),
    row(LlamaCpp, SpecDrafts, &["llamacpp:spec_decode_num_drafts_total"]),
    row(LlamaCpp, SpecDraftTokens, &["llamacpp:spec_decode_num_draft_tokens_total"]),
    row(LlamaCpp, SpecAccepted, &["llamacpp:spec_decode_num_accepted_tokens_total"]),
    row(LlamaCpp, SpecAcceptedPerPos, &["llamacpp:spec_decode_num_accepted_tokens_per_pos_total"]),
    row(LlamaCpp, GenerationTokS, &["llamacpp:predicted_tokens_seconds"]),
    row(LlamaCpp, PromptTokS, &["llamacpp:prompt_tokens_seconds"]),
    // SGLang
    row(Sglang, KvUsage, &["sglang:token_usage"]),
    row(Sglang, KvTokens, &["sglang:num_used_tokens"]),
    row(Sglang, Running, &["sglang:num_running_reqs"]),
    row(Sglang, Waiting, &["sglang:num_queue_reqs"]),
    row(Sglang, PromptTokens, &["sglang:prompt_tokens_total"]),
    row(Sglang, GenerationTokens, &["sglang:generation_tokens_total"]),
    row(Sglang, PrefixHits, &["sglang:cached_tokens_total"]),
    row(Sglang, PrefixQueries, &["sglang:prompt_tokens_total"]),
    row(Sglang, PrefixHitRate, &["sglang:cache_hit_rate"]),
    row(Sglang, GenerationTokS, &["sglang:gen_throughput"]),
    row(Sglang, SpecAcceptLength, &["sglang:spec_accept_length"]),
    row(Sglang, SpecAcceptRate, &["sglang:spec_accept_rate"]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_carries_its_engines_prefix() {
        for m in METRICS {
            let prefix = PREFIXES.iter().find(|(_, e)| *e == m.engine).unwrap().0;
            for n in m.names {
                assert!(n.starts_with(prefix), "{n} is listed for {}", m.engine);
            }
        }
    }
}
