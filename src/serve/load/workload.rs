//! What a serving benchmark sends: built-in prompts, prompts from a file, or synthetic prompts of
//! a chosen length; with the output length and sampling every request shares.

use crate::protocol::serve::Request;
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

pub use super::dataset::Conversation;

/// The built-in prompt set: short everyday coding and writing requests.
pub const BUILTIN: &[&str] = &[
    "Write a Python function that checks whether a string is a palindrome.",
    "Explain the difference between a process and a thread in three sentences.",
    "Write a Rust function that returns the n-th Fibonacci number iteratively.",
    "What does the HTTP status code 429 mean, and how should a client react to it?",
    "Write a SQL query that returns the ten customers with the highest total order value.",
    "Summarise what a hash map is to someone who has never programmed.",
    "Write a bash one-liner that counts the lines of every .rs file under src.",
    "Give three tips for writing readable commit messages.",
    "Write a JavaScript function that debounces another function.",
    "Explain what a KV cache does in a transformer's decoding loop.",
    "Write a C function that reverses a linked list in place.",
    "List the steps of a binary search and its time complexity.",
    "Write a Go HTTP handler that answers /health with 200 OK.",
    "What is the difference between latency and throughput?",
    "Write a Python class for a stack with push, pop and peek.",
    "Explain tail latency and why p99 matters for a web service.",
];

/// One-token English words (with their leading space, as BPE vocabularies hold them): a
/// synthetic prompt of n words is close to n tokens for the common tokenizers.
const WORDS: &[&str] = &[
    " the", " time", " people", " year", " way", " day", " man", " thing", " world", " life",
    " hand", " part", " child", " eye", " place", " work", " week", " case", " point", " number",
    " group", " problem", " fact", " water", " room", " city", " story", " money", " light",
    " game",
];

#[derive(Debug, Clone, PartialEq)]
pub enum Prompts {
    Builtin,
    /// Conversations read from a file (see [`super::dataset::read_prompts`]).
    List(Vec<Conversation>),
    /// Synthetic prompts of about `mean` tokens, normally spread with `stddev` (at least 1).
    Synthetic {
        mean: usize,
        stddev: usize,
    },
}

/// Everything requests share, and where their prompts come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub prompts: Prompts,
    pub max_tokens: usize,
    pub ignore_eos: bool,
    pub temperature: f32,
    pub seed: u64,
    pub shape: Shape,
}

/// What a workload adds to its prompts: output lengths drawn per request, a shared prefix, and
/// where each request's unique tag goes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Shape {
    /// Each request's max_tokens drawn from (mean, stddev), instead of one for all.
    pub output: Option<(usize, usize)>,
    /// (tokens, count): `count` distinct prefixes of about `tokens` tokens, request i taking
    /// prefix i mod count.
    pub shared_prefix: Option<(usize, usize)>,
    /// The unique tag first, before the shared prefix: no prefix cache can serve any of it.
    pub cache_bust: bool,
}

/// The shared prefix `k` of a workload: the same text at every level and for every endpoint
/// (the point is that a server sees it again).
pub fn prefix_text(tokens: usize, k: usize, seed: u64) -> String {
    let body = synthetic(tokens, 0, 1, seed ^ 0x5eed_0000 ^ k as u64).remove(0);
    format!("Context {k}:{body}")
}

impl Workload {
    /// The `n` requests of the level at `position` among an endpoint's levels (the warm-up is
    /// [`WARM_UP`]). Levels take the prompts in turn — level p the ones from p·n on — so each
    /// is sent as written while the set lasts; a prompt sent again starts with a tag unique to
    /// its level and place, `[2.15] `, so a server's prefix cache never serves one level, or one
    /// request, from another's prompt. Synthetic prompts are drawn afresh for each level and
    /// need no tag (so their length stays exact); the warm-up's are always tagged. A shared
    /// prefix goes first, the tag after it (before it with `cache_bust`). Endpoints side by side
    /// get the same requests at the same level.
    pub fn level_requests(&self, n: usize, position: usize) -> Vec<Request> {
        let warm_up = position == WARM_UP;
        let first = if warm_up {
            0
        } else {
            position.saturating_mul(n)
        };
        let set = match &self.prompts {
            Prompts::Builtin => BUILTIN.len(),
            Prompts::List(list) => list.len(),
            Prompts::Synthetic { .. } => usize::MAX,
        };
        let mut reqs = self.requests_from(n, first, self.seed.wrapping_add(position as u64));
        let place = if warm_up {
            "warm-up".to_string()
        } else {
            position.to_string()
        };
        for (i, r) in reqs.iter_mut().enumerate() {
            let again = warm_up || first.saturating_add(i) >= set;
            let tag = (again || self.shape.cache_bust).then(|| format!("[{place}.{i}] "));
            // The first message carries the tag, so not even a shared system prompt is reused.
            let text = match r.context.first_mut() {
                Some(t) => &mut t.content,
                None => &mut r.prompt,
            };
            let prefix = self.shape.shared_prefix.map(|(tokens, count)| {
                format!("{}\n\n", prefix_text(tokens, i % count.max(1), self.seed))
            });
            let tag = tag.unwrap_or_default();
            *text = if self.shape.cache_bust {
                format!("{tag}{}{text}", prefix.unwrap_or_default())
            } else {
                format!("{}{tag}{text}", prefix.unwrap_or_default())
            };
        }
        reqs
    }

    /// `n` requests without tags, the same for every call with the same seed.
    pub fn requests(&self, n: usize) -> Vec<Request> {
        self.requests_from(n, 0, self.seed)
    }

    /// `n` requests from the `first` prompt of the set on (cycling), synthetic ones drawn by
    /// `seed`.
    fn requests_from(&self, n: usize, first: usize, seed: u64) -> Vec<Request> {
        let plain = |texts: Vec<String>| texts.into_iter().map(Conversation::from).collect();
        let talks: Vec<Conversation> = match &self.prompts {
            Prompts::Builtin => plain(
                (0..n)
                    .map(|i| BUILTIN[(first + i) % BUILTIN.len()].to_string())
                    .collect(),
            ),
            Prompts::List(list) if !list.is_empty() => (0..n)
                .map(|i| list[(first + i) % list.len()].clone())
                .collect(),
            Prompts::List(_) => plain(vec![String::new(); n]),
            Prompts::Synthetic { mean, stddev } => plain(synthetic(*mean, *stddev, n, seed)),
        };
        let mut lengths = self
            .shape
            .output
            .map(|(mean, sd)| synthetic_lengths(mean, sd, n, seed ^ 0x6f75_7470_7574).into_iter());
        talks
            .into_iter()
            .map(|c| Request {
                context: c.context,
                prompt: c.prompt,
                // --output-tokens, else the data's length, else --max-tokens.
                max_tokens: lengths
                    .as_mut()
                    .and_then(Iterator::next)
                    .or(c.max_tokens)
                    .unwrap_or(self.max_tokens),
                ignore_eos: self.ignore_eos,
                temperature: self.temperature,
            })
            .collect()
    }
}

/// `n` prompts of about `mean` ± `stddev` one-token words each.
/// The position whose tags the warm-up's requests carry (no level's).
pub const WARM_UP: usize = usize::MAX;

/// `n` lengths from a normal of `mean` and `stddev`, rounded, at least 1.
pub fn synthetic_lengths(mean: usize, stddev: usize, n: usize, seed: u64) -> Vec<usize> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = Normal::new(mean as f64, stddev as f64).ok();
    (0..n)
        .map(|_| {
            normal
                .map_or(mean as f64, |d| d.sample(&mut rng))
                .round()
                .max(1.0) as usize
        })
        .collect()
}

pub fn synthetic(mean: usize, stddev: usize, n: usize, seed: u64) -> Vec<String> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = Normal::new(mean as f64, stddev as f64).ok();
    (0..n)
        .map(|_| {
            let len = normal
                .map_or(mean as f64, |d| d.sample(&mut rng))
                .round()
                .max(1.0) as usize;
            (0..len)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect::<String>()
                .trim_start()
                .to_string()
        })
        .collect()
}

/// `MEAN:STDDEV` (or just `MEAN`) prompt tokens for synthetic prompts.
pub fn parse_lengths(s: &str) -> Result<(usize, usize)> {
    let (mean, sd) = s.split_once(':').unwrap_or((s, "0"));
    let mean: usize = mean
        .trim()
        .parse()
        .with_context(|| format!("lengths `{s}`: the mean is not a whole number"))?;
    let sd: usize = sd
        .trim()
        .parse()
        .with_context(|| format!("lengths `{s}`: the stddev is not a whole number"))?;
    if mean == 0 || mean > 1 << 20 {
        bail!("lengths `{s}`: the mean must be between 1 and {}", 1 << 20);
    }
    if sd > mean {
        bail!("lengths `{s}`: the stddev must not exceed the mean");
    }
    Ok((mean, sd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_lengths_follow_mean_and_spread() {
        let ps = synthetic(64, 16, 2000, 1);
        let lens: Vec<f64> = ps
            .iter()
            .map(|p| p.split_whitespace().count() as f64)
            .collect();
        let mean = lens.iter().sum::<f64>() / lens.len() as f64;
        let sd = (lens.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lens.len() as f64).sqrt();
        assert!((mean - 64.0).abs() < 1.5, "mean {mean}");
        assert!((sd - 16.0).abs() < 1.5, "sd {sd}");
        assert_eq!(synthetic(5, 0, 3, 9), synthetic(5, 0, 3, 9));
        assert!(synthetic(5, 0, 3, 9)
            .iter()
            .all(|p| p.split_whitespace().count() == 5));
    }

    #[test]
    fn lengths_parse_or_say_why() {
        assert_eq!(parse_lengths("512:128").unwrap(), (512, 128));
        assert_eq!(parse_lengths("100").unwrap(), (100, 0));
        for bad in ["0", "x:1", "10:20", "5:-1", ""] {
            assert!(parse_lengths(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn requests_cycle_the_prompts() {
        let w = Workload {
            prompts: Prompts::List(vec!["a".into(), "b".into()]),
            max_tokens: 7,
            ignore_eos: true,
            temperature: 0.0,
            seed: 0,
            shape: Default::default(),
        };
        let r = w.requests(3);
        assert_eq!(
            r.iter().map(|r| r.prompt.as_str()).collect::<Vec<_>>(),
            ["a", "b", "a"]
        );
        assert!(r.iter().all(|r| r.max_tokens == 7 && r.ignore_eos));
    }

    #[test]
    fn levels_never_share_a_prompt_and_endpoints_share_theirs() {
        let w = Workload {
            prompts: Prompts::Builtin,
            max_tokens: 8,
            ignore_eos: false,
            temperature: 0.0,
            seed: 1,
            shape: Default::default(),
        };
        let (a, b) = (w.level_requests(32, 0), w.level_requests(32, 1));
        let prompts = |r: &[Request]| r.iter().map(|r| r.prompt.clone()).collect::<Vec<_>>();
        let mut all = prompts(&a);
        all.extend(prompts(&b));
        all.extend(prompts(&w.level_requests(4, WARM_UP)));
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a prompt was sent twice");
        assert_eq!(w.level_requests(32, 1), b);
        assert!(a[16].prompt.ends_with(BUILTIN[0]));
        // The first level sends the set as written; a prompt sent again is tagged.
        assert_eq!(a[0].prompt, BUILTIN[0]);
        assert_eq!(a[16].prompt, format!("[0.16] {}", BUILTIN[0]));
        assert!(b[0].prompt.starts_with("[1.0] "));
    }

    #[test]
    fn a_shared_prefix_goes_first_and_cache_bust_puts_the_tag_before_it() {
        let shared = |cache_bust| Workload {
            prompts: Prompts::Builtin,
            max_tokens: 8,
            ignore_eos: false,
            temperature: 0.0,
            seed: 1,
            shape: Shape {
                shared_prefix: Some((16, 2)),
                cache_bust,
                output: None,
            },
        };
        let r = shared(false).level_requests(4, 0);
        let p0 = prefix_text(16, 0, 1);
        assert_eq!(r[0].prompt, format!("{p0}\n\n{}", BUILTIN[0]));
        assert!(r[2].prompt.starts_with(&p0) && r[1].prompt.starts_with(&prefix_text(16, 1, 1)));
        assert_eq!(p0.split_whitespace().count(), 17, "Context 0: and 16 words");
        // The same prefixes at every level: that is what a prefix cache should serve.
        assert!(shared(false).level_requests(4, 3)[0]
            .prompt
            .starts_with(&p0));
        let busted = shared(true).level_requests(4, 0);
        assert_eq!(busted[0].prompt, format!("[0.0] {p0}\n\n{}", BUILTIN[0]));
    }

    #[test]
    fn synthetic_prompts_are_fresh_each_level_and_untagged() {
        let w = Workload {
            prompts: Prompts::Synthetic {
                mean: 12,
                stddev: 0,
            },
            max_tokens: 8,
            ignore_eos: false,
            temperature: 0.0,
            seed: 1,
            shape: Shape {
                output: Some((20, 5)),
                ..Shape::default()
            },
        };
        let (a, b) = (w.level_requests(8, 0), w.level_requests(8, 1));
        assert!(a
            .iter()
            .chain(&b)
            .all(|r| r.prompt.split_whitespace().count() == 12));
        assert_ne!(a[0].prompt, b[0].prompt);
        // Output lengths drawn per request, around 20.
        assert!(a.iter().any(|r| r.max_tokens != a[0].max_tokens));
        assert!(a.iter().all(|r| (5..=40).contains(&r.max_tokens)));
    }
}
