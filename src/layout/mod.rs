//! Ternary weight layouts: one canonical tensor, one codec per on-disk layout.
//!
//! Invariant: every codec is exact. For any legal shape, `decode(encode(t)) == t` (codes and the
//! scale's bits), and for canonical bytes `encode(decode(b)) == b`. A conversion between two
//! layouts is always `decode` with one codec followed by `encode` with another.

pub mod dense;
mod error;
pub mod gpu_w2a8;
pub mod hf_packed;
pub mod i2s;
pub mod kernel_config;
mod tensor;
pub mod tiling;
pub mod tl1;
pub mod tl2;
pub mod tq1_0;
pub mod tq2_0;

pub use error::Error;
pub use tensor::{Shape, TernaryTensor};

/// A codec between the canonical [`TernaryTensor`] and one layout's bytes.
///
/// Layouts whose byte order depends on parameters (TL1/TL2 tiling) are values carrying those
/// parameters; layouts without parameters are unit structs.
pub trait TernaryCodec {
    /// Short name as used on the command line and in GGUF (`"I2_S"`, `"TL1"`, ...).
    fn name(&self) -> &'static str;

    /// Checks that `shape` can be stored in this layout; the error names the rule it breaks.
    fn check_shape(&self, shape: Shape) -> Result<(), Error>;

    /// Exact number of bytes `encode` produces for `shape` (scale included where the layout
    /// stores it inline).
    fn byte_len(&self, shape: Shape) -> Result<usize, Error>;

    /// Encodes a tensor. Fails on an illegal shape or a scale the layout cannot hold exactly.
    fn encode(&self, tensor: &TernaryTensor) -> Result<Vec<u8>, Error>;

    /// Decodes `bytes` (exactly `byte_len(shape)` long) into a tensor.
    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error>;
}
