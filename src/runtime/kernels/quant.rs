//! Per-token int8 activation quantization.
//!
//! The runtime has one quantizer, bitnet.cpp's I2_S rule (`bitnet-arch.md` §8.2, `i2s.md` §7):
//! every ternary kernel (I2_S, TL1, TL2, TQ1_0, TQ2_0) consumes its output, so all ternary layouts
//! of one model see the same integers and give the same logits. The TL1/TL2 kernels' own rule
//! (`tl1.md` §6.1, `tl2.md` §6.1) exists only to reproduce upstream's kernel vectors.

use super::{cache_aligned, cache_aligned_mut, Error, Kernels, SharedOut};
use crate::layout::{round_half_even, round_half_even_small};

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
    let amax = f64::from(abs_max(x)).max(1e-5);
    let sa = (127.0 / amax) as f32;
    // |x·sa| ≤ 127 when x is finite, where the branch-free rounding is exact; a value outside
    // its range (only from an infinite or NaN activation) sends the row through the general
    // rounding, so both give the same integers.
    let mut sum = 0i32;
    let mut outside = false;
    for (qi, &xi) in q.iter_mut().zip(x) {
        let scaled = xi * sa;
        outside |= scaled.is_nan() | (scaled.abs() >= 2_097_152.0);
        // The clamp is the spec's.
        let v = round_half_even_small(scaled).clamp(-128, 127);
        *qi = v as i8;
        sum += v;
    }
    if outside {
        sum = round_into(x, sa, q);
    }
    (sa, sum)
}

/// `q = clamp(rne(x·scale), −128, 127)` value by value with the general rounding; returns Σq.
fn round_into(x: &[f32], scale: f32, q: &mut [i8]) -> i32 {
    let mut sum = 0i32;
    for (qi, &xi) in q.iter_mut().zip(x) {
        let v = round_half_even(xi * scale).clamp(-128, 127);
        *qi = v as i8;
        sum += v;
    }
    sum
}

/// `max |v|` over `x` (0 for an empty slice; NaNs are skipped, as `f32::max` does), in 8
/// lanes so it vectorizes: the maximum does not depend on the order.
fn abs_max(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v.abs());
        }
    }
    tail.iter().chain(&lanes).fold(0f32, |m, &v| m.max(v.abs()))
}

/// The TL1/TL2 kernels' own rule for one row; returns `(lut_scale, Σq)`.
pub fn quantize_row_lut_rule(x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let lut_scale = 127.0f32 / abs_max(x);
    (lut_scale, round_into(x, lut_scale, q))
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

    /// The rule as written in the spec, one value at a time: what the vectorized row must equal.
    fn i2s_rule_reference(x: &[f32], q: &mut [i8]) -> (f32, i32) {
        let amax = x.iter().fold(0.0f64, |m, &v| m.max(f64::from(v.abs())));
        let sa = (127.0 / amax.max(1e-5)) as f32;
        let mut sum = 0;
        for (qi, &xi) in q.iter_mut().zip(x) {
            let v = round_half_even(xi * sa).clamp(-128, 127);
            *qi = v as i8;
            sum += v;
        }
        (sa, sum)
    }

    #[test]
    fn i2s_rule_equals_the_reference_on_every_kind_of_row() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let specials = [
            0.0,
            -0.0,
            1e-45,
            -3e-39,
            0.5,
            -2.5,
            1e30,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
        ];
        for len in [0usize, 1, 7, 8, 9, 64, 2560, 6913] {
            for case in 0..24 {
                let x: Vec<f32> = (0..len)
                    .map(|_| {
                        let r = next();
                        match case % 4 {
                            // Random bits: every exponent, NaNs and infinities included.
                            0 => f32::from_bits(r as u32),
                            // Activations as they come: a few units around zero.
                            1 => (r % 20_001) as f32 / 1000.0 - 10.0,
                            // Ties at the rounding points once scaled.
                            2 => ((r % 255) as f32 - 127.0) / 2.0,
                            // Mostly ordinary values with a special one here and there.
                            _ if r % 17 == 0 => specials[(r >> 8) as usize % specials.len()],
                            _ => (r % 1000) as f32 * 1e-3,
                        }
                    })
                    .collect();
                let (mut q, mut expected) = (vec![0i8; len], vec![0i8; len]);
                let got = quantize_row_i2s_rule(&x, &mut q);
                let want = i2s_rule_reference(&x, &mut expected);
                assert_eq!(
                    got.0.to_bits(),
                    want.0.to_bits(),
                    "scale, len {len} case {case}"
                );
                assert_eq!((got.1, &q), (want.1, &expected), "len {len} case {case}");
            }
        }
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
