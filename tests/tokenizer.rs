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
