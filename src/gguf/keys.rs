//! Metadata key names (`spec/bitnet-arch.md` §2-§3). Per-architecture keys are suffixes: the full
//! key is `<general.architecture>.<suffix>`; build it with [`arch_key`]. Never derive the
//! architecture by splitting a key at its first `.` (`bitnet-b1.58` contains one).

/// `general.architecture` (STRING).
pub const ARCHITECTURE: &str = "general.architecture";
/// `general.name` (STRING).
pub const NAME: &str = "general.name";
/// `general.alignment` (UINT32).
pub const ALIGNMENT: &str = "general.alignment";
/// `general.file_type` (UINT32).
pub const FILE_TYPE: &str = "general.file_type";
/// `general.quantization_version` (UINT32).
pub const QUANTIZATION_VERSION: &str = "general.quantization_version";

/// `<arch>.vocab_size` suffix.
pub const VOCAB_SIZE: &str = "vocab_size";
/// `<arch>.context_length` suffix.
pub const CONTEXT_LENGTH: &str = "context_length";
/// `<arch>.embedding_length` suffix.
pub const EMBEDDING_LENGTH: &str = "embedding_length";
/// `<arch>.block_count` suffix.
pub const BLOCK_COUNT: &str = "block_count";
/// `<arch>.feed_forward_length` suffix.
pub const FEED_FORWARD_LENGTH: &str = "feed_forward_length";
/// `<arch>.rope.dimension_count` suffix.
pub const ROPE_DIMENSION_COUNT: &str = "rope.dimension_count";
/// `<arch>.rope.freq_base` suffix.
pub const ROPE_FREQ_BASE: &str = "rope.freq_base";
/// `<arch>.attention.head_count` suffix.
pub const HEAD_COUNT: &str = "attention.head_count";
/// `<arch>.attention.head_count_kv` suffix.
pub const HEAD_COUNT_KV: &str = "attention.head_count_kv";
/// `<arch>.attention.layer_norm_rms_epsilon` suffix.
pub const RMS_EPSILON: &str = "attention.layer_norm_rms_epsilon";

/// `tokenizer.ggml.model` (STRING).
pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
/// `tokenizer.ggml.pre` (STRING).
pub const TOKENIZER_PRE: &str = "tokenizer.ggml.pre";
/// `tokenizer.ggml.tokens` (ARRAY of STRING).
pub const TOKENS: &str = "tokenizer.ggml.tokens";
/// `tokenizer.ggml.scores` (ARRAY of FLOAT32).
pub const SCORES: &str = "tokenizer.ggml.scores";
/// `tokenizer.ggml.token_type` (ARRAY of INT32).
pub const TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
/// `tokenizer.ggml.merges` (ARRAY of STRING).
pub const MERGES: &str = "tokenizer.ggml.merges";
/// `tokenizer.ggml.bos_token_id` (UINT32).
pub const BOS_TOKEN_ID: &str = "tokenizer.ggml.bos_token_id";
/// `tokenizer.ggml.eos_token_id` (UINT32).
pub const EOS_TOKEN_ID: &str = "tokenizer.ggml.eos_token_id";
/// `tokenizer.ggml.padding_token_id` (UINT32).
pub const PADDING_TOKEN_ID: &str = "tokenizer.ggml.padding_token_id";
/// `tokenizer.ggml.unknown_token_id` (UINT32).
pub const UNKNOWN_TOKEN_ID: &str = "tokenizer.ggml.unknown_token_id";
/// `tokenizer.ggml.eot_token_id` (UINT32).
pub const EOT_TOKEN_ID: &str = "tokenizer.ggml.eot_token_id";
/// `tokenizer.ggml.add_bos_token` (BOOL).
pub const ADD_BOS_TOKEN: &str = "tokenizer.ggml.add_bos_token";
/// `tokenizer.ggml.add_eos_token` (BOOL).
pub const ADD_EOS_TOKEN: &str = "tokenizer.ggml.add_eos_token";
/// `tokenizer.chat_template` (STRING).
pub const CHAT_TEMPLATE: &str = "tokenizer.chat_template";

/// Prefix of the BitNet keys our converter writes for TL1/TL2 files.
pub const BITNET_TL_PREFIX: &str = "bitnet.tl";
/// `bitnet.tl.kernel_config` (STRING): the exact text of a bitnet.cpp `kernel_config.ini`
/// listing the tiling of every TL1/TL2 tensor shape in the file.
pub const BITNET_TL_KERNEL_CONFIG: &str = "bitnet.tl.kernel_config";
/// `bitnet.tl.tiling_source` (STRING): `kernel_config.ini` when the user gave one, `derived`
/// when the documented derivation rule chose the tiling.
pub const BITNET_TL_TILING_SOURCE: &str = "bitnet.tl.tiling_source";

/// Architecture strings of BitNet b1.58 models (`spec/bitnet-arch.md` §1).
pub const ARCH_BITNET_B158: &str = "bitnet-b1.58";
/// Legacy name of the same graph (first 2B-4T upload).
pub const ARCH_BITNET_25: &str = "bitnet-25";
/// The 2024 community models' architecture (a different graph).
pub const ARCH_BITNET: &str = "bitnet";

/// `<arch>.<suffix>`.
pub fn arch_key(arch: &str, suffix: &str) -> String {
    format!("{arch}.{suffix}")
}
