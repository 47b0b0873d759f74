//! Tokenizer: `tokenizer.json` + `tokenizer_config.json` ↔ GGUF tokenizer metadata
//! (`spec/bitnet-arch.md` §5, gguf-py's `get_vocab_base` and `SpecialVocab`).
//!
//! [`Vocab`] is a plain struct; [`Vocab::entries`] gives the GGUF keys in gguf-py's emission
//! order as neutral [`VocabValue`]s (the converter maps them to GGUF values). The reverse,
//! [`Vocab::to_tokenizer_json`], rebuilds a Llama-3-style byte-level BPE `tokenizer.json`.

use super::Error;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// `tokenizer.ggml.token_type` NORMAL.
pub const TOKEN_TYPE_NORMAL: i32 = 1;
/// `tokenizer.ggml.token_type` CONTROL (special added tokens).
pub const TOKEN_TYPE_CONTROL: i32 = 3;
/// `tokenizer.ggml.token_type` USER_DEFINED (non-special added tokens).
pub const TOKEN_TYPE_USER_DEFINED: i32 = 4;
/// `tokenizer.ggml.token_type` UNUSED (ids with no token, written as `[PAD<id>]`).
pub const TOKEN_TYPE_UNUSED: i32 = 5;

/// The Llama-3 / tiktoken split pattern (`spec/hf-formats.md` §4).
pub const LLAMA3_SPLIT_REGEX: &str = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// A GGUF metadata value, kept neutral of the GGUF writer's own value type.
#[derive(Debug, Clone, PartialEq)]
pub enum VocabValue {
    /// STRING.
    Str(String),
    /// UINT32.
    U32(u32),
    /// BOOL.
    Bool(bool),
    /// ARRAY of STRING.
    StrArray(Vec<String>),
    /// ARRAY of INT32.
    I32Array(Vec<i32>),
    /// ARRAY of FLOAT32.
    F32Array(Vec<f32>),
}

/// Special token kinds, in gguf-py's order, with their GGUF key and tokenizer_config name.
pub const SPECIAL_KINDS: [(&str, &str); 7] = [
    ("bos", "tokenizer.ggml.bos_token_id"),
    ("eos", "tokenizer.ggml.eos_token_id"),
    ("unk", "tokenizer.ggml.unknown_token_id"),
    ("sep", "tokenizer.ggml.seperator_token_id"),
    ("pad", "tokenizer.ggml.padding_token_id"),
    ("cls", "tokenizer.ggml.cls_token_id"),
    ("mask", "tokenizer.ggml.mask_token_id"),
];

/// Options for building a [`Vocab`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VocabOptions {
    /// Write `tokenizer.ggml.scores` (0.0 for normal tokens, -1000.0 for added ones) as the
    /// official-file profile does; the current upstream converter writes none.
    pub scores: bool,
    /// `tokenizer.ggml.pre` (e.g. `"llama-bpe"`); `None` leaves the key out.
    pub pre: Option<String>,
    /// Number of token ids (config `vocab_size`); ids without a token become `[PAD<id>]`.
    /// `None`: one past the highest id in the tokenizer.
    pub vocab_size: Option<usize>,
}

/// GGUF tokenizer metadata for a byte-level BPE (`gpt2`) tokenizer.
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// `tokenizer.ggml.model` (`"gpt2"`).
    pub model: String,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<String>,
    /// Tokens in id order (byte-level strings; added tokens verbatim).
    pub tokens: Vec<String>,
    /// Token types (1 normal, 3 control, 4 user-defined, 5 unused).
    pub token_types: Vec<i32>,
    /// Optional scores.
    pub scores: Option<Vec<f32>>,
    /// Merges as `"a b"` strings (a literal space inside a piece is U+0120).
    pub merges: Vec<String>,
    /// Special token ids by kind (`"bos"`, `"eos"`, `"unk"`, `"sep"`, `"pad"`, `"cls"`,
    /// `"mask"`), in [`SPECIAL_KINDS`] order.
    pub special_ids: Vec<(&'static str, u32)>,
    /// `tokenizer.ggml.add_bos_token`, if `tokenizer_config.json` says.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`, if `tokenizer_config.json` says.
    pub add_eos_token: Option<bool>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}

fn tok_err(path: &Path, what: impl Into<String>) -> Error {
    Error::Tokenizer {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn read_json(path: &Path) -> Result<Value, Error> {
    let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_slice(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// GPT-2's byte → printable character table (byte-level BPE strings).
pub fn bytes_to_unicode() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            char::from(b)
        } else {
            let c = char::from_u32(256 + extra).unwrap_or('\u{FFFD}');
            extra += 1;
            c
        };
    }
    table
}

/// The 256 single-byte tokens in GPT-2 / Llama-3 order (printable bytes first).
pub fn byte_tokens_in_order() -> Vec<String> {
    let table = bytes_to_unicode();
    let mut order: Vec<u8> = (0..=255u8)
        .filter(|b| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF))
        .collect();
    order.extend((0..=255u8).filter(|b| !matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)));
    order
        .into_iter()
        .map(|b| table[b as usize].to_string())
        .collect()
}

impl Vocab {
    /// Reads `tokenizer.json`, `tokenizer_config.json` (optional) and `config.json` (optional,
    /// for `bos_token_id`-style fallbacks) from a checkpoint directory.
    pub fn read(dir: &Path, options: &VocabOptions) -> Result<Self, Error> {
        let tokenizer_path = dir.join("tokenizer.json");
        let tokenizer = read_json(&tokenizer_path)?;
        let tc_path = dir.join("tokenizer_config.json");
        let tokenizer_config = if tc_path.exists() {
            Some(read_json(&tc_path)?)
        } else {
            None
        };
        let config_path = dir.join("config.json");
        let config = if config_path.exists() {
            Some(read_json(&config_path)?)
        } else {
            None
        };
        Self::from_json(
            &tokenizer_path,
            &tokenizer,
            tokenizer_config.as_ref(),
            config.as_ref(),
            options,
        )
    }

    /// Builds the vocab from parsed JSON (`path` names `tokenizer.json` in errors).
    pub fn from_json(
        path: &Path,
        tokenizer: &Value,
        tokenizer_config: Option<&Value>,
        config: Option<&Value>,
        options: &VocabOptions,
    ) -> Result<Self, Error> {
        let model = tokenizer
            .get("model")
            .ok_or_else(|| tok_err(path, "no `model`"))?;
        if let Some(kind) = model.get("type").and_then(Value::as_str) {
            if kind != "BPE" {
                return Err(tok_err(
                    path,
                    format!("model type `{kind}` (only BPE is supported)"),
                ));
            }
        }
        let vocab = model
            .get("vocab")
            .and_then(Value::as_object)
            .ok_or_else(|| tok_err(path, "no `model.vocab` object"))?;
        let added: &[Value] = tokenizer
            .get("added_tokens")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice);

        // id -> (token, type)
        let mut entries: Vec<(u32, String, i32)> = Vec::with_capacity(vocab.len() + added.len());
        for (token, id) in vocab {
            let id = id
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| tok_err(path, format!("vocab entry `{token}` has id {id}")))?;
            entries.push((id, token.clone(), TOKEN_TYPE_NORMAL));
        }
        let mut added_contents = Vec::new();
        for a in added {
            let id = a
                .get("id")
                .and_then(Value::as_u64)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| tok_err(path, format!("added token without a valid id: {a}")))?;
            let content = a
                .get("content")
                .and_then(Value::as_str)
                .ok_or_else(|| tok_err(path, format!("added token {id} without content")))?;
            let special = a.get("special").and_then(Value::as_bool).unwrap_or(false);
            let ty = if special {
                TOKEN_TYPE_CONTROL
            } else {
                TOKEN_TYPE_USER_DEFINED
            };
            added_contents.push((content.to_string(), id));
            // An added token that is also in the vocab keeps its id; it is typed as added.
            if let Some(e) = entries.iter_mut().find(|e| e.0 == id) {
                if e.1 != content {
                    return Err(tok_err(
                        path,
                        format!(
                            "id {id} is `{}` in the vocab but added token `{content}`",
                            e.1
                        ),
                    ));
                }
                e.2 = ty;
            } else {
                entries.push((id, content.to_string(), ty));
            }
        }
        entries.sort_by_key(|e| e.0);
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(tok_err(
                path,
                format!("id {} is used by `{}` and `{}`", w[0].0, w[0].1, w[1].1),
            ));
        }
        let max_id = entries.last().map_or(0, |e| e.0 as usize + 1);
        let n = options.vocab_size.unwrap_or(max_id);
        if max_id > n {
            return Err(tok_err(
                path,
                format!("token id {} is not below vocab_size {n}", max_id - 1),
            ));
        }
        if n > 16 << 20 {
            return Err(tok_err(
                path,
                format!("vocab_size {n} is implausibly large"),
            ));
        }
        let mut tokens: Vec<String> = (0..n).map(|i| format!("[PAD{i}]")).collect();
        let mut token_types = vec![TOKEN_TYPE_UNUSED; n];
        for (id, token, ty) in entries {
            tokens[id as usize] = token;
            token_types[id as usize] = ty;
        }
        let scores = options.scores.then(|| {
            token_types
                .iter()
                .map(|&t| if t == TOKEN_TYPE_NORMAL { 0.0 } else { -1000.0 })
                .collect()
        });

        let merges = match model.get("merges") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|m| match m {
                    Value::String(s) => Ok(s.clone()),
                    Value::Array(pair) if pair.len() == 2 => {
                        let parts: Option<Vec<String>> = pair
                            .iter()
                            .map(|p| p.as_str().map(|s| s.replace(' ', "\u{0120}")))
                            .collect();
                        parts
                            .map(|p| p.join(" "))
                            .ok_or_else(|| tok_err(path, format!("bad merge {m}")))
                    }
                    _ => Err(tok_err(path, format!("bad merge {m}"))),
                })
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(tok_err(path, format!("`model.merges` is {v}"))),
        };

        let mut special_ids = Vec::new();
        for (kind, _) in SPECIAL_KINDS {
            let from_tc = tokenizer_config
                .and_then(|tc| tc.get(format!("{kind}_token")))
                .and_then(|v| match v {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) => o.get("content").and_then(Value::as_str),
                    _ => None,
                })
                .and_then(|content| {
                    added_contents
                        .iter()
                        .find(|(c, _)| c == content)
                        .map(|(_, id)| *id)
                });
            let from_config = || {
                config
                    .and_then(|c| c.get(format!("{kind}_token_id")))
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
            };
            if let Some(id) = from_tc.or_else(from_config) {
                if (id as usize) < n {
                    special_ids.push((kind, id));
                }
            }
        }
        let flag = |key: &str| {
            tokenizer_config
                .and_then(|tc| tc.get(key))
                .and_then(Value::as_bool)
        };
        let chat_template = match tokenizer_config.and_then(|tc| tc.get("chat_template")) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_string),
            Some(v) => return Err(tok_err(path, format!("chat_template is {v}"))),
        };
        Ok(Vocab {
            model: "gpt2".into(),
            pre: options.pre.clone(),
            tokens,
            token_types,
            scores,
            merges,
            special_ids,
            add_bos_token: flag("add_bos_token"),
            add_eos_token: flag("add_eos_token"),
            chat_template,
        })
    }

    /// The id of a special token kind (`"bos"`, `"eos"`, ...).
    pub fn special_id(&self, kind: &str) -> Option<u32> {
        self.special_ids
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, id)| *id)
    }

    /// GGUF tokenizer keys in gguf-py's order: model, pre, tokens, scores, token_type, merges,
    /// special ids, add flags, chat template. Absent optional keys are left out.
    pub fn entries(&self) -> Vec<(&'static str, VocabValue)> {
        let mut out = vec![("tokenizer.ggml.model", VocabValue::Str(self.model.clone()))];
        if let Some(pre) = &self.pre {
            out.push(("tokenizer.ggml.pre", VocabValue::Str(pre.clone())));
        }
        out.push((
            "tokenizer.ggml.tokens",
            VocabValue::StrArray(self.tokens.clone()),
        ));
        if let Some(scores) = &self.scores {
            out.push((
                "tokenizer.ggml.scores",
                VocabValue::F32Array(scores.clone()),
            ));
        }
        out.push((
            "tokenizer.ggml.token_type",
            VocabValue::I32Array(self.token_types.clone()),
        ));
        out.push((
            "tokenizer.ggml.merges",
            VocabValue::StrArray(self.merges.clone()),
        ));
        for (kind, key) in SPECIAL_KINDS {
            if let Some(id) = self.special_id(kind) {
                out.push((key, VocabValue::U32(id)));
            }
        }
        if let Some(b) = self.add_bos_token {
            out.push(("tokenizer.ggml.add_bos_token", VocabValue::Bool(b)));
        }
        if let Some(b) = self.add_eos_token {
            out.push(("tokenizer.ggml.add_eos_token", VocabValue::Bool(b)));
        }
        if let Some(t) = &self.chat_template {
            out.push(("tokenizer.chat_template", VocabValue::Str(t.clone())));
        }
        out
    }

    /// Rebuilds a `tokenizer.json` like the fixtures' (Split with the Llama-3 regex + ByteLevel,
    /// BPE with `ignore_merges`, ByteLevel decoder, TemplateProcessing adding bos unless
    /// `add_bos_token` is false). Normal tokens go to `model.vocab`, control/user-defined ones
    /// to `added_tokens`; unused `[PAD<id>]` ids are left out.
    pub fn to_tokenizer_json(&self) -> Value {
        let mut vocab = Map::new();
        let mut added = Vec::new();
        for (id, (token, &ty)) in self.tokens.iter().zip(&self.token_types).enumerate() {
            match ty {
                TOKEN_TYPE_CONTROL | TOKEN_TYPE_USER_DEFINED => added.push(json!({
                    "id": id,
                    "content": token,
                    "single_word": false,
                    "lstrip": false,
                    "rstrip": false,
                    "normalized": ty != TOKEN_TYPE_CONTROL,
                    "special": ty == TOKEN_TYPE_CONTROL,
                })),
                TOKEN_TYPE_UNUSED => {}
                _ => {
                    vocab.insert(token.clone(), json!(id));
                }
            }
        }
        let merges: Vec<Value> = self
            .merges
            .iter()
            .map(|m| match m.split_once(' ') {
                Some((a, b)) => json!([a, b]),
                None => json!(m),
            })
            .collect();
        let byte_level_post = json!({"type": "ByteLevel", "add_prefix_space": true,
                                     "trim_offsets": false, "use_regex": true});
        let bos = self
            .special_id("bos")
            .filter(|_| self.add_bos_token != Some(false))
            .and_then(|id| self.tokens.get(id as usize).map(|t| (id, t.clone())));
        let post_processor = match bos {
            Some((id, token)) => json!({"type": "Sequence", "processors": [
                byte_level_post,
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": token, "type_id": 0}},
                            {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": token, "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": token, "type_id": 0}},
                          {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {token.clone(): {"id": token, "ids": [id], "tokens": [token]}}}
            ]}),
            None => byte_level_post,
        };
        json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT_REGEX},
                 "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                 "use_regex": false}
            ]},
            "post_processor": post_processor,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                        "use_regex": true},
            "model": {
                "type": "BPE",
                "dropout": null,
                "unk_token": null,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": false,
                "byte_fallback": false,
                "ignore_merges": true,
                "vocab": vocab,
                "merges": merges
            }
        })
    }

    /// Rebuilds `tokenizer_config.json` (added tokens, special token strings, add flags, chat
    /// template; `model_max_length` from the caller, e.g. the context length).
    pub fn to_tokenizer_config_json(&self, model_max_length: usize) -> Value {
        let mut decoder = Map::new();
        for (id, (token, &ty)) in self.tokens.iter().zip(&self.token_types).enumerate() {
            if ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED {
                decoder.insert(
                    id.to_string(),
                    json!({"content": token, "lstrip": false,
                           "normalized": ty != TOKEN_TYPE_CONTROL, "rstrip": false,
                           "single_word": false, "special": ty == TOKEN_TYPE_CONTROL}),
                );
            }
        }
        let mut out = Map::new();
        if let Some(b) = self.add_bos_token {
            out.insert("add_bos_token".into(), json!(b));
        }
        if let Some(b) = self.add_eos_token {
            out.insert("add_eos_token".into(), json!(b));
        }
        out.insert("added_tokens_decoder".into(), Value::Object(decoder));
        for (kind, _) in SPECIAL_KINDS {
            if let Some(token) = self
                .special_id(kind)
                .and_then(|id| self.tokens.get(id as usize))
            {
                out.insert(format!("{kind}_token"), json!(token));
            }
        }
        if let Some(t) = &self.chat_template {
            out.insert("chat_template".into(), json!(t));
        }
        out.insert("clean_up_tokenization_spaces".into(), json!(false));
        out.insert(
            "model_input_names".into(),
            json!(["input_ids", "attention_mask"]),
        );
        out.insert("model_max_length".into(), json!(model_max_length));
        out.insert("tokenizer_class".into(), json!("PreTrainedTokenizerFast"));
        Value::Object(out)
    }

    /// Writes `tokenizer.json` and `tokenizer_config.json` into `dir` (pretty-printed).
    pub fn write_files(&self, dir: &Path, model_max_length: usize) -> Result<(), Error> {
        write_json(&dir.join("tokenizer.json"), &self.to_tokenizer_json())?;
        write_json(
            &dir.join("tokenizer_config.json"),
            &self.to_tokenizer_config_json(model_max_length),
        )
    }
}

/// Writes pretty JSON (2-space indent, as transformers does) to `path`.
pub(crate) fn write_json(path: &Path, value: &Value) -> Result<(), Error> {
    let text = serde_json::to_vec_pretty(value).map_err(|source| Error::Json {
        path: PathBuf::from(path),
        source,
    })?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_gpt2() {
        let t = bytes_to_unicode();
        assert_eq!(t[b' ' as usize], '\u{0120}');
        assert_eq!(t[b'\n' as usize], '\u{010A}');
        assert_eq!(t[b'!' as usize], '!');
        let order = byte_tokens_in_order();
        assert_eq!(order[0], "!");
        assert_eq!(order.len(), 256);
    }

    #[test]
    fn pair_merges_replace_spaces() {
        let tok = json!({"model": {"type": "BPE", "vocab": {"a": 0, " b": 1, "a b": 2},
                                   "merges": [["a", " b"], "x y"]}});
        let v =
            Vocab::from_json(Path::new("t"), &tok, None, None, &VocabOptions::default()).unwrap();
        assert_eq!(v.merges, vec!["a \u{0120}b".to_string(), "x y".to_string()]);
    }

    #[test]
    fn gaps_become_pad_tokens() {
        let tok = json!({"model": {"type": "BPE", "vocab": {"a": 0, "b": 2}, "merges": []}});
        let opts = VocabOptions {
            vocab_size: Some(4),
            ..Default::default()
        };
        let v = Vocab::from_json(Path::new("t"), &tok, None, None, &opts).unwrap();
        assert_eq!(v.tokens, vec!["a", "[PAD1]", "b", "[PAD3]"]);
        assert_eq!(v.token_types, vec![1, 5, 1, 5]);
    }
}
