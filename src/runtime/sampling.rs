//! Token sampling: greedy, temperature, top-k and top-p, with a seeded generator so runs repeat.

/// Sampling settings. `temperature <= 0` means greedy (argmax).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; 0 or less selects greedy decoding.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1.0 = all).
    pub top_p: f32,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 40,
            top_p: 0.95,
            seed: 0,
        }
    }
}

/// A seeded sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    state: u64,
}

/// Index of the largest value (first one on ties); `None` for an empty slice.
pub fn argmax(logits: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in logits.iter().enumerate() {
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

impl Sampler {
    /// A sampler with `params`.
    pub fn new(params: SamplingParams) -> Self {
        Self {
            params,
            state: params.seed ^ 0x9E37_79B9_7F4A_7C15,
        }
    }

    /// splitmix64 step, mapped to [0, 1).
    fn next_unit(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Picks the next token from `logits`.
    pub fn sample(&mut self, logits: &[f32]) -> usize {
        let p = self.params;
        if p.temperature <= 0.0 || logits.len() <= 1 {
            return argmax(logits).unwrap_or(0);
        }
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_unstable_by(|&a, &b| sampling_order(logits, a, b));
        if p.top_k > 0 {
            order.truncate(p.top_k);
        }
        let kept: Vec<(usize, f32)> = order.iter().map(|&i| (i, logits[i])).collect();
        self.pick(&kept)
    }

    /// Picks the next token from the exact top of the logits, as [`Sampler::sample`] would
    /// from all of them. `top` must hold at least [`SamplingParams::candidates_needed`]
    /// entries, or every logit when that is `None` or there are fewer logits.
    pub fn sample_top(&mut self, top: &TopLogits) -> usize {
        let p = self.params;
        if p.temperature <= 0.0 || top.entries.len() <= 1 {
            return top.argmax;
        }
        let keep = match p.top_k {
            0 => top.entries.len(),
            k => k.min(top.entries.len()),
        };
        self.pick(&top.entries[..keep])
    }

    /// Softmax at the temperature over `kept` (in sampling order), top-p, then one draw.
    fn pick(&mut self, kept: &[(usize, f32)]) -> usize {
        let p = self.params;
        let max = kept[0].1;
        let mut probs: Vec<f64> = kept
            .iter()
            .map(|&(_, v)| f64::from((v - max) / p.temperature).exp())
            .collect();
        let total: f64 = probs.iter().sum();
        probs.iter_mut().for_each(|v| *v /= total);
        let mut keep = probs.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (n, &v) in probs.iter().enumerate() {
                acc += v;
                if acc >= f64::from(p.top_p) {
                    keep = n + 1;
                    break;
                }
            }
            probs.truncate(keep);
        }
        let total: f64 = probs.iter().sum();
        let mut r = self.next_unit() * total;
        for (&(i, _), &v) in kept.iter().zip(&probs) {
            if r < v {
                return i;
            }
            r -= v;
        }
        kept[keep - 1].0
    }
}

/// The order tokens are sampled in: larger logit first (`total_cmp`), then smaller id.
fn sampling_order(logits: &[f32], a: usize, b: usize) -> std::cmp::Ordering {
    logits[b].total_cmp(&logits[a]).then(a.cmp(&b))
}

impl SamplingParams {
    /// How many of the largest logits sampling looks at: 1 for greedy, `top_k` when it is set,
    /// `None` when it needs them all (a temperature without top-k).
    pub fn candidates_needed(&self) -> Option<usize> {
        if self.temperature <= 0.0 {
            Some(1)
        } else if self.top_k > 0 {
            Some(self.top_k)
        } else {
            None
        }
    }
}

/// The largest logits of one position with their exact values: what greedy and top-k sampling
/// need, and all a screened lm_head (`runtime::head_screen`) computes.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogits {
    /// `(token id, logit)`, the `k` first in sampling order (larger logit first by
    /// `total_cmp`, then smaller id).
    pub entries: Vec<(usize, f32)>,
    /// The greedy pick: [`argmax`] of all the logits.
    pub argmax: usize,
}

impl TopLogits {
    /// The top `k` (at least 1) of `logits`; `None` for no logits.
    pub fn from_logits(logits: &[f32], k: usize) -> Option<Self> {
        let argmax = argmax(logits)?;
        let k = k.clamp(1, logits.len());
        let mut order: Vec<usize> = (0..logits.len()).collect();
        if k < order.len() {
            order.select_nth_unstable_by(k - 1, |&a, &b| sampling_order(logits, a, b));
            order.truncate(k);
        }
        order.sort_unstable_by(|&a, &b| sampling_order(logits, a, b));
        Some(Self {
            entries: order.into_iter().map(|i| (i, logits[i])).collect(),
            argmax,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_picks_argmax_first_on_ties() {
        let mut s = Sampler::new(SamplingParams::default());
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn same_seed_same_tokens_and_top_k_one_is_greedy() {
        let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let params = SamplingParams {
            temperature: 0.8,
            top_k: 0,
            top_p: 1.0,
            seed: 42,
        };
        let a: Vec<usize> = {
            let mut s = Sampler::new(params);
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        let b: Vec<usize> = {
            let mut s = Sampler::new(params);
            (0..20).map(|_| s.sample(&logits)).collect()
        };
        assert_eq!(a, b);
        let mut k1 = Sampler::new(SamplingParams { top_k: 1, ..params });
        assert_eq!(k1.sample(&logits), argmax(&logits).unwrap());
    }

    #[test]
    fn sampling_from_the_top_equals_sampling_from_all_logits() {
        // Ties, a -0.0 beside 0.0, and a run of equal maxima: the orders must agree exactly.
        let mut logits: Vec<f32> = (0..300).map(|i| ((i * 7919) % 97) as f32 * 0.05).collect();
        logits[10] = -0.0;
        logits[11] = 0.0;
        for (temperature, top_k, top_p) in [
            (0.0, 40, 0.95),
            (0.8, 40, 0.95),
            (1.3, 5, 1.0),
            (0.5, 1, 0.9),
            (2.0, 300, 0.99),
        ] {
            let params = SamplingParams {
                temperature,
                top_k,
                top_p,
                seed: 7,
            };
            let k = params.candidates_needed().unwrap();
            let top = TopLogits::from_logits(&logits, k).unwrap();
            let (mut all, mut some) = (Sampler::new(params), Sampler::new(params));
            for _ in 0..50 {
                assert_eq!(all.sample(&logits), some.sample_top(&top), "{params:?}");
            }
        }
        let no_top_k = SamplingParams {
            temperature: 1.0,
            top_k: 0,
            ..SamplingParams::default()
        };
        assert_eq!(no_top_k.candidates_needed(), None);
    }
}
