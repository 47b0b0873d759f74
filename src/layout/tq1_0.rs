//! TQ1_0: llama.cpp mainline's 1.6875-bit ternary type (ggml type 34), as `gguf.quants`
//! writes it.
//!
//! Blocks of 256 values along a row, 54 bytes each: `qs[48]` (values 0..239 as base-3 digits,
//! five per byte), `qh[4]` (values 240..255, four per byte), then `d` (f16, little-endian).
//! A byte holding trits `t0..t4` (most significant first) stores
//! `ceil(x * 256 / 243)` with `x = Σ t_n * 3^(4-n)`; trit `n` is read back as
//! `((byte * 3^n) mod 256) * 3 >> 8`. Value `n*32 + j` (n < 5) is trit n of `qs[j]`,
//! `160 + n*16 + j` is trit n of `qs[32 + j]`, `240 + n*4 + j` is trit n of `qh[j]`.
//!
//! Scale: upstream stores `d = f16(max|x|)` per block, so a per-tensor scale `s` becomes
//! `d = f16(s)` in every block with a non-zero code and `d = 0` in all-zero blocks. Decoding
//! returns `f32(d)` of the blocks with non-zero codes (they must all agree, else
//! [`Error::InconsistentScales`]); all-zero blocks carry no scale information and their `d`
//! is ignored; a tensor with no non-zero code decodes with scale 0.0. So the scale survives
//! exactly iff it is representable in f16 ([`ScaleRounding::Exact`] enforces that).

use super::{check_len, Error, ScaleRounding, Shape, TernaryCodec, TernaryTensor};
use half::f16;

/// Values per block (QK_K).
pub const BLOCK_VALUES: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 54;

/// The TQ1_0 codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tq1_0 {
    /// What to do with a scale f16 cannot hold exactly.
    pub rounding: ScaleRounding,
}

/// TQ1_0 rounding the scale to f16 as llama.cpp and `gguf.quants` do.
pub const TQ1_0: Tq1_0 = Tq1_0 {
    rounding: ScaleRounding::Nearest,
};

/// Shape rule shared by TQ1_0 and TQ2_0: rows are whole 256-value blocks.
pub(crate) fn check_tq_shape(layout: &'static str, shape: Shape) -> Result<(), Error> {
    super::check_nonempty(layout, shape)?;
    if shape.cols % BLOCK_VALUES != 0 {
        return Err(Error::IllegalShape {
            layout,
            shape,
            rule: format!(
                "K = {} must be a multiple of 256 (rows are whole 256-value blocks); nearest \
                 legal K values are {} and {}",
                shape.cols,
                shape.cols / BLOCK_VALUES * BLOCK_VALUES,
                (shape.cols / BLOCK_VALUES + 1) * BLOCK_VALUES
            ),
        });
    }
    if shape.numel().and_then(|n| n.checked_mul(2)).is_none() {
        return Err(Error::IllegalShape {
            layout,
            shape,
            rule: "element count overflows".into(),
        });
    }
    Ok(())
}

/// The f16 bits written as `d` for a tensor scale (shared with TQ2_0).
pub(crate) fn tq_scale_bits(
    layout: &'static str,
    scale: f32,
    rounding: ScaleRounding,
) -> Result<u16, Error> {
    if !scale.is_finite() || scale < 0.0 {
        return Err(Error::InvalidScale {
            layout,
            scale,
            why: "TQ stores d = max|x| per block, so the scale must be finite and >= 0",
        });
    }
    let d = f16::from_f32(scale);
    let inexact = f32::from(d) != scale;
    if d.is_infinite()
        || (d.to_f32() == 0.0 && scale != 0.0)
        || (inexact && rounding == ScaleRounding::Exact)
    {
        return Err(Error::InexactScale {
            layout,
            scale,
            bits: scale.to_bits(),
            target: "f16",
            hint: if d.is_infinite() || d.to_f32() == 0.0 {
                " (out of f16 range)"
            } else {
                " (use ScaleRounding::Nearest to round it as llama.cpp does)"
            },
        });
    }
    Ok(d.to_bits())
}

/// Collects the per-tensor scale while decoding: the `d` of every block with a non-zero code
/// must have the same bits (shared with TQ2_0).
pub(crate) struct ScaleAgreement {
    layout: &'static str,
    first: Option<u16>,
}

impl ScaleAgreement {
    pub(crate) fn new(layout: &'static str) -> Self {
        Self {
            layout,
            first: None,
        }
    }

    /// Records block `block` with `d` bits; `has_nonzero` says whether it has a non-zero code.
    pub(crate) fn record(&mut self, block: usize, d: u16, has_nonzero: bool) -> Result<(), Error> {
        if !has_nonzero {
            return Ok(());
        }
        match self.first {
            None => {
                let value = f16::from_bits(d).to_f32();
                if !value.is_finite() || value.is_sign_negative() {
                    return Err(Error::InvalidScale {
                        layout: self.layout,
                        scale: value,
                        why: "block scale d must be finite and >= 0",
                    });
                }
                self.first = Some(d);
                Ok(())
            }
            Some(first) if first == d => Ok(()),
            Some(first) => Err(Error::InconsistentScales {
                layout: self.layout,
                block,
                first: f16::from_bits(first).to_f32(),
                found: f16::from_bits(d).to_f32(),
            }),
        }
    }

    /// The tensor scale: the agreed `d`, or 0.0 if no block had a non-zero code.
    pub(crate) fn scale(&self) -> f32 {
        self.first.map_or(0.0, |d| f16::from_bits(d).to_f32())
    }
}

const POW3: [u8; 5] = [1, 3, 9, 27, 81];

/// Packs up to five trits (most significant first) into one byte.
#[inline]
fn pack_trits(trits: impl Iterator<Item = u8>) -> u8 {
    let mut x: u16 = 0;
    let mut n = 0;
    for t in trits {
        x = x * 3 + u16::from(t);
        n += 1;
    }
    // qh bytes hold four trits; the missing fifth is a 0 in the least significant place.
    for _ in n..5 {
        x *= 3;
    }
    (x * 256).div_ceil(243) as u8
}

/// Trit `n` (0 = most significant) of a packed byte.
#[inline]
fn trit(byte: u8, n: usize) -> i8 {
    ((u16::from(byte.wrapping_mul(POW3[n])) * 3) >> 8) as i8
}

impl TernaryCodec for Tq1_0 {
    fn name(&self) -> &'static str {
        "TQ1_0"
    }

    fn check_shape(&self, shape: Shape) -> Result<(), Error> {
        check_tq_shape(self.name(), shape)
    }

    fn byte_len(&self, shape: Shape) -> Result<usize, Error> {
        self.check_shape(shape)?;
        Ok(shape.rows * shape.cols / BLOCK_VALUES * BLOCK_BYTES)
    }

    fn encode(&self, tensor: &TernaryTensor) -> Result<Vec<u8>, Error> {
        let len = self.byte_len(tensor.shape())?;
        let d = tq_scale_bits(self.name(), tensor.scale(), self.rounding)?;
        let mut out = vec![0u8; len];
        for (values, block) in tensor
            .codes()
            .chunks_exact(BLOCK_VALUES)
            .zip(out.chunks_exact_mut(BLOCK_BYTES))
        {
            let q = |i: usize| (values[i] + 1) as u8;
            for (j, byte) in block[..32].iter_mut().enumerate() {
                *byte = pack_trits((0..5).map(|n| q(n * 32 + j)));
            }
            for j in 0..16 {
                block[32 + j] = pack_trits((0..5).map(|n| q(160 + n * 16 + j)));
            }
            for j in 0..4 {
                block[48 + j] = pack_trits((0..4).map(|n| q(240 + n * 4 + j)));
            }
            let has_nonzero = values.iter().any(|&c| c != 0);
            let bits = if has_nonzero { d } else { 0 };
            block[52..54].copy_from_slice(&bits.to_le_bytes());
        }
        Ok(out)
    }

    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        let len = self.byte_len(shape)?;
        check_len(self.name(), shape, bytes, len)?;
        let mut codes = vec![0i8; shape.rows * shape.cols];
        let mut scales = ScaleAgreement::new(self.name());
        for (index, (block, values)) in bytes
            .chunks_exact(BLOCK_BYTES)
            .zip(codes.chunks_exact_mut(BLOCK_VALUES))
            .enumerate()
        {
            // Trit n of byte j lands at n·width + j of its group: contiguous in j, so each
            // inner loop vectorizes.
            let groups = [(0, 32, 0, 5), (32, 16, 160, 5), (48, 4, 240, 4)];
            for (src, width, dst, trits) in groups {
                let bytes = &block[src..src + width];
                for n in 0..trits {
                    let out = &mut values[dst + n * width..dst + (n + 1) * width];
                    for (v, &byte) in out.iter_mut().zip(bytes) {
                        *v = trit(byte, n) - 1;
                    }
                }
            }
            let d = u16::from_le_bytes([block[52], block[53]]);
            scales.record(index, d, values.iter().any(|&c| c != 0))?;
        }
        Ok(TernaryTensor::from_decoded(shape, codes, scales.scale()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trit_combination_round_trips() {
        for x in 0u16..243 {
            let trits: Vec<u8> = (0..5).map(|n| ((x / 3u16.pow(4 - n)) % 3) as u8).collect();
            let byte = pack_trits(trits.iter().copied());
            for (n, &t) in trits.iter().enumerate() {
                assert_eq!(trit(byte, n), t as i8, "x = {x}, trit {n}");
            }
        }
    }

    #[test]
    fn scales_must_agree_and_zero_blocks_are_free() {
        let shape = Shape::new(2, 256);
        let mut codes = vec![0i8; 512];
        codes[300] = 1;
        let t = TernaryTensor::new(shape, codes, 0.25).unwrap();
        let mut bytes = TQ1_0.encode(&t).unwrap();
        assert_eq!(&bytes[52..54], &[0, 0], "all-zero block writes d = 0");
        assert_eq!(TQ1_0.decode(&bytes, shape).unwrap(), t);
        bytes[52] = 0x11; // d of the all-zero block is ignored
        assert_eq!(TQ1_0.decode(&bytes, shape).unwrap(), t);
        let mut codes = vec![1i8; 512];
        codes[0] = -1;
        let t = TernaryTensor::new(shape, codes, 0.25).unwrap();
        let mut bytes = TQ1_0.encode(&t).unwrap();
        bytes[54 + 52] ^= 1;
        assert!(matches!(
            TQ1_0.decode(&bytes, shape),
            Err(Error::InconsistentScales { block: 1, .. })
        ));
    }

    #[test]
    fn inexact_scale_is_rounded_or_refused() {
        let shape = Shape::new(1, 256);
        let t = TernaryTensor::new(shape, vec![1; 256], 0.1).unwrap();
        let back = TQ1_0.decode(&TQ1_0.encode(&t).unwrap(), shape).unwrap();
        assert_eq!(back.scale(), f16::from_f32(0.1).to_f32());
        let strict = Tq1_0 {
            rounding: ScaleRounding::Exact,
        };
        assert!(matches!(
            strict.encode(&t),
            Err(Error::InexactScale { target: "f16", .. })
        ));
    }
}
