use super::Shape;

/// Why a tensor could not be encoded to, or decoded from, a layout.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The shape breaks a rule of the layout.
    #[error("{layout}: shape {shape} is not allowed: {rule}")]
    IllegalShape {
        /// Layout name.
        layout: &'static str,
        /// The offending shape.
        shape: Shape,
        /// The rule that fails, and what would be legal.
        rule: String,
    },
    /// The byte buffer does not have the size the layout requires for the shape.
    #[error("{layout}: expected {expected} bytes for shape {shape}, found {found}")]
    WrongByteLength {
        /// Layout name.
        layout: &'static str,
        /// The shape being decoded.
        shape: Shape,
        /// Required length.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// A stored code is not one the layout ever writes (e.g. 2-bit code 3 in I2_S).
    #[error("{layout}: invalid code {code} at byte offset {offset}")]
    InvalidCode {
        /// Layout name.
        layout: &'static str,
        /// Byte offset inside the tensor data.
        offset: usize,
        /// The code found.
        code: u8,
    },
    /// A value that should be -1, 0 or +1 (times the scale) is not.
    #[error("{layout}: element {index} (row {row}, column {col}) is {value}, not in {{-s, 0, +s}} for scale s = {scale}")]
    NotTernary {
        /// Layout name.
        layout: &'static str,
        /// Flat row-major element index.
        index: usize,
        /// Row of the element.
        row: usize,
        /// Column of the element.
        col: usize,
        /// The value found.
        value: f64,
        /// The scale it was compared against.
        scale: f32,
    },
    /// The scale cannot be stored in the layout without changing it.
    #[error("{layout}: scale {scale:e} (f32 bits {bits:#010x}) is not representable exactly as {target}{hint}")]
    InexactScale {
        /// Layout name.
        layout: &'static str,
        /// The scale.
        scale: f32,
        /// Its f32 bits.
        bits: u32,
        /// The storage type (e.g. `"bf16"`).
        target: &'static str,
        /// Extra advice.
        hint: &'static str,
    },
    /// The scale is NaN, infinite, negative or otherwise unusable.
    #[error("{layout}: invalid scale {scale:e}: {why}")]
    InvalidScale {
        /// Layout name.
        layout: &'static str,
        /// The scale.
        scale: f32,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Per-block scales disagree, so the data has no single per-tensor scale.
    #[error("{layout}: block {block} has scale {found:e} but an earlier block has {first:e}; the tensor has no single per-tensor scale")]
    InconsistentScales {
        /// Layout name.
        layout: &'static str,
        /// First disagreeing block.
        block: usize,
        /// Scale of the first block that carries one.
        first: f32,
        /// Scale of the disagreeing block.
        found: f32,
    },
    /// A kernel configuration (tiling) is illegal or missing.
    #[error("{layout}: tiling {what}")]
    Tiling {
        /// Layout name.
        layout: &'static str,
        /// Explanation.
        what: String,
    },
    /// The codes vector does not match the shape.
    #[error("tensor of shape {shape} needs {expected} codes, got {found}")]
    CodeCount {
        /// The declared shape.
        shape: Shape,
        /// rows * cols.
        expected: usize,
        /// Codes given.
        found: usize,
    },
    /// Bytes that the layout defines as padding (always zero when written) are not zero.
    #[error("{layout}: byte at offset {offset} is {value:#04x} but lies in {region}, which is always zero")]
    NonZeroPadding {
        /// Layout name.
        layout: &'static str,
        /// Byte offset inside the tensor data.
        offset: usize,
        /// The byte found.
        value: u8,
        /// Which padding region (e.g. `"section D padding"`).
        region: &'static str,
    },
    /// The bytes decode, but not to anything the layout's writer could have produced.
    #[error("{layout}: non-canonical data at byte offset {offset}: {what}")]
    NonCanonical {
        /// Layout name.
        layout: &'static str,
        /// Byte offset inside the tensor data.
        offset: usize,
        /// What is inconsistent.
        what: String,
    },
    /// A `kernel_config.ini` file could not be parsed.
    #[error("kernel_config.ini line {line}: {what}")]
    KernelConfig {
        /// 1-based line number (0 when the problem is not tied to a line).
        line: usize,
        /// What is wrong.
        what: String,
    },
}
