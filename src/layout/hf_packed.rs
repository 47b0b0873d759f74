//! HF packed: transformers' BitNet `pack_weights` layout (`spec/hf-formats.md` §1.3).
//!
//! A ternary `[M, K]` matrix is stored as uint8 `[M/4, K]`. With `R = M/4`, byte `[r, j]` holds
//! rows `r`, `R+r`, `2R+r`, `3R+r` of column `j` at bits 0-1, 2-3, 4-5 and 6-7, each as the code
//! `t + 1` (code 3 never occurs and is rejected). The per-tensor `weight_scale` is a separate
//! safetensors tensor, so the codec proper ([`HfPacked`]) handles codes only: `encode` ignores the
//! tensor's scale and `decode` returns scale 1.0. [`HfScale`] reads and writes `weight_scale`,
//! turning the stored value into the canonical multiplier according to the checkpoint's
//! [`ScaleConvention`] (never guessed: it comes from `quantization_config.linear_class`).

use super::{Error, Shape, TernaryCodec, TernaryTensor};

const LAYOUT: &str = "HF packed";

/// The HF packed codec (codes only; see [`HfScale`] for `weight_scale`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HfPacked;

/// The HF packed codec value.
pub const HF_PACKED: HfPacked = HfPacked;

impl HfPacked {
    /// Shape of the packed uint8 tensor (`[M/4, K]`) for a ternary shape.
    pub fn packed_shape(&self, shape: Shape) -> Result<[usize; 2], Error> {
        self.check_shape(shape)?;
        Ok([shape.rows / 4, shape.cols])
    }

    /// The ternary shape (`[4·R, K]`) of a packed uint8 tensor of shape `[R, K]`.
    pub fn unpacked_shape(packed_rows: usize, cols: usize) -> Option<Shape> {
        packed_rows
            .checked_mul(4)
            .map(|rows| Shape::new(rows, cols))
    }

    /// Decodes the codes into `out` (row-major, `rows * cols` values in {-1, 0, +1}).
    ///
    /// Fails with [`Error::InvalidCode`] at the first byte (row-major offset) holding code 3.
    pub fn decode_into(&self, bytes: &[u8], shape: Shape, out: &mut [i8]) -> Result<(), Error> {
        let len = self.byte_len(shape)?;
        if bytes.len() != len {
            return Err(Error::WrongByteLength {
                layout: LAYOUT,
                shape,
                expected: len,
                found: bytes.len(),
            });
        }
        if out.len() != len * 4 {
            return Err(Error::CodeCount {
                shape,
                expected: len * 4,
                found: out.len(),
            });
        }
        check_no_code_three(bytes)?;
        let quarter = len; // R * K elements per quarter of the rows
        for (i, dst) in out.chunks_exact_mut(quarter).enumerate() {
            let shift = 2 * i as u32;
            // Branch-free so the compiler vectorizes it; code 3 was excluded above.
            for (d, &b) in dst.iter_mut().zip(bytes) {
                *d = ((b >> shift) & 3) as i8 - 1;
            }
        }
        Ok(())
    }

    /// Encodes codes (row-major, each in {-1, 0, +1}) into `out` (`rows * cols / 4` bytes).
    pub fn encode_into(&self, codes: &[i8], shape: Shape, out: &mut [u8]) -> Result<(), Error> {
        let len = self.byte_len(shape)?;
        if codes.len() != len * 4 {
            return Err(Error::CodeCount {
                shape,
                expected: len * 4,
                found: codes.len(),
            });
        }
        if out.len() != len {
            return Err(Error::WrongByteLength {
                layout: LAYOUT,
                shape,
                expected: len,
                found: out.len(),
            });
        }
        // OR-reduce first (vectorizes); locate the element only when something is wrong.
        let any_bad = codes
            .iter()
            .fold(false, |acc, &c| acc | ((c as u8).wrapping_add(1) > 2));
        if let Some(index) = any_bad
            .then(|| codes.iter().position(|&c| !(-1..=1).contains(&c)))
            .flatten()
        {
            return Err(Error::NotTernary {
                layout: LAYOUT,
                index,
                row: index / shape.cols,
                col: index % shape.cols,
                value: f64::from(codes[index]),
                scale: 1.0,
            });
        }
        let (q0, rest) = codes.split_at(len);
        let (q1, rest) = rest.split_at(len);
        let (q2, q3) = rest.split_at(len);
        for ((((o, &a), &b), &c), &d) in out.iter_mut().zip(q0).zip(q1).zip(q2).zip(q3) {
            *o = (a + 1) as u8 | ((b + 1) as u8) << 2 | ((c + 1) as u8) << 4 | ((d + 1) as u8) << 6;
        }
        Ok(())
    }
}

/// Finds the first byte with a 2-bit field equal to 3 (both bits set).
fn check_no_code_three(bytes: &[u8]) -> Result<(), Error> {
    const CHUNK: usize = 4096;
    for (c, chunk) in bytes.chunks(CHUNK).enumerate() {
        // OR-reduce first (vectorizes); locate the byte only when something is wrong.
        let any = chunk
            .iter()
            .fold(0u8, |acc, &b| acc | (b & (b >> 1) & 0x55));
        if any != 0 {
            if let Some(pos) = chunk.iter().position(|&b| b & (b >> 1) & 0x55 != 0) {
                return Err(Error::InvalidCode {
                    layout: LAYOUT,
                    offset: c * CHUNK + pos,
                    code: 3,
                });
            }
        }
    }
    Ok(())
}

impl TernaryCodec for HfPacked {
    fn name(&self) -> &'static str {
        LAYOUT
    }

    fn check_shape(&self, shape: Shape) -> Result<(), Error> {
        if shape.rows == 0 || shape.cols == 0 {
            return Err(Error::IllegalShape {
                layout: LAYOUT,
                shape,
                rule: "dimensions must be non-zero".into(),
            });
        }
        if shape.rows % 4 != 0 {
            return Err(Error::IllegalShape {
                layout: LAYOUT,
                shape,
                rule: format!(
                    "M = {} must be a multiple of 4 (four row blocks per byte); nearest legal M \
                     values are {} and {}",
                    shape.rows,
                    shape.rows / 4 * 4,
                    (shape.rows / 4 + 1) * 4
                ),
            });
        }
        if shape.numel().is_none() {
            return Err(Error::IllegalShape {
                layout: LAYOUT,
                shape,
                rule: "element count overflows".into(),
            });
        }
        Ok(())
    }

    fn byte_len(&self, shape: Shape) -> Result<usize, Error> {
        self.check_shape(shape)?;
        Ok(shape.rows / 4 * shape.cols)
    }

    /// Encodes the codes only; the tensor's scale is not part of the packed bytes (write it with
    /// [`HfScale::encode`]).
    fn encode(&self, tensor: &TernaryTensor) -> Result<Vec<u8>, Error> {
        let shape = tensor.shape();
        let mut out = vec![0u8; self.byte_len(shape)?];
        self.encode_into(tensor.codes(), shape, &mut out)?;
        Ok(out)
    }

    /// Decodes the codes; the returned scale is 1.0 (read the real one with [`HfScale::decode`]
    /// and apply it with [`TernaryTensor::with_scale`], or use [`HfPacked::decode_with_scale`]).
    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        let mut codes = vec![0i8; self.byte_len(shape)? * 4];
        self.decode_into(bytes, shape, &mut codes)?;
        TernaryTensor::new(shape, codes, 1.0)
    }
}

impl HfPacked {
    /// Decodes codes and the `weight_scale` bytes into a canonical tensor (scale = multiplier).
    pub fn decode_with_scale(
        &self,
        bytes: &[u8],
        shape: Shape,
        scale_bytes: &[u8],
        scale: HfScale,
        rounding: ScaleRounding,
    ) -> Result<TernaryTensor, Error> {
        let multiplier = scale.decode(scale_bytes, rounding)?;
        Ok(self.decode(bytes, shape)?.with_scale(multiplier))
    }

    /// Encodes a canonical tensor into (packed bytes, `weight_scale` bytes).
    pub fn encode_with_scale(
        &self,
        tensor: &TernaryTensor,
        scale: HfScale,
        rounding: ScaleRounding,
    ) -> Result<(Vec<u8>, Vec<u8>), Error> {
        let scale_bytes = scale.encode(tensor.scale(), rounding)?;
        Ok((self.encode(tensor)?, scale_bytes))
    }
}

/// What the stored `weight_scale` means (`spec/hf-formats.md` §0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleConvention {
    /// `linear_class: "autobitlinear"` (offline): real weight = code × weight_scale.
    Multiply,
    /// `linear_class: "bitlinear"`, also the default when `linear_class` is absent:
    /// real weight = code / weight_scale.
    Divide,
}

impl ScaleConvention {
    /// The convention selected by `quantization_config.linear_class` (`None` = key absent, which
    /// means `bitlinear`). Unknown classes give `None`.
    pub fn from_linear_class(linear_class: Option<&str>) -> Option<Self> {
        match linear_class {
            None | Some("bitlinear") => Some(ScaleConvention::Divide),
            Some("autobitlinear") => Some(ScaleConvention::Multiply),
            Some(_) => None,
        }
    }

    /// The `linear_class` string that selects this convention.
    pub fn linear_class(self) -> &'static str {
        match self {
            ScaleConvention::Multiply => "autobitlinear",
            ScaleConvention::Divide => "bitlinear",
        }
    }
}

/// Storage type of `weight_scale`.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScaleDtype {
    /// bfloat16 (the published checkpoints).
    BF16,
    /// IEEE half.
    F16,
    /// IEEE single.
    F32,
}

impl ScaleDtype {
    /// Bytes of one value.
    pub fn size(self) -> usize {
        match self {
            ScaleDtype::BF16 | ScaleDtype::F16 => 2,
            ScaleDtype::F32 => 4,
        }
    }

    /// Lowercase name (`"bf16"`).
    pub fn name(self) -> &'static str {
        match self {
            ScaleDtype::BF16 => "bf16",
            ScaleDtype::F16 => "f16",
            ScaleDtype::F32 => "f32",
        }
    }

    /// Reads one little-endian value as f32 (exact for all three types).
    fn read(self, bytes: &[u8]) -> Option<f32> {
        match self {
            ScaleDtype::BF16 => Some(half::bf16::from_le_bytes(bytes.try_into().ok()?).to_f32()),
            ScaleDtype::F16 => Some(half::f16::from_le_bytes(bytes.try_into().ok()?).to_f32()),
            ScaleDtype::F32 => Some(f32::from_le_bytes(bytes.try_into().ok()?)),
        }
    }

    /// Rounds an f64 to this type (nearest, ties to even), returning the bytes and the value.
    fn round(self, value: f64) -> (Vec<u8>, f64) {
        match self {
            ScaleDtype::BF16 => {
                // f64 -> f32 -> bf16 can double-round; go through f32 only when exact.
                let v = round_f64_to_bf16(value);
                (v.to_le_bytes().to_vec(), f64::from(v.to_f32()))
            }
            ScaleDtype::F16 => {
                let v = half::f16::from_f64(value);
                (v.to_le_bytes().to_vec(), f64::from(v.to_f32()))
            }
            ScaleDtype::F32 => {
                let v = value as f32;
                (v.to_le_bytes().to_vec(), f64::from(v))
            }
        }
    }
}

/// Rounds an f64 to bf16 with a single rounding (ties to even).
fn round_f64_to_bf16(value: f64) -> half::bf16 {
    let as_f32 = value as f32;
    if f64::from(as_f32) == value {
        return half::bf16::from_f32(as_f32);
    }
    // Not exact in f32: the f32 rounding may have landed on a bf16 tie. Truncate to f32 toward
    // zero and set the sticky bit so the bf16 rounding sees "above the tie".
    let mut bits = as_f32.to_bits();
    if f64::from(as_f32).abs() > value.abs() {
        bits -= 1;
    }
    half::bf16::from_f32(f32::from_bits(bits | 1))
}

/// Whether a scale may be rounded when it does not fit exactly (the layout-wide policy).
pub use super::ScaleRounding;

/// How one checkpoint stores `weight_scale`: its dtype and its convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HfScale {
    /// Storage type.
    pub dtype: ScaleDtype,
    /// Multiply or divide.
    pub convention: ScaleConvention,
}

impl HfScale {
    /// Reads the stored value (no convention applied); `bytes` is the whole `[1]` tensor.
    pub fn read_stored(&self, bytes: &[u8]) -> Result<f32, Error> {
        let value = self.dtype.read(bytes).ok_or(Error::WrongByteLength {
            layout: "HF weight_scale",
            shape: Shape::new(1, 1),
            expected: self.dtype.size(),
            found: bytes.len(),
        })?;
        check_scale(value)?;
        Ok(value)
    }

    /// Reads `weight_scale` and returns the canonical multiplier (real weight = code ×
    /// multiplier). With [`ScaleConvention::Divide`] the multiplier is `1/stored`; when that is
    /// not exact in f32 it is an error unless `rounding` is [`ScaleRounding::Nearest`].
    pub fn decode(&self, bytes: &[u8], rounding: ScaleRounding) -> Result<f32, Error> {
        let stored = self.read_stored(bytes)?;
        match self.convention {
            ScaleConvention::Multiply => Ok(stored),
            ScaleConvention::Divide => {
                let reciprocal = (1.0 / f64::from(stored)) as f32;
                // Two f32 significands multiply exactly in f64.
                let exact = f64::from(reciprocal) * f64::from(stored) == 1.0;
                if !exact && rounding == ScaleRounding::Exact {
                    return Err(Error::InexactScale {
                        layout: "HF weight_scale",
                        scale: stored,
                        bits: stored.to_bits(),
                        target: "f32 reciprocal",
                        hint:
                            " (bitlinear stores 1/scale; allow rounding to accept the nearest f32)",
                    });
                }
                check_scale(reciprocal)?;
                Ok(reciprocal)
            }
        }
    }

    /// Encodes the multiplier as `weight_scale` bytes in this dtype and convention. A value that
    /// does not fit exactly is an error unless `rounding` is [`ScaleRounding::Nearest`].
    pub fn encode(&self, multiplier: f32, rounding: ScaleRounding) -> Result<Vec<u8>, Error> {
        check_scale(multiplier)?;
        let (wanted, target) = match self.convention {
            ScaleConvention::Multiply => (f64::from(multiplier), self.dtype.name()),
            ScaleConvention::Divide => (1.0 / f64::from(multiplier), "reciprocal"),
        };
        let (bytes, stored) = self.dtype.round(wanted);
        let exact = match self.convention {
            ScaleConvention::Multiply => stored == wanted,
            ScaleConvention::Divide => stored * f64::from(multiplier) == 1.0,
        };
        if !exact && rounding == ScaleRounding::Exact {
            return Err(Error::InexactScale {
                layout: "HF weight_scale",
                scale: multiplier,
                bits: multiplier.to_bits(),
                target: match (self.convention, target) {
                    (ScaleConvention::Multiply, t) => t,
                    (ScaleConvention::Divide, _) => match self.dtype {
                        ScaleDtype::BF16 => "bf16 reciprocal",
                        ScaleDtype::F16 => "f16 reciprocal",
                        ScaleDtype::F32 => "f32 reciprocal",
                    },
                },
                hint: " (allow rounding to store the nearest value)",
            });
        }
        if !stored.is_finite() || stored == 0.0 {
            return Err(Error::InvalidScale {
                layout: "HF weight_scale",
                scale: multiplier,
                why: "does not fit the scale dtype (overflow or underflow)",
            });
        }
        Ok(bytes)
    }
}

/// NaN, infinite, zero and negative scales are unusable.
fn check_scale(value: f32) -> Result<(), Error> {
    let why = if value.is_nan() {
        "NaN"
    } else if value.is_infinite() {
        "infinite"
    } else if value == 0.0 {
        "zero"
    } else if value < 0.0 {
        "negative"
    } else {
        return Ok(());
    };
    Err(Error::InvalidScale {
        layout: "HF weight_scale",
        scale: value,
        why,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// hf-formats §1.3 worked example 4×2.
    #[test]
    fn worked_example_4x2() {
        let codes = vec![1, -1, 0, 1, -1, 0, 1, 1];
        let t = TernaryTensor::new(Shape::new(4, 2), codes, 1.0).unwrap();
        let bytes = HF_PACKED.encode(&t).unwrap();
        assert_eq!(bytes, vec![134, 152]);
        assert_eq!(HF_PACKED.decode(&bytes, t.shape()).unwrap(), t);
    }

    /// hf-formats §1.3 worked example 8×1 (the interleave).
    #[test]
    fn worked_example_8x1() {
        let codes = vec![1, 0, -1, 1, -1, -1, 0, 1];
        let t = TernaryTensor::new(Shape::new(8, 1), codes, 1.0).unwrap();
        let bytes = HF_PACKED.encode(&t).unwrap();
        assert_eq!(bytes, vec![66, 137]);
        assert_eq!(HF_PACKED.decode(&bytes, t.shape()).unwrap(), t);
    }

    #[test]
    fn code_three_is_rejected_with_offset() {
        let mut bytes = vec![0x55u8; 3 * 7];
        bytes[9] = 0b0111_0101;
        let err = HF_PACKED.decode(&bytes, Shape::new(12, 7)).unwrap_err();
        assert_eq!(
            err,
            Error::InvalidCode {
                layout: LAYOUT,
                offset: 9,
                code: 3
            }
        );
    }

    #[test]
    fn rows_not_multiple_of_four_are_illegal() {
        assert!(matches!(
            HF_PACKED.byte_len(Shape::new(6, 8)),
            Err(Error::IllegalShape { .. })
        ));
    }

    #[test]
    fn convention_defaults_to_divide() {
        assert_eq!(
            ScaleConvention::from_linear_class(None),
            Some(ScaleConvention::Divide)
        );
        assert_eq!(
            ScaleConvention::from_linear_class(Some("autobitlinear")),
            Some(ScaleConvention::Multiply)
        );
        assert_eq!(ScaleConvention::from_linear_class(Some("linear")), None);
    }

    #[test]
    fn bf16_multiply_scale_roundtrip_and_inexact() {
        let s = HfScale {
            dtype: ScaleDtype::BF16,
            convention: ScaleConvention::Multiply,
        };
        let bytes = s.encode(1.5, ScaleRounding::Exact).unwrap();
        assert_eq!(bytes, half::bf16::from_f32(1.5).to_le_bytes().to_vec());
        assert_eq!(s.decode(&bytes, ScaleRounding::Exact).unwrap(), 1.5);
        let odd = 0.086_510_18_f32;
        assert!(matches!(
            s.encode(odd, ScaleRounding::Exact),
            Err(Error::InexactScale { target: "bf16", .. })
        ));
        let rounded = s.encode(odd, ScaleRounding::Nearest).unwrap();
        assert_eq!(rounded, half::bf16::from_f32(odd).to_le_bytes().to_vec());
    }

    #[test]
    fn divide_convention_reciprocals() {
        let s = HfScale {
            dtype: ScaleDtype::F32,
            convention: ScaleConvention::Divide,
        };
        // 1/0.25 = 4 exactly.
        let bytes = s.encode(0.25, ScaleRounding::Exact).unwrap();
        assert_eq!(f32::from_le_bytes(bytes.clone().try_into().unwrap()), 4.0);
        assert_eq!(s.decode(&bytes, ScaleRounding::Exact).unwrap(), 0.25);
        // 1/3 is not exact.
        let three = 3.0f32.to_le_bytes();
        assert!(matches!(
            s.decode(&three, ScaleRounding::Exact),
            Err(Error::InexactScale { .. })
        ));
        assert_eq!(
            s.decode(&three, ScaleRounding::Nearest).unwrap(),
            1.0f32 / 3.0
        );
    }

    #[test]
    fn bad_scales_are_rejected() {
        let s = HfScale {
            dtype: ScaleDtype::F16,
            convention: ScaleConvention::Multiply,
        };
        for bad in [0.0f32, -1.0, f32::NAN, f32::INFINITY] {
            let bytes = half::f16::from_f32(bad).to_le_bytes();
            assert!(matches!(
                s.decode(&bytes, ScaleRounding::Exact),
                Err(Error::InvalidScale { .. })
            ));
        }
        assert!(matches!(
            s.decode(&[0u8; 3], ScaleRounding::Exact),
            Err(Error::WrongByteLength { .. })
        ));
        // 1e6 overflows f16.
        assert!(s.encode(1e6, ScaleRounding::Nearest).is_err());
    }

    #[test]
    fn bf16_single_rounding_from_f64() {
        // Just above a bf16 tie that f32 rounding would move onto the tie.
        let tie = f64::from(f32::from_bits(0x3f80_8000)); // 1 + 2^-8, tie between bf16 1.0 and next
        let above = tie + 2f64.powi(-40);
        assert_eq!(round_f64_to_bf16(above).to_bits(), 0x3f81);
        assert_eq!(round_f64_to_bf16(tie).to_bits(), 0x3f80);
    }

    fn tensor_strategy() -> impl Strategy<Value = TernaryTensor> {
        (1usize..6, 1usize..40).prop_flat_map(|(r4, k)| {
            proptest::collection::vec(-1i8..=1, r4 * 4 * k).prop_map(move |codes| {
                TernaryTensor::new(Shape::new(r4 * 4, k), codes, 1.0).unwrap()
            })
        })
    }

    proptest! {
        #[test]
        fn roundtrip(t in tensor_strategy()) {
            let bytes = HF_PACKED.encode(&t).unwrap();
            prop_assert_eq!(HF_PACKED.decode(&bytes, t.shape()).unwrap(), t);
        }

        #[test]
        fn canonical_bytes_roundtrip(r4 in 1usize..5, k in 1usize..30, seed in any::<u64>()) {
            // Bytes whose four fields are all codes 0..=2.
            let mut x = seed;
            let bytes: Vec<u8> = (0..r4 * k).map(|_| {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                let mut b = 0u8;
                for i in 0..4 { b |= (((x >> (33 + 2 * i)) % 3) as u8) << (2 * i); }
                b
            }).collect();
            let shape = Shape::new(r4 * 4, k);
            let t = HF_PACKED.decode(&bytes, shape).unwrap();
            prop_assert_eq!(HF_PACKED.encode(&t).unwrap(), bytes);
        }
    }
}
