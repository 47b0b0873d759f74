//! I2_S: bitnet.cpp's 2-bit layout (`spec/i2s.md`).
//!
//! `M*K/4` bytes of 2-bit codes (code = t + 1) in blocks of 128 values along each row, value `j`
//! of a block in byte `j % 32` at bit shift `6 - 2*(j / 32)`; then a 32-byte tail whose first
//! four bytes are the f32 scale (little-endian). The ARM build of bitnet.cpp uses 64-value
//! blocks (16 bytes); that variant is only decoded when asked for explicitly.

use super::{Error, Shape, TernaryCodec, TernaryTensor};

/// Bytes of the tail that follows the codes.
pub const TAIL_BYTES: usize = 32;

/// Block geometry of an I2_S payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum I2sVariant {
    /// x86 / official file / Python converter: 128-value blocks of 32 bytes.
    #[default]
    X86,
    /// bitnet.cpp HEAD ARM build: 64-value blocks of 16 bytes. Decode only on request.
    Arm64,
}

impl I2sVariant {
    fn block_values(self) -> usize {
        match self {
            I2sVariant::X86 => 128,
            I2sVariant::Arm64 => 64,
        }
    }
}

/// The I2_S codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct I2s {
    /// Block geometry.
    pub variant: I2sVariant,
}

/// The standard (x86, official) I2_S codec.
pub const I2S: I2s = I2s {
    variant: I2sVariant::X86,
};

impl I2s {
    /// Offset of the f32 scale inside an I2_S tensor of `shape`.
    pub fn scale_offset(shape: Shape) -> Option<usize> {
        shape.numel().map(|n| n / 4)
    }

    /// Reads the scale stored in the tail without decoding codes.
    pub fn read_scale(&self, bytes: &[u8], shape: Shape) -> Result<f32, Error> {
        let expected = self.byte_len(shape)?;
        if bytes.len() != expected {
            return Err(Error::WrongByteLength {
                layout: self.name(),
                shape,
                expected,
                found: bytes.len(),
            });
        }
        let at = expected - TAIL_BYTES;
        Ok(f32::from_le_bytes([
            bytes[at],
            bytes[at + 1],
            bytes[at + 2],
            bytes[at + 3],
        ]))
    }
}

impl TernaryCodec for I2s {
    fn name(&self) -> &'static str {
        "I2_S"
    }

    fn check_shape(&self, shape: Shape) -> Result<(), Error> {
        let block = self.variant.block_values();
        if shape.rows == 0 || shape.cols == 0 {
            return Err(Error::IllegalShape {
                layout: self.name(),
                shape,
                rule: "dimensions must be non-zero".into(),
            });
        }
        if shape.cols % block != 0 {
            return Err(Error::IllegalShape {
                layout: self.name(),
                shape,
                rule: format!(
                    "K = {} must be a multiple of {block} (rows are whole {block}-value blocks); \
                     nearest legal K values are {} and {}",
                    shape.cols,
                    shape.cols / block * block,
                    (shape.cols / block + 1) * block
                ),
            });
        }
        if shape
            .numel()
            .and_then(|n| n.checked_add(4 * TAIL_BYTES))
            .is_none()
        {
            return Err(Error::IllegalShape {
                layout: self.name(),
                shape,
                rule: "element count overflows".into(),
            });
        }
        Ok(())
    }

    fn byte_len(&self, shape: Shape) -> Result<usize, Error> {
        self.check_shape(shape)?;
        Ok(shape.rows * shape.cols / 4 + TAIL_BYTES)
    }

    fn encode(&self, tensor: &TernaryTensor) -> Result<Vec<u8>, Error> {
        let shape = tensor.shape();
        let len = self.byte_len(shape)?;
        let block = self.variant.block_values();
        let quarter = block / 4;
        let mut out = vec![0u8; len];
        let payload = &mut out[..len - TAIL_BYTES];
        for (codes, bytes) in tensor
            .codes()
            .chunks_exact(block)
            .zip(payload.chunks_exact_mut(quarter))
        {
            for (b, byte) in bytes.iter_mut().enumerate() {
                let c = |q: usize| (codes[q * quarter + b] + 1) as u8;
                *byte = c(0) << 6 | c(1) << 4 | c(2) << 2 | c(3);
            }
        }
        out[len - TAIL_BYTES..len - TAIL_BYTES + 4].copy_from_slice(&tensor.scale().to_le_bytes());
        Ok(out)
    }

    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        let scale = self.read_scale(bytes, shape)?;
        let block = self.variant.block_values();
        let quarter = block / 4;
        let payload = &bytes[..bytes.len() - TAIL_BYTES];
        let mut codes = vec![0i8; shape.rows * shape.cols];
        for (blk, (out, bytes)) in codes
            .chunks_exact_mut(block)
            .zip(payload.chunks_exact(quarter))
            .enumerate()
        {
            for (b, &byte) in bytes.iter().enumerate() {
                for q in 0..4 {
                    let code = (byte >> (6 - 2 * q)) & 3;
                    if code == 3 {
                        return Err(Error::InvalidCode {
                            layout: self.name(),
                            offset: blk * quarter + b,
                            code,
                        });
                    }
                    out[q * quarter + b] = code as i8 - 1;
                }
            }
        }
        TernaryTensor::new(shape, codes, scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec/i2s.md §9.1: one row, three non-zeros, scale 0.75.
    #[test]
    fn worked_example_9_1() {
        let mut codes = vec![0i8; 128];
        codes[5] = 1;
        codes[40] = -1;
        codes[127] = 1;
        let t = TernaryTensor::new(Shape::new(1, 128), codes, 0.75).unwrap();
        let bytes = I2S.encode(&t).unwrap();
        let mut expected = vec![0x55u8; 32];
        expected[5] = 0x95;
        expected[8] = 0x45;
        expected[31] = 0x56;
        expected.extend_from_slice(&[0x00, 0x00, 0x40, 0x3f]);
        expected.extend_from_slice(&[0u8; 28]);
        assert_eq!(bytes, expected);
        assert_eq!(I2S.decode(&bytes, t.shape()).unwrap(), t);
    }

    #[test]
    fn code_three_is_rejected_with_offset() {
        let mut bytes = vec![0x55u8; 32 + 32];
        bytes[7] = 0x57;
        let err = I2S.decode(&bytes, Shape::new(1, 128)).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidCode {
                layout: "I2_S",
                offset: 7,
                code: 3
            }
        );
    }

    #[test]
    fn k_not_multiple_of_128_is_illegal() {
        assert!(matches!(
            I2S.byte_len(Shape::new(4, 100)),
            Err(Error::IllegalShape { .. })
        ));
    }
}
