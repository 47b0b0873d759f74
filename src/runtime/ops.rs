//! Float operations of the BitNet b1.58 forward pass, with ggml's numerics
//! (`spec/bitnet-arch.md` §8): RMSNorm, NEOX RoPE, causal grouped-query attention, relu².

use super::kernels::{DenseFormat, Error as KernelError, Kernels};
use half::f16;

/// RMSNorm as ggml computes it: squares in f32 summed in f64, `mean = (f32)(sum / n)`,
/// `r = 1 / sqrt(mean + eps)` in f32, `y = x * r`, then a separate multiply by `weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert_eq!(x.len(), weight.len());
    debug_assert_eq!(x.len(), out.len());
    let r = rms_scale(x, eps);
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * r) * w;
    }
}

/// In-place [`rms_norm`].
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let r = rms_scale(x, eps);
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = (*v * r) * w;
    }
}

/// `1 / sqrt(mean(x²) + eps)`, the f32 squares summed in f64 in 8 interleaved lanes (value i
/// into lane i mod 8, the lanes added pairwise, then the tail). The order is fixed, so the
/// result does not depend on the ISA or the thread count; one running sum was a chain of
/// dependent f64 adds (8 µs for a 6912-wide row, serial in decode).
fn rms_scale(x: &[f32], eps: f32) -> f32 {
    let mut lanes = [0f64; 8];
    let chunks = x.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += f64::from(v * v);
        }
    }
    let [a, b, c, d, e, f, g, h] = lanes;
    let mut sum = ((a + b) + (c + d)) + ((e + f) + (g + h));
    for &v in tail {
        sum += f64::from(v * v);
    }
    let mean = (sum / x.len() as f64) as f32;
    1.0f32 / (mean + eps).sqrt()
}

/// Cosine/sine table of NEOX-style rotary embeddings for one position.
///
/// ggml starts from `theta = pos` and multiplies by `powf(base, -2/dims)` for each pair, then takes
/// `cosf`/`sinf` (`ggml_rope_cache_init`, freq_scale 1, no YaRN).
#[derive(Debug, Clone)]
pub struct RopeTable {
    dims: usize,
    theta_scale: f32,
}

impl RopeTable {
    /// A table for heads whose first `dims` dimensions rotate, with base frequency `base`.
    pub fn new(dims: usize, base: f32) -> Self {
        Self {
            dims,
            theta_scale: base.powf(-2.0 / dims as f32),
        }
    }

    /// Writes `(cos, sin)` for each of the `dims / 2` pairs at position `pos`.
    pub fn angles(&self, pos: usize, cos: &mut [f32], sin: &mut [f32]) {
        let mut theta = pos as f32;
        for i in 0..self.dims / 2 {
            cos[i] = theta.cos();
            sin[i] = theta.sin();
            theta *= self.theta_scale;
        }
    }

    /// Rotates every head of `x` (heads of `head_dim` values each) in place: element `i` pairs
    /// with `i + dims/2` (NEOX / rotate-half style).
    pub fn apply(&self, x: &mut [f32], head_dim: usize, cos: &[f32], sin: &[f32]) {
        let half = self.dims / 2;
        for head in x.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (x0, x1) = (head[i], head[i + half]);
                head[i] = x0 * cos[i] - x1 * sin[i];
                head[i + half] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Squared ReLU of the gate times the up projection, in place into `gate`.
pub fn relu2_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        let r = g.max(0.0);
        *g = r * r * u;
    }
}

/// Numerically stable softmax in place.
pub fn softmax_in_place(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f64;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += f64::from(*v);
    }
    let inv = (1.0 / sum) as f32;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

/// Storage precision of the key/value cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KvPrecision {
    /// f32 keys, values, queries and attention weights: the arithmetic of transformers (the
    /// default: an F16 cache rounds v before `attn_sub_norm` and the int8 quantizer, which on
    /// ref-tiny moves logits by 0.066 mean |Δ| from transformers instead of ~0.01).
    #[default]
    F32,
    /// llama.cpp's default: F16 cache, query and attention weights rounded to F16
    /// (`bitnet-arch.md` §8.4).
    F16,
}

impl KvPrecision {
    fn format(self) -> DenseFormat {
        match self {
            KvPrecision::F32 => DenseFormat::F32,
            KvPrecision::F16 => DenseFormat::F16,
        }
    }

    /// Rounds `x` to what this precision stores (F16: to the nearest half; F32: unchanged).
    fn round(self, x: &mut [f32]) {
        if self == KvPrecision::F16 {
            for v in x {
                *v = f16::from_f32(*v).to_f32();
            }
        }
    }
}

/// A per-layer key/value cache: little-endian F16 (llama.cpp's default `type_k`/`type_v`) or
/// f32 values, one row of `kv_dim` (kv heads × head dim) per position, grown as positions
/// arrive up to a fixed capacity.
#[derive(Debug, Clone)]
pub struct KvCache {
    precision: KvPrecision,
    kv_dim: usize,
    capacity: usize,
    keys: Vec<u8>,
    values: Vec<u8>,
    len: usize,
}

impl KvCache {
    /// An empty cache for up to `capacity` positions of `kv_dim` values.
    pub fn new(precision: KvPrecision, kv_dim: usize, capacity: usize) -> Self {
        Self {
            precision,
            kv_dim,
            capacity,
            keys: Vec::new(),
            values: Vec::new(),
            len: 0,
        }
    }

    /// Positions stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no position is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Maximum positions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.values.clear();
        self.len = 0;
    }

    /// Appends one position's key and value (`kv_dim` values each); returns false when full.
    pub fn push(&mut self, key: &[f32], value: &[f32]) -> bool {
        if self.len == self.capacity {
            return false;
        }
        for (store, src) in [(&mut self.keys, key), (&mut self.values, value)] {
            match self.precision {
                KvPrecision::F16 => {
                    store.extend(src.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()))
                }
                KvPrecision::F32 => store.extend(src.iter().flat_map(|&v| v.to_le_bytes())),
            }
        }
        self.len += 1;
        true
    }

    /// Causal grouped-query attention of one query position over the first `n_pos` cached
    /// positions, for the query heads `first_head..` that `out` has room for (`out.len() /
    /// head_dim` of them, so one call can do every head or a share of them). `q` holds all
    /// `n_head` heads of `head_dim`; query head `h` reads kv head `h / (n_head / n_head_kv)`.
    /// An F16 cache rounds the query and the attention weights to F16 (ggml's F16 dot and F16
    /// `kq`); the softmax is in f32. `scores` must hold `n_pos` floats. Each head's result does
    /// not depend on which call computed it.
    #[allow(clippy::too_many_arguments)]
    pub fn attend(
        &self,
        kernels: &Kernels,
        q: &[f32],
        n_pos: usize,
        (n_head, n_head_kv, head_dim): (usize, usize, usize),
        first_head: usize,
        out: &mut [f32],
        scores: &mut [f32],
    ) -> Result<(), KernelError> {
        let heads = out.len().checked_div(head_dim).unwrap_or(0);
        let heads_fit = n_head_kv > 0
            && n_head % n_head_kv == 0
            && n_head_kv * head_dim <= self.kv_dim
            && q.len() >= n_head * head_dim
            && out.len() == heads * head_dim
            && first_head + heads <= n_head;
        if n_pos == 0 || n_pos > self.len || scores.len() < n_pos || !heads_fit {
            return Err(KernelError::SizeMismatch {
                what: "attention: positions (1..=cached, scores for each) and heads fitting q, out and the cache",
                expected: self.len,
                found: n_pos,
            });
        }
        let format = self.precision.format();
        let (elem, stride) = (format.bytes(), self.kv_dim * format.bytes());
        let group = n_head / n_head_kv;
        let scale = 1.0 / (head_dim as f32).sqrt();
        let scores = &mut scores[..n_pos];
        let used = n_pos * stride;
        for (o, h) in out.chunks_exact_mut(head_dim).zip(first_head..) {
            // Head kv's rows: `head_dim` values every `stride` bytes.
            let at = h / group * head_dim * elem;
            // The (rounded) query goes in the output slice, which is overwritten below.
            o.copy_from_slice(&q[h * head_dim..(h + 1) * head_dim]);
            self.precision.round(o);
            kernels.dense_dots(format, &self.keys[at..used], stride, o, scores)?;
            for s in scores.iter_mut() {
                *s *= scale;
            }
            softmax_in_place(scores);
            self.precision.round(scores);
            o.fill(0.0);
            kernels.dense_weighted_sum(format, &self.values[at..used], stride, scores, o)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rms_scale_is_within_an_ulp_of_the_running_sum() {
        // The lanes change the order of the f64 sum, not its precision: against one running
        // sum the f32 scale may move by one unit in the last place, no more.
        let mut seed = 12345u64;
        for len in [1usize, 7, 8, 9, 2560, 6912, 6913] {
            for _ in 0..50 {
                let x: Vec<f32> = (0..len)
                    .map(|_| {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        let u = (seed >> 40) as f32 / (1u64 << 24) as f32;
                        (u - 0.5) * if seed & 1 == 0 { 1e-3 } else { 40.0 }
                    })
                    .collect();
                let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
                let running = 1.0f32 / ((sum / len as f64) as f32 + 1e-5).sqrt();
                let lanes = rms_scale(&x, 1e-5);
                let ulps = (lanes.to_bits() as i64 - running.to_bits() as i64).abs();
                assert!(ulps <= 1, "len {len}: {lanes} against {running}");
            }
        }
    }

    #[test]
    fn rms_norm_of_constant_vector_is_weight() {
        let x = [2.0f32; 8];
        let w = [0.5f32; 8];
        let mut out = [0.0f32; 8];
        rms_norm(&x, &w, 0.0, &mut out);
        for v in out {
            assert!((v - 0.5).abs() < 1e-6);
        }
    }

    #[test]
    fn rope_at_position_zero_is_identity_and_preserves_norm_elsewhere() {
        let table = RopeTable::new(8, 500000.0);
        let (mut cos, mut sin) = ([0.0f32; 4], [0.0f32; 4]);
        let orig: Vec<f32> = (0..16).map(|i| i as f32 - 7.5).collect();
        let mut x = orig.clone();
        table.angles(0, &mut cos, &mut sin);
        table.apply(&mut x, 8, &cos, &sin);
        assert_eq!(x, orig);
        table.angles(37, &mut cos, &mut sin);
        table.apply(&mut x, 8, &cos, &sin);
        let n0: f32 = orig.iter().map(|v| v * v).sum();
        let n1: f32 = x.iter().map(|v| v * v).sum();
        assert!((n0 - n1).abs() < 1e-3);
        // Pair (0, 4) rotated by theta = 37 rad exactly.
        let (c, s) = (37f32.cos(), 37f32.sin());
        assert!((x[0] - (orig[0] * c - orig[4] * s)).abs() < 1e-5);
    }

    #[test]
    fn attention_over_one_position_returns_its_value() {
        for precision in [KvPrecision::F16, KvPrecision::F32] {
            let kernels = Kernels::new(1, None).unwrap();
            let mut cache = KvCache::new(precision, 4, 8);
            cache.push(&[1.0, 0.0, 0.0, 0.0], &[0.25, -0.5, 1.0, 2.0]);
            let q = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
            let mut out = [0.0f32; 8];
            let mut scratch = [0.0f32; 8];
            cache
                .attend(&kernels, &q, 1, (2, 1, 4), 0, &mut out, &mut scratch)
                .unwrap();
            assert_eq!(out, [0.25, -0.5, 1.0, 2.0, 0.25, -0.5, 1.0, 2.0]);
            // More positions than cached, or more kv heads than the cache holds: errors.
            let mut big = [0.0f32; 8];
            assert!(cache
                .attend(&kernels, &q, 2, (2, 1, 4), 0, &mut out, &mut big)
                .is_err());
            assert!(cache
                .attend(&kernels, &q, 1, (2, 2, 4), 0, &mut out, &mut big)
                .is_err());
        }
    }

    #[test]
    fn relu2_zeroes_negative_gates() {
        let mut g = [-1.0f32, 0.0, 2.0];
        relu2_mul(&mut g, &[3.0, 3.0, 3.0]);
        assert_eq!(g, [0.0, 0.0, 12.0]);
    }
}
