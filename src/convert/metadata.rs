//! GGUF key sets per output profile (`spec/bitnet-arch.md` §2.1, §5, §7).
//!
//! * [`Profile::Official`]: the key set, order and types of the official 2B-4T file (pipeline A):
//!   `add_bos_token` among the architecture keys, scores, a padding id, the BitNet chat
//!   template, `general.quantization_version = 2`; plus `tokenizer.ggml.pre = llama-bpe`
//!   unless told otherwise.
//! * [`Profile::HfConverter`]: what `convert-hf-to-gguf-bitnet.py` writes (pipeline B): no
//!   scores, tokenizer flags and template from `tokenizer_config.json`, no quantization version.

use crate::gguf::{keys, MetaArray, MetaValue, Metadata};
use crate::hf::vocab::{Vocab, VocabValue, TOKEN_TYPE_NORMAL};
use crate::hf::HfConfig;
use crate::layout::LayoutKind;

/// Which upstream writer's key set to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// The official bitnet.cpp 2B-4T file (pipeline A).
    #[default]
    Official,
    /// bitnet.cpp's `convert-hf-to-gguf-bitnet.py` (pipeline B).
    HfConverter,
}

impl Profile {
    /// `"official"` or `"hf-converter"`.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Official => "official",
            Profile::HfConverter => "hf-converter",
        }
    }

    /// Parses a profile name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "official" => Some(Profile::Official),
            "hf-converter" => Some(Profile::HfConverter),
            _ => None,
        }
    }
}

/// The chat template bitnet.cpp's `convert-ms-to-gguf-bitnet.py` hard-codes for every BitNet
/// model (`spec/bitnet-arch.md` §2.3; the two `\n` are backslash + `n`).
pub const BITNET_CHAT_TEMPLATE: &str = r"{% for message in messages %}{% if loop.first %}{{ bos_token }}{% endif %}{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\n\nBITNETAssistant: ' + eos_token }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}";

/// The pre-tokenizer name written unless `--no-pre`.
pub const DEFAULT_PRE: &str = "llama-bpe";

/// `general.file_type` (LLAMA_FTYPE, bitnet.cpp fork numbering) for a projection layout.
pub fn file_type(layout: LayoutKind) -> u32 {
    match layout {
        LayoutKind::F32 => 0,
        LayoutKind::F16 => 1,
        LayoutKind::BF16 => 32,
        LayoutKind::TQ1_0 => 36,
        LayoutKind::TQ2_0 => 37,
        LayoutKind::TL1 => 38,
        LayoutKind::TL2 => 39,
        _ => 40,
    }
}

fn to_meta(value: VocabValue) -> MetaValue {
    match value {
        VocabValue::Str(s) => MetaValue::String(s),
        VocabValue::U32(v) => MetaValue::U32(v),
        VocabValue::Bool(b) => MetaValue::Bool(b),
        VocabValue::StrArray(v) => MetaValue::Array(MetaArray::String(v)),
        VocabValue::I32Array(v) => MetaValue::Array(MetaArray::I32(v)),
        VocabValue::F32Array(v) => MetaValue::Array(MetaArray::F32(v)),
    }
}

/// What goes into the metadata besides the config.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataInputs<'a> {
    /// Key set to imitate.
    pub profile: Profile,
    /// `general.name`.
    pub name: &'a str,
    /// Projection layout (for `general.file_type`).
    pub layout: LayoutKind,
    /// Tokenizer (`None` with `--no-tokenizer`).
    pub vocab: Option<&'a Vocab>,
    /// `tokenizer.ggml.pre` (`None` with `--no-pre`).
    pub pre: Option<&'a str>,
}

/// Builds the metadata of a new file (TL keys are added by the caller).
pub fn build(config: &HfConfig, inputs: &MetadataInputs<'_>) -> Metadata {
    let arch = keys::ARCH_BITNET_B158;
    let k = |suffix: &str| keys::arch_key(arch, suffix);
    let u = |v: usize| MetaValue::U32(u32::try_from(v).unwrap_or(u32::MAX));
    let mut m = Metadata::new();
    let push = |m: &mut Metadata, key: String, value: MetaValue| m.set(key, value);
    push(
        &mut m,
        keys::ARCHITECTURE.into(),
        MetaValue::String(arch.into()),
    );
    push(
        &mut m,
        keys::NAME.into(),
        MetaValue::String(inputs.name.into()),
    );
    let rope_dim = config.head_dim();
    let eps = MetaValue::F32(config.rms_norm_eps as f32);
    let theta = MetaValue::F32(config.rope_theta as f32);
    let file_type = MetaValue::U32(file_type(inputs.layout));
    let mut vocab = inputs.vocab.cloned();
    match inputs.profile {
        Profile::Official => {
            push(&mut m, k(keys::VOCAB_SIZE), u(config.vocab_size));
            push(
                &mut m,
                k(keys::CONTEXT_LENGTH),
                u(config.max_position_embeddings),
            );
            push(&mut m, k(keys::EMBEDDING_LENGTH), u(config.hidden_size));
            push(&mut m, k(keys::BLOCK_COUNT), u(config.num_hidden_layers));
            push(
                &mut m,
                k(keys::FEED_FORWARD_LENGTH),
                u(config.intermediate_size),
            );
            push(&mut m, k(keys::ROPE_DIMENSION_COUNT), u(rope_dim));
            push(&mut m, k(keys::HEAD_COUNT), u(config.num_attention_heads));
            push(
                &mut m,
                k(keys::HEAD_COUNT_KV),
                u(config.num_key_value_heads),
            );
            if let Some(v) = &vocab {
                let add_bos = v.add_bos_token.unwrap_or(true);
                push(&mut m, keys::ADD_BOS_TOKEN.into(), MetaValue::Bool(add_bos));
            }
            push(&mut m, k(keys::RMS_EPSILON), eps);
            push(&mut m, k(keys::ROPE_FREQ_BASE), theta);
            push(&mut m, keys::FILE_TYPE.into(), file_type);
            if let Some(v) = vocab.as_mut() {
                v.add_bos_token = None;
                if v.scores.is_none() {
                    v.scores = Some(
                        v.token_types
                            .iter()
                            .map(|&t| if t == TOKEN_TYPE_NORMAL { 0.0 } else { -1000.0 })
                            .collect(),
                    );
                }
                if v.special_id("pad").is_none() {
                    if let Some(eos) = v.special_id("eos") {
                        v.special_ids.push(("pad", eos));
                        let order = |kind: &str| {
                            crate::hf::vocab::SPECIAL_KINDS
                                .iter()
                                .position(|(k, _)| *k == kind)
                        };
                        v.special_ids.sort_by_key(|(kind, _)| order(kind));
                    }
                }
                v.chat_template = Some(BITNET_CHAT_TEMPLATE.into());
            }
        }
        Profile::HfConverter => {
            push(&mut m, k(keys::BLOCK_COUNT), u(config.num_hidden_layers));
            push(
                &mut m,
                k(keys::CONTEXT_LENGTH),
                u(config.max_position_embeddings),
            );
            push(&mut m, k(keys::EMBEDDING_LENGTH), u(config.hidden_size));
            push(
                &mut m,
                k(keys::FEED_FORWARD_LENGTH),
                u(config.intermediate_size),
            );
            push(&mut m, k(keys::HEAD_COUNT), u(config.num_attention_heads));
            push(
                &mut m,
                k(keys::HEAD_COUNT_KV),
                u(config.num_key_value_heads),
            );
            push(&mut m, k(keys::ROPE_FREQ_BASE), theta);
            push(&mut m, k(keys::RMS_EPSILON), eps);
            push(&mut m, keys::FILE_TYPE.into(), file_type);
            push(&mut m, k(keys::VOCAB_SIZE), u(config.vocab_size));
            push(&mut m, k(keys::ROPE_DIMENSION_COUNT), u(rope_dim));
            if let Some(v) = vocab.as_mut() {
                v.scores = None;
            }
        }
    }
    if let Some(mut v) = vocab {
        v.pre = inputs.pre.map(String::from);
        for (key, value) in v.entries() {
            push(&mut m, key.into(), to_meta(value));
        }
    }
    if inputs.profile == Profile::Official {
        push(&mut m, keys::QUANTIZATION_VERSION.into(), MetaValue::U32(2));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn chat_template_is_the_official_one() {
        assert_eq!(BITNET_CHAT_TEMPLATE.len(), 282);
        let digest = Sha256::digest(BITNET_CHAT_TEMPLATE.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "6feccacdd8c7094ee8de807281b2f2a077d538832a4c220c7a2375e32ae5c89d"
        );
    }

    #[test]
    fn profiles_round_trip_by_name() {
        for p in [Profile::Official, Profile::HfConverter] {
            assert_eq!(Profile::from_name(p.name()), Some(p));
        }
        assert_eq!(Profile::from_name("x"), None);
    }
}
