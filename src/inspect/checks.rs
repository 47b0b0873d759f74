//! Findings (errors, warnings, notes) and runtime loadability, from the facts in
//! `spec/bitnet-arch.md` §3 and `spec/gguf-container.md` §9, §12.

use crate::gguf::{self, keys, Dialect, GgmlType, GgufFile, Value, ValueType};
use crate::layout::{KernelConfig, Shape};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// Severity of a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The file is invalid or a loader will reject it (`--validate` exits 1).
    Error,
    /// A known pitfall: loads, but probably not as intended.
    Warning,
    /// Worth knowing.
    Info,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Info => "info",
        })
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Severity.
    pub level: Level,
    /// Stable identifier (`"missing_rope_freq_base"`, a `gguf::Error` code, ...).
    pub code: String,
    /// Explanation.
    pub message: String,
}

fn push(out: &mut Vec<Finding>, level: Level, code: &str, message: String) {
    out.push(Finding {
        level,
        code: code.to_owned(),
        message,
    });
}

/// Loader expectations for BitNet archs: (suffix, type, required).
const ARCH_KEYS: &[(&str, ValueType, bool)] = &[
    (keys::VOCAB_SIZE, ValueType::U32, false),
    (keys::CONTEXT_LENGTH, ValueType::U32, true),
    (keys::EMBEDDING_LENGTH, ValueType::U32, true),
    (keys::BLOCK_COUNT, ValueType::U32, true),
    (keys::FEED_FORWARD_LENGTH, ValueType::U32, true),
    (keys::HEAD_COUNT, ValueType::U32, true),
    (keys::HEAD_COUNT_KV, ValueType::U32, false),
    (keys::ROPE_FREQ_BASE, ValueType::F32, false),
    (keys::ROPE_DIMENSION_COUNT, ValueType::U32, false),
    (keys::RMS_EPSILON, ValueType::F32, true),
];

/// Types of general/tokenizer keys the loaders check strictly (V21).
const GLOBAL_KEYS: &[(&str, ValueType)] = &[
    (keys::FILE_TYPE, ValueType::U32),
    (keys::QUANTIZATION_VERSION, ValueType::U32),
    (keys::NAME, ValueType::String),
    (keys::TOKENIZER_MODEL, ValueType::String),
    (keys::TOKENIZER_PRE, ValueType::String),
    (keys::BOS_TOKEN_ID, ValueType::U32),
    (keys::EOS_TOKEN_ID, ValueType::U32),
    (keys::PADDING_TOKEN_ID, ValueType::U32),
    (keys::ADD_BOS_TOKEN, ValueType::Bool),
    (keys::CHAT_TEMPLATE, ValueType::String),
];

fn is_bitnet_158(arch: Option<&str>) -> bool {
    matches!(arch, Some(keys::ARCH_BITNET_B158 | keys::ARCH_BITNET_25))
}

fn u32_of(file: &GgufFile<'_>, key: &str) -> Option<u32> {
    match file.get(key) {
        Some(Value::U32(v)) => Some(*v),
        _ => None,
    }
}

/// Tensor names the `bitnet-b1.58` loader creates for `layers` blocks (`bitnet-arch.md` §2.2).
fn expected_tensors(layers: u32) -> BTreeSet<String> {
    let mut set: BTreeSet<String> = ["token_embd.weight", "output_norm.weight"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for n in 0..layers {
        for part in [
            "attn_norm",
            "attn_q",
            "attn_k",
            "attn_v",
            "attn_output",
            "attn_sub_norm",
            "ffn_norm",
            "ffn_gate",
            "ffn_up",
            "ffn_down",
            "ffn_sub_norm",
        ] {
            set.insert(format!("blk.{n}.{part}.weight"));
        }
    }
    set
}

/// All findings for `file`.
pub fn findings(
    file: &GgufFile<'_>,
    structural_error: Option<&gguf::Error>,
    validate_data: bool,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if let Some(e) = structural_error {
        push(&mut out, Level::Error, e.code(), e.to_string());
    }
    for w in file.warnings() {
        push(
            &mut out,
            Level::Warning,
            "invalid_utf8_value",
            format!(
                "byte {}: {}{}",
                w.offset,
                w.message,
                w.key
                    .as_ref()
                    .map(|k| format!(" (key {k:?})"))
                    .unwrap_or_default()
            ),
        );
    }
    for e in file.metadata() {
        if let Value::Array(a) = e.value {
            if a.elem_type() == ValueType::Array {
                push(
                    &mut out,
                    Level::Error,
                    "NestedArray",
                    format!(
                        "key {:?} at byte {} is an array of arrays; every ggml loader rejects it",
                        e.key, e.offset
                    ),
                );
            }
        }
    }
    if validate_data {
        for e in file.validate_data() {
            push(&mut out, Level::Error, e.code(), e.to_string());
        }
    }

    let arch = file.architecture();
    // V21: exact key types.
    for &(key, ty) in GLOBAL_KEYS {
        if let Some(v) = file.get(key) {
            if v.value_type() != ty {
                push(
                    &mut out,
                    Level::Error,
                    "wrong_key_type",
                    format!(
                        "{key} has type {}, loaders require {} (\"key has wrong type\")",
                        v.value_type(),
                        ty
                    ),
                );
            }
        }
    }
    if let Some(a) = arch {
        let known = a.starts_with("bitnet");
        for &(suffix, ty, required) in ARCH_KEYS {
            let key = keys::arch_key(a, suffix);
            match file.get(&key) {
                Some(v)
                    if v.value_type() != ty
                        && !(v.value_type() == ValueType::Array && ty == ValueType::U32) =>
                {
                    push(
                        &mut out,
                        Level::Error,
                        "wrong_key_type",
                        format!("{key} has type {}, loaders require {}", v.value_type(), ty),
                    );
                }
                None if required && known => {
                    push(
                        &mut out,
                        Level::Error,
                        "missing_required_key",
                        format!("{key} is missing; the {a} loader requires it"),
                    );
                }
                _ => {}
            }
        }
        let k = |s| keys::arch_key(a, s);
        if known && file.get(&k(keys::ROPE_FREQ_BASE)).is_none() {
            push(
                &mut out,
                Level::Warning,
                "missing_rope_freq_base",
                format!(
                    "{} is missing: llama.cpp falls back to 10000 (2B-4T needs 500000)",
                    k(keys::ROPE_FREQ_BASE)
                ),
            );
        }
        if known && file.get(&k(keys::HEAD_COUNT_KV)).is_none() {
            push(&mut out, Level::Warning, "missing_head_count_kv", format!(
                "{} is missing: loaders assume head_count (wrong for grouped-query models like 2B-4T)", k(keys::HEAD_COUNT_KV)));
        }
        let heads = u32_of(file, &k(keys::HEAD_COUNT));
        let width = u32_of(file, &k(keys::EMBEDDING_LENGTH));
        if let (Some(rot), Some(h), Some(w)) =
            (u32_of(file, &k(keys::ROPE_DIMENSION_COUNT)), heads, width)
        {
            if h != 0 && rot != w / h {
                push(&mut out, Level::Error, "invalid_n_rot", format!(
                    "rope.dimension_count {rot} differs from the head dim {} (llama.cpp: \"invalid n_rot\")", w / h));
            }
        }
        let layers = u32_of(file, &k(keys::BLOCK_COUNT));
        if a == keys::ARCH_BITNET && layers == Some(30) && width == Some(2560) {
            push(&mut out, Level::Warning, "arch_bitnet_on_2b4t", "architecture \"bitnet\" on a 30-layer, 2560-wide model: that selects the 2024 graph (SiLU FFN, scale tensors); BitNet-b1.58-2B-4T needs \"bitnet-b1.58\"".into());
        }
        if a == keys::ARCH_BITNET_25 {
            push(
                &mut out,
                Level::Info,
                "arch_bitnet_25",
                "architecture \"bitnet-25\" is the legacy name of \"bitnet-b1.58\" (same graph)"
                    .into(),
            );
        }
        // V22: the tensor set the loader creates.
        if is_bitnet_158(Some(a)) {
            if let Some(layers) = layers {
                if layers <= 4096 {
                    let expected = expected_tensors(layers);
                    let present: BTreeSet<String> =
                        file.tensors().iter().map(|t| t.name.clone()).collect();
                    let missing: Vec<_> = expected.difference(&present).cloned().collect();
                    let extra: Vec<_> = present.difference(&expected).cloned().collect();
                    if !missing.is_empty() {
                        push(
                            &mut out,
                            Level::Error,
                            "missing_tensors",
                            format!(
                                "{} tensor(s) the {a} loader needs are missing, e.g. {}",
                                missing.len(),
                                missing[0]
                            ),
                        );
                    }
                    if !extra.is_empty() {
                        push(&mut out, Level::Error, "extra_tensors", format!(
                            "{} tensor(s) the {a} loader does not create (\"wrong number of tensors\"), e.g. {}", extra.len(), extra[0]));
                    }
                }
            }
        }
    }

    // Tokenizer pitfalls.
    let model = file.get(keys::TOKENIZER_MODEL).and_then(Value::as_str);
    if model == Some("gpt2") {
        if file.get(keys::MERGES).is_none() {
            push(&mut out, Level::Error, "missing_merges", "tokenizer.ggml.model is \"gpt2\" but tokenizer.ggml.merges is missing (\"cannot find tokenizer merges\")".into());
        }
        if file.get(keys::TOKENIZER_PRE).is_none() {
            push(&mut out, Level::Warning, "missing_pre", "tokenizer.ggml.pre is missing: llama.cpp uses the \"default\" pre-tokenizer (\"GENERATION QUALITY WILL BE DEGRADED\"); Llama-3 vocabularies want \"llama-bpe\"".into());
        }
        for (key, label) in [(keys::BOS_TOKEN_ID, "bos"), (keys::EOS_TOKEN_ID, "eos")] {
            if file.get(key).is_none() {
                push(
                    &mut out,
                    Level::Warning,
                    "missing_special_id",
                    format!("{key} is missing: the gpt2 default {label} id is 11"),
                );
            }
        }
    }
    if let (Some(a), Some(tokens)) = (arch, file.get(keys::TOKENS).and_then(Value::as_array)) {
        if let Some(vs) = u32_of(file, &keys::arch_key(a, keys::VOCAB_SIZE)) {
            if u64::from(vs) != tokens.len() {
                push(
                    &mut out,
                    Level::Warning,
                    "vocab_size_mismatch",
                    format!(
                        "vocab_size {vs} differs from the {} entries of tokenizer.ggml.tokens",
                        tokens.len()
                    ),
                );
            }
        }
    }

    // Layout pitfalls.
    let has = |ty: GgmlType| file.tensors().iter().any(|t| t.ggml_type == ty);
    if has(GgmlType::I2_S) {
        push(&mut out, Level::Warning, "i2s_block_geometry", "I2_S files do not record their block geometry: this tool assumes the x86 layout (128-value blocks); a file from bitnet.cpp's ARM build (64-value blocks) decodes to wrong weights without any error".into());
    }
    let tl_keys: Vec<String> = file
        .metadata()
        .iter()
        .filter(|e| e.key.starts_with(keys::BITNET_TL_PREFIX))
        .map(|e| {
            format!(
                "{} = {}",
                e.key,
                super::json::value_text(&e.value, Some(16))
            )
        })
        .collect();
    if has(GgmlType::TL1) || has(GgmlType::TL2) {
        match file.get(keys::BITNET_TL_KERNEL_CONFIG) {
            None => push(&mut out, Level::Warning, "tiling_not_recorded", format!(
                "TL1/TL2 tensors present but the file does not record the kernel tiling ({} absent): bitnet.cpp runs them only with kernels generated for exactly these shapes and tiling, and this tool decodes them with the derivation rule", keys::BITNET_TL_KERNEL_CONFIG)),
            Some(value) => {
                let parsed = value
                    .as_str()
                    .ok_or_else(|| "not a STRING".to_owned())
                    .and_then(|text| KernelConfig::parse(text).map_err(|e| e.to_string()));
                match parsed {
                    Err(why) => push(&mut out, Level::Error, "tiling_unreadable", format!("{} cannot be read: {why}", keys::BITNET_TL_KERNEL_CONFIG)),
                    Ok(config) => {
                        for t in file.tensors().iter().filter(|t| matches!(t.ggml_type, GgmlType::TL1 | GgmlType::TL2)) {
                            let Some((rows, cols)) = t.matrix_shape() else { continue };
                            let shape = Shape::new(rows as usize, cols as usize);
                            let checked = if t.ggml_type == GgmlType::TL1 { config.tl1_tiling(shape).map(|_| ()) } else { config.tl2_tiling(shape).map(|_| ()) };
                            if let Err(e) = checked {
                                push(&mut out, Level::Error, "tiling_invalid", format!("{}: recorded tiling unusable: {e}", t.name));
                            }
                        }
                    }
                }
            }
        }
    }
    for k in tl_keys {
        push(&mut out, Level::Info, "bitnet_tl_key", k);
    }
    out
}

/// Can one runtime load the file?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadVerdict {
    /// Loads and runs.
    Yes,
    /// Loads only under the stated conditions.
    Conditional,
    /// Does not load, or loads and computes garbage.
    No,
}

impl fmt::Display for LoadVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LoadVerdict::Yes => "yes",
            LoadVerdict::Conditional => "conditional",
            LoadVerdict::No => "no",
        })
    }
}

/// One runtime's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loadability {
    /// The runtime.
    pub runtime: Dialect,
    /// The answer.
    pub verdict: LoadVerdict,
    /// Why (empty for an unconditional yes).
    pub reasons: Vec<String>,
}

/// Loadability in bitnet.cpp, ik_llama.cpp and llama.cpp mainline (facts from issue 2 and
/// `spec/gguf-container.md` §12).
pub fn loadability(file: &GgufFile<'_>) -> Vec<Loadability> {
    let arch = file.architecture();
    let types: BTreeSet<GgmlType> = file.tensors().iter().map(|t| t.ggml_type).collect();
    let shapes_of = |ty: GgmlType| -> Vec<String> {
        let set: BTreeSet<(u64, u64)> = file
            .tensors()
            .iter()
            .filter(|t| t.ggml_type == ty)
            .filter_map(|t| t.matrix_shape())
            .collect();
        set.into_iter()
            .map(|(m, k)| format!("(M {m}, K {k})"))
            .collect()
    };
    let missing_keys = findings_for_keys(file);
    Dialect::ALL
        .into_iter()
        .map(|runtime| {
            let mut no = Vec::new();
            let mut cond = Vec::new();
            for &ty in &types {
                let info = ty.info();
                if !runtime.in_set(info.defined_in) {
                    let what = match (runtime, ty) {
                        (Dialect::IkLlama | Dialect::Mainline, GgmlType::TL2) => {
                            "type id 39 is MXFP4 there: the TL2 data would be misread".to_owned()
                        }
                        // Seen with ik-llama-cpp-python 0.1.5's llama-quantize on a TQ2_0
                        // file: the loader divides by the unknown type's block size of 0.
                        (Dialect::IkLlama, GgmlType::TQ1_0 | GgmlType::TQ2_0) => format!(
                            "type {} (id {}) is unknown there: its GGUF reader dies on it (SIGFPE)",
                            info.name, info.id
                        ),
                        _ => format!("type {} (id {}) is unknown there", info.name, info.id),
                    };
                    no.push(what);
                }
            }
            match runtime {
                Dialect::BitnetCpp => {
                    for ty in [GgmlType::TL1, GgmlType::TL2] {
                        if types.contains(&ty) {
                            cond.push(format!(
                                "{ty} runs only in a {ty} build whose kernels were generated for exactly these shapes: {}",
                                shapes_of(ty).join(", ")
                            ));
                        }
                    }
                }
                Dialect::IkLlama => {
                    if types.contains(&GgmlType::I2_S) {
                        no.push("I2_S loads but computes garbage (no I2_S dot product); requantize first: llama-quantize --allow-requantize IN OUT iq2_bn".into());
                    }
                    for ty in [GgmlType::IQ1_BN, GgmlType::IQ2_BN] {
                        let small: Vec<String> = file
                            .tensors()
                            .iter()
                            .filter(|t| t.ggml_type == ty && t.dims.first().is_some_and(|&k| k < 512))
                            .map(|t| t.name.clone())
                            .collect();
                        if let Some(first) = small.first() {
                            no.push(format!(
                                "{ty} matmuls abort when K < 512 (quantize_row_q8_K64_ref assert): {} tensor(s), e.g. {first}",
                                small.len()
                            ));
                        }
                    }
                }
                Dialect::Mainline => {
                    if is_bitnet_158(arch) {
                        no.push(format!("architecture {:?} is unknown to llama.cpp mainline", arch.unwrap_or_default()));
                    }
                }
            }
            no.extend(missing_keys.iter().cloned());
            let verdict = if !no.is_empty() {
                LoadVerdict::No
            } else if !cond.is_empty() {
                LoadVerdict::Conditional
            } else {
                LoadVerdict::Yes
            };
            no.extend(cond);
            Loadability {
                runtime,
                verdict,
                reasons: no,
            }
        })
        .collect()
}

fn findings_for_keys(file: &GgufFile<'_>) -> Vec<String> {
    let Some(a) = file.architecture() else {
        return vec!["general.architecture is missing".into()];
    };
    if !a.starts_with("bitnet") {
        return Vec::new();
    }
    ARCH_KEYS
        .iter()
        .filter(|(_, _, required)| *required)
        .map(|(s, _, _)| keys::arch_key(a, s))
        .filter(|k| file.get(k).is_none())
        .map(|k| format!("required key {k} is missing"))
        .collect()
}
