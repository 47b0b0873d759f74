//! Ternary weight layouts: one canonical tensor, one codec per on-disk layout.
//!
//! Invariant: every codec is exact. For any legal shape, `decode(encode(t)) == t` (codes and the
//! scale's bits), and for canonical bytes `encode(decode(b)) == b`. A conversion between two
//! layouts is always `decode` with one codec followed by `encode` with another.

pub mod block_quant;
pub mod dense;
mod error;
pub mod gpu_w2a8;
pub mod hf_packed;
pub mod i2s;
pub mod kernel_config;
pub mod q4_0;
pub mod q6_k;
pub mod q8_0;
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

pub use block_quant::BlockQuant;
pub use kernel_config::{KernelConfig, KernelConfigEntry, TilingOrigin, TilingResolver};
pub use tiling::{Tl1Tiling, Tl2Tiling};

/// What an encoder does with a scale the layout cannot store exactly (e.g. an f32 scale in an
/// f16 or bf16 slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScaleRounding {
    /// Refuse: the encoder returns [`Error::InexactScale`].
    #[default]
    Exact,
    /// Round to nearest, ties to even (what upstream writers do). The decoded scale is then the
    /// rounded value.
    Nearest,
}

/// Every layout this crate can write, by name (feeds `--to` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum LayoutKind {
    /// Hugging Face packed uint8 `[M/4, K]` plus a `weight_scale` tensor.
    HfPacked,
    /// bitnet.cpp I2_S (ggml type 36).
    I2_S,
    /// bitnet.cpp TL1 (ggml type 38, ARM LUT kernel).
    TL1,
    /// bitnet.cpp TL2 (ggml type 39, x86 LUT kernel).
    TL2,
    /// llama.cpp TQ1_0 (ggml type 34).
    TQ1_0,
    /// llama.cpp TQ2_0 (ggml type 35).
    TQ2_0,
    /// bitnet.cpp GPU W2A8 int2 packing (`gpu/pack_weight.py`).
    GpuW2A8,
    /// Dequantized F32 weights (code × scale).
    F32,
    /// Dequantized F16 weights.
    F16,
    /// Dequantized BF16 weights.
    BF16,
}

impl LayoutKind {
    /// All layouts, in a stable order.
    pub fn all() -> &'static [LayoutKind] {
        use LayoutKind::*;
        &[
            HfPacked, I2_S, TL1, TL2, TQ1_0, TQ2_0, GpuW2A8, F32, F16, BF16,
        ]
    }

    /// Canonical name (as in gguf-py where the type exists there).
    pub fn name(self) -> &'static str {
        match self {
            LayoutKind::HfPacked => "HF_PACKED",
            LayoutKind::I2_S => "I2_S",
            LayoutKind::TL1 => "TL1",
            LayoutKind::TL2 => "TL2",
            LayoutKind::TQ1_0 => "TQ1_0",
            LayoutKind::TQ2_0 => "TQ2_0",
            LayoutKind::GpuW2A8 => "GPU_W2A8",
            LayoutKind::F32 => "F32",
            LayoutKind::F16 => "F16",
            LayoutKind::BF16 => "BF16",
        }
    }

    /// Looks a layout up by name, ignoring case and treating `-` like `_` (`i2s` and `tq1-0`
    /// are accepted too).
    pub fn from_name(name: &str) -> Option<LayoutKind> {
        let wanted: String = name
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        Self::all().iter().copied().find(|kind| {
            let own: String = kind.name().chars().filter(|c| *c != '_').collect();
            own == wanted
        })
    }

    /// GGML tensor type id in a GGUF file, if the layout is a GGUF tensor type.
    pub fn ggml_type_id(self) -> Option<u32> {
        match self {
            LayoutKind::F32 => Some(0),
            LayoutKind::F16 => Some(1),
            LayoutKind::BF16 => Some(30),
            LayoutKind::TQ1_0 => Some(34),
            LayoutKind::TQ2_0 => Some(35),
            LayoutKind::I2_S => Some(36),
            LayoutKind::TL1 => Some(38),
            LayoutKind::TL2 => Some(39),
            LayoutKind::HfPacked | LayoutKind::GpuW2A8 => None,
        }
    }
}

impl std::fmt::Display for LayoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `v.round_ties_even() as i32` (ties to even; `as` saturates and maps NaN to 0) without a libm
/// call: the default x86-64 target has no SSE4.1 `roundss`, so `f32::round_ties_even` is a call
/// to `rintf`. For |v| < 2^21 this is ggml's `nearest_int` magic-number trick (the sum stays in
/// [2^23, 2^24), where the f32 spacing is 1); larger values and NaN take `round_ties_even`.
#[inline]
pub fn round_half_even(v: f32) -> i32 {
    if v.abs() < 2_097_152.0 {
        round_half_even_small(v)
    } else {
        round_half_even_outside(v)
    }
}

/// ggml's `nearest_int` trick alone: [`round_half_even`] for |v| < 2^21 (the sum `v + 1.5·2^23`
/// stays in [2^23, 2^24), where the f32 spacing is 1), without a branch, so loops over values
/// known to be in range vectorize.
#[inline]
pub(crate) fn round_half_even_small(v: f32) -> i32 {
    ((v + 12_582_912.0).to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// [`round_half_even`] for |v| ≥ 2^21 and NaN. Out of line on purpose: LLVM knows `rintf` has
/// no side effects, and with it inline it turned the branch above into a select that calls
/// `rintf` for every value.
#[cold]
#[inline(never)]
fn round_half_even_outside(v: f32) -> i32 {
    v.round_ties_even() as i32
}

/// Rounds `n` up to a multiple of 32 (GGUF's default alignment).
pub(crate) fn pad32(n: usize) -> usize {
    n.div_ceil(32) * 32
}

/// Fails with [`Error::WrongByteLength`] unless `bytes` is exactly `expected` long.
pub(crate) fn check_len(
    layout: &'static str,
    shape: Shape,
    bytes: &[u8],
    expected: usize,
) -> Result<(), Error> {
    if bytes.len() == expected {
        Ok(())
    } else {
        Err(Error::WrongByteLength {
            layout,
            shape,
            expected,
            found: bytes.len(),
        })
    }
}

/// Fails with [`Error::IllegalShape`] when a dimension is zero.
pub(crate) fn check_nonempty(layout: &'static str, shape: Shape) -> Result<(), Error> {
    if shape.rows == 0 || shape.cols == 0 {
        return Err(Error::IllegalShape {
            layout,
            shape,
            rule: "dimensions must be non-zero".into(),
        });
    }
    Ok(())
}

/// Fails with [`Error::NonZeroPadding`] at the first non-zero byte of `region_bytes`, which
/// starts at `base` inside the tensor data.
pub(crate) fn check_zero(
    layout: &'static str,
    region_bytes: &[u8],
    base: usize,
    region: &'static str,
) -> Result<(), Error> {
    match region_bytes.iter().position(|&b| b != 0) {
        None => Ok(()),
        Some(i) => Err(Error::NonZeroPadding {
            layout,
            offset: base + i,
            value: region_bytes[i],
            region,
        }),
    }
}

/// Reads a little-endian f32 at `at` (the caller has checked the length).
pub(crate) fn read_f32_le(bytes: &[u8], at: usize) -> f32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    f32::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_rounding_equals_round_ties_even() {
        for v in [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            126.49,
            127.5,
            -128.5,
            3.0e-8,
            -0.0,
            4.0e6,
            5.0e6,
            -4_194_304.0,
            4_194_304.0,
            2_097_151.7,
            -2_097_152.5,
            1.0e30,
            f32::NAN,
            f32::INFINITY,
        ] {
            assert_eq!(round_half_even(v), v.round_ties_even() as i32, "{v}");
        }
        let mut x = 0.37f32;
        for _ in 0..10_000 {
            x = (x * 7.13 + 0.77) % 300.0 - 150.0;
            assert_eq!(round_half_even(x), x.round_ties_even() as i32, "{x}");
        }
    }
}
