//! Per-token int8 activation quantization.
//!
//! The runtime has one quantizer, bitnet.cpp's I2_S rule (`bitnet-arch.md` §8.2, `i2s.md` §7):
//! every ternary kernel (I2_S, TL1, TL2, TQ1_0, TQ2_0) consumes its output, so all ternary layouts
//! of one model see the same integers and give the same logits. The TL1/TL2 kernels' own rule
//! (`tl1.md` §6.1, `tl2.md` §6.1) exists only to reproduce upstream's kernel vectors.

use super::{cache_aligned, cache_aligned_mut, Error, Kernels, SharedOut};
use crate::layout::round_half_even;

/// Activation rows quantized to int8, one scale per row.
///
/// Row `t` holds `q[t*k .. (t+1)*k]`; the real activation is `q / scale`. Buffers are reused
/// between calls, so a forward pass allocates once.
#[derive(Debug, Clone, Default)]
pub struct QuantizedRows {
    k: usize,
    rows: usize,
    /// Values from a 64-byte boundary inside (`cache_aligned`).
    q: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
}

/// Which rounding rule produced a [`QuantizedRows`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantRule {
    /// bitnet.cpp `quantize_row_i8_s`: `amax = max(1e-5, max|x|)` in f64, `sa = (f32)(127/amax)`,
    /// `q = clamp(rne(x*sa), -128, 127)`. The runtime's rule.
    I2s,
    /// The TL1/TL2 LUT preprocessors: `lut_scale = 127f32 / max|x|` in f32, `q = rne(x*lut_scale)`,
    /// no lower bound on `amax` (an all-zero row gives an infinite scale and q = 0). Only for
    /// checking upstream's kernel vectors.
    Lut,
}

impl QuantizedRows {
    /// An empty set of rows.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quantizes `x` (`x.len() / k` rows of `k` values) with `rule`, replacing the contents.
    pub fn quantize(&mut self, x: &[f32], k: usize, rule: QuantRule) -> Result<(), Error> {
        self.quantize_on(None, x, k, rule)
    }

    /// As [`QuantizedRows::quantize`], with the rows spread over `kernels`' threads when given
    /// (each row's integers do not depend on the split).
    pub fn quantize_on(
        &mut self,
        kernels: Option<&Kernels>,
        x: &[f32],
        k: usize,
        rule: QuantRule,
    ) -> Result<(), Error> {
        if k == 0 || x.len() % k != 0 {
            return Err(Error::ActivationLength { len: x.len(), k });
        }
        let rows = x.len() / k;
        self.k = k;
        self.rows = rows;
        let q = cache_aligned_mut(&mut self.q, x.len());
        self.scales.resize(rows, 0.0);
        self.sums.resize(rows, 0);
        let (scales, sums) = (
            SharedOut::new(&mut self.scales),
            SharedOut::new(&mut self.sums),
        );
        let row = |t: usize, qr: &mut [i8]| -> Result<(), Error> {
            let xr = &x[t * k..(t + 1) * k];
            let (scale, sum) = match rule {
                QuantRule::I2s => quantize_row_i2s_rule(xr, qr),
                QuantRule::Lut => quantize_row_lut_rule(xr, qr),
            };
            // SAFETY: row t's scale and sum are written by row t's task only.
            unsafe {
                scales.write(t, scale);
                sums.write(t, sum);
            }
            Ok(())
        };
        match kernels {
            Some(kernels) => kernels.for_each_row(q, k, row),
            None => (q.chunks_exact_mut(k).enumerate()).try_for_each(|(t, qr)| row(t, qr)),
        }
    }

    /// Number of values per row (K).
    pub fn k(&self) -> usize {
        self.k
    }

    /// Number of rows (tokens).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// All quantized values, row-major.
    pub fn values(&self) -> &[i8] {
        cache_aligned(&self.q, self.rows * self.k)
    }

    /// Quantized values of row `t` (empty if out of range).
    pub fn row(&self, t: usize) -> &[i8] {
        self.values()
            .get(t * self.k..(t + 1) * self.k)
            .unwrap_or(&[])
    }

    /// Per-row scales (`sa` / `lut_scale`): real activation = q / scale.
    pub fn scales(&self) -> &[f32] {
        &self.scales[..self.rows]
    }

    /// Per-row sums Σq (used by the I2_S epilogue).
    pub fn sums(&self) -> &[i32] {
        &self.sums[..self.rows]
    }
}

/// bitnet.cpp's I2_S activation rule for one row; returns `(sa, Σq)`. `q.len()` must equal
/// `x.len()` (extra entries are left untouched).
pub fn quantize_row_i2s_rule(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0.0f64, |m, &v| m.max(f64::from(v.abs())));
    let amax = amax.max(1e-5);
    let sa = (127.0 / amax) as f32;
    let mut sum = 0i32;
    for (qi, &xi) in q.iter_mut().zip(x) {
        // The clamp is the spec's.
        let v = round_half_even(xi * sa);
        let v = v.clamp(-128, 127);
        *qi = v as i8;
        sum += v;
    }
    (sa, sum)
}

/// The TL1/TL2 kernels' own rule for one row; returns `(lut_scale, Σq)`.
pub fn quantize_row_lut_rule(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
    let lut_scale = 127.0f32 / amax;
    let mut sum = 0i32;
    for (qi, &xi) in q.iter_mut().zip(x) {
        let v = round_half_even(xi * lut_scale).clamp(-128, 127);
        *qi = v as i8;
        sum += v;
    }
    (lut_scale, sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i2s_rule_rounds_half_to_even_and_sums() {
        // amax 127 -> sa = 1: x*sa is x itself.
        let x = [127.0, 0.5, 1.5, -2.5, -127.0];
        let mut q = [0i8; 5];
        let (sa, sum) = quantize_row_i2s_rule(&x, &mut q);
        assert_eq!(sa, 1.0);
        assert_eq!(q, [127, 0, 2, -2, -127]);
        assert_eq!(sum, 0);
    }

    #[test]
    fn i2s_rule_clamps_tiny_amax() {
        let mut q = [0i8; 2];
        let (sa, _) = quantize_row_i2s_rule(&[0.0, 0.0], &mut q);
        assert_eq!(sa, (127.0f64 / 1e-5) as f32);
        assert_eq!(q, [0, 0]);
    }

    #[test]
    fn rows_reject_ragged_input() {
        let mut rows = QuantizedRows::new();
        assert!(rows.quantize(&[1.0; 5], 2, QuantRule::I2s).is_err());
        rows.quantize(&[1.0, -1.0, 2.0, 4.0], 2, QuantRule::I2s)
            .unwrap();
        assert_eq!(rows.rows(), 2);
        assert_eq!(rows.row(1), &[64, 127]);
        assert_eq!(rows.sums(), &[0, 191]);
    }
}
