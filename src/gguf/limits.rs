//! Bounds the reader enforces before trusting any number read from a file.

/// Caps applied while parsing. Every count is also checked against the bytes that remain, so
/// these only matter for files that are large enough to make a huge count plausible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest string (key, value, tensor name) in bytes. Upstream caps at 1 GiB.
    pub max_string_len: u64,
    /// Most metadata records.
    pub max_kv_count: u64,
    /// Most tensor-info records.
    pub max_tensor_count: u64,
    /// Longest array (elements).
    pub max_array_len: u64,
    /// Deepest array nesting accepted when nested arrays are allowed at all.
    pub max_array_depth: u32,
}

impl Limits {
    /// Defaults: generous for real models, tight enough that nothing allocates more than the file.
    pub const DEFAULT: Limits = Limits {
        max_string_len: 1 << 30,
        max_kv_count: 1 << 20,
        max_tensor_count: 1 << 20,
        max_array_len: 1 << 32,
        max_array_depth: 4,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Longest tensor name in bytes (`GGML_MAX_NAME` 64 including the NUL).
pub const MAX_TENSOR_NAME: usize = 63;
/// Most dims per tensor.
pub const MAX_DIMS: usize = 4;
/// Alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Smallest possible metadata record (spec §9 V3: key length + type + a 1-byte value is 13; the
/// spec's bound of 12 is used as a safe lower bound).
pub const MIN_KV_BYTES: u64 = 12;
/// Smallest possible tensor-info record (name length, n_dims, one dim, type, offset).
pub const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 8 + 4 + 8;
/// Header size.
pub const HEADER_BYTES: u64 = 24;
