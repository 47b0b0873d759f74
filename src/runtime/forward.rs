//! The BitNet b1.58 forward pass (`bitnet-arch.md` §8, `hf-formats.md` §3) over a KV cache.
//!
//! [`Session::forward`] takes any number of new tokens. Several tokens go through each layer
//! together (the prompt path: one activation quantization per projection input, GEMM kernels
//! over all rows); one token is the decode path (GEMV). Every step is row-independent — the
//! quantizer is per token and the kernels compute each output row from its own activation row
//! with the same code — so both paths give bit-identical logits.

use super::error::Error;
use super::head_screen::{full_head_top, HeadScreen, ScreenStats, SCREEN_TRIAL_TOKENS};
use super::kernels::{Kernels, QuantRule, QuantizedRows};
use super::model::{Layer, Model};
pub use super::ops::KvPrecision;
use super::ops::{relu2_mul, rms_norm, rms_norm_in_place, KvCache, RopeTable};
use super::sampling::TopLogits;

/// Upper bound of the capacity taken from the file's `context_length` by `Session::new(.., 0)`.
pub const MAX_DEFAULT_CONTEXT: usize = 32_768;

/// Which logits a forward call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// None (only fill the cache).
    None,
    /// The last position's logits (`vocab` values).
    Last,
    /// Every new position's logits (`tokens × vocab`, row-major).
    All,
    /// The logits of new positions `i..` (`(tokens − i) × vocab`, row-major), e.g. the scored
    /// half of a perplexity chunk.
    From(usize),
}

/// Reusable buffers of one forward call.
#[derive(Debug, Default)]
struct Scratch {
    x: Vec<f32>,
    a: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    dense: Vec<f32>,
    cos: Vec<f32>,
    sin: Vec<f32>,
    quant: QuantizedRows,
}

/// A model, its kernels and a KV cache: the state of one sequence.
#[derive(Debug)]
pub struct Session<'a> {
    model: &'a Model<'a>,
    kernels: &'a Kernels,
    rope: RopeTable,
    caches: Vec<KvCache>,
    capacity: usize,
    pos: usize,
    scratch: Scratch,
    screen: Option<&'a HeadScreen>,
    screen_stats: ScreenStats,
}

impl<'a> Session<'a> {
    /// A session with room for `capacity` positions (0: the model's context length, at most
    /// [`MAX_DEFAULT_CONTEXT`]) and an f32 KV cache.
    pub fn new(model: &'a Model<'a>, kernels: &'a Kernels, capacity: usize) -> Self {
        Self::with_kv_precision(model, kernels, capacity, KvPrecision::F32)
    }

    /// As [`Session::new`] with the KV cache in `precision`.
    pub fn with_kv_precision(
        model: &'a Model<'a>,
        kernels: &'a Kernels,
        capacity: usize,
        precision: KvPrecision,
    ) -> Self {
        let hp = &model.hparams;
        // The file's context length is only a default; bounded so a hostile value cannot let
        // the cache (which grows with the positions) take unbounded memory.
        let capacity = if capacity == 0 {
            hp.context_length.min(MAX_DEFAULT_CONTEXT)
        } else {
            capacity
        };
        Self {
            model,
            kernels,
            rope: RopeTable::new(hp.rope_dims, hp.rope_theta),
            caches: (0..hp.block_count)
                .map(|_| KvCache::new(precision, hp.kv_dim(), capacity))
                .collect(),
            capacity,
            pos: 0,
            scratch: Scratch::default(),
            screen: None,
            screen_stats: ScreenStats::default(),
        }
    }

    /// The model.
    pub fn model(&self) -> &'a Model<'a> {
        self.model
    }

    /// The kernels.
    pub fn kernels(&self) -> &'a Kernels {
        self.kernels
    }

    /// Positions already in the cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Cache capacity in positions.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every cached position.
    pub fn reset(&mut self) {
        self.pos = 0;
        self.caches.iter_mut().for_each(KvCache::clear);
    }

    /// Runs `tokens` (positions `position()..`) through the network and returns the requested
    /// logits.
    pub fn forward(&mut self, tokens: &[u32], want: Logits) -> Result<Vec<f32>, Error> {
        self.run(tokens, want, None, Head::Full)
    }

    /// Has [`Session::forward_top`] screen the lm_head with `screen` (built from this model's
    /// head), or not (`None`). Full logits ([`Session::forward`]) never use it.
    pub fn set_head_screen(&mut self, screen: Option<&'a HeadScreen>) {
        self.screen = screen;
    }

    /// Whether [`Session::forward_top`] screens the lm_head.
    pub fn has_head_screen(&self) -> bool {
        self.screen.is_some()
    }

    /// What head screening did so far in this session.
    pub fn screen_stats(&self) -> ScreenStats {
        self.screen_stats
    }

    /// As [`Session::forward`] for the last position, returning only its `k` largest logits
    /// (exact, in sampling order) and the greedy pick: all that greedy and top-k sampling
    /// read. With a head screen only those rows of the lm_head are computed in full.
    pub fn forward_top(&mut self, tokens: &[u32], k: usize) -> Result<TopLogits, Error> {
        let x = self.run(tokens, Logits::Last, None, Head::NormedOnly)?;
        let head = &self.model.output;
        let Some(screen) = self.screen else {
            return full_head_top(self.kernels, head, &x, k);
        };
        let top = screen.top(self.kernels, head, &x, k, &mut self.screen_stats);
        let stats = &mut self.screen_stats;
        if stats.tokens == SCREEN_TRIAL_TOKENS && 2 * stats.full_passes > stats.tokens {
            stats.gave_up = true;
            self.screen = None;
        }
        top
    }

    /// As [`Session::forward`], and also records the residual stream of every new position:
    /// `hidden[0]` after the embedding, `hidden[1 + l]` after layer `l`, and last the output of
    /// the final norm (each `tokens × d`), matching `hidden_*.safetensors` of the references.
    pub fn forward_capture(
        &mut self,
        tokens: &[u32],
        want: Logits,
        hidden: &mut Vec<Vec<f32>>,
    ) -> Result<Vec<f32>, Error> {
        self.run(tokens, want, Some(hidden), Head::Full)
    }

    fn run(
        &mut self,
        tokens: &[u32],
        want: Logits,
        mut hidden: Option<&mut Vec<Vec<f32>>>,
        head: Head,
    ) -> Result<Vec<f32>, Error> {
        let model = self.model;
        let hp = &model.hparams;
        let d = hp.embedding_length;
        let n = tokens.len();
        if n == 0 {
            return Err(Error::Invalid("forward: no tokens".into()));
        }
        if self.pos + n > self.capacity {
            return Err(Error::ContextFull {
                needed: self.pos + n,
                capacity: self.capacity,
            });
        }
        for &id in tokens {
            if id as usize >= hp.vocab_size {
                return Err(Error::TokenOutOfRange {
                    id,
                    vocab: hp.vocab_size,
                });
            }
        }
        let mut s = std::mem::take(&mut self.scratch);
        s.x.resize(n * d, 0.0);
        for (row, &id) in s.x.chunks_exact_mut(d).zip(tokens) {
            model.token_embd.row_to_f32(id as usize, row);
        }
        if let Some(h) = hidden.as_deref_mut() {
            h.clear();
            h.push(s.x.clone());
        }
        // The rotary angles of the new positions, once for all layers (each angle is a `cosf`
        // and a `sinf`: 64 pairs per position and layer were 4.6 µs of decode's serial work).
        let half = hp.rope_dims / 2;
        s.cos.resize(n * half, 0.0);
        s.sin.resize(n * half, 0.0);
        for (t, (cos, sin)) in s
            .cos
            .chunks_exact_mut(half)
            .zip(s.sin.chunks_exact_mut(half))
            .enumerate()
        {
            self.rope.angles(self.pos + t, cos, sin);
        }
        let result = (|| {
            for (l, layer) in model.layers.iter().enumerate() {
                self.layer(l, layer, n, &mut s)?;
                if let Some(h) = hidden.as_deref_mut() {
                    h.push(s.x.clone());
                }
            }
            self.pos += n;
            let rows: Vec<usize> = match want {
                Logits::None => {
                    if let Some(h) = hidden.as_deref_mut() {
                        let mut normed = s.x.clone();
                        for row in normed.chunks_exact_mut(d) {
                            rms_norm_in_place(row, &model.output_norm, hp.rms_eps);
                        }
                        h.push(normed);
                    }
                    return Ok(Vec::new());
                }
                Logits::Last => vec![n - 1],
                Logits::All => (0..n).collect(),
                Logits::From(i) => (i.min(n)..n).collect(),
            };
            if let Some(h) = hidden.as_deref_mut() {
                let mut normed = s.x.clone();
                for row in normed.chunks_exact_mut(d) {
                    rms_norm_in_place(row, &model.output_norm, hp.rms_eps);
                }
                h.push(normed);
            }
            s.a.clear();
            for &t in &rows {
                s.a.extend_from_slice(&s.x[t * d..(t + 1) * d]);
            }
            for row in s.a.chunks_exact_mut(d) {
                rms_norm_in_place(row, &model.output_norm, hp.rms_eps);
            }
            if head == Head::NormedOnly {
                return Ok(s.a.clone());
            }
            let mut logits = vec![0f32; rows.len() * hp.vocab_size];
            model.output.matmul(self.kernels, &s.a, &mut logits)?;
            Ok(logits)
        })();
        self.scratch = s;
        result
    }

    /// One decoder layer over the `n` rows of `s.x` (positions `self.pos..self.pos + n`).
    fn layer(&mut self, l: usize, w: &Layer<'_>, n: usize, s: &mut Scratch) -> Result<(), Error> {
        let hp = &self.model.hparams;
        let (d, ff) = (hp.embedding_length, hp.feed_forward_length);
        let (qd, kvd, hd) = (hp.q_dim(), hp.kv_dim(), hp.head_dim);
        let k = self.kernels;
        let eps = hp.rms_eps;

        // Attention block: one quantization of the normed input feeds q, k and v. Row-wise
        // steps run on the kernels' threads (rows are independent, so results do not depend
        // on the thread count).
        s.a.resize(n * d, 0.0);
        normed_rows(k, &s.x, &mut s.a, d, &w.attn_norm, eps);
        s.quant.quantize_on(Some(k), &s.a, d, QuantRule::I2s)?;
        s.q.resize(n * qd, 0.0);
        s.k.resize(n * kvd, 0.0);
        s.v.resize(n * kvd, 0.0);
        w.attn_q.matmul(k, &s.quant, &mut s.dense, &mut s.q)?;
        w.attn_k.matmul(k, &s.quant, &mut s.dense, &mut s.k)?;
        w.attn_v.matmul(k, &s.quant, &mut s.dense, &mut s.v)?;
        let cache = &mut self.caches[l];
        let half = hp.rope_dims / 2;
        for t in 0..n {
            // Filled by `run` for positions pos..pos+n.
            let (cos, sin) = (
                &s.cos[t * half..(t + 1) * half],
                &s.sin[t * half..(t + 1) * half],
            );
            self.rope
                .apply(&mut s.q[t * qd..(t + 1) * qd], hd, cos, sin);
            self.rope
                .apply(&mut s.k[t * kvd..(t + 1) * kvd], hd, cos, sin);
            let (key, value) = (&s.k[t * kvd..(t + 1) * kvd], &s.v[t * kvd..(t + 1) * kvd]);
            if !cache.push(key, value) {
                return Err(Error::ContextFull {
                    needed: self.pos + n,
                    capacity: self.capacity,
                });
            }
        }
        s.att.resize(n * qd, 0.0);
        let (pos, cache, q) = (self.pos, &*cache, &s.q);
        let heads = (hp.head_count, hp.head_count_kv, hd);
        // One task per (token, head): a single decoded token's heads spread over the threads
        // too (as one task per token, attention was serial in decode and the other threads
        // waited, longer as the cache grows).
        k.for_each_row(&mut s.att, hd, |i, out| {
            let (t, h) = (i / hp.head_count, i % hp.head_count);
            let mut scores = vec![0f32; pos + t + 1];
            let q_t = &q[t * qd..(t + 1) * qd];
            cache.attend(k, q_t, pos + t + 1, heads, h, out, &mut scores)
        })?;
        k.for_each_row(&mut s.att, qd, |_, out| {
            rms_norm_in_place(out, &w.attn_sub_norm, eps);
            Ok::<(), Error>(())
        })?;
        s.quant.quantize_on(Some(k), &s.att, qd, QuantRule::I2s)?;
        s.o.resize(n * d, 0.0);
        w.attn_output.matmul(k, &s.quant, &mut s.dense, &mut s.o)?;
        for (x, &o) in s.x.iter_mut().zip(&s.o) {
            *x += o;
        }

        // FFN block: one quantization feeds gate and up.
        normed_rows(k, &s.x, &mut s.a, d, &w.ffn_norm, eps);
        s.quant.quantize_on(Some(k), &s.a, d, QuantRule::I2s)?;
        s.gate.resize(n * ff, 0.0);
        s.up.resize(n * ff, 0.0);
        w.ffn_gate.matmul(k, &s.quant, &mut s.dense, &mut s.gate)?;
        w.ffn_up.matmul(k, &s.quant, &mut s.dense, &mut s.up)?;
        let up = &s.up;
        k.for_each_row(&mut s.gate, ff, |t, row| {
            relu2_mul(row, &up[t * ff..(t + 1) * ff]);
            rms_norm_in_place(row, &w.ffn_sub_norm, eps);
            Ok::<(), Error>(())
        })?;
        s.quant.quantize_on(Some(k), &s.gate, ff, QuantRule::I2s)?;
        w.ffn_down.matmul(k, &s.quant, &mut s.dense, &mut s.o)?;
        for (x, &o) in s.x.iter_mut().zip(&s.o) {
            *x += o;
        }
        Ok(())
    }
}

/// What `Session::run` does after the final norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Head {
    /// Multiply the requested rows by the lm_head and return the logits.
    Full,
    /// Return the requested rows after the final norm (the lm_head's input).
    NormedOnly,
}

/// `out` row t = RMSNorm(`x` row t) with `weight`, rows of `len` on the kernels' threads.
fn normed_rows(k: &Kernels, x: &[f32], out: &mut [f32], len: usize, weight: &[f32], eps: f32) {
    let done = k.for_each_row(out, len, |t, row| {
        rms_norm(&x[t * len..(t + 1) * len], weight, eps, row);
        Ok::<(), std::convert::Infallible>(())
    });
    let Ok(()) = done;
}
