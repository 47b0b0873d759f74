//! Dequantized dense weights (F32, F16, BF16; little-endian, row-major): `code × scale`, and
//! back to ternary.
//!
//! Invariant: decoding with a scale `s` accepts only elements equal to 0 (either sign) or
//! ±`dtype(s)`; anything else is an error naming the first offending element. Without a scale,
//! [`infer_scale`] takes `max|x|` (0.0 for an all-zero tensor).

use super::{check_len, Error, ScaleRounding, Shape, TernaryCodec, TernaryTensor};
use half::{bf16, f16};

/// Element type of a dense tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenseDtype {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// bfloat16.
    BF16,
}

impl DenseDtype {
    /// Name as in GGUF / safetensors.
    pub fn name(self) -> &'static str {
        match self {
            DenseDtype::F32 => "F32",
            DenseDtype::F16 => "F16",
            DenseDtype::BF16 => "BF16",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DenseDtype::F32 => 4,
            DenseDtype::F16 | DenseDtype::BF16 => 2,
        }
    }

    /// `value` rounded to this dtype (nearest, ties to even), as f32.
    pub fn round(self, value: f32) -> f32 {
        match self {
            DenseDtype::F32 => value,
            DenseDtype::F16 => f16::from_f32(value).to_f32(),
            DenseDtype::BF16 => bf16::from_f32(value).to_f32(),
        }
    }

    fn write(self, value: f32, out: &mut [u8]) {
        match self {
            DenseDtype::F32 => out.copy_from_slice(&value.to_le_bytes()),
            DenseDtype::F16 => out.copy_from_slice(&f16::from_f32(value).to_le_bytes()),
            DenseDtype::BF16 => out.copy_from_slice(&bf16::from_f32(value).to_le_bytes()),
        }
    }

    /// The little-endian bits of `value` in this dtype, widened to u32.
    fn bits_of(self, value: f32) -> u32 {
        let mut b = [0u8; 4];
        self.write(value, &mut b[..self.size()]);
        u32::from_le_bytes(b)
    }

    /// The sign bit of this dtype's bit pattern (as read by [`element_bits`]).
    fn sign_bit(self) -> u32 {
        match self {
            DenseDtype::F32 => 0x8000_0000,
            DenseDtype::F16 | DenseDtype::BF16 => 0x8000,
        }
    }

    fn read(self, bytes: &[u8]) -> f32 {
        match self {
            DenseDtype::F32 => f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            DenseDtype::F16 => f16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
            DenseDtype::BF16 => bf16::from_le_bytes([bytes[0], bytes[1]]).to_f32(),
        }
    }
}

/// Every element's little-endian bits, widened to u32, passed to `f` with its index: one
/// monomorphic loop per element size, so the callers' loops can vectorize.
fn element_bits(bytes: &[u8], dtype: DenseDtype, mut f: impl FnMut(usize, u32)) {
    match dtype.size() {
        2 => bytes
            .chunks_exact(2)
            .enumerate()
            .for_each(|(i, c)| f(i, u32::from(u16::from_le_bytes([c[0], c[1]])))),
        _ => bytes
            .chunks_exact(4)
            .enumerate()
            .for_each(|(i, c)| f(i, u32::from_le_bytes([c[0], c[1], c[2], c[3]]))),
    }
}

fn checked_len(dtype: DenseDtype, shape: Shape) -> Result<usize, Error> {
    super::check_nonempty(dtype.name(), shape)?;
    shape
        .numel()
        .and_then(|n| n.checked_mul(dtype.size()))
        .ok_or(Error::IllegalShape {
            layout: dtype.name(),
            shape,
            rule: "element count overflows".into(),
        })
}

/// Writes `code × scale` in `dtype`. With [`ScaleRounding::Exact`] a scale the dtype cannot
/// hold exactly is an error; with `Nearest` it is rounded (ties to even).
pub fn encode_dense(
    tensor: &TernaryTensor,
    dtype: DenseDtype,
    rounding: ScaleRounding,
) -> Result<Vec<u8>, Error> {
    let len = checked_len(dtype, tensor.shape())?;
    let scale = tensor.scale();
    if !scale.is_finite() {
        return Err(Error::InvalidScale {
            layout: dtype.name(),
            scale,
            why: "scale must be finite",
        });
    }
    let stored = dtype.round(scale);
    if (rounding == ScaleRounding::Exact && stored != scale) || !stored.is_finite() {
        return Err(Error::InexactScale {
            layout: dtype.name(),
            scale,
            bits: scale.to_bits(),
            target: dtype.name(),
            hint: " (use ScaleRounding::Nearest to round it)",
        });
    }
    let mut values = [[0u8; 4]; 3];
    for (code, slot) in [-1i8, 0, 1].into_iter().zip(values.iter_mut()) {
        dtype.write(f32::from(code) * stored, &mut slot[..dtype.size()]);
    }
    let mut out = vec![0u8; len];
    // One loop per element size: a copy of a run-time length would be a `memcpy` call each.
    match dtype.size() {
        2 => write_elements::<2>(tensor.codes(), &values, &mut out),
        _ => write_elements::<4>(tensor.codes(), &values, &mut out),
    }
    Ok(out)
}

/// Element `i` of `out` (`N` bytes each) becomes the first `N` bytes of `values[codes[i] + 1]`.
fn write_elements<const N: usize>(codes: &[i8], values: &[[u8; 4]; 3], out: &mut [u8]) {
    let values = values.map(|v| {
        let mut e = [0u8; N];
        e.copy_from_slice(&v[..N]);
        e
    });
    for (&code, element) in codes.iter().zip(out.chunks_exact_mut(N)) {
        element.copy_from_slice(&values[(code + 1) as usize]);
    }
}

/// `max|x|` over the tensor as f32 (0.0 if all elements are zero). NaN is an error naming
/// the element.
pub fn infer_scale(bytes: &[u8], shape: Shape, dtype: DenseDtype) -> Result<f32, Error> {
    check_len(dtype.name(), shape, bytes, checked_len(dtype, shape)?)?;
    // Without the sign bit, the bits of non-NaN floats order like their magnitudes, and every
    // NaN is above infinity.
    let (sign, infinity) = (dtype.sign_bit(), dtype.bits_of(f32::INFINITY));
    let mut max_bits = 0u32;
    element_bits(bytes, dtype, |_, bits| {
        max_bits = max_bits.max(bits & !sign)
    });
    if max_bits > infinity {
        let (index, value) = bytes
            .chunks_exact(dtype.size())
            .map(|e| dtype.read(e))
            .enumerate()
            .find(|(_, v)| v.is_nan())
            .expect("some element is NaN");
        return Err(not_ternary(dtype, shape, index, value, f32::NAN));
    }
    let mut widest = [0u8; 4];
    widest[..dtype.size()].copy_from_slice(&max_bits.to_le_bytes()[..dtype.size()]);
    Ok(dtype.read(&widest))
}

fn not_ternary(dtype: DenseDtype, shape: Shape, index: usize, value: f32, scale: f32) -> Error {
    Error::NotTernary {
        layout: dtype.name(),
        index,
        row: index / shape.cols,
        col: index % shape.cols,
        value: f64::from(value),
        scale,
    }
}

/// Reads dense weights back as ternary codes with `scale` (or [`infer_scale`]'s when `None`).
/// Every element must be 0 or ±`dtype(scale)`; the returned tensor carries `scale` itself.
pub fn decode_dense(
    bytes: &[u8],
    shape: Shape,
    dtype: DenseDtype,
    scale: Option<f32>,
) -> Result<TernaryTensor, Error> {
    check_len(dtype.name(), shape, bytes, checked_len(dtype, shape)?)?;
    let scale = match scale {
        Some(s) => s,
        None => infer_scale(bytes, shape, dtype)?,
    };
    if !scale.is_finite() {
        return Err(Error::InvalidScale {
            layout: dtype.name(),
            scale,
            why: "scale must be finite",
        });
    }
    let target = dtype.round(scale);
    // Compared as bits, which for a non-zero value is the same as comparing floats (no NaN
    // equals anything), without branches: random codes defeat the branch predictor.
    let (pos, neg, sign) = (
        dtype.bits_of(target),
        dtype.bits_of(-target),
        dtype.sign_bit(),
    );
    let mut codes = vec![0i8; bytes.len() / dtype.size()];
    let mut all_ternary = true;
    element_bits(bytes, dtype, |i, bits| {
        let nonzero = bits & !sign != 0;
        let (up, down) = (bits == pos, bits == neg);
        codes[i] = i8::from(nonzero) * (i8::from(up) - i8::from(down));
        all_ternary &= !nonzero | up | down;
    });
    if !all_ternary {
        let (index, value) = bytes
            .chunks_exact(dtype.size())
            .map(|e| dtype.read(e))
            .enumerate()
            .find(|&(_, v)| v != 0.0 && v != target && v != -target)
            .expect("some element is not ternary");
        return Err(not_ternary(dtype, shape, index, value, scale));
    }
    Ok(TernaryTensor::from_decoded(shape, codes, scale))
}

/// Dense weights as a [`TernaryCodec`]: encode writes `code × scale`, decode uses `scale` (or
/// infers `max|x|` when `None`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dense {
    /// Element type.
    pub dtype: DenseDtype,
    /// Scale used to decode; `None` infers it.
    pub scale: Option<f32>,
    /// What encode does with a scale the dtype cannot hold.
    pub rounding: ScaleRounding,
}

impl TernaryCodec for Dense {
    fn name(&self) -> &'static str {
        self.dtype.name()
    }

    fn check_shape(&self, shape: Shape) -> Result<(), Error> {
        checked_len(self.dtype, shape).map(|_| ())
    }

    fn byte_len(&self, shape: Shape) -> Result<usize, Error> {
        checked_len(self.dtype, shape)
    }

    fn encode(&self, tensor: &TernaryTensor) -> Result<Vec<u8>, Error> {
        encode_dense(tensor, self.dtype, self.rounding)
    }

    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        decode_dense(bytes, shape, self.dtype, self.scale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_first_offender() {
        let shape = Shape::new(2, 3);
        let t = TernaryTensor::new(shape, vec![1, 0, -1, -1, 1, 0], 0.5).unwrap();
        for dtype in [DenseDtype::F32, DenseDtype::F16, DenseDtype::BF16] {
            let bytes = encode_dense(&t, dtype, ScaleRounding::Exact).unwrap();
            assert_eq!(decode_dense(&bytes, shape, dtype, None).unwrap(), t);
            assert_eq!(decode_dense(&bytes, shape, dtype, Some(0.5)).unwrap(), t);
            let err = decode_dense(&bytes, shape, dtype, Some(0.25)).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::NotTernary {
                        index: 0,
                        row: 0,
                        col: 0,
                        ..
                    }
                ),
                "{err}"
            );
        }
        let mut bytes = encode_dense(&t, DenseDtype::F32, ScaleRounding::Exact).unwrap();
        bytes[4 * 4..4 * 5].copy_from_slice(&0.49f32.to_le_bytes());
        let err = decode_dense(&bytes, shape, DenseDtype::F32, None).unwrap_err();
        assert!(matches!(
            err,
            Error::NotTernary {
                index: 4,
                row: 1,
                col: 1,
                ..
            }
        ));
    }

    #[test]
    fn inexact_scale() {
        let t = TernaryTensor::new(Shape::new(1, 1), vec![1], 0.1).unwrap();
        assert!(encode_dense(&t, DenseDtype::BF16, ScaleRounding::Exact).is_err());
        let bytes = encode_dense(&t, DenseDtype::BF16, ScaleRounding::Nearest).unwrap();
        // The given f32 scale still decodes: comparison happens in the dtype.
        let back = decode_dense(&bytes, t.shape(), DenseDtype::BF16, Some(0.1)).unwrap();
        assert_eq!(back, t);
    }

    /// The bit comparisons give what comparing floats gives: codes, the first offender, the
    /// inferred scale and the first NaN, over elements drawn from ±0, ±scale, NaN, ±inf,
    /// subnormals and random bits.
    #[test]
    fn bit_comparisons_agree_with_float_comparisons() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for dtype in [DenseDtype::F32, DenseDtype::F16, DenseDtype::BF16] {
            for round in 0..300 {
                let scale = [0.5f32, 0.0, 1e-30, 3.0e5, -0.25][round % 5];
                let target = dtype.round(scale);
                let palette = [
                    0.0,
                    -0.0,
                    target,
                    -target,
                    f32::NAN,
                    f32::INFINITY,
                    f32::NEG_INFINITY,
                    1e-40,
                ];
                let shape = Shape::new(3, 5);
                let mut bytes = vec![0u8; 15 * dtype.size()];
                for e in bytes.chunks_exact_mut(dtype.size()) {
                    let r = next();
                    // Mostly ternary, so some tensors pass.
                    if r % 16 < 15 && round % 3 != 0 {
                        dtype.write(palette[(r >> 8) as usize % 4], e);
                    } else if r % 2 == 0 {
                        dtype.write(palette[(r >> 8) as usize % palette.len()], e);
                    } else {
                        e.copy_from_slice(&(r >> 16).to_le_bytes()[..dtype.size()]);
                    }
                }
                let values: Vec<f32> = bytes
                    .chunks_exact(dtype.size())
                    .map(|e| dtype.read(e))
                    .collect();
                let expected: Result<Vec<i8>, usize> = values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| {
                        if v == 0.0 {
                            Ok(0)
                        } else if v == target {
                            Ok(1)
                        } else if v == -target {
                            Ok(-1)
                        } else {
                            Err(i)
                        }
                    })
                    .collect();
                match (decode_dense(&bytes, shape, dtype, Some(scale)), expected) {
                    (Ok(t), Ok(codes)) => assert_eq!(t.codes(), &codes[..], "{dtype:?} {round}"),
                    (Err(Error::NotTernary { index, .. }), Err(i)) => assert_eq!(index, i),
                    (got, want) => panic!("{dtype:?} round {round}: {got:?} against {want:?}"),
                }
                let expected = match values.iter().position(|v| v.is_nan()) {
                    Some(i) => Err(i),
                    None => Ok(values.iter().fold(0.0f32, |m, v| m.max(v.abs()))),
                };
                match (infer_scale(&bytes, shape, dtype), expected) {
                    (Ok(got), Ok(want)) => assert_eq!(got.to_bits(), want.to_bits()),
                    (Err(Error::NotTernary { index, .. }), Err(i)) => assert_eq!(index, i),
                    (got, want) => panic!("{dtype:?} round {round}: {got:?} against {want:?}"),
                }
            }
        }
    }
}
