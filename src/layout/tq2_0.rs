//! TQ2_0: llama.cpp mainline's 2-bit ternary type (ggml type 35), as `gguf.quants` writes it.
//!
//! Blocks of 256 values along a row, 66 bytes each: `qs[64]` then `d` (f16, little-endian).
//! 2-bit code = t + 1; value `c*128 + n*32 + j` (c < 2, n < 4, j < 32) sits in byte `c*32 + j`
//! at bit shift `2n` (note: the reverse of I2_S's shift order). The scale is handled exactly as
//! in [`super::tq1_0`]: `d = f16(scale)` in blocks with a non-zero code, 0 in all-zero blocks;
//! decoding requires the non-zero blocks to agree and returns 0.0 for an all-zero tensor.

use super::i2s::first_code_three;
use super::tq1_0::{check_tq_shape, tq_scale_bits, ScaleAgreement, BLOCK_VALUES};
use super::{check_len, Error, ScaleRounding, Shape, TernaryCodec, TernaryTensor};

/// Bytes per block.
pub const BLOCK_BYTES: usize = 66;

/// The TQ2_0 codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tq2_0 {
    /// What to do with a scale f16 cannot hold exactly.
    pub rounding: ScaleRounding,
}

/// TQ2_0 rounding the scale to f16 as llama.cpp and `gguf.quants` do.
pub const TQ2_0: Tq2_0 = Tq2_0 {
    rounding: ScaleRounding::Nearest,
};

/// One block's 64 code bytes into its 256 values: byte j of half c holds values
/// `128c + 32n + j` in bits `2n..2n+2` (stored `code + 1`). Branch-free, so the compiler
/// vectorizes it; returns a non-zero value iff some field is 3, which no writer produces.
fn unpack_block(qs: &[u8], values: &mut [i8]) -> u8 {
    let mut invalid = 0u8;
    for (bytes, half) in qs.chunks_exact(32).zip(values.chunks_exact_mut(128)) {
        let (v0, rest) = half.split_at_mut(32);
        let (v1, rest) = rest.split_at_mut(32);
        let (v2, v3) = rest.split_at_mut(32);
        for j in 0..32 {
            let x = bytes[j];
            invalid |= x & (x >> 1) & 0x55;
            v0[j] = (x & 3) as i8 - 1;
            v1[j] = ((x >> 2) & 3) as i8 - 1;
            v2[j] = ((x >> 4) & 3) as i8 - 1;
            v3[j] = (x >> 6) as i8 - 1;
        }
    }
    invalid
}

impl TernaryCodec for Tq2_0 {
    fn name(&self) -> &'static str {
        "TQ2_0"
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
            for (half, qs) in values.chunks_exact(128).zip(block.chunks_exact_mut(32)) {
                let q = |i: usize| half[i].wrapping_add(1) as u8;
                for (j, byte) in qs.iter_mut().enumerate() {
                    *byte = q(j) | q(32 + j) << 2 | q(64 + j) << 4 | q(96 + j) << 6;
                }
            }
            let bits = if values.iter().any(|&c| c != 0) { d } else { 0 };
            block[64..66].copy_from_slice(&bits.to_le_bytes());
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
            if unpack_block(&block[..64], values) != 0 {
                if let Some((at, code)) = first_code_three(&block[..64]) {
                    return Err(Error::InvalidCode {
                        layout: self.name(),
                        offset: index * BLOCK_BYTES + at,
                        code,
                    });
                }
            }
            let d = u16::from_le_bytes([block[64], block[65]]);
            scales.record(index, d, values.iter().any(|&c| c != 0))?;
        }
        Ok(TernaryTensor::from_decoded(shape, codes, scales.scale()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_positions() {
        let shape = Shape::new(1, 256);
        let mut codes = vec![0i8; 256];
        codes[33] = 1; // c 0, n 1, j 1 -> byte 1, shift 2
        codes[128 + 96] = -1; // c 1, n 3, j 0 -> byte 32, shift 6
        let t = TernaryTensor::new(shape, codes, 1.0).unwrap();
        let bytes = TQ2_0.encode(&t).unwrap();
        assert_eq!(bytes[1], 0x55 & !0x0c | 0x08);
        assert_eq!(bytes[32], 0x15);
        assert_eq!(&bytes[64..66], &[0x00, 0x3c]);
        assert_eq!(TQ2_0.decode(&bytes, shape).unwrap(), t);
    }

    #[test]
    fn a_field_of_three_is_named_by_its_byte() {
        let shape = Shape::new(2, 256);
        let t = TernaryTensor::new(shape, vec![1; 512], 1.0).unwrap();
        let clean = TQ2_0.encode(&t).unwrap();
        for (at, byte) in [
            (0, 0xab),
            (BLOCK_BYTES + 40, 0x3a),
            (BLOCK_BYTES + 63, 0xc0),
        ] {
            let mut bytes = clean.clone();
            bytes[at] = byte;
            match TQ2_0.decode(&bytes, shape) {
                Err(Error::InvalidCode {
                    offset, code: 3, ..
                }) => assert_eq!(offset, at),
                other => panic!("byte {at}: {other:?}"),
            }
        }
    }
}
