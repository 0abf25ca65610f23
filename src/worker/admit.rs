//! Memory admission: before loading a model, switching its weights or starting a run, estimate
//! the bytes it needs and refuse, with the numbers, when the machine does not have them. A refusal
//! loses nothing: the model that runs keeps running.

use crate::engine::footprint::prefill_bytes;
use crate::engine::Engine;
use crate::protocol::Quant;

pub use crate::engine::footprint::check;

/// Bytes a load needs: the file's weights (freed weights of the model it replaces count as
/// available).
pub fn load_bytes(file_bytes: u64) -> u64 {
    file_bytes
}

/// Bytes a switch to `q` needs beyond what stays: the variant's weights (the loaded weights are
/// kept beside it; a variant running now is freed first).
pub fn switch_bytes(engine: &Engine, q: Quant) -> u64 {
    crate::engine::quant::variant_bytes(engine.loaded_model(), q)
}

/// Bytes a run needs: its KV cache grown to its prompt and `max_tokens` (at most the context;
/// sliding-window layers hold their window), and what its prefill holds while it runs (activations and attention scratch, tiled or dense as
/// the run will take it).
pub fn run_bytes(engine: &Engine, prompt_tokens: usize, max_tokens: usize) -> u64 {
    let context = engine.info.context_length;
    let tokens = prompt_tokens.saturating_add(max_tokens).min(context) as u64;
    let m = &engine.model;
    let kv = m.kv_bytes(tokens as usize, engine.info.kv_bytes_per_token);
    let how = m.prompt_attention(engine.cache.dtype());
    // A chunked prefill's peak is its last chunk's, which attends over everything before it.
    let prompt = prompt_tokens.min(context);
    let last = match m.prefill_chunk() {
        Some(c) if prompt > c => prompt - (prompt - 1) / c * c,
        _ => prompt,
    };
    kv + prefill_bytes(&m.cfg, how, last, prompt - last, engine.info.threads)
}

pub use crate::sysmon::available_for_runs as available;

/// Check `need` against the available memory, when the machine says what that is.
pub fn available_or_unknown(what: &str, need: u64, freed: u64) -> Result<(), String> {
    match available() {
        Some(a) => check(what, need, a.saturating_add(freed)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_both_numbers() {
        assert!(check("loading x", 100 << 20, 1 << 30).is_ok());
        let e = check("loading x", 2 << 30, 1 << 30).unwrap_err();
        assert!(
            e.contains("loading x needs about 2.00 GiB")
                && e.contains("1.00 GiB of memory is available"),
            "{e}"
        );
    }
}
