//! Tokenizer metadata against upstream's ref-tiny I2_S GGUF, and the tokenizer.json rebuild.
use bitnet_gguf::hf::vocab::{Vocab, VocabOptions, VocabValue};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

const PACKED: &str = "fixtures/ref-tiny/packed";

/// Python's `json.dumps(list, ensure_ascii=False)` (default separators `", "`), which is how
/// shared/fixtures/ref-tiny/gguf/manifest.json hashed the arrays (`sha256_of_json_list`).
fn python_json_list<T: serde::Serialize>(items: &[T]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|i| serde_json::to_string(i).unwrap())
        .collect();
    format!("[{}]", parts.join(", "))
}

fn sha(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ref_tiny_vocab() -> Vocab {
    let options = VocabOptions {
        pre: Some("llama-bpe".into()),
        vocab_size: Some(512),
        ..Default::default()
    };
    Vocab::read(Path::new(PACKED), &options).unwrap()
}

/// Values from shared/fixtures/ref-tiny/gguf/manifest.json, files."ref-tiny-i2_s.gguf".metadata.
#[test]
fn matches_upstream_gguf_metadata() {
    let v = ref_tiny_vocab();
    let entries = v.entries();
    let keys: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "tokenizer.ggml.model",
            "tokenizer.ggml.pre",
            "tokenizer.ggml.tokens",
            "tokenizer.ggml.token_type",
            "tokenizer.ggml.merges",
            "tokenizer.ggml.bos_token_id",
            "tokenizer.ggml.eos_token_id",
        ]
    );
    for (key, value) in &entries {
        match (*key, value) {
            ("tokenizer.ggml.model", VocabValue::Str(s)) => assert_eq!(s, "gpt2"),
            ("tokenizer.ggml.pre", VocabValue::Str(s)) => assert_eq!(s, "llama-bpe"),
            ("tokenizer.ggml.tokens", VocabValue::StrArray(t)) => {
                assert_eq!(t.len(), 512);
                assert_eq!(&t[..3], ["!", "\"", "#"]);
                assert_eq!(
                    sha(&python_json_list(t)),
                    "154477617fdefa8a145755b5a597468b05d4c68ac14cba13248a9619a860ada9"
                );
            }
            ("tokenizer.ggml.token_type", VocabValue::I32Array(t)) => {
                assert_eq!(t.len(), 512);
                assert_eq!(
                    sha(&python_json_list(t)),
                    "f3f72e9a5098e3405def649ae0afc994ece0cfe1bb27c7cbd4b62e3845781e15"
                );
            }
            ("tokenizer.ggml.merges", VocabValue::StrArray(m)) => {
                assert_eq!(m.len(), 253);
                assert_eq!(&m[..3], ["\u{0120} t", "\u{0120}t h", "e r"]);
                assert_eq!(
                    sha(&python_json_list(m)),
                    "07c900076b53ef872b0538ba46c8c13debb2d8cfae6286b15a9b0060dac6d79b"
                );
            }
            ("tokenizer.ggml.bos_token_id", VocabValue::U32(id)) => assert_eq!(*id, 509),
            ("tokenizer.ggml.eos_token_id", VocabValue::U32(id)) => assert_eq!(*id, 510),
            (k, v) => panic!("unexpected {k} = {v:?}"),
        }
    }
}

#[test]
fn scores_profile() {
    let options = VocabOptions {
        scores: true,
        ..Default::default()
    };
    let v = Vocab::read(Path::new(PACKED), &options).unwrap();
    let scores = v.scores.as_ref().unwrap();
    assert!(scores[..509].iter().all(|&s| s == 0.0));
    assert!(scores[509..].iter().all(|&s| s == -1000.0));
    assert_eq!(v.entries()[1].0, "tokenizer.ggml.tokens");
    assert_eq!(v.entries()[2].0, "tokenizer.ggml.scores");
}

/// Vocab → tokenizer.json → Vocab is the identity, and the rebuilt file has the original's
/// vocab, merges, added tokens and pipeline.
#[test]
fn tokenizer_json_rebuild() {
    let v = ref_tiny_vocab();
    let rebuilt = v.to_tokenizer_json();
    let original: Value =
        serde_json::from_slice(&std::fs::read(format!("{PACKED}/tokenizer.json")).unwrap())
            .unwrap();
    for key in [
        "added_tokens",
        "pre_tokenizer",
        "post_processor",
        "decoder",
        "normalizer",
        "model",
    ] {
        assert_eq!(rebuilt[key], original[key], "{key}");
    }
    let dir = tempfile::tempdir().unwrap();
    v.write_files(dir.path(), 256).unwrap();
    let options = VocabOptions {
        pre: Some("llama-bpe".into()),
        vocab_size: Some(512),
        ..Default::default()
    };
    let again = Vocab::read(dir.path(), &options).unwrap();
    assert_eq!(again, v);
    let tc: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("tokenizer_config.json")).unwrap())
            .unwrap();
    let original_tc: Value =
        serde_json::from_slice(&std::fs::read(format!("{PACKED}/tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(tc, original_tc);
}
