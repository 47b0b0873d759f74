//! Matmul kernels that read layout-native weight bytes directly (zero-copy from the GGUF map).
//!
//! Invariant: for every ternary layout the integer accumulators are exact (`Σ t·q` over the int8
//! activations) and identical between the scalar reference (`scalar.rs`) and the AVX2 kernels
//! (`avx2.rs`, same function names). The float epilogues are shared code, so I2_S, TL1 and TL2
//! copies of one weight give bit-identical outputs.
//!
//! Structure:
//! * [`quant`]: the per-token int8 quantizer ([`QuantizedRows`]).
//! * `lut`: TL1/TL2 lookup tables (`tl1.md` §6.2, `tl2.md` §6.2).
//! * `scalar` / `avx2`: the kernels, chosen once at run time into a [`KernelTable`].
//! * [`Kernels`]: the entry point: a kernel table plus a thread pool; validated weight views
//!   ([`I2sWeights`], [`Tl1Weights`], [`Tl2Weights`], [`Tq2_0Weights`], [`Tq1_0Weights`],
//!   [`F16Weights`], [`F32Weights`], [`Q8_0Weights`] and [`Q4_0Weights`] with [`Q8Rows`] activations,
//!   [`Q6_KWeights`] with [`Q8KRows`]) go in,
//!   `y[token * M + row]` comes out.
//!
//! Threading: output rows (whole TL tiles) are split into `4 × threads` contiguous chunks that
//! the threads of a private spinning pool (`pool`) take from an atomic counter; no pool when
//! `threads == 1`, so single-threaded decode pays no hand-off.

#![allow(non_camel_case_types)]

#[cfg(target_arch = "x86_64")]
mod avx2;
mod lut;
mod pool;
pub mod quant;
mod scalar;

pub use lut::{tl1_build_lut, tl1_lut_len, tl2_build_luts, tl2_lut_lens};
pub use quant::{quantize_row_i2s_rule, quantize_row_lut_rule, QuantRule, QuantizedRows};

use crate::layout::tiling::{Tl1Tiling, Tl2Tiling};
use crate::layout::Shape;
use std::sync::Mutex;

/// Why a kernel call was refused. Nothing is computed when an error is returned.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The weight bytes do not have the length the layout needs for the shape.
    #[error(
        "{layout}: expected at least {expected} weight bytes for shape {shape}, found {found}"
    )]
    WeightBytes {
        /// Layout name.
        layout: &'static str,
        /// Logical weight shape.
        shape: Shape,
        /// Minimum length required.
        expected: usize,
        /// Length given.
        found: usize,
    },
    /// The shape (or its tiling) breaks a rule of the layout's kernel.
    #[error("{layout}: shape {shape} cannot be used: {rule}")]
    IllegalShape {
        /// Layout name.
        layout: &'static str,
        /// Logical weight shape.
        shape: Shape,
        /// The rule that fails.
        rule: String,
    },
    /// Activation, weight and output sizes disagree.
    #[error("{what}: expected {expected}, found {found}")]
    SizeMismatch {
        /// Which size.
        what: &'static str,
        /// Expected value.
        expected: usize,
        /// Value given.
        found: usize,
    },
    /// Activations are not a whole number of rows of length k.
    #[error("activation length {len} is not a positive multiple of k = {k}")]
    ActivationLength {
        /// Number of values given.
        len: usize,
        /// Row length.
        k: usize,
    },
    /// The requested instruction set is not available on this CPU.
    #[error("instruction set {0} is not available on this CPU")]
    IsaUnavailable(&'static str),
    /// The thread pool could not be built.
    #[error("cannot build a thread pool of {threads} threads: {message}")]
    ThreadPool {
        /// Requested thread count.
        threads: usize,
        /// The operating system's message.
        message: String,
    },
}

// ---------------------------------------------------------------------------------------------
// Weight views: validated, zero-copy.

/// Byte length of an `m × k` matrix with `num/den` bytes per element, checked.
fn checked_len(layout: &'static str, shape: Shape, num: usize, den: usize) -> Result<usize, Error> {
    shape
        .numel()
        .and_then(|n| n.checked_mul(num))
        .map(|n| n / den)
        .ok_or_else(|| Error::IllegalShape {
            layout,
            shape,
            rule: "element count overflows".into(),
        })
}

fn need_bytes(
    layout: &'static str,
    shape: Shape,
    bytes: &[u8],
    expected: usize,
) -> Result<(), Error> {
    if bytes.len() < expected {
        return Err(Error::WeightBytes {
            layout,
            shape,
            expected,
            found: bytes.len(),
        });
    }
    Ok(())
}

fn rule(layout: &'static str, shape: Shape, ok: bool, text: &str) -> Result<(), Error> {
    if ok {
        Ok(())
    } else {
        Err(Error::IllegalShape {
            layout,
            shape,
            rule: text.into(),
        })
    }
}

fn read_f32(bytes: &[u8], at: usize) -> f32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    f32::from_le_bytes(b)
}

/// The region I2_S and TL1 share: `M*K/4` code bytes, then the f32 scale. Returns the codes and
/// the scale.
fn codes_then_scale<'a>(
    layout: &'static str,
    bytes: &'a [u8],
    shape: Shape,
) -> Result<(&'a [u8], f32), Error> {
    let n = checked_len(layout, shape, 1, 4)?;
    need_bytes(layout, shape, bytes, n + 4)?;
    Ok((&bytes[..n], read_f32(bytes, n)))
}

/// An I2_S tensor region (`i2s.md` §3–4): `M*K/4` code bytes then the f32 scale.
#[derive(Debug, Clone, Copy)]
pub struct I2sWeights<'a> {
    codes: &'a [u8],
    shape: Shape,
    scale: f32,
}

impl<'a> I2sWeights<'a> {
    /// Views `bytes` (the tensor region, at least `M*K/4 + 4` bytes; the 28 trailing tail bytes
    /// are not read) as an I2_S matrix. K must be a multiple of 128.
    pub fn new(bytes: &'a [u8], shape: Shape) -> Result<Self, Error> {
        const L: &str = "I2_S";
        rule(
            L,
            shape,
            shape.cols % 128 == 0 && shape.cols > 0,
            "K must be a positive multiple of 128",
        )?;
        let (codes, scale) = codes_then_scale(L, bytes, shape)?;
        Ok(Self {
            codes,
            shape,
            scale,
        })
    }

    /// Logical shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Per-tensor scale read from the tail.
    pub fn scale(&self) -> f32 {
        self.scale
    }
}

/// A TL1 tensor region (`tl1.md` §3, §5) with the tiling it was written with.
#[derive(Debug, Clone, Copy)]
pub struct Tl1Weights<'a> {
    bytes: &'a [u8],
    shape: Shape,
    tiling: Tl1Tiling,
    scale: f32,
}

impl<'a> Tl1Weights<'a> {
    /// Views `bytes` (at least `M*K/4 + 4`: codes then the f32 scale slot) as TL1 data written
    /// with `tiling`. Checks every rule of `tl1.md` §4 except the upstream-only BK ≤ 256 (these
    /// kernels widen to i32 often enough to be exact for any BK).
    pub fn new(bytes: &'a [u8], shape: Shape, tiling: Tl1Tiling) -> Result<Self, Error> {
        const L: &str = "TL1";
        let Tl1Tiling {
            tile_rows: bm_tile,
            block_k: bk,
            simd_rows: bm,
        } = tiling;
        rule(
            L,
            shape,
            bm == 32 || bm == 64,
            "simd_rows (bm) must be 32 or 64",
        )?;
        rule(
            L,
            shape,
            bm_tile > 0 && bm_tile % bm == 0,
            "tile_rows (BM) must be a positive multiple of bm",
        )?;
        rule(
            L,
            shape,
            shape.rows % bm_tile == 0 && shape.rows > 0,
            "M must be a positive multiple of BM",
        )?;
        rule(
            L,
            shape,
            bk > 0 && bk % (256 / bm) == 0,
            "BK must be a positive multiple of 256/bm",
        )?;
        rule(
            L,
            shape,
            shape.cols % bk == 0 && shape.cols > 0,
            "K must be a positive multiple of BK",
        )?;
        rule(L, shape, shape.cols % 16 == 0, "K must be a multiple of 16")?;
        let (bytes, scale) = codes_then_scale(L, bytes, shape)?;
        Ok(Self {
            bytes,
            shape,
            tiling,
            scale,
        })
    }

    /// The tiling the bytes were written with.
    pub fn tiling(&self) -> Tl1Tiling {
        self.tiling
    }

    /// Logical shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Per-tensor scale read from the slot after the codes.
    pub fn scale(&self) -> f32 {
        self.scale
    }
}

/// A TL2 tensor region (`tl2.md` §3, §5) with the tiling it was written with.
#[derive(Debug, Clone, Copy)]
pub struct Tl2Weights<'a> {
    three: &'a [u8],
    signs: &'a [u8],
    two: &'a [u8],
    shape: Shape,
    tiling: Tl2Tiling,
    three_k: usize,
    scale: f32,
}

impl<'a> Tl2Weights<'a> {
    /// Views `bytes` (at least `pad32(L(M,K)) + 4`) as TL2 data written with `tiling`; the
    /// scale is read at `pad32(L)`. Checks `tl2.md` §4 except the upstream-only BK ≤ 240.
    pub fn new(bytes: &'a [u8], shape: Shape, tiling: Tl2Tiling) -> Result<Self, Error> {
        const L: &str = "TL2";
        let Tl2Tiling {
            tile_rows: bm_tile,
            block_k: bk,
        } = tiling;
        rule(
            L,
            shape,
            bm_tile > 0 && bm_tile % 32 == 0,
            "tile_rows (BM) must be a positive multiple of 32",
        )?;
        rule(
            L,
            shape,
            shape.rows % bm_tile == 0 && shape.rows > 0,
            "M must be a positive multiple of BM",
        )?;
        rule(
            L,
            shape,
            bk > 0 && bk % 24 == 0,
            "BK must be a positive multiple of 24",
        )?;
        let three_k = shape.cols / bk * bk;
        let two_k = shape.cols - three_k;
        rule(
            L,
            shape,
            two_k % 32 == 0,
            "K mod BK must be a multiple of 32",
        )?;
        rule(
            L,
            shape,
            two_k <= 256,
            "K mod BK must not exceed 256 (the size formula goes negative)",
        )?;
        let too_big = || Error::IllegalShape {
            layout: L,
            shape,
            rule: "size overflows".into(),
        };
        let payload = Tl2Tiling::payload_len(shape).map_err(|e| Error::IllegalShape {
            layout: L,
            shape,
            rule: e.to_string(),
        })?;
        let m = shape.rows;
        let a = m.checked_mul(three_k).ok_or_else(too_big)? / 6;
        let b = m * three_k / 24;
        let c = m.checked_mul(two_k).ok_or_else(too_big)? / 4;
        rule(
            L,
            shape,
            a + b + c <= payload,
            "data does not fit the payload formula",
        )?;
        let slot = payload.div_ceil(32) * 32;
        need_bytes(L, shape, bytes, slot + 4)?;
        Ok(Self {
            three: &bytes[..a],
            signs: &bytes[a..a + b],
            two: &bytes[a + b..a + b + c],
            shape,
            tiling,
            three_k,
            scale: read_f32(bytes, slot),
        })
    }

    /// The tiling the bytes were written with.
    pub fn tiling(&self) -> Tl2Tiling {
        self.tiling
    }

    /// Logical shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// Per-tensor scale read from the slot after the padded payload.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// Width of the three-weight part, `floor(K / BK) * BK`.
    pub fn three_k(&self) -> usize {
        self.three_k
    }
}

/// A ggml ternary block type as the TQ kernels read it: 256 values in `bytes` bytes, the f16
/// `d` at `d_offset` of each block. One description serves the view and the epilogue.
#[derive(Debug)]
struct TqBlock {
    name: &'static str,
    bytes: usize,
    d_offset: usize,
}

/// ggml `block_tq2_0`: `qs[64]` then f16 `d`.
const TQ2_0: TqBlock = TqBlock {
    name: "TQ2_0",
    bytes: 66,
    d_offset: 64,
};

/// ggml `block_tq1_0`: `qs[48]`, `qh[4]`, then f16 `d`.
const TQ1_0: TqBlock = TqBlock {
    name: "TQ1_0",
    bytes: 54,
    d_offset: 52,
};

impl TqBlock {
    /// The first `M*K/256*bytes` of `bytes` as a matrix of this block type, or the rule it
    /// breaks.
    fn matrix<'a>(&self, bytes: &'a [u8], shape: Shape) -> Result<&'a [u8], Error> {
        rule(
            self.name,
            shape,
            shape.cols % 256 == 0 && shape.cols > 0,
            "K must be a positive multiple of 256",
        )?;
        let n = checked_len(self.name, shape, self.bytes, 256)?;
        need_bytes(self.name, shape, bytes, n)?;
        Ok(&bytes[..n])
    }
}

/// The first `M*K/block*bytes` of `bytes` as a matrix of ggml block type `quant` (whole blocks
/// per row, enough bytes), or the rule it breaks.
fn block_matrix<'a>(
    quant: &crate::layout::BlockQuant,
    bytes: &'a [u8],
    shape: Shape,
) -> Result<&'a [u8], Error> {
    let n = quant.byte_len(shape).map_err(|_| Error::IllegalShape {
        layout: quant.name(),
        shape,
        rule: format!(
            "K must be a positive multiple of {} and the size must fit in memory",
            quant.block_values()
        ),
    })?;
    need_bytes(quant.name(), shape, bytes, n)?;
    Ok(&bytes[..n])
}

/// The first `M*K*elem_bytes` of `bytes` as a dense row-major matrix, or the rule it breaks.
fn dense_matrix<'a>(
    layout: &'static str,
    bytes: &'a [u8],
    shape: Shape,
    elem_bytes: usize,
) -> Result<&'a [u8], Error> {
    rule(layout, shape, shape.cols > 0, "K must be positive")?;
    let n = checked_len(layout, shape, elem_bytes, 1)?;
    need_bytes(layout, shape, bytes, n)?;
    Ok(&bytes[..n])
}

/// Declares a weight view that is nothing but checked bytes and a shape: the struct, `new`
/// (which keeps the prefix of `bytes` that `$matrix` accepts) and `shape()`. Six layouts are
/// exactly this, so they are written once; the views with a scale or a tiling (I2_S, TL1, TL2)
/// are written out above.
macro_rules! matrix_view {
    (
        $(#[$doc:meta])*
        $name:ident;
        $(#[$new_doc:meta])*
        new: $matrix:expr;
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name<'a> {
            bytes: &'a [u8],
            shape: Shape,
        }

        impl<'a> $name<'a> {
            $(#[$new_doc])*
            pub fn new(bytes: &'a [u8], shape: Shape) -> Result<Self, Error> {
                let matrix: fn(&'a [u8], Shape) -> Result<&'a [u8], Error> = $matrix;
                Ok(Self {
                    bytes: matrix(bytes, shape)?,
                    shape,
                })
            }

            /// Logical shape.
            pub fn shape(&self) -> Shape {
                self.shape
            }
        }
    };
}

matrix_view! {
    /// A TQ2_0 tensor (ggml `block_tq2_0`: `qs[64]` + f16 `d` per 256 values, 66 bytes).
    Tq2_0Weights;
    /// Views `bytes` (at least `M*K/256*66`) as TQ2_0; K must be a multiple of 256.
    new: |bytes, shape| TQ2_0.matrix(bytes, shape);
}

matrix_view! {
    /// A TQ1_0 tensor (ggml `block_tq1_0`: `qs[48]`, `qh[4]`, f16 `d` per 256 values, 54 bytes).
    Tq1_0Weights;
    /// Views `bytes` (at least `M*K/256*54`) as TQ1_0; K must be a multiple of 256.
    new: |bytes, shape| TQ1_0.matrix(bytes, shape);
}

matrix_view! {
    /// A Q8_0 matrix (ggml `block_q8_0`: f16 `d` then `qs[32]` per 32 values, 34 bytes), e.g. a
    /// quantized token embedding used as the lm_head.
    Q8_0Weights;
    /// Views `bytes` (at least `M*K/32*34`) as Q8_0; K must be a multiple of 32.
    new: |bytes, shape| block_matrix(&crate::layout::block_quant::Q8_0, bytes, shape);
}

matrix_view! {
    /// A Q4_0 matrix (ggml `block_q4_0`: f16 `d` then `qs[16]` per 32 values, 18 bytes), e.g. a
    /// quantized token embedding used as the lm_head.
    Q4_0Weights;
    /// Views `bytes` (at least `M*K/32*18`) as Q4_0; K must be a multiple of 32.
    new: |bytes, shape| block_matrix(&crate::layout::block_quant::Q4_0, bytes, shape);
}

matrix_view! {
    /// A Q4_0 matrix with its rows interleaved by 8 for the AVX2 kernel (made at load by
    /// [`Q4_0x8Weights::interleave`], never written to a file). Same bytes as Q4_0, reordered:
    /// for each group of 8 rows and each 32-value block, 144 bytes: the 8 rows' f16 `d`, then 4
    /// chunks of 32 bytes, chunk c holding `qs[4c..4c+4]` of each of the 8 rows in turn. One
    /// chunk is thus 4 values of 8 rows in its low nibbles (and 4 more in its high ones), the
    /// shape of a `maddubs` against 4 broadcast activations, and the 8 `d` are one F16C load.
    Q4_0x8Weights;
    /// Views `bytes` (at least `M*K/32*18`) as interleaved Q4_0; M must be a multiple of 8 and
    /// K of 32.
    new: |bytes, shape| {
        rule("Q4_0x8", shape, shape.rows % 8 == 0, "M must be a multiple of 8")?;
        block_matrix(&crate::layout::block_quant::Q4_0, bytes, shape)
    };
}

impl Q4_0x8Weights<'_> {
    /// The interleaved bytes of a Q4_0 matrix whose row count is a multiple of 8.
    pub fn interleave(w: &Q4_0Weights<'_>) -> Result<Vec<u8>, Error> {
        // The interleaved matrix has the same size: its view's rules are the ones to meet.
        let shape = Q4_0x8Weights::new(w.bytes, w.shape)?.shape;
        let nb = shape.cols / 32;
        let mut out = vec![0u8; w.bytes.len()];
        for (r, row) in w.bytes.chunks_exact(nb * 18).enumerate() {
            let group = &mut out[r / 8 * nb * 144..(r / 8 + 1) * nb * 144];
            for (block, dst) in row.chunks_exact(18).zip(group.chunks_exact_mut(144)) {
                for (byte, &v) in block.iter().enumerate() {
                    dst[q4_0x8_offset(r % 8, byte)] = v;
                }
            }
        }
        Ok(out)
    }
}

/// Where byte `byte` (0..18) of row `i`'s (0..8) ggml Q4_0 block sits in the 144 bytes of its
/// group's interleaved block ([`Q4_0x8Weights`]).
fn q4_0x8_offset(i: usize, byte: usize) -> usize {
    match byte {
        0 | 1 => 2 * i + byte,
        _ => {
            let j = byte - 2;
            16 + 32 * (j / 4) + 4 * i + j % 4
        }
    }
}

matrix_view! {
    /// A Q6_K matrix (ggml `block_q6_K`: 210 bytes per 256 values, see [`crate::layout::q6_k`]),
    /// e.g. a quantized token embedding used as the lm_head.
    Q6_KWeights;
    /// Views `bytes` (at least `M*K/256*210`) as Q6_K; K must be a multiple of 256.
    new: |bytes, shape| block_matrix(&crate::layout::block_quant::Q6_K, bytes, shape);
}

matrix_view! {
    /// A dense F16 matrix (little-endian, row-major, `M*K*2` bytes).
    F16Weights;
    /// Views `bytes` (at least `M*K*2`) as F16.
    new: |bytes, shape| dense_matrix("F16", bytes, shape, 2);
}

matrix_view! {
    /// A dense F32 matrix (little-endian, row-major, `M*K*4` bytes).
    F32Weights;
    /// Views `bytes` (at least `M*K*4`) as F32.
    new: |bytes, shape| dense_matrix("F32", bytes, shape, 4);
}

// ---------------------------------------------------------------------------------------------
// Activation types of the ggml block formats.

/// Activation rows quantized to ggml Q8_0 blocks (`quantize_row_q8_0_ref`, through
/// [`crate::layout::q8_0::quantize_block`]): per 32 values `d = amax / 127`, `q = round(x / d)`
/// (half away from zero, with the unrounded `1/d`), and `d` kept rounded to f16, as ggml stores
/// it.
#[derive(Debug, Clone, Default)]
pub struct Q8Rows {
    k: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
}

impl Q8Rows {
    /// Empty rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x` (rows of length `k`, a multiple of 32) in place of the previous content.
    pub fn quantize(&mut self, x: &[f32], k: usize) -> Result<(), Error> {
        if k == 0 || k % 32 != 0 || x.len() % k != 0 || x.is_empty() {
            return Err(Error::ActivationLength { len: x.len(), k });
        }
        self.k = k;
        self.values.resize(x.len(), 0);
        self.scales.resize(x.len() / 32, 0.0);
        for ((xb, qb), d_out) in x
            .chunks_exact(32)
            .zip(self.values.chunks_exact_mut(32))
            .zip(self.scales.iter_mut())
        {
            *d_out = crate::layout::q8_0::quantize_block(xb, qb).to_f32();
        }
        Ok(())
    }

    /// Row length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.k).unwrap_or(0)
    }

    /// All quantized values, row-major.
    pub fn values(&self) -> &[i8] {
        &self.values
    }

    /// The f16-rounded block scales `d`, `[t * K/32 + b]`.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// Row t's values and block scales.
    fn token(&self, t: usize) -> (&[i8], &[f32]) {
        let nb = self.k / 32;
        (
            &self.values[t * self.k..(t + 1) * self.k],
            &self.scales[t * nb..(t + 1) * nb],
        )
    }
}

/// Activation rows quantized to ggml Q8_K blocks (`quantize_row_q8_K_ref`), the operand ggml
/// pairs with Q6_K: per 256 values `d = 1/iscale` with `iscale = −127 / x_max` (x_max the
/// value of largest magnitude, sign kept), `q = min(127, round_even(iscale · x))`, plus the
/// sum of each 16 values (`bsums`).
#[derive(Debug, Clone, Default)]
pub struct Q8KRows {
    k: usize,
    values: Vec<i8>,
    scales: Vec<f32>,
    bsums: Vec<i16>,
}

impl Q8KRows {
    /// Empty rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x` (rows of length `k`, a multiple of 256) in place of the previous content.
    pub fn quantize(&mut self, x: &[f32], k: usize) -> Result<(), Error> {
        if k == 0 || k % 256 != 0 || x.len() % k != 0 || x.is_empty() {
            return Err(Error::ActivationLength { len: x.len(), k });
        }
        self.k = k;
        self.values.resize(x.len(), 0);
        self.scales.resize(x.len() / 256, 0.0);
        self.bsums.resize(x.len() / 16, 0);
        for (((xb, qb), d_out), sums) in x
            .chunks_exact(256)
            .zip(self.values.chunks_exact_mut(256))
            .zip(self.scales.iter_mut())
            .zip(self.bsums.chunks_exact_mut(16))
        {
            let (mut max, mut amax) = (0f32, 0f32);
            for &v in xb {
                if v.abs() > amax {
                    amax = v.abs();
                    max = v;
                }
            }
            if amax == 0.0 {
                qb.fill(0);
                sums.fill(0);
                *d_out = 0.0;
                continue;
            }
            let iscale = -127.0 / max;
            for (q, &v) in qb.iter_mut().zip(xb) {
                *q = crate::layout::round_half_even(iscale * v).min(127) as i8;
            }
            for (s, q16) in sums.iter_mut().zip(qb.chunks_exact(16)) {
                *s = q16.iter().map(|&v| i16::from(v)).sum();
            }
            *d_out = 1.0 / iscale;
        }
        Ok(())
    }

    /// Row length.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.k).unwrap_or(0)
    }

    /// All quantized values, row-major.
    pub fn values(&self) -> &[i8] {
        &self.values
    }

    /// The block scales `d`, `[t * K/256 + b]`.
    pub fn scales(&self) -> &[f32] {
        &self.scales
    }

    /// The sums of every 16 quantized values, `[t * K/16 + j]`.
    pub fn bsums(&self) -> &[i16] {
        &self.bsums
    }
}

// ---------------------------------------------------------------------------------------------
// Kernel table.

/// One TL1 tile as the kernels see it: `tile_rows * k / 4` bytes in stored order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tl1Tile<'a> {
    pub bytes: &'a [u8],
    pub k: usize,
    pub tile_rows: usize,
    pub block_k: usize,
    pub simd_rows: usize,
}

/// One TL2 tile: its slices of sections A (index), B (signs) and C (two-part index).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tl2Tile<'a> {
    pub three: &'a [u8],
    pub signs: &'a [u8],
    pub two: &'a [u8],
    pub tile_rows: usize,
    pub block_k: usize,
    pub three_k: usize,
    pub two_k: usize,
}

/// Instruction set of a kernel table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable scalar reference.
    Scalar,
    /// AVX2 + FMA + F16C.
    Avx2,
}

impl Isa {
    /// Display name (`"scalar"`, `"avx2"`).
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
        }
    }

    /// Whether this CPU can run kernels of this ISA. The one place features are detected.
    pub fn available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::is_x86_feature_detected!("avx2")
                    && std::is_x86_feature_detected!("fma")
                    && std::is_x86_feature_detected!("f16c")
            }
            #[cfg(not(target_arch = "x86_64"))]
            Isa::Avx2 => false,
        }
    }

    /// The best ISA this CPU supports.
    pub fn detect() -> Isa {
        if Isa::Avx2.available() {
            Isa::Avx2
        } else {
            Isa::Scalar
        }
    }
}

type I2sDotRows = fn(&[u8], usize, &[i8], usize, &mut [i32]);
type Tl1TileFn = fn(Tl1Tile<'_>, &[u8], &mut [i32]);
type Tl2TileFn = fn(Tl2Tile<'_>, &[u8], &[u8], &mut [i32]);
type BlockRowFn = fn(&[u8], &[i8], &mut [i32]);
type DenseRowsFn = fn(&[u8], usize, &[f32], &mut [f32]);
type Q8RowFn = fn(&[u8], &[i8], &mut [i32], &mut [f32]);
type Q8RowsFn = fn(&[u8], &[i8], &[f32], &mut [f32]);
type Q4x8RowsFn = fn(&[u8], &[i8], &[f32], &[i32], &mut [f32]);
type Q6kRowFn = fn(&[u8], &[i8], &[i16], &mut [i32], &mut [f32]);
type I8RowsFn = fn(&[i8], usize, &[i16], &mut [i32]);

/// The kernels of one ISA, as function pointers (chosen once, no per-call feature tests).
#[derive(Debug, Clone, Copy)]
pub struct KernelTable {
    isa: Isa,
    i2s_dot_rows: I2sDotRows,
    tl1_tile: Tl1TileFn,
    tl2_tile: Tl2TileFn,
    tq2_0_row: BlockRowFn,
    tq1_0_row: BlockRowFn,
    q8_0_row: Q8RowFn,
    q4_0_row: Q8RowFn,
    q8_0_rows: Q8RowsFn,
    q4_0_rows: Q8RowsFn,
    q4_0x8_rows: Q4x8RowsFn,
    q6_k_row: Q6kRowFn,
    f16_rows: DenseRowsFn,
    f32_rows: DenseRowsFn,
    f16_weighted_rows: DenseRowsFn,
    f32_weighted_rows: DenseRowsFn,
    i8_rows: I8RowsFn,
}

const SCALAR: KernelTable = KernelTable {
    isa: Isa::Scalar,
    i2s_dot_rows: scalar::i2s_dot_rows,
    tl1_tile: scalar::tl1_tile,
    tl2_tile: scalar::tl2_tile,
    tq2_0_row: scalar::tq2_0_row,
    tq1_0_row: scalar::tq1_0_row,
    q8_0_row: scalar::q8_0_row,
    q4_0_row: scalar::q4_0_row,
    q8_0_rows: scalar::q8_0_rows,
    q4_0_rows: scalar::q4_0_rows,
    q4_0x8_rows: scalar::q4_0x8_rows,
    q6_k_row: scalar::q6_k_row,
    f16_rows: scalar::f16_rows,
    f32_rows: scalar::f32_rows,
    f16_weighted_rows: scalar::f16_weighted_rows,
    f32_weighted_rows: scalar::f32_weighted_rows,
    i8_rows: scalar::i8_rows,
};

#[cfg(target_arch = "x86_64")]
const AVX2: KernelTable = KernelTable {
    isa: Isa::Avx2,
    i2s_dot_rows: avx2::i2s_dot_rows,
    tl1_tile: avx2::tl1_tile,
    tl2_tile: avx2::tl2_tile,
    tq2_0_row: avx2::tq2_0_row,
    tq1_0_row: avx2::tq1_0_row,
    q8_0_row: avx2::q8_0_row,
    q4_0_row: avx2::q4_0_row,
    q8_0_rows: avx2::q8_0_rows,
    q4_0_rows: avx2::q4_0_rows,
    q4_0x8_rows: avx2::q4_0x8_rows,
    q6_k_row: avx2::q6_k_row,
    f16_rows: avx2::f16_rows,
    f32_rows: avx2::f32_rows,
    f16_weighted_rows: avx2::f16_weighted_rows,
    f32_weighted_rows: avx2::f32_weighted_rows,
    i8_rows: avx2::i8_rows,
};

impl KernelTable {
    /// The table for `isa`, or an error if this CPU lacks it.
    pub fn for_isa(isa: Isa) -> Result<&'static KernelTable, Error> {
        match isa {
            Isa::Scalar => Ok(&SCALAR),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if isa.available() => Ok(&AVX2),
            Isa::Avx2 => Err(Error::IsaUnavailable("avx2+fma+f16c")),
        }
    }

    /// ISA of this table.
    pub fn isa(&self) -> Isa {
        self.isa
    }
}

// ---------------------------------------------------------------------------------------------
// Cache-line-aligned byte buffers.

/// `len` bytes of `buf` starting at a 64-byte boundary, growing `buf` to hold them: 32-byte
/// SIMD loads from such a buffer at multiples of 32 never straddle two cache lines (an
/// unaligned heap buffer made the prompt GEMM 4 % slower or faster from build to build).
fn cache_aligned_mut<T: Copy + Default>(buf: &mut Vec<T>, len: usize) -> &mut [T] {
    const _: () = assert!(CACHE_LINE == 64);
    assert_eq!(std::mem::size_of::<T>(), 1, "byte buffers only");
    // Grow only: the callers overwrite the bytes they use, and a buffer reused for a smaller
    // call keeps its allocation (and its place, so `cache_aligned` finds the same bytes).
    if buf.len() < len + CACHE_LINE {
        buf.resize(len + CACHE_LINE, T::default());
    }
    let at = buf.as_ptr().align_offset(CACHE_LINE);
    &mut buf[at..at + len]
}

/// The aligned bytes [`cache_aligned_mut`] returned, read back.
fn cache_aligned<T>(buf: &[T], len: usize) -> &[T] {
    let at = buf.as_ptr().align_offset(CACHE_LINE);
    &buf[at..at + len]
}

const CACHE_LINE: usize = 64;

// ---------------------------------------------------------------------------------------------
// Parallel output.

/// A raw output pointer shared by tasks that write disjoint index sets.
#[derive(Clone, Copy)]
struct SharedOut<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: a `SharedOut` is only created from a `&mut [T]` that outlives the parallel section,
// and every task writes an index set disjoint from all others (its own rows).
unsafe impl<T: Send> Send for SharedOut<T> {}
// SAFETY: as above; no two tasks touch the same element.
unsafe impl<T: Send> Sync for SharedOut<T> {}

impl<T> SharedOut<T> {
    fn new(out: &mut [T]) -> Self {
        Self {
            ptr: out.as_mut_ptr(),
            len: out.len(),
        }
    }

    /// Writes `value` at `index`.
    ///
    /// # Safety
    /// No other task may write `index` concurrently.
    #[inline]
    unsafe fn write(self, index: usize, value: T) {
        assert!(index < self.len, "output index out of range");
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { self.ptr.add(index).write(value) }
    }

    /// The `len` elements from `start`, for a task that owns them.
    ///
    /// # Safety
    /// No other task may access `start..start + len` while the slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(
            start <= self.len && len <= self.len - start,
            "output range out of bounds"
        );
        // SAFETY: in bounds (checked above); exclusivity is the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// How many activation rows the TL kernels handle per pass (LUTs of all of them stay cached
/// while each tile's weights are reused across them).
const TL_TOKEN_GROUP: usize = 8;

/// Kernel table + thread pool: the entry point of every matmul. `y` is token-major:
/// `y[t * M + r]` for activation row t and weight row r.
#[derive(Debug)]
pub struct Kernels {
    table: &'static KernelTable,
    threads: usize,
    pool: Option<pool::SpinPool>,
    lut_scratch: Mutex<Vec<u8>>,
}

impl Kernels {
    /// Kernels for `isa` (`None`: the best available) on `threads` threads (0 is taken as 1).
    pub fn new(threads: usize, isa: Option<Isa>) -> Result<Self, Error> {
        let table = KernelTable::for_isa(isa.unwrap_or_else(Isa::detect))?;
        let threads = threads.max(1);
        let pool = if threads > 1 {
            Some(pool::SpinPool::new(threads).map_err(|e| Error::ThreadPool {
                threads,
                message: e.to_string(),
            })?)
        } else {
            None
        };
        Ok(Self {
            table,
            threads,
            pool,
            lut_scratch: Mutex::new(Vec::new()),
        })
    }

    /// The ISA of the kernels in use.
    pub fn isa(&self) -> Isa {
        self.table.isa
    }

    /// Number of threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(r0, r1)` over contiguous row ranges covering `0..m`, cut at multiples of `unit`
    /// rows (so a kernel that wants whole groups of rows, e.g. TL tiles, gets them):
    /// `CHUNKS_PER_THREAD` chunks per thread, taken dynamically from the spinning pool (so a
    /// thread the scheduler preempts costs at most one chunk).
    fn split<F: Fn(usize, usize) + Sync>(&self, m: usize, unit: usize, f: F) {
        const CHUNKS_PER_THREAD: usize = 4;
        let units = m.div_ceil(unit);
        let rows = |a: usize, b: usize| f(a * unit, (b * unit).min(m));
        match &self.pool {
            Some(pool) if self.threads.min(units) > 1 => {
                let chunks = (self.threads * CHUNKS_PER_THREAD).min(units);
                pool.run(chunks, &|c| {
                    rows(units * c / chunks, units * (c + 1) / chunks)
                });
            }
            _ => rows(0, units),
        }
    }

    /// Calls `f(i, row_i)` for every `len`-long row of `data`, spread over the pool's threads
    /// when there are several rows (a prompt's norms, quantization and attention are
    /// row-independent, so the result does not depend on the split). Returns the first error.
    pub fn for_each_row<T, E, F>(&self, data: &mut [T], len: usize, f: F) -> Result<(), E>
    where
        T: Send,
        E: Send,
        F: Fn(usize, &mut [T]) -> Result<(), E> + Sync,
    {
        let rows = data.len().checked_div(len).unwrap_or(0);
        let out = SharedOut::new(data);
        let first_error = std::sync::Mutex::new(None);
        self.split(rows, 1, |r0, r1| {
            for r in r0..r1 {
                // SAFETY: row r belongs to this task only.
                if let Err(e) = f(r, unsafe { out.slice(r * len, len) }) {
                    let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    return;
                }
            }
        });
        match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// I2_S raw accumulators `R = Σ code·q` (codes 0..2), `raw[t * M + r]`; what upstream's dot
    /// kernel returns (`i2s.md` §7 step 2).
    pub fn i2s_raw(
        &self,
        w: &I2sWeights<'_>,
        x: &QuantizedRows,
        raw: &mut [i32],
    ) -> Result<(), Error> {
        self.i2s_run(w, x, raw, |src, _, dst| dst.copy_from_slice(src))
    }

    /// I2_S matmul: `y[t*M + r] = ((R − Σq) / sa) * scale` in f32, in that order (`i2s.md` §7).
    pub fn i2s(&self, w: &I2sWeights<'_>, x: &QuantizedRows, y: &mut [f32]) -> Result<(), Error> {
        let scale = w.scale;
        let (sums, scales) = (x.sums(), x.scales());
        self.i2s_run(w, x, y, move |raw, t, dst| {
            let (sum, sa) = (sums[t], scales[t]);
            for (d, &r) in dst.iter_mut().zip(raw) {
                *d = ((r - sum) as f32 / sa) * scale;
            }
        })
    }

    fn i2s_run<T: Send + Copy>(
        &self,
        w: &I2sWeights<'_>,
        x: &QuantizedRows,
        out: &mut [T],
        emit: impl Fn(&[i32], usize, &mut [T]) + Sync,
    ) -> Result<(), Error> {
        let (m, k) = (w.shape.rows, w.shape.cols);
        check_sizes(k, x.k(), x.rows(), m, out.len())?;
        let ntok = x.rows();
        let kernel = self.table.i2s_dot_rows;
        let out = SharedOut::new(out);
        // Units of 4 rows keep the AVX2 kernel on its 4-row path.
        self.split(m, 4, |r0, r1| {
            // The kernel does all tokens of up to SUB rows at once (`acc[token * n + row]`).
            const SUB: usize = 32;
            let mut buf = vec![0i32; SUB * ntok];
            let mut r = r0;
            while r < r1 {
                let n = SUB.min(r1 - r);
                let acc = &mut buf[..n * ntok];
                kernel(
                    &w.codes[r * k / 4..(r + n) * k / 4],
                    k,
                    x.values(),
                    ntok,
                    acc,
                );
                // Token by token over contiguous slices, so the epilogue (a division per
                // output) vectorizes.
                for (t, acc_t) in acc.chunks_exact(n).enumerate() {
                    // SAFETY: rows r..r+n belong to this task only.
                    emit(acc_t, t, unsafe { out.slice(t * m + r, n) });
                }
                r += n;
            }
        });
        Ok(())
    }

    /// TL1 exact dot products `Σ_k w[m][k]·q[k]`, `dot[t*M + m]`.
    pub fn tl1_dot(
        &self,
        w: &Tl1Weights<'_>,
        x: &QuantizedRows,
        dot: &mut [i32],
    ) -> Result<(), Error> {
        self.tl_run(w, x, dot, |d, _| d)
    }

    /// TL1 matmul (`tl1.md` §6): `y = float32(float32(dot) / scale_t) * weight_scale`; with
    /// [`QuantRule::I2s`] activations this equals [`Kernels::i2s`] on the same weights.
    pub fn tl1(&self, w: &Tl1Weights<'_>, x: &QuantizedRows, y: &mut [f32]) -> Result<(), Error> {
        self.tl_run(w, x, y, tl_epilogue(w.scale, x))
    }

    /// TL2 exact dot products, `dot[t*M + m]`.
    pub fn tl2_dot(
        &self,
        w: &Tl2Weights<'_>,
        x: &QuantizedRows,
        dot: &mut [i32],
    ) -> Result<(), Error> {
        self.tl_run(w, x, dot, |d, _| d)
    }

    /// TL2 matmul (`tl2.md` §6.4): `y = float32(float32(dot) / scale_t) * weight_scale`.
    pub fn tl2(&self, w: &Tl2Weights<'_>, x: &QuantizedRows, y: &mut [f32]) -> Result<(), Error> {
        self.tl_run(w, x, y, tl_epilogue(w.scale, x))
    }

    /// The TL1/TL2 driver. Per group of [`TL_TOKEN_GROUP`] tokens it builds each token's LUT
    /// once (into the LUT scratch kept across calls), then the pool takes whole
    /// tiles and runs every token of the group against each tile while its weights are hot,
    /// writing `emit(dot, t)` to `out[t*M + r]`.
    fn tl_run<W: TlMatrix, T: Send + Copy>(
        &self,
        w: &W,
        x: &QuantizedRows,
        out: &mut [T],
        emit: impl Fn(i32, usize) -> T + Sync,
    ) -> Result<(), Error> {
        let (shape, tile_rows) = w.shape_and_tile_rows();
        let (m, k) = (shape.rows, shape.cols);
        check_sizes(k, x.k(), x.rows(), m, out.len())?;
        let out = SharedOut::new(out);
        let lut_len = w.lut_len();
        let mut scratch = self.lut_scratch.lock().unwrap_or_else(|e| e.into_inner());
        for t0 in (0..x.rows()).step_by(TL_TOKEN_GROUP) {
            let nt = TL_TOKEN_GROUP.min(x.rows() - t0);
            scratch.resize(nt * lut_len, 0);
            for (i, lut) in scratch.chunks_exact_mut(lut_len).enumerate() {
                w.build_lut(x.row(t0 + i), lut);
            }
            let luts: &[u8] = &scratch;
            self.split(m, tile_rows, |r0, r1| {
                let mut dots = vec![0i32; tile_rows];
                for tile in r0 / tile_rows..r1 / tile_rows {
                    for (i, lut) in luts.chunks_exact(lut_len).enumerate() {
                        w.tile_dots(self.table, tile, lut, &mut dots);
                        let t = t0 + i;
                        for (r, &d) in dots.iter().enumerate() {
                            // SAFETY: this task owns the rows of its tiles.
                            unsafe { out.write(t * m + tile * tile_rows + r, emit(d, t)) };
                        }
                    }
                }
            });
        }
        Ok(())
    }

    /// TQ2_0 per-block exact dots `Σ t·q` over each 256-value block,
    /// `dot[(t*M + r) * (K/256) + b]`.
    pub fn tq2_0_dot(
        &self,
        w: &Tq2_0Weights<'_>,
        x: &QuantizedRows,
        dot: &mut [i32],
    ) -> Result<(), Error> {
        let kernel = self.table.tq2_0_row;
        self.tq_run(&TQ2_0, w.bytes, w.shape, kernel, x, BlockOut::Dots(dot))
    }

    /// TQ2_0 matmul. Per row, consecutive blocks with the same f16 `d` form a run:
    /// `y = Σ_runs float32(float32(Σ_run t·q) / sa) * d` in f32. A file whose blocks all carry
    /// one `d` therefore gives exactly the I2_S formula with `scale = d`.
    pub fn tq2_0(
        &self,
        w: &Tq2_0Weights<'_>,
        x: &QuantizedRows,
        y: &mut [f32],
    ) -> Result<(), Error> {
        let kernel = self.table.tq2_0_row;
        self.tq_run(&TQ2_0, w.bytes, w.shape, kernel, x, BlockOut::Values(y))
    }

    /// TQ1_0 per-block exact dots, laid out as [`Kernels::tq2_0_dot`].
    pub fn tq1_0_dot(
        &self,
        w: &Tq1_0Weights<'_>,
        x: &QuantizedRows,
        dot: &mut [i32],
    ) -> Result<(), Error> {
        let kernel = self.table.tq1_0_row;
        self.tq_run(&TQ1_0, w.bytes, w.shape, kernel, x, BlockOut::Dots(dot))
    }

    /// TQ1_0 matmul, epilogue as [`Kernels::tq2_0`].
    pub fn tq1_0(
        &self,
        w: &Tq1_0Weights<'_>,
        x: &QuantizedRows,
        y: &mut [f32],
    ) -> Result<(), Error> {
        let kernel = self.table.tq1_0_row;
        self.tq_run(&TQ1_0, w.bytes, w.shape, kernel, x, BlockOut::Values(y))
    }

    /// TQ2_0 and TQ1_0: the kernel's `Σ code·q` (codes 0..2) minus the block's Σq gives the
    /// exact `Σ t·q` of each block; the matmul folds them with [`tq_epilogue`].
    fn tq_run(
        &self,
        block: &TqBlock,
        bytes: &[u8],
        shape: Shape,
        kernel: BlockRowFn,
        x: &QuantizedRows,
        out: BlockOut<'_>,
    ) -> Result<(), Error> {
        let nb = shape.cols / 256;
        out.check(shape, nb, x.k(), x.rows())?;
        let qsums = block_sums(x);
        let row_bytes = nb * block.bytes;
        let row = |r: usize| &bytes[r * row_bytes..(r + 1) * row_bytes];
        let scales = x.scales();
        self.block_run(
            shape.rows,
            nb,
            x.rows(),
            out,
            |r, t, raw, _| {
                kernel(row(r), x.row(t), raw);
                for (v, &s) in raw.iter_mut().zip(&qsums[t * nb..(t + 1) * nb]) {
                    *v -= s;
                }
            },
            |r, t, dots, _| tq_epilogue(block, row(r), dots, scales[t]),
        );
        Ok(())
    }

    /// Q8_0 per-block exact dots `Σ w·q` over each 32-value block,
    /// `dot[(t*M + r) * (K/32) + b]`.
    pub fn q8_0_dot(&self, w: &Q8_0Weights<'_>, x: &Q8Rows, dot: &mut [i32]) -> Result<(), Error> {
        self.q8_blocks_run(w.bytes, w.shape, 34, self.table.q8_0_row, x, dot)
    }

    /// Q8_0 × Q8_0 matmul (ggml's `vec_dot_q8_0_q8_0`): `y = Σ_b (d_w · d_x) · Σ_block w·q` in
    /// f32, `y[t*M + r]`. One fused kernel per ISA, all summing in `scalar::block_epilogue`'s
    /// order, so outputs are bit-identical.
    pub fn q8_0(&self, w: &Q8_0Weights<'_>, x: &Q8Rows, y: &mut [f32]) -> Result<(), Error> {
        let kernel = self.table.q8_0_rows;
        self.q8_rows_run(w.bytes, w.shape, 34, x, y, |rows, t, out| {
            let (q, xd) = x.token(t);
            kernel(rows, q, xd, out)
        })
    }

    /// Q4_0 per-block exact dots `Σ (nibble − 8)·q` over each 32-value block,
    /// `dot[(t*M + r) * (K/32) + b]`.
    pub fn q4_0_dot(&self, w: &Q4_0Weights<'_>, x: &Q8Rows, dot: &mut [i32]) -> Result<(), Error> {
        self.q8_blocks_run(w.bytes, w.shape, 18, self.table.q4_0_row, x, dot)
    }

    /// Q4_0 × Q8_0 matmul (ggml's `vec_dot_q4_0_q8_0`), fused as [`Kernels::q8_0`].
    pub fn q4_0(&self, w: &Q4_0Weights<'_>, x: &Q8Rows, y: &mut [f32]) -> Result<(), Error> {
        let kernel = self.table.q4_0_rows;
        self.q8_rows_run(w.bytes, w.shape, 18, x, y, |rows, t, out| {
            let (q, xd) = x.token(t);
            kernel(rows, q, xd, out)
        })
    }

    /// [`Kernels::q4_0`] on the interleaved copy of the same matrix: the same bits, with the
    /// rows 8 at a time in the vector lanes.
    pub fn q4_0x8(&self, w: &Q4_0x8Weights<'_>, x: &Q8Rows, y: &mut [f32]) -> Result<(), Error> {
        let kernel = self.table.q4_0x8_rows;
        // Σq of every activation block: the kernel takes the nibbles' `−8` off per block.
        let sums: Vec<i32> = x
            .values
            .chunks_exact(32)
            .map(|b| b.iter().map(|&v| i32::from(v)).sum())
            .collect();
        let nb = w.shape.cols / 32;
        // Rows go 16 at a time, so every chunk is whole groups of 8 (M is a multiple of 8).
        self.q8_rows_run(w.bytes, w.shape, 18, x, y, |rows, t, out| {
            let (q, xd) = x.token(t);
            kernel(rows, q, xd, &sums[t * nb..(t + 1) * nb], out)
        })
    }

    /// The per-block exact dots of the Q8_0-activation formats (Q8_0, Q4_0): 32-value blocks of
    /// `block_bytes`. (Their matmuls skip these integers: [`Kernels::q8_0`].)
    fn q8_blocks_run(
        &self,
        bytes: &[u8],
        shape: Shape,
        block_bytes: usize,
        kernel: Q8RowFn,
        x: &Q8Rows,
        dot: &mut [i32],
    ) -> Result<(), Error> {
        let (m, nb) = (shape.rows, shape.cols / 32);
        let out = BlockOut::Dots(dot);
        out.check(shape, nb, x.k(), x.rows())?;
        let row_bytes = nb * block_bytes;
        self.block_run(
            m,
            nb,
            x.rows(),
            out,
            |r, t, raw, dw| {
                let row = &bytes[r * row_bytes..(r + 1) * row_bytes];
                kernel(row, x.token(t).0, raw, dw);
            },
            // Only dots are asked for here (the matmuls are fused: `q8_rows_run`), but the
            // epilogue is the one those kernels follow, not a panic path.
            |_, t, raw, dw| scalar::block_epilogue(raw, dw, x.token(t).1),
        );
        Ok(())
    }

    /// The fused Q8_0/Q4_0 matmuls: each task takes its rows 16 at a time and runs every token
    /// over them, so a prompt reads the weights once. `kernel(rows, t, out)` computes token t
    /// against the bytes of `out.len()` rows.
    fn q8_rows_run(
        &self,
        bytes: &[u8],
        shape: Shape,
        block_bytes: usize,
        x: &Q8Rows,
        y: &mut [f32],
        kernel: impl Fn(&[u8], usize, &mut [f32]) + Sync,
    ) -> Result<(), Error> {
        const ROWS: usize = 16;
        let (m, k) = (shape.rows, shape.cols);
        check_sizes(k, x.k(), x.rows(), m, y.len())?;
        let row_bytes = k / 32 * block_bytes;
        let y = SharedOut::new(y);
        self.split(m, ROWS, |r0, r1| {
            for s0 in (r0..r1).step_by(ROWS) {
                let s1 = (s0 + ROWS).min(r1);
                for t in 0..x.rows() {
                    // SAFETY: rows s0..s1 belong to this task.
                    let out = unsafe { y.slice(t * m + s0, s1 - s0) };
                    kernel(&bytes[s0 * row_bytes..s1 * row_bytes], t, out);
                }
            }
        });
        Ok(())
    }

    /// Q6_K per-block exact sums `Σ_j scale_j · Σ (code − 32)·q` over each 256-value block,
    /// `dot[(t*M + r) * (K/256) + b]` (the integers the float epilogue multiplies).
    pub fn q6_k_dot(&self, w: &Q6_KWeights<'_>, x: &Q8KRows, dot: &mut [i32]) -> Result<(), Error> {
        self.q6_k_run(w, x, BlockOut::Dots(dot))
    }

    /// Q6_K × Q8_K matmul (ggml's `vec_dot_q6_K_q8_K`): `y = Σ_b (d_w · d_x) · sum_b` in f32,
    /// combined in `scalar::block_epilogue`'s order like [`Kernels::q8_0`].
    pub fn q6_k(&self, w: &Q6_KWeights<'_>, x: &Q8KRows, y: &mut [f32]) -> Result<(), Error> {
        self.q6_k_run(w, x, BlockOut::Values(y))
    }

    fn q6_k_run(&self, w: &Q6_KWeights<'_>, x: &Q8KRows, out: BlockOut<'_>) -> Result<(), Error> {
        let (m, k, nb) = (w.shape.rows, w.shape.cols, w.shape.cols / 256);
        out.check(w.shape, nb, x.k(), x.rows())?;
        let kernel = self.table.q6_k_row;
        self.block_run(
            m,
            nb,
            x.rows(),
            out,
            |r, t, raw, dw| {
                let row = &w.bytes[r * nb * 210..(r + 1) * nb * 210];
                let bsums = &x.bsums[t * nb * 16..(t + 1) * nb * 16];
                kernel(row, &x.values[t * k..(t + 1) * k], bsums, raw, dw);
            },
            |_, t, raw, dw| scalar::block_epilogue(raw, dw, &x.scales[t * nb..(t + 1) * nb]),
        );
        Ok(())
    }

    /// The one driver of the ggml block formats (TQ2_0, TQ1_0, Q8_0, Q6_K), whose kernels read
    /// one weight row against one token. For every row r and token t, `row_dots(r, t, raw, dw)`
    /// fills the `nb` exact per-block integers (and, for Q8_0/Q6_K, the blocks' weight scales;
    /// TQ leaves `dw` alone). A `*_dot` call writes those integers; a matmul writes
    /// `epilogue(r, t, raw, dw)`. Sizes must have been checked ([`BlockOut::check`]).
    fn block_run(
        &self,
        m: usize,
        nb: usize,
        tokens: usize,
        out: BlockOut<'_>,
        row_dots: impl Fn(usize, usize, &mut [i32], &mut [f32]) + Sync,
        epilogue: impl Fn(usize, usize, &[i32], &[f32]) -> f32 + Sync,
    ) {
        // Exactly one of the two is set; the tasks share it and write disjoint rows.
        let (dots, values) = match out {
            BlockOut::Dots(dot) => (Some(SharedOut::new(dot)), None),
            BlockOut::Values(y) => (None, Some(SharedOut::new(y))),
        };
        // Units of 16 rows: the lm_head has 128256 rows, plenty to balance.
        self.split(m, 16, |r0, r1| {
            let (mut raw, mut dw) = (vec![0i32; nb], vec![0f32; nb]);
            for r in r0..r1 {
                for t in 0..tokens {
                    row_dots(r, t, &mut raw, &mut dw);
                    if let Some(y) = values {
                        // SAFETY: row r belongs to this task.
                        unsafe { y.write(t * m + r, epilogue(r, t, &raw, &dw)) };
                    } else if let Some(dot) = dots {
                        for (i, &v) in raw.iter().enumerate() {
                            // SAFETY: row r, and with it these blocks, belong to this task.
                            unsafe { dot.write((t * m + r) * nb + i, v) };
                        }
                    }
                }
            }
        });
    }

    /// F16 matmul with f32 activations: `y[t*M + r] = Σ_k f16(w[r][k]) · x[t*K + k]`, f32
    /// accumulation in 16 lanes, the same bits on every ISA (`scalar::lane_dot`).
    pub fn f16(&self, w: &F16Weights<'_>, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        self.dense(w.bytes, w.shape, 2, self.table.f16_rows, x, y)
    }

    /// F32 matmul, as [`Kernels::f16`].
    pub fn f32(&self, w: &F32Weights<'_>, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        self.dense(w.bytes, w.shape, 4, self.table.f32_rows, x, y)
    }

    /// Dot products of `x` with `out.len()` F16 or F32 rows that start `row_stride` bytes
    /// apart (`out[r] = Σ_k w_r[k]·x[k]`), on the calling thread: for callers that are already
    /// spread over the pool, such as attention over a KV cache.
    pub fn dense_dots(
        &self,
        format: DenseFormat,
        w: &[u8],
        row_stride: usize,
        x: &[f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_strided(w.len(), row_stride, out.len(), x.len() * format.bytes())?;
        let kernel = match format {
            DenseFormat::F16 => self.table.f16_rows,
            DenseFormat::F32 => self.table.f32_rows,
        };
        kernel(w, row_stride, x, out);
        Ok(())
    }

    /// Integer dot products of `x` with `out.len()` rows of i8 codes that start `row_stride`
    /// codes apart (`out[r] = Σ_k w_r[k]·x[k]` in i32), on the calling thread. The caller keeps
    /// `127 · max|x| · x.len()` below 2³¹ (no sum can overflow then); the lm_head's screening
    /// copy (`runtime::head_screen`) is what this is for.
    pub fn i8_dots(
        &self,
        w: &[i8],
        row_stride: usize,
        x: &[i16],
        out: &mut [i32],
    ) -> Result<(), Error> {
        check_strided(w.len(), row_stride, out.len(), x.len())?;
        (self.table.i8_rows)(w, row_stride, x, out);
        Ok(())
    }

    /// Weighted sum of `weights.len()` F16 or F32 rows that start `row_stride` bytes apart,
    /// added to `out` (`out[j] += Σ_p weights[p]·v_p[j]`, in order of p, the same bits on every
    /// ISA), on the calling thread as [`Kernels::dense_dots`].
    pub fn dense_weighted_sum(
        &self,
        format: DenseFormat,
        v: &[u8],
        row_stride: usize,
        weights: &[f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_strided(
            v.len(),
            row_stride,
            weights.len(),
            out.len() * format.bytes(),
        )?;
        let kernel = match format {
            DenseFormat::F16 => self.table.f16_weighted_rows,
            DenseFormat::F32 => self.table.f32_weighted_rows,
        };
        kernel(v, row_stride, weights, out);
        Ok(())
    }

    fn dense(
        &self,
        bytes: &[u8],
        shape: Shape,
        elem: usize,
        kernel: DenseRowsFn,
        x: &[f32],
        y: &mut [f32],
    ) -> Result<(), Error> {
        let (m, k) = (shape.rows, shape.cols);
        if x.len() % k != 0 {
            return Err(Error::ActivationLength { len: x.len(), k });
        }
        check_out_len(x.len() / k, m, y.len())?;
        let out = SharedOut::new(y);
        let tokens = x.len() / k;
        // Units of 16 rows: the lm_head has 128256 rows, plenty to balance. Rows are
        // independent, so results do not depend on the split. One token takes a task's whole
        // range at once (over 64 rows the AVX2 kernel then streams it one row at a time);
        // several tokens go over 16 rows at a time, so a prompt's tokens share each row's trip
        // from memory.
        const ROWS: usize = 16;
        self.split(m, ROWS, |r0, r1| {
            let step = if tokens == 1 { r1 - r0 } else { ROWS };
            for s0 in (r0..r1).step_by(step.max(1)) {
                let s1 = (s0 + step).min(r1);
                let w = &bytes[s0 * k * elem..s1 * k * elem];
                for (t, xt) in x.chunks_exact(k).enumerate() {
                    // SAFETY: rows s0..s1 belong to this task.
                    kernel(w, k * elem, xt, unsafe { out.slice(t * m + s0, s1 - s0) });
                }
            }
        });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of the drivers.

/// The size rules every matmul shares, in one place: activation rows of length K, and an
/// output of `tokens × per_token` values (`per_token` is M, or M × blocks per row for the
/// per-block `*_dot` calls).
fn check_sizes(
    k: usize,
    x_k: usize,
    tokens: usize,
    per_token: usize,
    out_len: usize,
) -> Result<(), Error> {
    if x_k != k {
        return Err(Error::SizeMismatch {
            what: "activation row length (K)",
            expected: k,
            found: x_k,
        });
    }
    check_out_len(tokens, per_token, out_len)
}

/// `rows` rows of `row_bytes` bytes, `stride` bytes apart, must lie inside `len` bytes.
fn check_strided(len: usize, stride: usize, rows: usize, row_bytes: usize) -> Result<(), Error> {
    if rows == 0 {
        return Ok(());
    }
    if stride < row_bytes {
        return Err(Error::SizeMismatch {
            what: "row stride in bytes (at least one row)",
            expected: row_bytes,
            found: stride,
        });
    }
    let needed = (rows - 1) * stride + row_bytes;
    if len < needed {
        return Err(Error::SizeMismatch {
            what: "strided rows in bytes",
            expected: needed,
            found: len,
        });
    }
    Ok(())
}

/// Element type of dense rows: little-endian F16 or F32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseFormat {
    /// IEEE half precision, 2 bytes.
    F16,
    /// IEEE single precision, 4 bytes.
    F32,
}

impl DenseFormat {
    /// Bytes per element.
    pub fn bytes(self) -> usize {
        match self {
            DenseFormat::F16 => 2,
            DenseFormat::F32 => 4,
        }
    }
}

/// The output-length half of [`check_sizes`] (F16/F32 derive the token count from `x`).
fn check_out_len(tokens: usize, per_token: usize, out_len: usize) -> Result<(), Error> {
    let expected = tokens * per_token;
    if out_len != expected {
        return Err(Error::SizeMismatch {
            what: "output length (tokens × M)",
            expected,
            found: out_len,
        });
    }
    Ok(())
}

/// Where a call on a ggml block format writes: the exact per-block integers (the `*_dot`
/// entry points, `[(t*M + r) * nb + b]`) or the f32 matmul outputs (`[t*M + r]`).
enum BlockOut<'o> {
    Dots(&'o mut [i32]),
    Values(&'o mut [f32]),
}

impl BlockOut<'_> {
    /// [`check_sizes`] for an `M × K` matrix of `nb` blocks per row.
    fn check(&self, shape: Shape, nb: usize, x_k: usize, tokens: usize) -> Result<(), Error> {
        let (per_token, len) = match self {
            BlockOut::Dots(dot) => (shape.rows * nb, dot.len()),
            BlockOut::Values(y) => (shape.rows, y.len()),
        };
        check_sizes(shape.cols, x_k, tokens, per_token, len)
    }
}

/// What [`Kernels::tl_run`] needs of a TL1 or TL2 matrix: both are read tile by tile against
/// per-token lookup tables and differ only in the LUT and the tile kernel.
trait TlMatrix: Sync {
    /// Logical shape and rows per tile (BM).
    fn shape_and_tile_rows(&self) -> (Shape, usize);
    /// Bytes of one token's LUT(s).
    fn lut_len(&self) -> usize;
    /// Builds the LUT(s) of activation row `q` into `lut`.
    fn build_lut(&self, q: &[i8], lut: &mut [u8]);
    /// The exact dots of the `tile_rows` rows of tile `tile` against one token's `lut`.
    fn tile_dots(&self, table: &KernelTable, tile: usize, lut: &[u8], dots: &mut [i32]);
}

impl TlMatrix for Tl1Weights<'_> {
    fn shape_and_tile_rows(&self) -> (Shape, usize) {
        (self.shape, self.tiling.tile_rows)
    }

    fn lut_len(&self) -> usize {
        tl1_lut_len(self.shape.cols)
    }

    fn build_lut(&self, q: &[i8], lut: &mut [u8]) {
        tl1_build_lut(q, lut);
    }

    fn tile_dots(&self, table: &KernelTable, tile: usize, lut: &[u8], dots: &mut [i32]) {
        let k = self.shape.cols;
        let tile_bytes = self.tiling.tile_rows * k / 4;
        let view = Tl1Tile {
            bytes: &self.bytes[tile * tile_bytes..(tile + 1) * tile_bytes],
            k,
            tile_rows: self.tiling.tile_rows,
            block_k: self.tiling.block_k,
            simd_rows: self.tiling.simd_rows,
        };
        (table.tl1_tile)(view, lut, dots);
    }
}

impl Tl2Weights<'_> {
    /// LUT lengths of the three-weight and two-weight parts.
    fn lut_lens(&self) -> (usize, usize) {
        tl2_lut_lens(self.three_k, self.shape.cols - self.three_k)
    }
}

impl<'a> TlMatrix for Tl2Weights<'a> {
    fn shape_and_tile_rows(&self) -> (Shape, usize) {
        (self.shape, self.tiling.tile_rows)
    }

    fn lut_len(&self) -> usize {
        let (len3, len2) = self.lut_lens();
        len3 + len2
    }

    fn build_lut(&self, q: &[i8], lut: &mut [u8]) {
        let (lut3, lut2) = lut.split_at_mut(self.lut_lens().0);
        tl2_build_luts(q, self.three_k, lut3, lut2);
    }

    fn tile_dots(&self, table: &KernelTable, tile: usize, lut: &[u8], dots: &mut [i32]) {
        let tiles = self.shape.rows / self.tiling.tile_rows;
        // Each section holds the tiles one after the other, in equal parts.
        let part = |section: &'a [u8]| {
            let len = section.len() / tiles;
            &section[tile * len..(tile + 1) * len]
        };
        let view = Tl2Tile {
            three: part(self.three),
            signs: part(self.signs),
            two: part(self.two),
            tile_rows: self.tiling.tile_rows,
            block_k: self.tiling.block_k,
            three_k: self.three_k,
            two_k: self.shape.cols - self.three_k,
        };
        let (lut3, lut2) = lut.split_at(self.lut_lens().0);
        (table.tl2_tile)(view, lut3, lut2, dots);
    }
}

/// The TL1/TL2 epilogue (`tl1.md` §6, `tl2.md` §6.4):
/// `float32(float32(dot) / scale_t) * weight_scale`.
fn tl_epilogue(weight_scale: f32, x: &QuantizedRows) -> impl Fn(i32, usize) -> f32 + Sync + '_ {
    let scales = x.scales();
    move |d, t| (d as f32 / scales[t]) * weight_scale
}

/// The TQ epilogue of one row (`dots` already `Σ t·q` per block): consecutive blocks with the
/// same f16 `d` form a run, `y = Σ_runs float32(float32(Σ_run dots) / sa) * d`.
fn tq_epilogue(block: &TqBlock, row: &[u8], dots: &[i32], sa: f32) -> f32 {
    let mut acc = 0.0f32;
    let mut run_sum = 0i32;
    let mut run_d: Option<u16> = None;
    for (i, &v) in dots.iter().enumerate() {
        let o = i * block.bytes + block.d_offset;
        let d = u16::from_le_bytes([row[o], row[o + 1]]);
        if run_d.is_some_and(|rd| rd != d) {
            acc += tq_run(run_sum, sa, run_d);
            run_sum = 0;
        }
        run_d = Some(d);
        run_sum += v;
    }
    acc + tq_run(run_sum, sa, run_d)
}

/// One run of the TQ epilogue: `float32(float32(sum) / sa) * d`.
fn tq_run(sum: i32, sa: f32, d: Option<u16>) -> f32 {
    match d {
        Some(bits) => (sum as f32 / sa) * half::f16::from_bits(bits).to_f32(),
        None => 0.0,
    }
}

/// Σq per 256-value block of every activation row: `[t * K/256 + b]`.
fn block_sums(x: &QuantizedRows) -> Vec<i32> {
    x.values()
        .chunks_exact(256)
        .map(|b| b.iter().map(|&v| i32::from(v)).sum())
        .collect()
}
