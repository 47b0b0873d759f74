//! The one error type of the GGUF layer. Every variant that concerns a place in a file carries
//! the byte `offset` (from the start of the file) and the key or tensor name where there is one.

use std::path::PathBuf;

/// Why a GGUF file could not be read, validated or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing failed.
    #[error("write failed")]
    Write(#[from] std::io::Error),
    /// The file ends before a field is complete.
    #[error("truncated at byte {offset}: {what} needs {needed} bytes, {available} left")]
    Truncated {
        /// Where the field starts.
        offset: u64,
        /// The field.
        what: &'static str,
        /// Bytes needed.
        needed: u64,
        /// Bytes left in the file.
        available: u64,
    },
    /// The first four bytes are not `GGUF`.
    #[error("not a gguf file: magic at byte 0 is {found:02x?}, expected 47 47 55 46 (\"GGUF\")")]
    BadMagic {
        /// Byte offset (0).
        offset: u64,
        /// The bytes found.
        found: [u8; 4],
    },
    /// The version field says the file is byte-swapped.
    #[error("big-endian gguf (version field {version:#010x} at byte {offset}) is not supported")]
    BigEndian {
        /// Byte offset (4).
        offset: u64,
        /// The raw version field.
        version: u32,
    },
    /// GGUF version other than 2 or 3.
    #[error("unsupported gguf version {version} at byte {offset} (expected 2 or 3)")]
    UnsupportedVersion {
        /// Byte offset (4).
        offset: u64,
        /// The version.
        version: u32,
    },
    /// A count or length is larger than the file or a limit allows.
    #[error("{what} {value} at byte {offset} exceeds the limit {limit}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// Where the number is.
        offset: u64,
        /// The number read.
        value: u64,
        /// The largest acceptable value.
        limit: u64,
    },
    /// A metadata key is empty.
    #[error("empty metadata key at byte {offset}")]
    EmptyKey {
        /// Where the key starts.
        offset: u64,
    },
    /// A metadata key occurs twice.
    #[error("duplicate metadata key {key:?} at byte {offset} (first at byte {first_offset})")]
    DuplicateKey {
        /// Where the second occurrence starts.
        offset: u64,
        /// The key.
        key: String,
        /// Where the first occurrence starts.
        first_offset: u64,
    },
    /// A key or tensor name (or, in strict mode, a string value) is not UTF-8.
    #[error("invalid utf-8 in {what} at byte {offset}{}", key_suffix(key))]
    InvalidUtf8 {
        /// Where the string's bytes start.
        offset: u64,
        /// `"key"`, `"tensor name"` or `"string value"`.
        what: &'static str,
        /// Key holding the value, if any.
        key: Option<String>,
    },
    /// A value-type id outside 0..=12.
    #[error("unknown value type {id} at byte {offset} (key {key:?})")]
    UnknownValueType {
        /// Where the type id is.
        offset: u64,
        /// The key.
        key: String,
        /// The id.
        id: u32,
    },
    /// An array of arrays (every ggml loader rejects them).
    #[error("nested array at byte {offset} (key {key:?}); ggml loaders reject nested arrays")]
    NestedArray {
        /// Where the inner element type is.
        offset: u64,
        /// The key.
        key: String,
    },
    /// A BOOL byte other than 0 or 1.
    #[error("bool byte {byte} at byte {offset} (key {key:?}) is neither 0 nor 1")]
    InvalidBool {
        /// Where the byte is.
        offset: u64,
        /// The key.
        key: String,
        /// The byte.
        byte: u8,
    },
    /// A key has a different value type than required.
    #[error("key {key:?} at byte {offset} has type {found}, expected {expected}")]
    WrongType {
        /// Where the record starts.
        offset: u64,
        /// The key.
        key: String,
        /// Type required.
        expected: &'static str,
        /// Type found.
        found: &'static str,
    },
    /// `general.alignment` is zero, not a power of two, or not a multiple of 8.
    #[error(
        "general.alignment {value} at byte {offset} must be a power of two and a multiple of 8"
    )]
    BadAlignment {
        /// Where the record starts.
        offset: u64,
        /// The value.
        value: u32,
    },
    /// `general.architecture` is missing.
    #[error("general.architecture is missing (checked at the end of the metadata, byte {offset})")]
    MissingArchitecture {
        /// End of the metadata section.
        offset: u64,
    },
    /// A tensor name is empty or longer than 63 bytes.
    #[error("tensor name at byte {offset} is {len} bytes, expected 1..=63 ({name:?})")]
    TensorNameLength {
        /// Where the name starts.
        offset: u64,
        /// The name (lossy).
        name: String,
        /// Its length.
        len: u64,
    },
    /// Two tensor infos have the same name.
    #[error("duplicate tensor {name:?} at byte {offset}")]
    DuplicateTensor {
        /// Where the second info starts.
        offset: u64,
        /// The name.
        name: String,
    },
    /// `n_dims` outside 1..=4.
    #[error("tensor {name:?} at byte {offset}: n_dims {n_dims}, expected 1..=4")]
    BadDimCount {
        /// Where n_dims is.
        offset: u64,
        /// The tensor.
        name: String,
        /// The value.
        n_dims: u32,
    },
    /// A dimension is zero.
    #[error("tensor {name:?} at byte {offset}: ne[{axis}] is 0")]
    ZeroDim {
        /// Where the dim is.
        offset: u64,
        /// The tensor.
        name: String,
        /// Which dim.
        axis: usize,
    },
    /// The element count or byte size overflows.
    #[error("tensor {name:?} at byte {offset}: element count overflows")]
    ElementCountOverflow {
        /// Where the dims start.
        offset: u64,
        /// The tensor.
        name: String,
    },
    /// A tensor type id we do not know (no guessing of block sizes).
    #[error("tensor {name:?} at byte {offset}: unknown ggml type id {id}")]
    UnknownTensorType {
        /// Where the type id is.
        offset: u64,
        /// The tensor.
        name: String,
        /// The id.
        id: u32,
    },
    /// A type that is only valid in memory (I8_S).
    #[error("tensor {name:?} at byte {offset}: type {ty} never appears in a valid file")]
    MemoryOnlyType {
        /// Where the type id is.
        offset: u64,
        /// The tensor.
        name: String,
        /// The type.
        ty: super::GgmlType,
    },
    /// The dims do not fit the type (block divisibility, I2_S/TL rules).
    #[error("tensor {name:?} at byte {offset}: dims {dims:?} do not fit {ty}: {rule}")]
    BadShapeForType {
        /// Where the tensor info starts.
        offset: u64,
        /// The tensor.
        name: String,
        /// Its dims.
        dims: Vec<u64>,
        /// Its type.
        ty: super::GgmlType,
        /// The rule that fails.
        rule: String,
    },
    /// A tensor offset is not a multiple of the alignment.
    #[error("tensor {name:?} at byte {offset}: data offset {data_offset} is not a multiple of {alignment}")]
    MisalignedOffset {
        /// Where the offset field is.
        offset: u64,
        /// The tensor.
        name: String,
        /// The offset read.
        data_offset: u64,
        /// The alignment.
        alignment: u64,
    },
    /// Strict mode: a tensor does not start where the previous one ends (padded).
    #[error(
        "tensor {name:?} at byte {offset}: data offset {found}, expected {expected} (contiguous)"
    )]
    NotContiguous {
        /// Where the offset field is.
        offset: u64,
        /// The tensor.
        name: String,
        /// Offset required by contiguity.
        expected: u64,
        /// Offset found.
        found: u64,
    },
    /// Tensor data extends past the end of the file.
    #[error("tensor {name:?} (info at byte {offset}): data bytes {start}..{end} are outside the file ({file_size} bytes)")]
    OutOfBounds {
        /// Where the tensor info starts.
        offset: u64,
        /// The tensor.
        name: String,
        /// Absolute start of the data.
        start: u64,
        /// Absolute end of the data.
        end: u64,
        /// File size.
        file_size: u64,
    },
    /// Two tensors' data overlap.
    #[error("tensor {name:?} (info at byte {offset}) overlaps tensor {other:?}")]
    Overlap {
        /// Where the tensor info starts.
        offset: u64,
        /// The tensor.
        name: String,
        /// The tensor it overlaps.
        other: String,
    },
    /// A float tensor holds NaN or infinity (V19).
    #[error("tensor {name:?}: non-finite value at element {index} (byte {offset})")]
    NonFinite {
        /// Absolute byte offset of the value.
        offset: u64,
        /// The tensor.
        name: String,
        /// Element index.
        index: u64,
    },
    /// An I2_S tensor holds the never-written 2-bit code 3 (V20).
    #[error("tensor {name:?}: i2_s code 3 in byte {offset}")]
    InvalidI2sCode {
        /// Absolute byte offset.
        offset: u64,
        /// The tensor.
        name: String,
    },
    /// An I2_S scale is negative or not finite (V20).
    #[error("tensor {name:?}: i2_s scale {scale} at byte {offset} must be finite and >= 0")]
    InvalidI2sScale {
        /// Absolute byte offset of the scale.
        offset: u64,
        /// The tensor.
        name: String,
        /// The scale.
        scale: f32,
    },
    /// A metadata value or tensor cannot be written as requested.
    #[error("cannot write {what} {name:?}: {why}")]
    InvalidForWrite {
        /// `"key"` or `"tensor"`.
        what: &'static str,
        /// The key or tensor name.
        name: String,
        /// Why not.
        why: String,
    },
    /// The writer was used out of order (wrong tensor, wrong size, missing tensors).
    #[error("writer: expected {expected}, got {found}")]
    WriterOrder {
        /// What the writer expected next.
        expected: String,
        /// What it got.
        found: String,
    },
}

fn key_suffix(key: &Option<String>) -> String {
    key.as_ref()
        .map(|k| format!(" (key {k:?})"))
        .unwrap_or_default()
}

impl Error {
    /// The variant name, stable for tests and the hostile-corpus table (`"Truncated"`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Io { .. } => "Io",
            Error::Write(_) => "Write",
            Error::Truncated { .. } => "Truncated",
            Error::BadMagic { .. } => "BadMagic",
            Error::BigEndian { .. } => "BigEndian",
            Error::UnsupportedVersion { .. } => "UnsupportedVersion",
            Error::LimitExceeded { .. } => "LimitExceeded",
            Error::EmptyKey { .. } => "EmptyKey",
            Error::DuplicateKey { .. } => "DuplicateKey",
            Error::InvalidUtf8 { .. } => "InvalidUtf8",
            Error::UnknownValueType { .. } => "UnknownValueType",
            Error::NestedArray { .. } => "NestedArray",
            Error::InvalidBool { .. } => "InvalidBool",
            Error::WrongType { .. } => "WrongType",
            Error::BadAlignment { .. } => "BadAlignment",
            Error::MissingArchitecture { .. } => "MissingArchitecture",
            Error::TensorNameLength { .. } => "TensorNameLength",
            Error::DuplicateTensor { .. } => "DuplicateTensor",
            Error::BadDimCount { .. } => "BadDimCount",
            Error::ZeroDim { .. } => "ZeroDim",
            Error::ElementCountOverflow { .. } => "ElementCountOverflow",
            Error::UnknownTensorType { .. } => "UnknownTensorType",
            Error::MemoryOnlyType { .. } => "MemoryOnlyType",
            Error::BadShapeForType { .. } => "BadShapeForType",
            Error::MisalignedOffset { .. } => "MisalignedOffset",
            Error::NotContiguous { .. } => "NotContiguous",
            Error::OutOfBounds { .. } => "OutOfBounds",
            Error::Overlap { .. } => "Overlap",
            Error::NonFinite { .. } => "NonFinite",
            Error::InvalidI2sCode { .. } => "InvalidI2sCode",
            Error::InvalidI2sScale { .. } => "InvalidI2sScale",
            Error::InvalidForWrite { .. } => "InvalidForWrite",
            Error::WriterOrder { .. } => "WriterOrder",
        }
    }

    /// Byte offset in the file the error refers to, where there is one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Io { .. }
            | Error::Write(_)
            | Error::InvalidForWrite { .. }
            | Error::WriterOrder { .. } => None,
            Error::Truncated { offset, .. }
            | Error::BadMagic { offset, .. }
            | Error::BigEndian { offset, .. }
            | Error::UnsupportedVersion { offset, .. }
            | Error::LimitExceeded { offset, .. }
            | Error::EmptyKey { offset }
            | Error::DuplicateKey { offset, .. }
            | Error::InvalidUtf8 { offset, .. }
            | Error::UnknownValueType { offset, .. }
            | Error::NestedArray { offset, .. }
            | Error::InvalidBool { offset, .. }
            | Error::WrongType { offset, .. }
            | Error::BadAlignment { offset, .. }
            | Error::MissingArchitecture { offset }
            | Error::TensorNameLength { offset, .. }
            | Error::DuplicateTensor { offset, .. }
            | Error::BadDimCount { offset, .. }
            | Error::ZeroDim { offset, .. }
            | Error::ElementCountOverflow { offset, .. }
            | Error::UnknownTensorType { offset, .. }
            | Error::MemoryOnlyType { offset, .. }
            | Error::BadShapeForType { offset, .. }
            | Error::MisalignedOffset { offset, .. }
            | Error::NotContiguous { offset, .. }
            | Error::OutOfBounds { offset, .. }
            | Error::Overlap { offset, .. }
            | Error::NonFinite { offset, .. }
            | Error::InvalidI2sCode { offset, .. }
            | Error::InvalidI2sScale { offset, .. } => Some(*offset),
        }
    }
}
