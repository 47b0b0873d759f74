//! Reading an HF tokenizer.json of the LLaMA-3 structure (hf-formats §4) into a [`Tokenizer`].
//!
//! Anything that would make HF `tokenizers` encode differently from this tokenizer (another
//! pre-tokenizer, a normalizer, merges not ignored for whole-word hits, stripping added tokens)
//! is refused with [`Error::UnsupportedJson`] rather than silently approximated.

use serde_json::Value;

use super::{Error, MergePair, Roles, TokenType, Tokenizer, LLAMA3_SPLIT_PATTERN};

fn invalid(detail: impl Into<String>) -> Error {
    Error::InvalidJson {
        detail: detail.into(),
    }
}

fn unsupported(feature: impl Into<String>) -> Error {
    Error::UnsupportedJson {
        feature: feature.into(),
    }
}

pub(super) fn read(json: &[u8]) -> Result<Tokenizer, Error> {
    let root: Value = serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
    check_pipeline(&root)?;

    let model = root.get("model").ok_or_else(|| invalid("no `model`"))?;
    if let Some(kind) = model.get("type").and_then(Value::as_str) {
        if kind != "BPE" {
            return Err(unsupported(format!("model.type {kind:?}")));
        }
    }
    if model.get("ignore_merges").and_then(Value::as_bool) != Some(true) {
        return Err(unsupported("model.ignore_merges other than true"));
    }
    if model.get("byte_fallback").and_then(Value::as_bool) == Some(true) {
        return Err(unsupported("model.byte_fallback"));
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("model.vocab is not an object"))?;
    let added = match root.get("added_tokens") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(added)) => added.as_slice(),
        Some(_) => return Err(invalid("added_tokens is not an array")),
    };

    // Ids must cover 0..count exactly once, so count bounds every id before anything is
    // allocated by id.
    let count = vocab.len() + added.len();
    let mut slots: Vec<Option<(&str, TokenType)>> = vec![None; count];
    let slot_for = |id: u64, what: &str| -> Result<usize, Error> {
        usize::try_from(id)
            .ok()
            .filter(|&id| id < count)
            .ok_or_else(|| invalid(format!("{what}: id {id} leaves holes in 0..{count}")))
    };
    for (text, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| invalid(format!("model.vocab[{text:?}] is not an id")))?;
        let slot = &mut slots[slot_for(id, "model.vocab")?];
        if slot.is_some() {
            return Err(invalid(format!("model.vocab: id {id} used twice")));
        }
        *slot = Some((text.as_str(), TokenType::Normal));
    }
    for (index, token) in added.iter().enumerate() {
        let field = |name: &str| token.get(name);
        let content = field("content")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("added_tokens[{index}].content missing")))?;
        let id = field("id")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid(format!("added_tokens[{index}].id missing")))?;
        for flag in ["lstrip", "rstrip", "single_word"] {
            if field(flag).and_then(Value::as_bool) == Some(true) {
                return Err(unsupported(format!("added_tokens[{index}].{flag}")));
            }
        }
        let kind = if field("special").and_then(Value::as_bool) == Some(true) {
            TokenType::Control
        } else {
            TokenType::UserDefined
        };
        let slot = &mut slots[slot_for(id, "added_tokens")?];
        match slot {
            // An added token may repeat a vocab entry; it then takes the added token's type.
            Some((text, _)) if *text != content => {
                return Err(invalid(format!(
                    "added_tokens[{index}]: id {id} is {content:?} but model.vocab has {text:?}"
                )));
            }
            _ => *slot = Some((content, kind)),
        }
    }
    // Repeats of vocab entries leave unused slots at the end; any other gap is a hole.
    let used = slots
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |last| last + 1);
    slots.truncate(used);
    let tokens = slots
        .iter()
        .enumerate()
        .map(|(id, slot)| slot.ok_or_else(|| invalid(format!("no token has id {id}"))))
        .collect::<Result<Vec<_>, _>>()?;

    let merges = read_merges(model)?;
    let id_of = |name: &str| {
        tokens
            .iter()
            .position(|&(text, _)| text == name)
            .and_then(|id| u32::try_from(id).ok())
    };
    let (bos_id, add_bos) = match template_bos(&root) {
        Some(name) => (
            Some(id_of(name).ok_or_else(|| {
                invalid(format!("post_processor names bos {name:?}, not a token"))
            })?),
            true,
        ),
        None => (id_of("<|begin_of_text|>"), false),
    };
    let roles = Roles {
        bos_id,
        eos_id: id_of("<|end_of_text|>"),
        eot_id: id_of("<|eot_id|>"),
        add_bos,
    };
    Tokenizer::build(tokens.into_iter(), &merges, roles)
}

/// The normalizer must be absent and the pre-tokenizer the LLaMA-3 `Split` then `ByteLevel`.
fn check_pipeline(root: &Value) -> Result<(), Error> {
    if !matches!(root.get("normalizer"), None | Some(Value::Null)) {
        return Err(unsupported("normalizer"));
    }
    let pre = root
        .get("pre_tokenizer")
        .ok_or_else(|| unsupported("missing pre_tokenizer"))?;
    let steps = pre
        .get("pretokenizers")
        .and_then(Value::as_array)
        .filter(|_| pre.get("type").and_then(Value::as_str) == Some("Sequence"))
        .ok_or_else(|| unsupported("pre_tokenizer other than Sequence[Split, ByteLevel]"))?;
    let [split, byte_level] = steps.as_slice() else {
        return Err(unsupported(
            "pre_tokenizer other than Sequence[Split, ByteLevel]",
        ));
    };
    let text = |value: &Value, key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    let split_ok = text(split, "type").as_deref() == Some("Split")
        && split
            .get("pattern")
            .and_then(|pattern| pattern.get("Regex"))
            .and_then(Value::as_str)
            == Some(LLAMA3_SPLIT_PATTERN)
        && text(split, "behavior").as_deref() == Some("Isolated")
        && split.get("invert").and_then(Value::as_bool) != Some(true);
    if !split_ok {
        return Err(unsupported(
            "pre_tokenizer Split other than the LLaMA-3 pattern, Isolated",
        ));
    }
    let byte_level_ok = text(byte_level, "type").as_deref() == Some("ByteLevel")
        && byte_level.get("use_regex").and_then(Value::as_bool) == Some(false)
        && byte_level.get("add_prefix_space").and_then(Value::as_bool) != Some(true);
    if !byte_level_ok {
        return Err(unsupported(
            "pre_tokenizer ByteLevel with a regex or a prefix space",
        ));
    }
    Ok(())
}

fn read_merges(model: &Value) -> Result<Vec<MergePair<'_>>, Error> {
    let merges = match model.get("merges") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(merges)) => merges,
        Some(_) => return Err(invalid("model.merges is not an array")),
    };
    merges
        .iter()
        .enumerate()
        .map(|(index, merge)| {
            let pair = match merge {
                Value::String(joined) => joined
                    .split_once(' ')
                    .filter(|(_, right)| !right.contains(' ')),
                Value::Array(parts) => match parts.as_slice() {
                    [Value::String(left), Value::String(right)] => {
                        Some((left.as_str(), right.as_str()))
                    }
                    _ => None,
                },
                _ => None,
            };
            pair.ok_or_else(|| invalid(format!("model.merges[{index}] is not a pair of tokens")))
        })
        .collect()
}

/// The special token a `TemplateProcessing` post-processor puts first, if any.
fn template_bos(root: &Value) -> Option<&str> {
    let post = root.get("post_processor")?;
    let template = if post.get("type").and_then(Value::as_str) == Some("TemplateProcessing") {
        post
    } else {
        post.get("processors")?
            .as_array()?
            .iter()
            .find(|p| p.get("type").and_then(Value::as_str) == Some("TemplateProcessing"))?
    };
    template
        .get("single")?
        .as_array()?
        .first()?
        .get("SpecialToken")?
        .get("id")?
        .as_str()
}
