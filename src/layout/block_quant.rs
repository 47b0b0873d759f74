//! ggml's block-quantized dense types for the token embedding / lm_head: [`Q8_0`], [`Q6_K`] and
//! [`Q4_0`].
//!
//! These are lossy and never hold ternary projections; they sit here beside the ternary codecs
//! because they are byte layouts like them. Each type quantizes and dequantizes whole blocks of
//! a row (ggml requires `K % block == 0`); [`BlockQuant`] carries the geometry, checks every
//! length, and is the one place the converter, the model loader and the tests go through.

use super::{q4_0, q6_k, q8_0, Error, Shape};
use crate::gguf::GgmlType;

/// A ggml block-quantized type: `block_values` numbers stored in `block_bytes` bytes.
#[derive(Debug)]
pub struct BlockQuant {
    ggml_type: GgmlType,
    block_values: usize,
    block_bytes: usize,
    quantize: fn(&[f32], &mut [u8]),
    dequantize: fn(&[u8], &mut [f32]),
}

/// ggml Q8_0: 32 values in 34 bytes (8.5 bits per value).
pub const Q8_0: BlockQuant = BlockQuant {
    ggml_type: GgmlType::Q8_0,
    block_values: q8_0::BLOCK_VALUES,
    block_bytes: q8_0::BLOCK_BYTES,
    quantize: q8_0::quantize_blocks,
    dequantize: q8_0::dequantize_blocks,
};

/// ggml Q6_K: 256 values in 210 bytes (6.5625 bits per value).
pub const Q6_K: BlockQuant = BlockQuant {
    ggml_type: GgmlType::Q6_K,
    block_values: q6_k::BLOCK_VALUES,
    block_bytes: q6_k::BLOCK_BYTES,
    quantize: q6_k::quantize_blocks,
    dequantize: q6_k::dequantize_blocks,
};

/// ggml Q4_0: 32 values in 18 bytes (4.5 bits per value).
pub const Q4_0: BlockQuant = BlockQuant {
    ggml_type: GgmlType::Q4_0,
    block_values: q4_0::BLOCK_VALUES,
    block_bytes: q4_0::BLOCK_BYTES,
    quantize: q4_0::quantize_blocks,
    dequantize: q4_0::dequantize_blocks,
};

/// Two descriptors are equal when they describe the same GGUF type.
impl PartialEq for BlockQuant {
    fn eq(&self, other: &Self) -> bool {
        self.ggml_type == other.ggml_type
    }
}

impl Eq for BlockQuant {}

impl BlockQuant {
    /// The block type for `ggml_type`, if it is one this crate quantizes.
    pub fn for_ggml_type(ggml_type: GgmlType) -> Option<&'static BlockQuant> {
        match ggml_type {
            GgmlType::Q8_0 => Some(&Q8_0),
            GgmlType::Q6_K => Some(&Q6_K),
            GgmlType::Q4_0 => Some(&Q4_0),
            _ => None,
        }
    }

    /// The GGUF type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// Name as in GGUF (`"Q8_0"`, `"Q6_K"`, `"Q4_0"`).
    pub fn name(&self) -> &'static str {
        self.ggml_type.name()
    }

    /// Values per block.
    pub fn block_values(&self) -> usize {
        self.block_values
    }

    /// Bytes per block.
    pub fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Checks that rows of `shape` are whole blocks.
    pub fn check_shape(&self, shape: Shape) -> Result<(), Error> {
        if shape.cols == 0 || shape.rows == 0 || shape.cols % self.block_values != 0 {
            return Err(Error::IllegalShape {
                layout: self.name(),
                shape,
                rule: format!(
                    "K must be a positive multiple of {} (one {} block)",
                    self.block_values,
                    self.name()
                ),
            });
        }
        Ok(())
    }

    /// Bytes a `shape` matrix takes.
    pub fn byte_len(&self, shape: Shape) -> Result<usize, Error> {
        self.check_shape(shape)?;
        shape
            .numel()
            .map(|n| n / self.block_values)
            .and_then(|blocks| blocks.checked_mul(self.block_bytes))
            .ok_or(Error::IllegalShape {
                layout: self.name(),
                shape,
                rule: "byte length overflows".into(),
            })
    }

    /// Bytes `values` whole blocks take, or an error naming the partial block.
    fn bytes_for(&self, values: usize) -> Result<usize, Error> {
        self.byte_len(Shape::new(1, values))
    }

    /// Appends `values` (whole blocks) quantized to `out`.
    pub fn quantize_into(&self, values: &[f32], out: &mut Vec<u8>) -> Result<(), Error> {
        let n = self.bytes_for(values.len())?;
        let start = out.len();
        out.resize(start + n, 0);
        (self.quantize)(values, &mut out[start..]);
        Ok(())
    }

    /// Like [`BlockQuant::quantize_into`], spreading the blocks over rayon's threads (Q6_K's
    /// trial scales make it ~100 times slower than a copy).
    pub fn par_quantize_into(&self, values: &[f32], out: &mut Vec<u8>) -> Result<(), Error> {
        use rayon::prelude::*;
        const BLOCKS_PER_TASK: usize = 256;
        let n = self.bytes_for(values.len())?;
        let start = out.len();
        out.resize(start + n, 0);
        values
            .par_chunks(self.block_values * BLOCKS_PER_TASK)
            .zip(out[start..].par_chunks_mut(self.block_bytes * BLOCKS_PER_TASK))
            .for_each(|(x, y)| (self.quantize)(x, y));
        Ok(())
    }

    /// Dequantizes `bytes` into `out`; `out.len()` must be whole blocks and `bytes` exactly
    /// their size.
    pub fn dequantize_into(&self, bytes: &[u8], out: &mut [f32]) -> Result<(), Error> {
        let expected = self.bytes_for(out.len())?;
        if bytes.len() != expected {
            return Err(Error::WrongByteLength {
                layout: self.name(),
                shape: Shape::new(1, out.len()),
                expected,
                found: bytes.len(),
            });
        }
        (self.dequantize)(bytes, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_checked() {
        assert_eq!(Q6_K.byte_len(Shape::new(3, 512)).unwrap(), 3 * 2 * 210);
        assert_eq!(Q8_0.byte_len(Shape::new(3, 64)).unwrap(), 3 * 2 * 34);
        assert!(Q6_K.byte_len(Shape::new(3, 128)).is_err());
        assert!(Q8_0.byte_len(Shape::new(0, 64)).is_err());
        let mut out = Vec::new();
        assert!(Q6_K.quantize_into(&[0.0; 100], &mut out).is_err());
        assert!(out.is_empty());
        assert!(Q6_K.dequantize_into(&[0; 209], &mut [0.0; 256]).is_err());
        assert!(Q8_0.dequantize_into(&[0; 34], &mut [0.0; 32]).is_ok());
    }

    #[test]
    fn parallel_and_serial_quantization_agree() {
        let x: Vec<f32> = (0..256 * 600).map(|i| (i as f32 * 0.013).sin()).collect();
        for q in [&Q8_0, &Q6_K] {
            let (mut a, mut b) = (vec![7u8], vec![7u8]);
            q.quantize_into(&x, &mut a).unwrap();
            q.par_quantize_into(&x, &mut b).unwrap();
            assert_eq!(a, b, "{}", q.name());
            let mut y = vec![0f32; x.len()];
            q.dequantize_into(&a[1..], &mut y).unwrap();
            let err = x
                .iter()
                .zip(&y)
                .map(|(u, v)| (u - v).abs())
                .fold(0f32, f32::max);
            assert!(err < 0.02, "{}: {err}", q.name());
        }
        assert_eq!(
            BlockQuant::for_ggml_type(GgmlType::Q6_K).unwrap().name(),
            "Q6_K"
        );
        assert!(BlockQuant::for_ggml_type(GgmlType::F16).is_none());
    }
}
