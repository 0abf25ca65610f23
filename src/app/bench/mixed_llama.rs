//! `labtui bench mixed --vs-llama-cpp`: the same files measured by llama.cpp's own tools —
//! `llama-perplexity --kl-divergence` against the loaded model on the same text and chunks, and
//! `llama-completion`'s greedy text from each exported mix beside labtui's from the same mix in
//! memory.

use crate::engine::{Engine, Model};
use crate::report::table::{Column, Table};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The raw prompt both engines continue greedily.
pub const PROMPT: &str = "fn is_prime(n: u64) -> bool {";

/// What `llama-perplexity --kl-divergence` printed for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Kld {
    pub mean_kld: f64,
    pub same_top: f64,
    pub ppl: f64,
}

/// The number after `label` on its line of `out` (`Mean    KLD:   0.048261 ± …`).
fn after(out: &str, label: &str) -> Option<f64> {
    let line = out.lines().find(|l| l.trim_start().starts_with(label))?;
    let rest = line.split_once(':')?.1;
    rest.split_whitespace()
        .next()?
        .trim_end_matches('%')
        .parse()
        .ok()
}

/// Parse llama-perplexity's KL divergence statistics.
pub fn parse(out: &str) -> Option<Kld> {
    Some(Kld {
        mean_kld: after(out, "Mean    KLD")?,
        same_top: after(out, "Same top p")? / 100.0,
        ppl: after(out, "Mean PPL(Q)")?,
    })
}

/// One run of llama-perplexity over `text`: writing the base's logits to `kld`, or (not `base`)
/// comparing `model`'s with them.
fn perplexity(
    bin: &Path,
    model: &Path,
    text: &Path,
    ctx: usize,
    chunks: usize,
    kld: &Path,
    base: bool,
) -> Result<String> {
    let mut c = Command::new(bin.join("llama-perplexity"));
    c.arg("-m").arg(model).arg("-f").arg(text);
    c.args(["-c", &ctx.to_string(), "--chunks", &chunks.to_string()]);
    c.args(["-t", &crate::engine::threads().to_string()]);
    c.arg("--kl-divergence-base").arg(kld);
    if !base {
        c.arg("--kl-divergence");
    }
    let out = c.output().context("running llama-perplexity")?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if !out.status.success() {
        bail!(
            "llama-perplexity failed on {}: {}",
            model.display(),
            text.lines().last().unwrap_or("")
        );
    }
    Ok(text)
}

/// llama.cpp's KL of each of `files` against `base`, over the reference text in chunks of
/// `ctx` tokens, `chunks` of them: a table with labtui's KL of the same file beside it.
pub fn kld_table(
    bin: &Path,
    base: &Path,
    files: &[(String, PathBuf, f64)],
    ctx: usize,
    chunks: usize,
) -> Result<String> {
    let dir = std::env::temp_dir().join(format!("labtui-kld-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let table = kld_rows(bin, base, files, ctx, chunks, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    table
}

fn kld_rows(
    bin: &Path,
    base: &Path,
    files: &[(String, PathBuf, f64)],
    ctx: usize,
    chunks: usize,
    dir: &Path,
) -> Result<String> {
    let text = dir.join("corpus.txt");
    std::fs::write(&text, crate::engine::quality::CORPUS)?;
    let kld = dir.join("base.kld");
    perplexity(bin, base, &text, ctx, chunks, &kld, true)?;
    let mut t = Table::new([
        Column::left("file"),
        Column::right("file MiB"),
        Column::right("llama.cpp mean KLD"),
        Column::right("llama.cpp same top"),
        Column::right("llama.cpp PPL"),
        Column::right("labtui mean KL"),
    ]);
    for (name, path, ours) in files {
        let out = perplexity(bin, path, &text, ctx, chunks, &kld, false)?;
        let k = parse(&out).with_context(|| format!("no KL statistics for {name}"))?;
        let mib = std::fs::metadata(path)?.len() as f64 / (1024.0 * 1024.0);
        t.row([
            name.clone(),
            format!("{mib:.1}"),
            format!("{:.5}", k.mean_kld),
            format!("{:.1}%", k.same_top * 100.0),
            format!("{:.3}", k.ppl),
            format!("{ours:.5}"),
        ]);
    }
    Ok(t.markdown())
}

/// `n` greedy tokens of `model` after `prompt` (raw), as text.
pub fn ours(engine: &Engine, model: &Model, prompt: &str, n: usize) -> Result<String> {
    let ids = engine.tokenizer.encode(prompt)?;
    let mut cache = model.new_cache(candle_core::DType::F32);
    let (_, first) = crate::lab::measure::prefill(model, &mut cache, &ids)?;
    let (_, rest) = crate::lab::measure::decode(model, &mut cache, first, n.saturating_sub(1))?;
    let tokens: Vec<u32> = std::iter::once(first).chain(rest).collect();
    Ok(engine.tokenizer.decode(&tokens)?)
}

/// `n` greedy tokens of llama.cpp on `file` after `prompt`.
pub fn theirs(bin: &Path, file: &Path, prompt: &str, n: usize) -> Result<String> {
    let out = Command::new(bin.join("llama-completion"))
        .arg("-m")
        .arg(file)
        .args([
            "-p",
            prompt,
            "-n",
            &n.to_string(),
            "--temp",
            "0",
            "--ignore-eos",
        ])
        .args(["-t", &crate::engine::threads().to_string()])
        .args(["--no-display-prompt", "-no-cnv", "--simple-io"])
        .stdin(std::process::Stdio::null())
        .output()
        .context("running llama-completion")?;
    if !out.status.success() {
        bail!("llama-completion failed on {}", file.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Where two greedy texts part: `None` when one is the other (llama-completion may print a
/// final partial token or trailing whitespace), else the characters they share.
pub fn parting(a: &str, b: &str) -> Option<usize> {
    let (a, b) = (a.trim_end(), b.trim_end());
    if a.starts_with(b) || b.starts_with(a) {
        return None;
    }
    Some(a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama_perplexity_statistics_parse() {
        let out = "====== Perplexity statistics ======\n\
                   Mean PPL(Q)                   :   5.042789 ±   0.553868\n\
                   Mean PPL(base)                :   4.827438 ±   0.519687\n\
                   ====== KL divergence statistics ======\n\
                   Mean    KLD:   0.048261 ±   0.004075\n\
                   Maximum KLD:   0.822348\n\
                   Same top p: 91.142 ± 1.262 %\n";
        assert_eq!(
            parse(out),
            Some(Kld {
                mean_kld: 0.048261,
                same_top: 0.91142,
                ppl: 5.042789
            })
        );
        assert_eq!(parse("no statistics"), None);
    }

    #[test]
    fn texts_part_where_they_first_differ() {
        assert_eq!(parting("abc def", "abc def  \n"), None);
        assert_eq!(parting("abc de", "abc def"), None);
        assert_eq!(parting("abc xyz", "abc def"), Some(4));
    }
}
