//! I2_S: bitnet.cpp's 2-bit layout (`spec/i2s.md`).
//!
//! `M*K/4` bytes of 2-bit codes (code = t + 1) in blocks of 128 values along each row, value `j`
//! of a block in byte `j % 32` at bit shift `6 - 2*(j / 32)`; then a 32-byte tail whose first
//! four bytes are the f32 scale (little-endian). The ARM build of bitnet.cpp uses 64-value
//! blocks (16 bytes); that variant is only decoded when asked for explicitly.

use super::{check_len, check_nonempty, read_f32_le, Error, Shape, TernaryCodec, TernaryTensor};
use rayon::prelude::*;

/// Bytes of the tail that follows the codes.
pub const TAIL_BYTES: usize = 32;

/// Work units handed to rayon: blocks per chunk. 2048 x86 blocks = 256 Ki codes = 64 KiB of
/// packed bytes, large enough to amortise scheduling, small enough to spread over cores.
const BLOCKS_PER_CHUNK: usize = 2048;

/// Block geometry of an I2_S payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum I2sVariant {
    /// x86 / official file / Python converter: 128-value blocks of 32 bytes.
    #[default]
    X86,
    /// bitnet.cpp HEAD ARM build: 64-value blocks of 16 bytes. Decode only on request; no
    /// upstream writer of files produces it.
    Arm64,
}

impl I2sVariant {
    /// Values per block (128 or 64).
    pub fn block_values(self) -> usize {
        match self {
            I2sVariant::X86 => 128,
            I2sVariant::Arm64 => 64,
        }
    }
}

/// The 28 tail bytes after the scale (tail bytes 4..31).
///
/// No reader looks at them and our writer emits zeros, but `llama-quantize` leaves stale bytes
/// there; [`I2s::decode_keeping_tail`] and [`I2s::encode_with_tail`] carry them through so a
/// re-encode reproduces such a file byte for byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct I2sTail(pub [u8; TAIL_BYTES - 4]);

impl I2sTail {
    /// The tail our writer emits (all zero).
    pub const ZERO: I2sTail = I2sTail([0; TAIL_BYTES - 4]);

    /// True when every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.0.iter().all(|&b| b == 0)
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

/// The ARM (64-value block) variant of bitnet.cpp HEAD; use only when a file is known to come
/// from such a build.
pub const I2S_ARM64: I2s = I2s {
    variant: I2sVariant::Arm64,
};

impl I2s {
    /// Offset of the f32 scale inside an I2_S tensor of `shape`.
    pub fn scale_offset(shape: Shape) -> Option<usize> {
        shape.numel().map(|n| n / 4)
    }

    /// Reads the scale stored in the tail without decoding codes.
    pub fn read_scale(&self, bytes: &[u8], shape: Shape) -> Result<f32, Error> {
        let expected = self.byte_len(shape)?;
        check_len(self.name(), shape, bytes, expected)?;
        Ok(read_f32_le(bytes, expected - TAIL_BYTES))
    }

    /// Reads tail bytes 4..31 without decoding codes.
    pub fn read_tail(&self, bytes: &[u8], shape: Shape) -> Result<I2sTail, Error> {
        let expected = self.byte_len(shape)?;
        check_len(self.name(), shape, bytes, expected)?;
        let mut tail = I2sTail::ZERO;
        tail.0
            .copy_from_slice(&bytes[expected - TAIL_BYTES + 4..expected]);
        Ok(tail)
    }

    /// Decodes and also returns tail bytes 4..31, so that [`I2s::encode_with_tail`] can
    /// reproduce the input exactly even when those bytes are not zero.
    pub fn decode_keeping_tail(
        &self,
        bytes: &[u8],
        shape: Shape,
    ) -> Result<(TernaryTensor, I2sTail), Error> {
        let tail = self.read_tail(bytes, shape)?;
        Ok((self.decode(bytes, shape)?, tail))
    }

    /// Encodes like [`TernaryCodec::encode`] but writes `tail` into tail bytes 4..31.
    pub fn encode_with_tail(
        &self,
        tensor: &TernaryTensor,
        tail: &I2sTail,
    ) -> Result<Vec<u8>, Error> {
        let len = self.byte_len(tensor.shape())?;
        let mut out = vec![0u8; len];
        self.encode_into(tensor, &mut out)?;
        out[len - TAIL_BYTES + 4..].copy_from_slice(&tail.0);
        Ok(out)
    }

    /// Encodes into a caller-provided buffer of exactly `byte_len(shape)` bytes (e.g. a
    /// memory-mapped output file). Tail bytes 4..31 are set to zero.
    pub fn encode_into(&self, tensor: &TernaryTensor, out: &mut [u8]) -> Result<(), Error> {
        let shape = tensor.shape();
        let len = self.byte_len(shape)?;
        check_len(self.name(), shape, out, len)?;
        let (payload, tail) = out.split_at_mut(len - TAIL_BYTES);
        match self.variant {
            I2sVariant::X86 => pack_parallel::<32>(tensor.codes(), payload),
            I2sVariant::Arm64 => pack_parallel::<16>(tensor.codes(), payload),
        }
        tail.fill(0);
        tail[..4].copy_from_slice(&tensor.scale().to_le_bytes());
        Ok(())
    }
}

/// Packs whole blocks of `4 * Q` codes into `Q` bytes each, in parallel chunks.
fn pack_parallel<const Q: usize>(codes: &[i8], payload: &mut [u8]) {
    codes
        .par_chunks(4 * Q * BLOCKS_PER_CHUNK)
        .zip(payload.par_chunks_mut(Q * BLOCKS_PER_CHUNK))
        .for_each(|(codes, bytes)| pack_blocks::<Q>(codes, bytes));
}

/// Serial kernel: byte `b` of a block = `c[b] << 6 | c[Q+b] << 4 | c[2Q+b] << 2 | c[3Q+b]`
/// with `c = code + 1`. Written over fixed-size arrays so the compiler vectorises it.
fn pack_blocks<const Q: usize>(codes: &[i8], bytes: &mut [u8]) {
    for (block, out) in codes.chunks_exact(4 * Q).zip(bytes.chunks_exact_mut(Q)) {
        let (q0, rest) = block.split_at(Q);
        let (q1, rest) = rest.split_at(Q);
        let (q2, q3) = rest.split_at(Q);
        let field = |c: i8| c.wrapping_add(1) as u8;
        for b in 0..Q {
            out[b] = field(q0[b]) << 6 | field(q1[b]) << 4 | field(q2[b]) << 2 | field(q3[b]);
        }
    }
}

/// Serial kernel, inverse of [`pack_blocks`]. Returns a non-zero value iff some 2-bit field
/// is 3 (bit pattern `11`), which no writer produces.
fn unpack_blocks<const Q: usize>(bytes: &[u8], codes: &mut [i8]) -> u8 {
    let mut invalid = 0u8;
    for (inp, block) in bytes.chunks_exact(Q).zip(codes.chunks_exact_mut(4 * Q)) {
        let (q0, rest) = block.split_at_mut(Q);
        let (q1, rest) = rest.split_at_mut(Q);
        let (q2, q3) = rest.split_at_mut(Q);
        for b in 0..Q {
            let x = inp[b];
            invalid |= x & (x >> 1) & 0x55;
            q0[b] = (x >> 6) as i8 - 1;
            q1[b] = ((x >> 4) & 3) as i8 - 1;
            q2[b] = ((x >> 2) & 3) as i8 - 1;
            q3[b] = (x & 3) as i8 - 1;
        }
    }
    invalid
}

/// Offset and value of the first 2-bit field equal to 3 in `payload`, if any (also TQ2_0's,
/// whose fields are the same `code + 1`).
pub(crate) fn first_code_three(payload: &[u8]) -> Option<(usize, u8)> {
    payload
        .iter()
        .position(|&x| x & (x >> 1) & 0x55 != 0)
        .map(|offset| (offset, 3))
}

impl TernaryCodec for I2s {
    fn name(&self) -> &'static str {
        "I2_S"
    }

    fn check_shape(&self, shape: Shape) -> Result<(), Error> {
        let block = self.variant.block_values();
        check_nonempty(self.name(), shape)?;
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
        self.encode_with_tail(tensor, &I2sTail::ZERO)
    }

    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        let scale = self.read_scale(bytes, shape)?;
        let payload = &bytes[..bytes.len() - TAIL_BYTES];
        let mut codes = vec![0i8; shape.rows * shape.cols];
        let chunk = self.variant.block_values() * BLOCKS_PER_CHUNK;
        let invalid = match self.variant {
            I2sVariant::X86 => payload
                .par_chunks(chunk / 4)
                .zip(codes.par_chunks_mut(chunk))
                .map(|(bytes, codes)| unpack_blocks::<32>(bytes, codes))
                .reduce(|| 0, |a, b| a | b),
            I2sVariant::Arm64 => payload
                .par_chunks(chunk / 4)
                .zip(codes.par_chunks_mut(chunk))
                .map(|(bytes, codes)| unpack_blocks::<16>(bytes, codes))
                .reduce(|| 0, |a, b| a | b),
        };
        if invalid != 0 {
            if let Some((offset, code)) = first_code_three(payload) {
                return Err(Error::InvalidCode {
                    layout: self.name(),
                    offset,
                    code,
                });
            }
        }
        Ok(TernaryTensor::from_decoded(shape, codes, scale))
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
    fn tail_bytes_survive_a_round_trip() {
        let shape = Shape::new(2, 128);
        let t = TernaryTensor::new(shape, vec![1; 256], 1.5).unwrap();
        let mut tail = I2sTail::ZERO;
        tail.0[0] = 0xde;
        tail.0[27] = 0xad;
        let bytes = I2S.encode_with_tail(&t, &tail).unwrap();
        assert_eq!(bytes[64 + 4], 0xde);
        let (back, back_tail) = I2S.decode_keeping_tail(&bytes, shape).unwrap();
        assert_eq!((back, back_tail), (t.clone(), tail));
        assert!(I2S.encode(&t).unwrap()[68..].iter().all(|&b| b == 0));
    }

    #[test]
    fn first_invalid_field_is_reported_across_chunks() {
        // Large enough to span several parallel chunks; corrupt a late and an early byte.
        let shape = Shape::new(64, 128 * 64);
        let t = TernaryTensor::new(shape, vec![0; 64 * 128 * 64], 1.0).unwrap();
        let mut bytes = I2S.encode(&t).unwrap();
        bytes[120_000] = 0x7f;
        bytes[70_000] = 0x5d;
        let err = I2S.decode(&bytes, shape).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidCode {
                layout: "I2_S",
                offset: 70_000,
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
