//! bf16 master → ternary: per-tensor absmean exactly as transformers' `WeightQuant`
//! (`spec/hf-formats.md` §2.1, `spec/i2s.md` §6.1).
//!
//! Codes: `s = fl32(1/m)`, `t = clamp(round_half_even(fl32(w·s)), -1, 1)` with the product in
//! f32, as torch computes it. The mean `m` is where torch is not reproducible (its f32 cascade
//! sum depends on thread count), so we fix our own **canonical scale rule**:
//!
//! 1. `sum = Σ|w|` accumulated in f64, in row-major order (exact for bf16 inputs unless the
//!    tensor spans more than ~29 binary orders of magnitude);
//! 2. `m = max(fl32(sum / n), 1e-5f32)` (the quotient taken in f64, then rounded once to f32);
//! 3. `s = fl32(1/m)` (f32 division), used for the codes;
//! 4. stored multiplier `scale = fl32(1/s)` (f32 division), the value torch's `T / s` dequantizes
//!    to. It equals `m` in practice.
//!
//! On ref-tiny this rule gives codes equal to transformers' for all 14 tensors and scales within
//! 1 f32 ulp of torch's (see `docs/hf.md`).

use crate::layout::{Error, Shape, TernaryTensor};

/// Lower clamp of the absmean, as in transformers (`clamp_(min=1e-5)`).
pub const ABSMEAN_EPS: f32 = 1e-5;

/// The scale quantities of one master tensor under our canonical rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AbsmeanScale {
    /// `m = max(fl32(Σ|w| / n), 1e-5)`.
    pub mean: f32,
    /// `s = fl32(1/m)`, the factor the codes are computed with.
    pub inverse: f32,
    /// `fl32(1/s)`: the multiplier (real weight = code × scale).
    pub scale: f32,
}

/// Computes the canonical absmean scale of a tensor's values (see the module docs).
pub fn absmean_scale(values: &[f32]) -> AbsmeanScale {
    let sum: f64 = values.iter().map(|&w| f64::from(w.abs())).sum();
    let n = values.len().max(1) as f64;
    let mean = ((sum / n) as f32).max(ABSMEAN_EPS);
    scale_from_mean(mean)
}

/// The `s` and `1/s` that follow from a given mean (e.g. torch's, to reproduce its codes).
pub fn scale_from_mean(mean: f32) -> AbsmeanScale {
    let mean = mean.max(ABSMEAN_EPS);
    let inverse = 1.0f32 / mean;
    AbsmeanScale {
        mean,
        inverse,
        scale: 1.0f32 / inverse,
    }
}

/// Ternary code of one weight: `clamp(round_half_even(fl32(w·s)), -1, 1)` (NaN gives 0).
#[inline]
pub fn ternary_code(w: f32, inverse: f32) -> i8 {
    // `crate::layout::round_half_even`, not `f32::round_ties_even`: the latter is a `rintf`
    // call on the default x86-64 target, half the time of a master conversion.
    crate::layout::round_half_even(w * inverse).clamp(-1, 1) as i8
}

/// Ternarizes a master tensor with our canonical scale rule. Fails on NaN/Inf values (naming the
/// first) and on a shape that does not match the value count.
pub fn ternarize(values: &[f32], shape: Shape) -> Result<(TernaryTensor, AbsmeanScale), Error> {
    if let Some(index) = values.iter().position(|w| !w.is_finite()) {
        let cols = shape.cols.max(1);
        return Err(Error::NotTernary {
            layout: "bf16 master",
            index,
            row: index / cols,
            col: index % cols,
            value: f64::from(values[index]),
            scale: f32::NAN,
        });
    }
    let scale = absmean_scale(values);
    let codes = values
        .iter()
        .map(|&w| ternary_code(w, scale.inverse))
        .collect();
    Ok((TernaryTensor::new(shape, codes, scale.scale)?, scale))
}

/// Distance in units in the last place between two finite f32 of the same sign (`u32::MAX`
/// when the signs differ or either is NaN).
pub fn ulp_distance(a: f32, b: f32) -> u32 {
    if a.is_nan() || b.is_nan() || (a.is_sign_negative() != b.is_sign_negative() && a != b) {
        return u32::MAX;
    }
    let (x, y) = ((a.to_bits() & 0x7fff_ffff), (b.to_bits() & 0x7fff_ffff));
    x.abs_diff(y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_round_to_even() {
        // s = 1: 0.5 -> 0, 1.5 -> 2 -> clamped 1, -0.5 -> 0, 0.51 -> 1.
        assert_eq!(ternary_code(0.5, 1.0), 0);
        assert_eq!(ternary_code(-0.5, 1.0), 0);
        assert_eq!(ternary_code(1.5, 1.0), 1);
        assert_eq!(ternary_code(0.51, 1.0), 1);
        assert_eq!(ternary_code(-7.0, 1.0), -1);
    }

    #[test]
    fn all_zero_tensor_uses_eps() {
        let (t, s) = ternarize(&[0.0; 8], Shape::new(2, 4)).unwrap();
        assert_eq!(s.mean, ABSMEAN_EPS);
        assert!(t.codes().iter().all(|&c| c == 0));
    }

    #[test]
    fn nan_is_rejected() {
        let mut v = vec![1.0f32; 8];
        v[5] = f32::NAN;
        assert!(matches!(
            ternarize(&v, Shape::new(2, 4)),
            Err(Error::NotTernary { index: 5, .. })
        ));
    }

    #[test]
    fn ulps() {
        assert_eq!(ulp_distance(1.0, 1.0), 0);
        assert_eq!(ulp_distance(1.0, f32::from_bits(1.0f32.to_bits() + 3)), 3);
        assert_eq!(ulp_distance(1.0, -1.0), u32::MAX);
    }
}
