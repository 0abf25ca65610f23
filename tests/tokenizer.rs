//! Tokenizer checks: special tokens, streaming detokenisation, and ids equal to llama.cpp's.

mod common;

use labtui::app::headless::load_tokenizer;
use labtui::engine::chat;

const TEXTS: [&str; 6] = [
    "hello world",
    "the thing is in the string",
    "naïve café — 日本語 🎉 ok",
    "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n",
    "  leading spaces\n\n\ttabs and   runs  ",
    "numbers 1234567 and 3.14159",
];

#[test]
fn special_tokens_are_single_ids() {
    let t = load_tokenizer("synthetic").unwrap();
    let ids = t.encode("<|im_start|>user\nhi<|im_end|>").unwrap();
    let start = t.inner.token_to_id("<|im_start|>").unwrap();
    let end = t.inner.token_to_id("<|im_end|>").unwrap();
    assert_eq!(ids.first(), Some(&start));
    assert_eq!(ids.last(), Some(&end));
    assert!(t.is_eog(end));
}

#[test]
fn text_round_trips_and_merges_apply() {
    let t = load_tokenizer("synthetic").unwrap();
    for text in TEXTS {
        let ids = t.encode(text).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), text);
    }
    // "Ġthe" is a merge of the synthetic vocabulary: " the" is one token.
    let ids = t.encode(" the").unwrap();
    assert_eq!(ids.len(), 1);
}

#[test]
fn streaming_pieces_never_break_a_character_and_add_up() {
    let t = load_tokenizer("synthetic").unwrap();
    for text in TEXTS {
        let ids = t.encode(text).unwrap();
        let mut stream = t.inner.decode_stream(true);
        let mut joined = String::new();
        for id in &ids {
            let piece = stream.step(*id).unwrap().unwrap_or_default();
            assert!(!piece.contains('\u{FFFD}'), "broken character in {piece:?}");
            joined.push_str(&piece);
        }
        assert_eq!(joined, t.decode(&ids).unwrap());
    }
}

#[test]
fn chat_template_wraps_the_prompt() {
    let t = load_tokenizer("synthetic").unwrap();
    let s = chat::apply(&t, "hi").unwrap();
    assert_eq!(s, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

/// Ids produced by llama.cpp's tokenizer (`llama-server` /tokenize with special tokens parsed) on
/// the Qwen2.5-Coder GGUF; regenerate with `tests/fixtures/llama_cpp_tokens.py`.
#[test]
fn qwen_ids_equal_llama_cpp() {
    let Some(path) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let t = load_tokenizer(path.to_str().unwrap()).unwrap();
    let fixture: Vec<(String, Vec<u32>)> =
        serde_json::from_str(include_str!("fixtures/llama_cpp_tokens.json")).unwrap();
    assert!(fixture.len() >= 8);
    for (text, ids) in fixture {
        assert_eq!(t.encode(&text).unwrap(), ids, "text {text:?}");
    }
}

#[test]
fn qwen_chat_prompt_uses_the_files_template() {
    let Some(path) = common::real_model(common::QWEN_05B) else {
        return;
    };
    let t = load_tokenizer(path.to_str().unwrap()).unwrap();
    let s = chat::apply(&t, "Say hi.").unwrap();
    assert!(s.starts_with("<|im_start|>system\n"), "{s}");
    assert!(
        s.ends_with("<|im_start|>user\nSay hi.<|im_end|>\n<|im_start|>assistant\n"),
        "{s}"
    );
}

/// Ids produced by llama.cpp's tokenizer (`llama-server` /tokenize with special tokens parsed) on
/// the Gemma 3 GGUF (SentencePiece BPE with byte fallback, built from the file's scores), as
/// `labtui tokenize --json` prints them; regenerate with
/// `tests/fixtures/llama_cpp_tokens.py gemma`.
#[test]
fn gemma_ids_equal_llama_cpp_through_the_cli() {
    use common::OutputWithin;
    let Some(path) = common::real_model(common::GEMMA_270M) else {
        return;
    };
    let fixture: Vec<(String, Vec<u32>)> =
        serde_json::from_str(include_str!("fixtures/llama_cpp_tokens_gemma.json")).unwrap();
    assert!(fixture.len() >= 20);
    for (text, ids) in fixture.iter().filter(|(t, _)| !t.is_empty()) {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_labtui"))
            .args([
                "tokenize",
                "--model",
                path.to_str().unwrap(),
                "--json",
                "--",
            ])
            .arg(text)
            .output_bounded();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let ours: Vec<u64> = rows.iter().map(|r| r["id"].as_u64().unwrap()).collect();
        let theirs: Vec<u64> = ids.iter().map(|&i| i as u64).collect();
        assert_eq!(ours, theirs, "text {text:?}");
    }
    // Text round-trips through the ids, special tokens and bytes included (but for SentencePiece's
    // space mark `▁` itself, which reads back as a space, in llama.cpp too).
    let t = load_tokenizer(path.to_str().unwrap()).unwrap();
    for (text, ids) in &fixture {
        assert_eq!(&t.encode(text).unwrap(), ids, "text {text:?}");
        let shown = t.inner.decode(ids, false).unwrap();
        assert_eq!(shown, text.replace('\u{2581}', " "), "ids {ids:?}");
    }
}

#[test]
fn gemma_chat_prompt_uses_gemmas_turns_and_ends_on_end_of_turn() {
    let Some(path) = common::real_model(common::GEMMA_270M) else {
        return;
    };
    let t = load_tokenizer(path.to_str().unwrap()).unwrap();
    // The file carries no template: Gemma's own turn format is used.
    let s = chat::apply(&t, "  Say hi. ").unwrap();
    assert_eq!(
        s,
        "<bos><start_of_turn>user\nSay hi.<end_of_turn>\n<start_of_turn>model\n"
    );
    let ids = t.encode_prompt(&s).unwrap();
    assert_eq!(ids[..2], [2, 105], "one BOS, then <start_of_turn>");
    let end = t.inner.token_to_id("<end_of_turn>").unwrap();
    let eos = t.inner.token_to_id("<eos>").unwrap();
    assert!(t.is_eog(end) && t.is_eog(eos));
    assert!(!t.is_eog(t.inner.token_to_id("<start_of_turn>").unwrap()));
}
