//! Automatic prefix caching in the batching scheduler: requests whose prompts start the same way
//! share the KV blocks of what they have in common, and each still gets, token for token, what it
//! gets alone with nothing cached — on the synthetic model and on the real 0.5B, with blocks
//! evicted and requests preempted. Hits show in the counts, the events and `/metrics`.

use candle_core::Device;
use labtui::engine::chat::Turn;
use labtui::engine::kv_cache::BLOCK_TOKENS;
use labtui::engine::sched::SchedConfig;
use labtui::engine::Engine;
use labtui::protocol::SchedEvent;

mod common;

use common::sched::{alone, drive_stats, engine, preempted, prompt, Arrival};

/// A shared preamble of `shared` tokens, then a tail of its own.
fn with_preamble(shared: usize, seed: usize, tail: usize) -> Vec<u32> {
    let mut p = prompt(999, shared);
    p.extend(prompt(seed, tail));
    p
}

/// Requests over preambles of several lengths (across chunk boundaries), with tails of several
/// lengths (short ones among them), a prompt sent twice and one that is a prefix of another.
fn stream() -> Vec<Arrival> {
    let mut prompts = Vec::new();
    for (j, (shared, tail)) in [
        (70, 9),
        (70, 30),
        (70, 2),
        (150, 40),
        (150, 5),
        (33, 50),
        (150, 40),
        (20, 1),
        (20, 60),
    ]
    .into_iter()
    .enumerate()
    {
        prompts.push(with_preamble(shared, j, tail));
    }
    prompts[6] = prompts[3].clone(); // sent twice
    prompts.push(prompts[4][..100].to_vec()); // a prefix of another
    prompts
        .into_iter()
        .enumerate()
        .map(|(j, prompt)| Arrival {
            at: 2 * j as u64,
            prompt,
            max_tokens: 6,
        })
        .collect()
}

fn cfg(kv_blocks: usize, prefix_cache: bool) -> SchedConfig {
    SchedConfig {
        kv_blocks,
        max_batch: 4,
        step_tokens: 64,
        prefix_cache,
        ..Default::default()
    }
}

fn cached(events: &[SchedEvent]) -> Vec<(u64, usize)> {
    events
        .iter()
        .filter_map(|e| match *e {
            SchedEvent::Admitted { req, cached, .. } | SchedEvent::Resumed { req, cached, .. } => {
                Some((req, cached))
            }
            _ => None,
        })
        .collect()
}

/// With the cache on, every request gets its tokens alone; later requests read their preamble
/// from it (a whole block at a time, never the last prompt token); with it off nothing is read.
#[test]
fn requests_sharing_a_preamble_read_it_from_the_cache_and_get_their_tokens_alone() {
    let model = &engine().model;
    let stream = stream();
    let (events, out, stats) = drive_stats(model, cfg(256, true), &stream);
    for (j, a) in stream.iter().enumerate() {
        let want = alone(model, &a.prompt, a.max_tokens, 64);
        assert_eq!(out[&(j as u64)], want, "request {j}");
    }
    let hits = cached(&events);
    for &(req, c) in &hits {
        let p = stream[req as usize].prompt.len();
        assert!(c % BLOCK_TOKENS == 0 && c < p, "request {req}: {c} of {p}");
    }
    let by_req = |r: u64| hits.iter().find(|h| h.0 == r).unwrap().1;
    assert_eq!(by_req(0), 0, "the first request finds nothing");
    assert!(by_req(1) >= 64, "request 1 shares 70 tokens: {hits:?}");
    assert!(by_req(6) >= 160, "request 6 repeats request 3: {hits:?}");
    assert!(
        by_req(9) >= 64,
        "request 9 is a prefix of request 4: {hits:?}"
    );
    let hit: usize = hits.iter().map(|h| h.1).sum();
    assert_eq!(stats.hit_tokens, hit as u64);
    let queried: usize = stream.iter().map(|a| a.prompt.len()).sum();
    assert_eq!(stats.queried_tokens, queried as u64);
    assert!(stats.cached_blocks > 0 && stats.idle_blocks == stats.cached_blocks);

    let (events, out_off, stats_off) = drive_stats(model, cfg(256, false), &stream);
    assert!(cached(&events).iter().all(|h| h.1 == 0));
    assert_eq!((stats_off.hit_tokens, stats_off.cached_blocks), (0, 0));
    assert_eq!(out_off, out);
}

/// A budget too small to keep every preamble: idle cached blocks are evicted (oldest first) to
/// make room, requests are preempted and resume from what is still cached; tokens stay the same.
#[test]
fn eviction_and_preemption_keep_every_request_s_tokens() {
    let model = &engine().model;
    let stream: Vec<Arrival> = stream()
        .into_iter()
        .map(|a| Arrival {
            max_tokens: 40,
            at: a.at / 2,
            ..a
        })
        .collect();
    let (events, out, stats) = drive_stats(model, cfg(24, true), &stream);
    assert!(preempted(&events) > 0, "24 blocks forced no preemption");
    assert!(
        cached(&events).iter().any(|&(r, c)| c > 0
            && events
                .iter()
                .any(|e| matches!(e, SchedEvent::Resumed { req, .. } if *req == r))),
        "no resumed request read its prompt back: {:?}",
        cached(&events)
    );
    assert!(stats.hit_tokens > 0 && stats.cached_blocks <= 24);
    for (j, a) in stream.iter().enumerate() {
        let want = alone(model, &a.prompt, a.max_tokens, 64);
        assert_eq!(out[&(j as u64)], want, "request {j}");
    }
}

/// On the real 0.5B, chat requests that share a system prompt: each gets its tokens alone, bit
/// for bit in its choices, and all but the first read the system prompt from the cache.
#[test]
fn real_chat_requests_share_their_system_prompt() {
    let Some(path) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let e = Engine::from_file(&path, &Device::Cpu).unwrap();
    let system = "You are a careful senior Rust engineer. Answer in short, precise sentences, \
                  show code only when asked, and name the standard library items you rely on.";
    let questions = [
        "What does Option::take do?",
        "When should I use Rc instead of Arc?",
        "Explain the difference between &str and String.",
        "How do I read a file into a string?",
    ];
    let stream: Vec<Arrival> = questions
        .iter()
        .enumerate()
        .map(|(j, q)| {
            let chat = [Turn::system(system), Turn::user(q)];
            let text = labtui::engine::chat::apply_turns(&e.tokenizer, &chat).unwrap();
            Arrival {
                at: j as u64 * 3,
                prompt: e.tokenizer.encode_prompt(&text).unwrap(),
                max_tokens: 12,
            }
        })
        .collect();
    let (events, out, stats) = drive_stats(&e.model, cfg(128, true), &stream);
    let hits = cached(&events);
    assert_eq!(hits[0].1, 0);
    assert!(hits[1..].iter().all(|h| h.1 >= 32), "{hits:?}");
    assert!(stats.hit_rate().unwrap() > 0.3, "{stats:?}");
    for (j, a) in stream.iter().enumerate() {
        let want = alone(&e.model, &a.prompt, a.max_tokens, 64);
        assert_eq!(out[&(j as u64)], want, "request {j}");
    }
}

/// Last-position logits, as bits, of `prompt` run in one span on a fresh table of `pool`, its
/// first `shared` blocks taken from the cache instead (what `donor` computed and indexed).
fn bits_after_sharing(
    model: &labtui::engine::Model,
    donor: &[u32],
    prompt: &[u32],
    shared: usize,
) -> Vec<u32> {
    use labtui::engine::kv_cache::prefix::prompt_keys;
    use labtui::engine::{BlockTable, Forward, Model, Seq};
    let mut pool = model.new_pool(candle_core::DType::F32, 64);
    assert!(pool.enable_prefix_cache());
    let mut run = |table: &mut BlockTable, tokens: &[u32]| {
        let mut seqs = [Seq { tokens, table }];
        let l = model
            .forward_batch(&mut pool, &mut seqs, Forward::LAST)
            .unwrap();
        Model::last_logits(&l[0]).unwrap()
    };
    let mut a = BlockTable::default();
    run(&mut a, donor);
    let keys = prompt_keys(donor, 256);
    for (i, k) in keys.iter().enumerate() {
        pool.register(&a, i, *k);
    }
    let blocks = pool.cached_prefix(&prompt_keys(prompt, 256));
    assert!(blocks.len() >= shared, "{} cached", blocks.len());
    let mut b = BlockTable::default();
    pool.share_prefix(&mut b, &blocks[..shared]);
    let mut seqs = [Seq {
        tokens: &prompt[shared * BLOCK_TOKENS..],
        table: &mut b,
    }];
    let l = model
        .forward_batch(&mut pool, &mut seqs, Forward::LAST)
        .unwrap();
    let out = Model::last_logits(&l[0]).unwrap();
    out.iter().map(|x| x.to_bits()).collect()
}

/// Why a hit may stop short of what is cached: on the real 0.5B a prompt whose cached prefix
/// (computed by another prompt) leaves a span of the kind it would run alone gets the same
/// logits, bit for bit; one that leaves a short span where alone it runs a long one does not.
#[test]
fn a_shared_prefix_gives_the_bits_of_the_prompt_alone_when_the_span_kind_is_kept() {
    use labtui::engine::kv_cache::prefix::usable_hit;
    let Some(path) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let e = Engine::from_file(&path, &Device::Cpu).unwrap();
    let donor = with_preamble(130, 1, 20);
    let mut differs = 0;
    for tail in [4, 12, 30, 45] {
        let p = with_preamble(130, 2, tail);
        let alone = bits_after_sharing(&e.model, &donor, &p, 0);
        let most = usable_hit(p.len(), 256, 130 / BLOCK_TOKENS);
        assert!(most > 0, "tail {tail}: no usable hit");
        assert_eq!(
            bits_after_sharing(&e.model, &donor, &p, most),
            alone,
            "tail {tail}: {most} blocks shared"
        );
        let all = (130 / BLOCK_TOKENS).min((p.len() - 1) / BLOCK_TOKENS);
        if all > most && bits_after_sharing(&e.model, &donor, &p, all) != alone {
            differs += 1;
        }
    }
    assert!(
        differs > 0,
        "a short span after the prefix never changed the bits"
    );
}
