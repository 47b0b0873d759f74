//! Float operations of the BitNet b1.58 forward pass, with ggml's numerics
//! (`spec/bitnet-arch.md` §8): RMSNorm, NEOX RoPE, causal grouped-query attention, relu².

use half::f16;

/// RMSNorm as ggml computes it: squares in f32 summed in f64, `mean = (f32)(sum / n)`,
/// `r = 1 / sqrt(mean + eps)` in f32, `y = x * r`, then a separate multiply by `weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    debug_assert_eq!(x.len(), weight.len());
    debug_assert_eq!(x.len(), out.len());
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let r = 1.0f32 / (mean + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = (v * r) * w;
    }
}

/// In-place [`rms_norm`].
pub fn rms_norm_in_place(x: &mut [f32], weight: &[f32], eps: f32) {
    let sum: f64 = x.iter().map(|&v| f64::from(v * v)).sum();
    let mean = (sum / x.len() as f64) as f32;
    let r = 1.0f32 / (mean + eps).sqrt();
    for (v, &w) in x.iter_mut().zip(weight) {
        *v = (*v * r) * w;
    }
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

/// A per-layer key/value cache stored in F16, as llama.cpp's default `type_k`/`type_v`.
#[derive(Debug, Clone)]
pub struct KvCache {
    kv_dim: usize,
    capacity: usize,
    keys: Vec<f16>,
    values: Vec<f16>,
    len: usize,
}

impl KvCache {
    /// A cache for `capacity` positions of `kv_dim` values (kv heads × head dim).
    pub fn new(kv_dim: usize, capacity: usize) -> Self {
        Self {
            kv_dim,
            capacity,
            keys: vec![f16::ZERO; kv_dim * capacity],
            values: vec![f16::ZERO; kv_dim * capacity],
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
        self.len = 0;
    }

    /// Appends one position's key and value; returns false when full.
    pub fn push(&mut self, key: &[f32], value: &[f32]) -> bool {
        if self.len == self.capacity {
            return false;
        }
        let at = self.len * self.kv_dim;
        for (d, &s) in self.keys[at..at + self.kv_dim].iter_mut().zip(key) {
            *d = f16::from_f32(s);
        }
        for (d, &s) in self.values[at..at + self.kv_dim].iter_mut().zip(value) {
            *d = f16::from_f32(s);
        }
        self.len += 1;
        true
    }

    /// Causal grouped-query attention of one query position over the first `n_pos` cached
    /// positions. `q` holds `n_head` heads of `head_dim`; query head `h` reads kv head
    /// `h / (n_head / n_head_kv)`. Scores use the query rounded to F16 (ggml's F16 dot) and a
    /// softmax in f32; `scratch` must hold `n_pos` floats.
    #[allow(clippy::too_many_arguments)]
    pub fn attend(
        &self,
        q: &[f32],
        n_pos: usize,
        n_head: usize,
        n_head_kv: usize,
        head_dim: usize,
        out: &mut [f32],
        scratch: &mut [f32],
    ) {
        let group = n_head / n_head_kv;
        let scale = 1.0 / (head_dim as f32).sqrt();
        for h in 0..n_head {
            let kv = h / group;
            let qh: Vec<f32> = q[h * head_dim..(h + 1) * head_dim]
                .iter()
                .map(|&v| f16::from_f32(v).to_f32())
                .collect();
            let scores = &mut scratch[..n_pos];
            for (p, s) in scores.iter_mut().enumerate() {
                let k = &self.keys[p * self.kv_dim + kv * head_dim..][..head_dim];
                let dot: f32 = k.iter().zip(&qh).map(|(&a, &b)| a.to_f32() * b).sum();
                *s = dot * scale;
            }
            softmax_in_place(scores);
            let o = &mut out[h * head_dim..(h + 1) * head_dim];
            o.fill(0.0);
            for (p, &w) in scores.iter().enumerate() {
                let w = f16::from_f32(w).to_f32();
                let v = &self.values[p * self.kv_dim + kv * head_dim..][..head_dim];
                for (acc, &x) in o.iter_mut().zip(v) {
                    *acc += w * x.to_f32();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut cache = KvCache::new(4, 8);
        cache.push(&[1.0, 0.0, 0.0, 0.0], &[0.25, -0.5, 1.0, 2.0]);
        let q = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let mut out = [0.0f32; 8];
        let mut scratch = [0.0f32; 8];
        cache.attend(&q, 1, 2, 1, 4, &mut out, &mut scratch);
        assert_eq!(out, [0.25, -0.5, 1.0, 2.0, 0.25, -0.5, 1.0, 2.0]);
    }

    #[test]
    fn relu2_zeroes_negative_gates() {
        let mut g = [-1.0f32, 0.0, 2.0];
        relu2_mul(&mut g, &[3.0, 3.0, 3.0]);
        assert_eq!(g, [0.0, 0.0, 12.0]);
    }
}
