//! The LLaMA-3 tokenizer against tiktoken's vectors and the ref-tiny reference inputs.
//!
//! The 7.2 MB llama3 tokenizer.json is not in the repo: its vocabulary and merges are rebuilt
//! here from the tiktoken ranks (`fixtures/llama3-tokenizer/tokenizer.model`) exactly as
//! `shared/tools/make_tokenizer_vectors.py` (`merges_from_ranks`) builds them, and one test
//! checks the result against that file when the shared fixtures are present.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use bitnet_gguf::runtime::tokenizer::{
    byte_level, pre_tokenize, Error, GgufVocab, StreamDecoder, TokenType, Tokenizer,
    LLAMA3_SPLIT_PATTERN,
};
use proptest::prelude::*;
use serde_json::Value;

const RANKS_PATH: &str = "fixtures/llama3-tokenizer/tokenizer.model";
const VECTORS_PATH: &str = "fixtures/llama3-tokenizer/vectors.json";
const SHARED_TOKENIZER_JSON: &str = "../shared/fixtures/llama3-tokenizer/tokenizer.json";
const TINY_TOKENIZER_JSON: &str = "fixtures/ref-tiny/packed/tokenizer.json";
const TINY_INPUTS: &str = "fixtures/ref-tiny/reference/inputs.json";

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn read_json(path: &str) -> Value {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

// --- Rebuilding the LLaMA-3 vocabulary from the tiktoken ranks ------------------------------

/// Standard base64 with padding, as in the ranks file.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 character {c:?} in {text:?}"),
        }
    };
    let digits: Vec<u8> = text.bytes().filter(|&c| c != b'=').collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut word = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            word |= value(c) << (18 - 6 * i);
        }
        let bytes = word.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// The token bytes in rank order (ranks must be exactly 0..n).
fn load_ranks() -> Vec<Vec<u8>> {
    let text = String::from_utf8(read(RANKS_PATH)).expect("ranks file is ASCII");
    let mut by_rank: Vec<Option<Vec<u8>>> = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        let (token, rank) = line.split_once(' ').expect("`base64 rank` line");
        let rank: usize = rank.parse().expect("rank");
        if by_rank.len() <= rank {
            by_rank.resize(rank + 1, None);
        }
        assert!(by_rank[rank].is_none(), "rank {rank} twice");
        by_rank[rank] = Some(base64_decode(token));
    }
    by_rank
        .into_iter()
        .enumerate()
        .map(|(rank, token)| token.unwrap_or_else(|| panic!("rank {rank} missing")))
        .collect()
}

/// The 256 LLaMA-3 special tokens in id order (hf-formats §4).
fn special_token_names() -> Vec<String> {
    let mut names: Vec<String> = [
        "<|begin_of_text|>",
        "<|end_of_text|>",
        "<|reserved_special_token_0|>",
        "<|reserved_special_token_1|>",
        "<|reserved_special_token_2|>",
        "<|reserved_special_token_3|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|reserved_special_token_4|>",
        "<|eot_id|>",
    ]
    .map(String::from)
    .to_vec();
    names.extend((5..251).map(|i| format!("<|reserved_special_token_{i}|>")));
    assert_eq!(names.len(), 256);
    names
}

/// `merges_from_ranks`: every split of every token into two tokens, sorted by
/// (rank of the token, rank of the left part, rank of the right part).
fn merges_from_ranks(ranks: &[Vec<u8>]) -> Vec<(&[u8], &[u8])> {
    let rank_of: HashMap<&[u8], usize> = ranks
        .iter()
        .enumerate()
        .map(|(rank, token)| (token.as_slice(), rank))
        .collect();
    let mut merges = Vec::new();
    for (rank, token) in ranks.iter().enumerate() {
        for split in 1..token.len() {
            let (left, right) = token.split_at(split);
            if let (Some(&left_rank), Some(&right_rank)) = (rank_of.get(left), rank_of.get(right)) {
                merges.push((rank, left_rank, right_rank, left, right));
            }
        }
    }
    // Unique keys: (rank, split point) determines (left_rank, right_rank), so no further ties.
    merges
        .sort_unstable_by_key(|&(rank, left_rank, right_rank, _, _)| (rank, left_rank, right_rank));
    merges
        .into_iter()
        .map(|(_, _, _, left, right)| (left, right))
        .collect()
}

/// What a GGUF file converted from the LLaMA-3 tokenizer holds.
fn llama3_gguf_vocab() -> GgufVocab {
    let ranks = load_ranks();
    assert_eq!(ranks.len(), 128_000);
    let merges = merges_from_ranks(&ranks)
        .into_iter()
        .map(|(left, right)| format!("{} {}", byte_level::encode(left), byte_level::encode(right)))
        .collect();
    let mut tokens: Vec<String> = ranks
        .iter()
        .map(|token| byte_level::encode(token))
        .collect();
    tokens.extend(special_token_names());
    let mut token_types = vec![TokenType::Normal.to_gguf(); 128_000];
    token_types.extend([TokenType::Control.to_gguf(); 256]);
    GgufVocab {
        tokens,
        token_types,
        merges,
        bos_id: Some(128_000),
        eos_id: Some(128_001),
        eot_id: Some(128_009),
        add_bos: true,
    }
}

fn llama3() -> &'static Tokenizer {
    static TOKENIZER: OnceLock<Tokenizer> = OnceLock::new();
    TOKENIZER.get_or_init(|| {
        Tokenizer::from_gguf_vocab(&llama3_gguf_vocab()).expect("llama3 vocabulary is valid")
    })
}

fn ids(value: &Value) -> Vec<u32> {
    value
        .as_array()
        .expect("id list")
        .iter()
        .map(|id| u32::try_from(id.as_u64().expect("id")).expect("u32 id"))
        .collect()
}

fn check_vectors(tokenizer: &Tokenizer, label: &str) {
    let doc = read_json(VECTORS_PATH);
    let vectors = doc["vectors"].as_array().expect("vectors");
    assert_eq!(vectors.len(), 45);
    let mut failures = Vec::new();
    for vector in vectors {
        let name = vector["name"].as_str().expect("name");
        let text = vector["text"].as_str().expect("text");
        let with_specials = ids(&vector["ids"]);
        let specials_as_text = ids(&vector["ids_specials_as_text"]);
        if tokenizer.encode(text, true) != with_specials {
            failures.push(format!("{name}: encode with specials"));
        }
        if tokenizer.encode(text, false) != specials_as_text {
            failures.push(format!("{name}: encode specials as text"));
        }
        let decoded = tokenizer
            .decode(&with_specials, false)
            .expect("ids in range");
        if decoded != vector["decoded"].as_str().expect("decoded") {
            failures.push(format!("{name}: decode"));
        }
        if vector["round_trip"] == Value::Bool(true)
            && tokenizer.decode(&specials_as_text, false).as_deref() != Ok(text)
        {
            failures.push(format!("{name}: decode of ids_specials_as_text"));
        }
        let hex: Vec<String> = with_specials
            .iter()
            .map(|&id| {
                let bytes = tokenizer.token_bytes(id).expect("id in range");
                bytes.iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect();
        let expected_hex: Vec<&str> = vector["token_bytes_hex"]
            .as_array()
            .expect("hex list")
            .iter()
            .map(|h| h.as_str().expect("hex"))
            .collect();
        if hex != expected_hex {
            failures.push(format!("{name}: token bytes"));
        }
    }
    assert!(failures.is_empty(), "{label}: {failures:#?}");
}

#[test]
fn llama3_vectors_from_gguf_style_vocab() {
    let tokenizer = llama3();
    assert_eq!(tokenizer.vocab_size(), 128_256);
    check_vectors(tokenizer, "gguf-style vocab");
}

#[test]
fn llama3_specials_and_roles() {
    let tokenizer = llama3();
    assert_eq!(tokenizer.token_id("<|eot_id|>"), Some(128_009));
    assert_eq!(
        tokenizer.token_id("<|reserved_special_token_250|>"),
        Some(128_255)
    );
    assert_eq!(tokenizer.token_type(128_009), Some(TokenType::Control));
    assert!(tokenizer.is_end_of_generation(128_009));
    assert!(tokenizer.is_end_of_generation(128_001));
    assert!(!tokenizer.is_end_of_generation(128_000));
    assert_eq!(tokenizer.encode_prompt("Hello", false), [128_000, 9906]);
    assert_eq!(tokenizer.encode("Hello", false), [9906]);
    assert_eq!(
        tokenizer.decode(&[128_000, 9906, 128_009], true).as_deref(),
        Ok("Hello")
    );
    assert_eq!(
        tokenizer.decode(&[128_256], false),
        Err(Error::UnknownId {
            id: 128_256,
            vocab_size: 128_256
        })
    );
}

#[test]
fn llama3_derived_vocab_equals_shared_tokenizer_json() {
    if !Path::new(SHARED_TOKENIZER_JSON).exists() {
        eprintln!(
            "\n*** SKIPPED llama3_derived_vocab_equals_shared_tokenizer_json: \
             {SHARED_TOKENIZER_JSON} not found (the shared fixtures sit beside the crate in CI) ***\n"
        );
        return;
    }
    let bytes = read(SHARED_TOKENIZER_JSON);
    let json: Value = serde_json::from_slice(&bytes).expect("tokenizer.json");
    let vocab = llama3_gguf_vocab();

    let model_vocab = json["model"]["vocab"].as_object().expect("model.vocab");
    assert_eq!(model_vocab.len(), 128_000);
    for (text, id) in model_vocab {
        let id = usize::try_from(id.as_u64().expect("id")).expect("usize");
        assert_eq!(vocab.tokens[id], *text, "model.vocab id {id}");
    }

    let json_merges: Vec<String> = json["model"]["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|merge| match merge {
            Value::String(merge) => merge.clone(),
            Value::Array(pair) => format!(
                "{} {}",
                pair[0].as_str().expect("left"),
                pair[1].as_str().expect("right")
            ),
            other => panic!("merge {other}"),
        })
        .collect();
    assert_eq!(json_merges.len(), 280_147);
    assert!(json_merges == vocab.merges, "merge lists differ");

    let added = json["added_tokens"].as_array().expect("added_tokens");
    assert_eq!(added.len(), 256);
    for token in added {
        let id = usize::try_from(token["id"].as_u64().expect("id")).expect("usize");
        assert_eq!(
            vocab.tokens[id],
            token["content"].as_str().expect("content")
        );
        assert_eq!(token["special"], Value::Bool(true));
        assert_eq!(vocab.token_types[id], TokenType::Control.to_gguf());
    }

    // The tokenizer.json reader gives the same tokenizer.
    let from_json = Tokenizer::from_tokenizer_json(&bytes).expect("llama3 tokenizer.json");
    assert_eq!(from_json.vocab_size(), 128_256);
    assert_eq!(from_json.bos_id(), Some(128_000));
    assert_eq!(from_json.eos_id(), Some(128_001));
    assert_eq!(from_json.eot_id(), Some(128_009));
    assert!(from_json.add_bos());
    check_vectors(&from_json, "tokenizer.json");
}

// --- ref-tiny ------------------------------------------------------------------------------

fn tiny() -> Tokenizer {
    Tokenizer::from_tokenizer_json(&read(TINY_TOKENIZER_JSON)).expect("ref-tiny tokenizer.json")
}

#[test]
fn ref_tiny_reference_inputs() {
    let tokenizer = tiny();
    assert_eq!(tokenizer.vocab_size(), 512);
    assert_eq!(tokenizer.bos_id(), Some(509));
    assert_eq!(tokenizer.eos_id(), Some(510));
    assert_eq!(tokenizer.eot_id(), Some(511));
    assert!(tokenizer.add_bos());
    let inputs = read_json(TINY_INPUTS);
    let sequences = inputs["sequences"].as_array().expect("sequences");
    assert_eq!(sequences.len(), 4);
    for sequence in sequences {
        let name = sequence["name"].as_str().expect("name");
        let text = sequence["text"].as_str().expect("text");
        let expected = ids(&sequence["ids"]);
        let got = tokenizer.encode_prompt(text, true);
        if sequence["truncated"] == Value::Bool(true) {
            assert!(
                got.len() > expected.len(),
                "{name}: not longer than the cut"
            );
            assert_eq!(got[..expected.len()], expected, "{name} (prefix)");
        } else {
            assert_eq!(got, expected, "{name}");
        }
        assert_eq!(
            tokenizer.decode(&got[1..], false).as_deref(),
            Ok(text),
            "{name}"
        );
    }
}

/// The same vocabulary handed over GGUF-style (as a converter writes it) encodes the same.
#[test]
fn ref_tiny_gguf_style_equals_tokenizer_json() {
    let json = read_json(TINY_TOKENIZER_JSON);
    let mut tokens = vec![String::new(); 512];
    let mut token_types = vec![TokenType::Normal.to_gguf(); 512];
    for (text, id) in json["model"]["vocab"].as_object().expect("vocab") {
        tokens[usize::try_from(id.as_u64().expect("id")).expect("usize")] = text.clone();
    }
    for token in json["added_tokens"].as_array().expect("added") {
        let id = usize::try_from(token["id"].as_u64().expect("id")).expect("usize");
        tokens[id] = token["content"].as_str().expect("content").to_owned();
        token_types[id] = TokenType::Control.to_gguf();
    }
    let merges = json["model"]["merges"]
        .as_array()
        .expect("merges")
        .iter()
        .map(|pair| {
            format!(
                "{} {}",
                pair[0].as_str().expect("l"),
                pair[1].as_str().expect("r")
            )
        })
        .collect();
    let gguf_style = Tokenizer::from_gguf_vocab(&GgufVocab {
        tokens,
        token_types,
        merges,
        bos_id: Some(509),
        eos_id: Some(510),
        eot_id: Some(511),
        add_bos: true,
    })
    .expect("valid");
    let from_json = tiny();
    let inputs = read_json(TINY_INPUTS);
    for sequence in inputs["sequences"].as_array().expect("sequences") {
        let text = sequence["text"].as_str().expect("text");
        for parse_special in [false, true] {
            assert_eq!(
                gguf_style.encode_prompt(text, parse_special),
                from_json.encode_prompt(text, parse_special)
            );
        }
    }
}

#[test]
fn tokenizer_json_refuses_what_it_does_not_implement() {
    let base = read_json(TINY_TOKENIZER_JSON);
    let refuse = |edit: &dyn Fn(&mut Value)| {
        let mut json = base.clone();
        edit(&mut json);
        let bytes = serde_json::to_vec(&json).expect("serialise");
        Tokenizer::from_tokenizer_json(&bytes).err()
    };
    let unsupported = |result: Option<Error>| matches!(result, Some(Error::UnsupportedJson { .. }));
    assert!(refuse(&|_| {}).is_none(), "the unedited file is accepted");
    assert!(unsupported(refuse(
        &|j| j["model"]["ignore_merges"] = Value::Bool(false)
    )));
    assert!(unsupported(refuse(&|j| {
        j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = Value::from(r"\s+")
    })));
    assert!(unsupported(refuse(&|j| {
        j["normalizer"] = serde_json::json!({"type": "NFC"})
    })));
    assert!(unsupported(refuse(&|j| {
        j["added_tokens"][0]["lstrip"] = Value::Bool(true)
    })));
    assert!(matches!(
        refuse(&|j| j["added_tokens"][0]["id"] = Value::from(9999)),
        Some(Error::InvalidJson { .. })
    ));
    assert!(matches!(
        refuse(&|j| j["model"]["merges"][3] = Value::from("x")),
        Some(Error::InvalidJson { .. })
    ));
    let bytes = read(TINY_TOKENIZER_JSON);
    assert!(matches!(
        Tokenizer::from_tokenizer_json(&bytes[..bytes.len() / 2]),
        Err(Error::InvalidJson { .. })
    ));
}

// --- Properties ----------------------------------------------------------------------------

/// Characters that exercise every branch of the split pattern: letters of several scripts,
/// numbers of several kinds, each whitespace kind, apostrophes and case-folding oddities.
fn tricky_text() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "a", "Z", "é", "ß", "日", "ж", "ſ", "K", "s", "S", "t", "re", "VE", "m", "LL", "d", "'",
        "’", "1", "٣", "Ⅻ", "½", "²", " ", "  ", "\t", "\n", "\r", "\r\n", "\u{a0}", "\u{2003}",
        "\u{85}", "\u{200b}", "\u{3000}", ".", ",", "!", "-", "_", "<|", "|>", "🙂", "\u{301}",
        "\u{0}", "\u{1b}",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn pre_tokenize_equals_the_exact_pattern(text in tricky_text()) {
        let exact = fancy_regex::Regex::new(LLAMA3_SPLIT_PATTERN).expect("pattern");
        let expected: Vec<&str> = exact
            .find_iter(&text)
            .map(|found| found.expect("no backtrack limit hit").as_str())
            .collect();
        let got: Vec<&str> = pre_tokenize(&text).collect();
        prop_assert_eq!(got, expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn llama3_decode_inverts_encode(text in tricky_text(), any_text in "\\PC{0,40}") {
        let tokenizer = llama3();
        for text in [&text, &any_text] {
            let ids = tokenizer.encode(text, true);
            let decoded = tokenizer.decode(&ids, false);
            prop_assert_eq!(decoded.as_deref(), Ok(text.as_str()));
            let mut stream = StreamDecoder::new(false);
            let mut streamed = String::new();
            for &id in &ids {
                streamed.push_str(&stream.push(tokenizer, id).expect("id in range"));
            }
            streamed.push_str(&stream.finish());
            prop_assert_eq!(&streamed, text);
        }
    }
}

/// The LLaMA-3 tokenizer as a Hugging Face `tokenizer.json` (the structure of
/// `shared/fixtures/llama3-tokenizer/tokenizer.json`), rebuilt from the ranks.
fn llama3_tokenizer_json() -> Value {
    let vocab = llama3_gguf_vocab();
    let mut model_vocab = serde_json::Map::new();
    for (id, token) in vocab.tokens.iter().take(128_000).enumerate() {
        model_vocab.insert(token.clone(), Value::from(id));
    }
    let merges: Vec<Value> = vocab
        .merges
        .iter()
        .map(|m| {
            let (a, b) = m.split_once(' ').expect("merge pair");
            serde_json::json!([a, b])
        })
        .collect();
    let added: Vec<Value> = vocab.tokens[128_000..]
        .iter()
        .enumerate()
        .map(|(i, content)| {
            serde_json::json!({"id": 128_000 + i, "content": content, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    serde_json::json!({
        "version": "1.0",
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": bitnet_gguf::hf::vocab::LLAMA3_SPLIT_REGEX},
             "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]},
        "post_processor": {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                       {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [], "special_tokens": {"<|begin_of_text|>":
                {"id": "<|begin_of_text|>", "ids": [128_000], "tokens": ["<|begin_of_text|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null,
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": true,
                  "vocab": model_vocab, "merges": merges}
    })
}

/// Issue 5: the 45 vectors through a GGUF whose tokenizer metadata our converter's code built
/// from `tokenizer.json` + `tokenizer_config.json` (hf::vocab → convert::metadata → GGUF writer →
/// reader → runtime tokenizer).
#[test]
fn llama3_vectors_through_a_gguf_built_by_the_converter() {
    use bitnet_gguf::convert::metadata::{build, MetadataInputs, Profile};
    use bitnet_gguf::gguf::{GgufFile, GgufWriter};
    use bitnet_gguf::hf::synth::SynthPreset;
    use bitnet_gguf::hf::vocab::{Vocab, VocabOptions};
    use bitnet_gguf::hf::CheckpointFormat;
    use bitnet_gguf::layout::LayoutKind;

    let tokenizer_json = llama3_tokenizer_json();
    let tokenizer_config = serde_json::json!({
        "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "add_bos_token": true
    });
    let config = SynthPreset::TwoB4T.config(CheckpointFormat::Packed);
    let vocab = Vocab::from_json(
        Path::new("tokenizer.json"),
        &tokenizer_json,
        Some(&tokenizer_config),
        Some(&config.raw),
        &VocabOptions::default(),
    )
    .expect("the LLaMA-3 tokenizer.json converts");
    let metadata = build(
        &config,
        &MetadataInputs {
            profile: Profile::Official,
            name: "llama3-tokenizer",
            layout: LayoutKind::I2_S,
            vocab: Some(&vocab),
            pre: Some("llama-bpe"),
        },
    );
    let bytes = GgufWriter::new(Vec::new(), &metadata, &[])
        .and_then(GgufWriter::finish)
        .expect("metadata-only GGUF");
    let file = GgufFile::parse(&bytes).expect("our own GGUF parses");
    assert_eq!(
        file.get_array("tokenizer.ggml.merges")
            .unwrap()
            .unwrap()
            .len(),
        280_147
    );
    let tokenizer = bitnet_gguf::runtime::tokenizer_from_gguf(&file).expect("GGUF tokenizer");
    assert_eq!(tokenizer.vocab_size(), 128_256);
    assert_eq!(tokenizer.eot_id(), Some(128_009));
    check_vectors(&tokenizer, "converter-built GGUF");
}
