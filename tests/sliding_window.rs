//! Gemma 3's sliding-window layers keep only their window in the KV cache: a long prompt and
//! decode steps give, bitwise, the logits of a cache that holds every position, while those
//! layers hold the window, a prefill chunk and the slack at most; speculative rollbacks within
//! the slack still find what the next step reads; memory admission counts the window.

mod common;

use candle_core::DType;
use common::engine::gemma3_window;
use labtui::engine::kv_cache::{KvCache, BLOCK_TOKENS, WINDOW_SLACK};
use labtui::engine::{Engine, Forward, Model};
use labtui::lab::measure::bench_tokens;

const WINDOW: usize = 8;

/// A cache of `e`'s shape that keeps every position in every layer (what the engine did before
/// sliding layers kept only their window).
fn full_cache(e: &Engine) -> KvCache {
    let c = &e.model.cfg;
    KvCache::new(
        c.layers,
        c.kv_heads,
        c.head_dim,
        c.context_length,
        DType::F32,
        &candle_core::Device::Cpu,
    )
}

fn step(model: &Model, t: u32, cache: &mut KvCache) -> Vec<f32> {
    Model::last_logits(&model.forward(&[t], cache, Forward::LAST).unwrap()).unwrap()
}

#[test]
fn window_layers_hold_their_window_and_give_the_full_cache_s_logits() {
    let (e, _, _dir) = gemma3_window(WINDOW as u32);
    let m = &e.model;
    let chunk = m.prefill_chunk().expect("gemma3 prefills in chunks");
    let tokens = bench_tokens(chunk + 100, e.info.vocab);
    let prompt = chunk + 40;
    let (mut windowed, mut full) = (m.new_cache(DType::F32), full_cache(&e));
    let a = m
        .forward(&tokens[..prompt], &mut windowed, Forward::LAST)
        .unwrap();
    let b = m
        .forward(&tokens[..prompt], &mut full, Forward::LAST)
        .unwrap();
    assert_eq!(
        Model::last_logits(&a).unwrap(),
        Model::last_logits(&b).unwrap(),
        "after the prompt"
    );
    let most = (WINDOW + chunk + WINDOW_SLACK + 2 * BLOCK_TOKENS) as u64;
    let per_layer = full.bytes_per_token() / m.cfg.layers as u64;
    for (i, &t) in tokens[prompt..].iter().enumerate() {
        assert_eq!(
            step(m, t, &mut windowed),
            step(m, t, &mut full),
            "decode step {i}"
        );
        // One global layer holds every position; five sliding ones at most their window,
        // a chunk and the slack (here the decode steps: the window and the slack).
        let n = windowed.len() as u64;
        assert!(windowed.bytes() <= per_layer * (n + 5 * most), "step {i}");
        assert_eq!(full.bytes(), per_layer * 6 * n);
    }
    let n = windowed.len() as u64;
    let decode_most = (WINDOW + WINDOW_SLACK + 2 * BLOCK_TOKENS) as u64;
    assert!(
        windowed.bytes() <= per_layer * (n + 5 * decode_most),
        "{} bytes held at {n} tokens",
        windowed.bytes()
    );
    assert!(windowed.bytes() * 3 < full.bytes());
    assert_eq!(
        m.kv_bytes(n as usize, full.bytes_per_token()) / per_layer,
        n + 5 * n.min(most)
    );

    // A speculative rollback within the slack: the next steps still match.
    for cache in [&mut windowed, &mut full] {
        cache.truncate(n as usize - 17);
    }
    for (i, &t) in tokens[..20].iter().enumerate() {
        assert_eq!(
            step(m, t, &mut windowed),
            step(m, t, &mut full),
            "after the rollback, step {i}"
        );
    }
}

#[test]
#[should_panic(expected = "past the sliding window's slack")]
fn a_rollback_past_the_slack_is_caught() {
    let (e, _, _dir) = gemma3_window(WINDOW as u32);
    let mut cache = e.model.new_cache(DType::F32);
    let tokens = bench_tokens(200, e.info.vocab);
    e.model.forward(&tokens, &mut cache, Forward::LAST).unwrap();
    for &t in &tokens[..10] {
        e.model.forward(&[t], &mut cache, Forward::LAST).unwrap();
    }
    cache.truncate(100);
}

/// The KV pane says which layers slide and what they keep; its what-if counts them.
#[test]
fn the_kv_pane_says_which_layers_slide() {
    let (e, _, _dir) = gemma3_window(WINDOW as u32);
    let info = e.info.clone();
    let w = info.sliding.expect("gemma3 has sliding layers");
    assert_eq!((w.layers, w.window), (5, WINDOW));
    let mut s = labtui::state::AppState::new(&info.name, "");
    s.apply(&labtui::protocol::Stamped {
        at: std::time::Duration::ZERO,
        event: labtui::protocol::Event::ModelLoaded(info.clone()),
    });
    let t = common::screen::draw(&s, labtui::tui::panes::kv::render, 160, 14);
    let screen = format!("{}", t.backend());
    assert!(
        screen.contains("5 of 6 layers slide: each keeps the last 8 tokens"),
        "{screen}"
    );
    // At 4096 tokens one full layer holds them all, five sliding ones their window.
    let per_layer = info.kv_bytes_per_token as f64 / 6.0;
    assert_eq!(
        labtui::stats::model_kv_bytes(&info, 4.0, 4096, 1),
        per_layer * (4096.0 + 5.0 * 8.0)
    );
}
