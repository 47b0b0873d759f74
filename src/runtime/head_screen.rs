//! A screened lm_head: the exact top-k logits of a float (F16, BF16, F32) head for a fraction of
//! its bytes.
//!
//! Decode reads the whole lm_head once per token: with an F16 head that is 0.66 GB of the 2B-4T
//! model's 1.18 GB, and decode is bound by memory bandwidth. Greedy and top-k sampling only
//! need the largest k logits. [`HeadScreen`] holds an 8-bit copy of the head (one scale per
//! row, 0.33 GB for 2B-4T) and, per token:
//!
//! 1. computes every row's logit from the copy and activations rounded to at most 15 bits,
//!    with a bound on its distance from the logit the full head computes (below);
//! 2. takes T = the k-th largest lower bound (logit − bound): at least k rows have an exact
//!    logit ≥ T, so a row whose upper bound is below T cannot be in the top k;
//! 3. recomputes the rows whose upper bound reaches T with the full head's own kernel (the same
//!    bits as the full matmul) and picks the top k among them.
//!
//! The result equals the top k of the full logits, values and order, and so do the tokens
//! greedy and top-k sampling draw from it: nothing is approximated, the copy only decides which
//! rows need the full head. When the bound is loose (many candidates) it falls back to the full
//! head, so the cost is never much above the full pass.
//!
//! The copy holds `w / c`, where c is each column's largest |w|: a few large columns (common in
//! trained embeddings) would otherwise set every row's step. It then multiplies `c·x`. The
//! bound, for row r with weights w, column scales c, row step s and codes q
//! (|w/c − s·q| ≤ s/2), the rounded activations x (what the full head multiplies) and the codes
//! x_q of x' = c·x (step s_x, |x' − s_x·x_q| ≤ s_x/2):
//!
//! ```text
//! |Σ w·x − s·s_x·Σ q·x_q| ≤ Σ |w/c − s·q|·|x'| + s·Σ |q|·|x' − s_x·x_q|
//!                         ≤ s/2·‖x'‖₁ + s·‖q‖₁·s_x/2
//! ```
//!
//! plus the rounding of the full head's f32 sum, at most γ_{K+2}·Σ|w·x| ≤ γ_{K+2}·127·s·‖x'‖₁
//! for any summation order (γ_n = n·u/(1 − n·u), u = 2⁻²⁴), and a relative 10⁻⁶ of slack for
//! the f64 arithmetic of the copy and of the bound itself.

use super::error::Error;
use super::kernels::{Isa, Kernels};
use super::model::DenseMatrix;
use super::sampling::TopLogits;
use crate::gguf::GgmlType;
use half::f16;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Rows per task of the screening pass (the spinning pool balances the tasks).
const ROWS_PER_TASK: usize = 1024;

/// Candidate rows per task of the full-head recomputation.
const RECOMPUTE_ROWS: usize = 64;

/// Past this many candidates (a fraction of the rows) the full head is cheaper to run whole.
const MAX_CANDIDATE_FRACTION: usize = 8;

/// The fewest new tokens for which [`screening_pays`]: building the copy of 2B-4T's head
/// takes 0.34–0.39 s at 2 threads and 0.57–0.60 s at 1, and each screened token saves 19–22 ms
/// (`docs/PERFORMANCE.md`, "Issue 6, ninth session"), so 19–27 tokens repay it; 64 leaves room
/// for slower machines.
pub const SCREEN_MIN_TOKENS: usize = 64;

/// After this many screened tokens, a screen that ran the full head for more than half of them
/// is dropped (see [`ScreenStats::gave_up`]).
pub const SCREEN_TRIAL_TOKENS: usize = 8;

/// Whether a run should build a screen when the user left it to the runtime: the head is a
/// float one (`head_type`), the sampler reads only the top of the logits (`top_k`, from
/// [`SamplingParams::candidates_needed`](super::sampling::SamplingParams::candidates_needed)),
/// and at least [`SCREEN_MIN_TOKENS`] tokens are to be generated.
pub fn screening_pays(head_type: GgmlType, top_k: Option<usize>, new_tokens: usize) -> bool {
    screenable(head_type) && top_k.is_some() && new_tokens >= SCREEN_MIN_TOKENS
}

/// The head types [`HeadScreen::build`] accepts: the float ones (a quantized head is already
/// small, so there is nothing to screen with).
fn screenable(head_type: GgmlType) -> bool {
    matches!(head_type, GgmlType::F16 | GgmlType::BF16 | GgmlType::F32)
}

/// An 8-bit, one-scale-per-row copy of a float lm_head, for exact top-k logits
/// (see the module documentation).
#[derive(Debug)]
pub struct HeadScreen {
    rows: usize,
    cols: usize,
    /// `rows × cols` codes of `w / c` in −127..=127, row-major.
    codes: Vec<i8>,
    /// Per row: the step `s` (max |w / c| / 127).
    scales: Vec<f64>,
    /// Per column: `c`, its largest |w| (1 for a zero column). Dividing it out first keeps a
    /// few large columns from widening every row's step.
    column_scales: Vec<f64>,
    /// Per row: Σ |q|.
    code_l1: Vec<u32>,
    /// Largest |activation code| for which `127 · max · cols` stays below 2³¹.
    max_code: i32,
}

/// What screening did over a run of tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ScreenStats {
    /// Tokens whose top logits were screened.
    pub tokens: usize,
    /// Rows recomputed with the full head, summed over the tokens.
    pub candidates: usize,
    /// Tokens for which the full head ran whole (too many candidates, or activations that are
    /// not finite).
    pub full_passes: usize,
    /// Whether the session stopped screening: more than half of the first
    /// [`SCREEN_TRIAL_TOKENS`] screened tokens ran the full head, where a screen costs more
    /// than it saves.
    pub gave_up: bool,
}

/// The refusal of a head value that is not finite.
fn not_finite(row: usize, col: usize, value: f32) -> Error {
    Error::Invalid(format!(
        "lm_head row {row} column {col} is {value}: the head cannot be screened"
    ))
}

/// Pass 1 of [`HeadScreen::build`] on F16 rows without converting them: |v| orders like the
/// bits below the sign (infinities and NaNs above every finite value), so the maxima are taken
/// on `bits & 0x7FFF` and converted once per column. A maximum at or above the infinity
/// pattern means the rows hold a non-finite value, which a second scan locates for the error.
fn f16_column_maxima(
    isa: Isa,
    head: &DenseMatrix<'_>,
    rows: std::ops::Range<usize>,
    maxima: &mut [f32],
) -> Result<(), Error> {
    const INFINITY_BITS: u16 = 0x7C00;
    let cols = maxima.len();
    let mut bits = vec![0u16; cols];
    for r in rows.clone() {
        max_magnitude_bits(isa, head.row_bytes(r), &mut bits);
    }
    if bits.iter().any(|&b| b >= INFINITY_BITS) {
        for r in rows {
            for (col, c) in head.row_bytes(r).chunks_exact(2).enumerate() {
                let v = f16::from_le_bytes([c[0], c[1]]);
                if !v.is_finite() {
                    return Err(not_finite(r, col, v.to_f32()));
                }
            }
        }
    }
    for (m, &b) in maxima.iter_mut().zip(&bits) {
        *m = f16::from_bits(b).to_f32();
    }
    Ok(())
}

/// `fn $name(isa, args…)` running `$body` compiled for AVX2 when `isa` is AVX2 (where the
/// compiler vectorizes it) and as plain code otherwise: one source, so the same results on every
/// ISA as long as the body fuses and reorders no float arithmetic.
macro_rules! vectorized {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        fn $name(isa: Isa, $($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                body($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if isa == Isa::Avx2 {
                // SAFETY: `Isa::Avx2` is only in use where the CPU has AVX2 (`Kernels::new`
                // refuses it elsewhere).
                return unsafe { avx2($($arg),*) };
            }
            let _ = isa;
            body($($arg),*)
        }
    };
}

vectorized! {
    /// `bits[j] = max(bits[j], row[j] & 0x7FFF)` over one F16 row's little-endian bytes.
    fn max_magnitude_bits(row: &[u8], bits: &mut [u16]) {
        for (m, c) in bits.iter_mut().zip(row.chunks_exact(2)) {
            *m = (*m).max(u16::from_le_bytes([c[0], c[1]]) & 0x7FFF);
        }
    }
}

vectorized! {
    /// One F16 row's little-endian bytes as f32, exactly (infinities and NaNs included). In
    /// plain integer and float operations, so that it vectorizes: a call into `half`'s
    /// converter per 8 values was most of the build.
    fn f16_row_to_f32(row: &[u8], out: &mut [f32]) {
        // 2¹¹²: the f16 exponent bias (15) moved to f32's (127). Multiplying the magnitude's
        // bits, placed as an f32, by it is exact for normal and subnormal values alike.
        const REBIAS: f32 = f32::from_bits((112 + 127) << 23);
        for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
            let h = u16::from_le_bytes([c[0], c[1]]);
            let magnitude = u32::from(h & 0x7FFF) << 13;
            let bits = match h & 0x7C00 == 0x7C00 {
                true => magnitude | 0x7F80_0000,
                false => (f32::from_bits(magnitude) * REBIAS).to_bits(),
            };
            *o = f32::from_bits(bits | u32::from(h & 0x8000) << 16);
        }
    }
}

vectorized! {
    /// Pass 2 of [`HeadScreen::build`] for one row: the codes of `row[j] · inverse_columns[j]`
    /// with one step per row; returns the step and Σ|q|. Max is exact in any order, so the
    /// lanes give the same step as one running maximum.
    fn encode_row(row: &[f32], inverse_columns: &[f64], out: &mut [i8]) -> (f64, u32) {
        // Four running maxima, so they stay in one vector.
        let mut lanes = [0f64; 4];
        let whole = row.len() / 4 * 4;
        for (v, ic) in row[..whole]
            .chunks_exact(4)
            .zip(inverse_columns[..whole].chunks_exact(4))
        {
            for i in 0..4 {
                lanes[i] = lanes[i].max((f64::from(v[i]) * ic[i]).abs());
            }
        }
        let max = row[whole..]
            .iter()
            .zip(&inverse_columns[whole..])
            .fold(lanes.iter().fold(0f64, |m, &l| m.max(l)), |m, (&v, &ic)| {
                m.max((f64::from(v) * ic).abs())
            });
        let scale = max / 127.0;
        if scale <= 0.0 {
            out.fill(0);
            return (scale, 0);
        }
        // In f64 the reciprocals' errors are far below the bound's 10⁻⁶ slack.
        let inverse = 1.0 / scale;
        // Adding 1.5·2⁵² rounds |y| < 2⁵¹ to the nearest integer (ties to even), which then
        // sits in the low bits of the f64: a rounding that vectorizes, where `as i32` (a
        // saturating conversion) does not. |y| ≤ 127 up to rounding, so any nearest integer
        // keeps |w/c − s·q| ≤ s/2, which is all the bound needs.
        const ROUNDER: f64 = 6_755_399_441_055_744.0;
        let mut l1 = 0u32;
        for ((o, &v), &ic) in out.iter_mut().zip(row).zip(inverse_columns) {
            let y = f64::from(v) * ic * inverse;
            let q = ((y + ROUNDER).to_bits() as i32).clamp(-127, 127);
            l1 += q.unsigned_abs();
            *o = q as i8;
        }
        (scale, l1)
    }
}

impl HeadScreen {
    /// The screening copy of `head`, built on the kernels' threads. Errors for a block-quantized
    /// head (its bytes are already few; there is nothing to screen with) and for weights that
    /// are not finite.
    pub fn build(head: &DenseMatrix<'_>, kernels: &Kernels) -> Result<Self, Error> {
        let shape = head.shape();
        let (rows, cols) = (shape.rows, shape.cols);
        if !screenable(head.ggml_type()) {
            return Err(Error::Invalid(format!(
                "the lm_head is {}: only an F16, BF16 or F32 head can be screened (a quantized \
                 head is already small)",
                head.ggml_type().name()
            )));
        }
        let max_code = (i32::MAX as u64 / (127 * cols.max(1) as u64)).min(i16::MAX as u64) as i32;
        if max_code < 255 {
            return Err(Error::Invalid(format!(
                "an lm_head of {cols} columns is too wide to screen with 32-bit sums"
            )));
        }
        // Pass 1: every column's largest |w|, and a refusal of values that are not finite.
        let tasks = rows.div_ceil(ROWS_PER_TASK);
        let mut column_max = vec![0f32; tasks * cols];
        kernels.for_each_row(&mut column_max, cols, |task, maxima| {
            let task_rows = task * ROWS_PER_TASK..((task + 1) * ROWS_PER_TASK).min(rows);
            if head.ggml_type() == GgmlType::F16 {
                return f16_column_maxima(kernels.isa(), head, task_rows, maxima);
            }
            let mut row = vec![0f32; cols];
            for r in task_rows {
                head.row_to_f32(r, &mut row);
                if let Some(bad) = row.iter().position(|v| !v.is_finite()) {
                    return Err(not_finite(r, bad, row[bad]));
                }
                for (m, &v) in maxima.iter_mut().zip(&row) {
                    *m = m.max(v.abs());
                }
            }
            Ok(())
        })?;
        let column_scales: Vec<f64> = (0..cols)
            .map(|j| {
                let max = (0..tasks).fold(0f32, |m, t| m.max(column_max[t * cols + j]));
                if max > 0.0 {
                    f64::from(max)
                } else {
                    1.0
                }
            })
            .collect();
        let inverse_columns: Vec<f64> = column_scales.iter().map(|c| 1.0 / c).collect();
        // Pass 2: the codes of w / c, one scale per row. Rows were sized from the file's
        // validated tensor, so `rows × cols` values exist as F16 or wider already; the copy is
        // at most half their size. Each task owns its rows' codes; scales and Σ|q| go through
        // atomics (one store per row).
        let mut codes = vec![0i8; rows * cols];
        let scales: Vec<AtomicU64> = (0..rows).map(|_| AtomicU64::new(0)).collect();
        let code_l1: Vec<AtomicU32> = (0..rows).map(|_| AtomicU32::new(0)).collect();
        kernels.for_each_row(&mut codes, cols, |r, out| {
            let mut row = vec![0f32; cols];
            match head.ggml_type() {
                GgmlType::F16 => f16_row_to_f32(kernels.isa(), head.row_bytes(r), &mut row),
                _ => head.row_to_f32(r, &mut row),
            }
            let (scale, l1) = encode_row(kernels.isa(), &row, &inverse_columns, out);
            scales[r].store(scale.to_bits(), Ordering::Relaxed);
            code_l1[r].store(l1, Ordering::Relaxed);
            Ok::<(), Error>(())
        })?;
        Ok(Self {
            rows,
            cols,
            codes,
            scales: scales
                .into_iter()
                .map(|s| f64::from_bits(s.into_inner()))
                .collect(),
            column_scales,
            code_l1: code_l1.into_iter().map(AtomicU32::into_inner).collect(),
            max_code,
        })
    }

    /// Bytes of the copy (codes, scales and Σ|q|).
    pub fn bytes(&self) -> usize {
        self.codes.len() + self.rows * 12 + self.cols * 8
    }

    /// The top `k` logits of `head` (the matrix this copy was built from) for the final-norm
    /// output `x`, exactly as `TopLogits::from_logits(head.matmul(x), k)` gives them.
    pub fn top(
        &self,
        kernels: &Kernels,
        head: &DenseMatrix<'_>,
        x: &[f32],
        k: usize,
        stats: &mut ScreenStats,
    ) -> Result<TopLogits, Error> {
        let shape = head.shape();
        if shape.rows != self.rows || shape.cols != self.cols || x.len() != self.cols {
            return Err(Error::Invalid(format!(
                "screened head: a {}x{} copy cannot screen a {}x{} head for {} activations",
                self.rows,
                self.cols,
                shape.rows,
                shape.cols,
                x.len()
            )));
        }
        stats.tokens += 1;
        let k = k.clamp(1, self.rows.max(1));
        let operand = head.float_operand(x).unwrap_or_default();
        let candidates = match self.candidates(kernels, &operand, k) {
            Some(c) if !c.is_empty() && c.len() <= self.rows / MAX_CANDIDATE_FRACTION => c,
            _ => {
                stats.full_passes += 1;
                return full_head_top(kernels, head, x, k);
            }
        };
        stats.candidates += candidates.len();
        // Recomputed on the pool: top-40 sampling keeps ~2000 rows of 2B-4T (10 MB of F16).
        let n = candidates.len();
        let mut exact = vec![0f32; n.div_ceil(RECOMPUTE_ROWS) * RECOMPUTE_ROWS];
        kernels.for_each_row(&mut exact, RECOMPUTE_ROWS, |task, out| {
            let rows =
                &candidates[(task * RECOMPUTE_ROWS).min(n)..((task + 1) * RECOMPUTE_ROWS).min(n)];
            head.float_row_dots(kernels, rows, &operand, &mut out[..rows.len()])
        })?;
        exact.truncate(n);
        // Candidates are in row order, so their positions order ties as row ids do, and the
        // top of `exact` (greedy's first largest included) is the top of all the rows.
        let top = TopLogits::from_logits(&exact, k)
            .ok_or_else(|| Error::Invalid("screened head: no candidates".into()))?;
        Ok(TopLogits {
            entries: top
                .entries
                .iter()
                .map(|&(i, v)| (candidates[i], v))
                .collect(),
            argmax: candidates[top.argmax],
        })
    }

    /// The rows, in order, whose upper bound reaches the k-th largest lower bound; `None` when
    /// the activations are not finite (the bound means nothing then).
    fn candidates(&self, kernels: &Kernels, operand: &[f32], k: usize) -> Option<Vec<usize>> {
        if operand.iter().any(|v| !v.is_finite()) {
            return None;
        }
        // The copy holds w / c, so it multiplies c·x.
        let scaled: Vec<f64> = operand
            .iter()
            .zip(&self.column_scales)
            .map(|(&v, &c)| f64::from(v) * c)
            .collect();
        let x_max = scaled.iter().fold(0f64, |m, &v| m.max(v.abs()));
        if !x_max.is_finite() {
            return None;
        }
        let step = x_max / f64::from(self.max_code);
        let x_codes: Vec<i16> = scaled
            .iter()
            .map(|&v| match step > 0.0 {
                true => round_to_code(v / step, self.max_code) as i16,
                false => 0,
            })
            .collect();
        let x_l1: f64 = scaled.iter().map(|v| v.abs()).sum();
        let n = (self.cols + 2) as f64 * f64::from(f32::EPSILON) / 2.0;
        let gamma = n / (1.0 - n);
        let slack = 1.0 + 1e-6;
        // bound_r = s_r · (per_scale + per_code_l1 · ‖q_r‖₁) + 1e-6·|logit_r| + tiny
        let per_scale = x_l1 * (0.5 + 127.0 * gamma) * slack;
        let per_code_l1 = step * 0.5 * slack;
        // Each task keeps its own k largest lower bounds and the rows whose upper bound reaches
        // the smallest of them. The k-th largest over all rows is at least that, so the rows a
        // task leaves out cannot be candidates, and no per-row buffer is needed.
        let mut tasks = vec![TaskTop::default(); self.rows.div_ceil(ROWS_PER_TASK)];
        let cols = self.cols;
        let done = kernels.for_each_row(&mut tasks, 1, |task, slot| {
            let r0 = task * ROWS_PER_TASK;
            let n = ROWS_PER_TASK.min(self.rows - r0);
            let mut sums = [0i32; ROWS_PER_TASK];
            kernels.i8_dots(&self.codes[r0 * cols..], cols, &x_codes, &mut sums[..n])?;
            let mut bounds = [(0f64, 0f64); ROWS_PER_TASK];
            let mut best = Vec::with_capacity(k + 1);
            for (i, (b, &sum)) in bounds.iter_mut().zip(&sums[..n]).enumerate() {
                let s = self.scales[r0 + i];
                let logit = s * step * f64::from(sum);
                let bound = s * (per_scale + per_code_l1 * f64::from(self.code_l1[r0 + i]))
                    + 1e-6 * logit.abs()
                    + 1e-30;
                *b = (logit - bound, logit + bound);
                keep_largest(&mut best, logit - bound, k);
            }
            let local = match best.len() == k {
                true => best[k - 1],
                false => f64::NEG_INFINITY,
            };
            slot[0] = TaskTop {
                rows: (0..n)
                    .filter(|&i| bounds[i].1 >= local)
                    .map(|i| (r0 + i, bounds[i].1))
                    .collect(),
                best,
            };
            Ok::<(), Error>(())
        });
        done.ok()?;
        let mut best = Vec::with_capacity(k + 1);
        for t in &tasks {
            t.best
                .iter()
                .for_each(|&lower| keep_largest(&mut best, lower, k));
        }
        let threshold = match best.len() == k {
            true => best[k - 1],
            false => f64::NEG_INFINITY,
        };
        Some(
            tasks
                .iter()
                .flat_map(|t| &t.rows)
                .filter(|&&(_, upper)| upper >= threshold)
                .map(|&(r, _)| r)
                .collect(),
        )
    }
}

/// The top `k` logits of `head` for `x`, through the full matmul: what a screen computes
/// exactly, and what runs without one or when screening cannot help.
pub fn full_head_top(
    kernels: &Kernels,
    head: &DenseMatrix<'_>,
    x: &[f32],
    k: usize,
) -> Result<TopLogits, Error> {
    let mut logits = vec![0f32; head.shape().rows];
    head.matmul(kernels, x, &mut logits)?;
    TopLogits::from_logits(&logits, k)
        .ok_or_else(|| Error::Invalid("the lm_head has no rows".into()))
}

/// What one task of the screening pass hands back.
#[derive(Debug, Clone, Default)]
struct TaskTop {
    /// Its k largest lower bounds, largest first.
    best: Vec<f64>,
    /// `(row, upper bound)` of its rows whose upper bound reaches the smallest of `best`, in
    /// row order.
    rows: Vec<(usize, f64)>,
}

/// Inserts `value` into `best` (descending, at most `k` long) if it is among the k largest.
fn keep_largest(best: &mut Vec<f64>, value: f64, k: usize) {
    if best.len() < k || value > best[k - 1] {
        let at = best.partition_point(|&b| b >= value);
        best.insert(at, value);
        best.truncate(k);
    }
}

/// `y` rounded to the nearest integer (halves away from zero) and clamped to ±`max`; by
/// truncation, since `f64::round` is a libm call on the x86-64 baseline.
fn round_to_code(y: f64, max: i32) -> i32 {
    ((y + 0.5f64.copysign(y)) as i32).clamp(-max, max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Shape;
    use crate::runtime::kernels::Isa;
    use half::{bf16, f16};

    /// Deterministic values in [-1, 1).
    fn uniform(seed: u64, n: usize) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn encode(ty: GgmlType, values: &[f32]) -> Vec<u8> {
        match ty {
            GgmlType::F16 => values
                .iter()
                .flat_map(|&v| f16::from_f32(v).to_le_bytes())
                .collect(),
            GgmlType::BF16 => values
                .iter()
                .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
                .collect(),
            _ => values.iter().flat_map(|&v| v.to_le_bytes()).collect(),
        }
    }

    /// `bytes` as a `rows × cols` lm_head of type `ty`.
    fn head_of(bytes: &[u8], ty: GgmlType, rows: usize, cols: usize) -> DenseMatrix<'_> {
        DenseMatrix::new("output.weight", ty, bytes, Shape::new(rows, cols)).unwrap()
    }

    fn all_kernels() -> Vec<Kernels> {
        let mut k = vec![Kernels::new(1, Some(Isa::Scalar)).unwrap()];
        if Isa::Avx2.available() {
            k.push(Kernels::new(2, Some(Isa::Avx2)).unwrap());
        }
        k
    }

    /// Screens `x` against the head of `values` and checks the result against the full
    /// logits' top k, bit for bit; returns the stats.
    fn check(ty: GgmlType, values: &[f32], rows: usize, x: &[f32], ks: &[usize]) -> ScreenStats {
        let bytes = encode(ty, values);
        let head = head_of(&bytes, ty, rows, x.len());
        let mut stats = ScreenStats::default();
        for kernels in all_kernels() {
            let screen = HeadScreen::build(&head, &kernels).unwrap();
            let mut logits = vec![0f32; rows];
            head.matmul(&kernels, x, &mut logits).unwrap();
            for &k in ks {
                let want = TopLogits::from_logits(&logits, k).unwrap();
                let got = screen.top(&kernels, &head, x, k, &mut stats).unwrap();
                let bits = |t: &TopLogits| -> Vec<(usize, u32)> {
                    t.entries.iter().map(|&(i, v)| (i, v.to_bits())).collect()
                };
                assert_eq!(bits(&got), bits(&want), "{ty:?} k={k}");
                assert_eq!(got.argmax, want.argmax, "{ty:?} k={k}");
            }
        }
        stats
    }

    #[test]
    fn screened_top_k_equals_the_full_heads_top_k() {
        for (seed, ty) in [(1, GgmlType::F16), (2, GgmlType::BF16), (3, GgmlType::F32)] {
            let (rows, cols) = (3000, 77);
            let w = uniform(seed, rows * cols);
            let x = uniform(seed + 100, cols);
            let stats = check(ty, &w, rows, &x, &[1, 2, 40, rows]);
            // It screens: few rows recomputed for k ≤ 40 (k = rows runs the full head).
            assert!(stats.full_passes <= 2, "{stats:?}");
            assert!(stats.candidates < stats.tokens * rows / 20, "{stats:?}");
        }
    }

    #[test]
    fn near_ties_below_the_codes_step_are_all_recomputed() {
        // Rows that differ by less than one code step look alike through the 8-bit copy, but
        // their exact logits are ordered: a bound that is too small would pick the wrong one.
        let (rows, cols) = (2000, 64);
        let base = uniform(7, cols);
        let noise = uniform(8, rows * cols);
        let far = uniform(9, rows * cols);
        let x = uniform(10, cols);
        for (ty, eps) in [
            (GgmlType::F32, 1e-4),
            (GgmlType::F16, 2e-3),
            (GgmlType::BF16, 1e-2),
        ] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|i| match (i / cols) % 10 {
                    0 => base[i % cols] + eps * noise[i],
                    _ => 0.9 * far[i],
                })
                .collect();
            let stats = check(ty, &w, rows, &x, &[1, 5, 40]);
            assert_eq!(stats.full_passes, 0, "{ty:?} {stats:?}");
        }
    }

    #[test]
    fn rows_at_the_worst_case_of_the_bound_are_still_found() {
        // Row A's weights sit 0.49 of a step above their codes in the direction of x, row B's
        // 0.49 below, and B's codes are one step higher at 57 of 63 positions: the copy ranks
        // B first by 57 steps·|x|, the exact logits rank A first by 61.74 − 57. Only a bound of
        // at least ~0.9 of the proven one keeps A.
        let (rows, cols, step) = (200, 64, 1.0 / 127.0);
        let sign = |k: usize| if k % 3 == 0 { -1.0f32 } else { 1.0 };
        let x: Vec<f32> = (0..cols)
            .map(|k| if k == 0 { 0.0 } else { sign(k) })
            .collect();
        let code = |k: usize| sign(k) * (((k * 7) % 20) as f32 + 5.0);
        let far = uniform(15, rows * cols);
        let mut w: Vec<f32> = far.iter().map(|v| v * 0.05).collect();
        // Row 0 has |w| = 1 in every column (and a low logit), so every column's scale is 1.
        for (k, v) in w[..cols].iter_mut().enumerate() {
            *v = if k == 0 { 1.0 } else { -sign(k) };
        }
        for (row, higher) in [(120, false), (40, true)] {
            for k in 0..cols {
                w[row * cols + k] = match k {
                    // Both rows' largest weight, 127 steps: the same row step for both.
                    0 => 127.0 * step,
                    _ if higher => step * (code(k) + sign(k) * (f32::from(k < 58) - 0.49)),
                    _ => step * (code(k) + 0.49 * sign(k)),
                };
            }
        }
        let bytes = encode(GgmlType::F32, &w);
        let head = head_of(&bytes, GgmlType::F32, rows, cols);
        let mut logits = vec![0f32; rows];
        let kernels = Kernels::new(1, None).unwrap();
        head.matmul(&kernels, &x, &mut logits).unwrap();
        assert_eq!(TopLogits::from_logits(&logits, 1).unwrap().argmax, 120);
        let stats = check(GgmlType::F32, &w, rows, &x, &[1]);
        assert_eq!(stats.full_passes, 0);
    }

    #[test]
    fn large_columns_do_not_widen_the_bound() {
        // Four columns 20 times larger than the rest: with one step per row they would set it,
        // and about half the rows would be candidates; scaled by column, few are.
        let (rows, cols) = (4000, 128);
        let w: Vec<f32> = uniform(16, rows * cols)
            .iter()
            .enumerate()
            .map(|(i, &v)| if i % cols < 4 { 20.0 * v } else { v })
            .collect();
        let x = uniform(17, cols);
        let stats = check(GgmlType::F16, &w, rows, &x, &[1]);
        assert_eq!(stats.full_passes, 0, "{stats:?}");
        assert!(stats.candidates < stats.tokens * rows / 100, "{stats:?}");
    }

    #[test]
    fn exact_ties_zero_rows_and_zero_activations() {
        let (rows, cols) = (512, 48);
        let mut w = uniform(11, rows * cols);
        // Row 300 repeats row 100 (an exact tie), rows 0..50 are zero.
        let (a, b) = w.split_at_mut(300 * cols);
        b[..cols].copy_from_slice(&a[100 * cols..101 * cols]);
        w[..50 * cols].fill(0.0);
        let x = uniform(12, cols);
        check(GgmlType::F16, &w, rows, &x, &[1, 3, 17]);
        // All activations zero: every logit is 0, every row ties; the full head runs.
        let stats = check(GgmlType::F16, &w, rows, &vec![0.0; cols], &[1, 4]);
        assert_eq!(stats.full_passes, stats.tokens);
    }

    #[test]
    fn activations_that_are_not_finite_run_the_full_head() {
        let (rows, cols) = (64, 16);
        let w = uniform(13, rows * cols);
        let mut x = uniform(14, cols);
        x[3] = f32::NAN;
        let bytes = encode(GgmlType::F32, &w);
        let head = head_of(&bytes, GgmlType::F32, rows, cols);
        let kernels = Kernels::new(1, None).unwrap();
        let screen = HeadScreen::build(&head, &kernels).unwrap();
        let mut stats = ScreenStats::default();
        screen.top(&kernels, &head, &x, 2, &mut stats).unwrap();
        assert_eq!(stats.full_passes, 1);
    }

    #[test]
    fn quantized_or_non_finite_heads_are_refused() {
        let kernels = Kernels::new(1, None).unwrap();
        let q8 = vec![0u8; 34 * 4];
        let head = head_of(&q8, GgmlType::Q8_0, 4, 32);
        let err = HeadScreen::build(&head, &kernels).unwrap_err().to_string();
        assert!(err.contains("Q8_0"), "{err}");
        let mut w = vec![0.5f32; 8 * 16];
        w[5 * 16 + 2] = f32::INFINITY;
        let bytes = encode(GgmlType::F32, &w);
        let head = head_of(&bytes, GgmlType::F32, 8, 16);
        let err = HeadScreen::build(&head, &kernels).unwrap_err().to_string();
        assert!(err.contains("row 5"), "{err}");
        // F16 takes its column maxima on the bits: a NaN or an infinity of either sign is
        // still found, and named by row and column.
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut w = vec![-0.25f32; 1100 * 16];
            w[1030 * 16 + 7] = bad;
            let bytes = encode(GgmlType::F16, &w);
            let head = head_of(&bytes, GgmlType::F16, 1100, 16);
            let err = HeadScreen::build(&head, &kernels).unwrap_err().to_string();
            assert!(err.contains("row 1030 column 7"), "{err}");
        }
    }

    #[test]
    fn f16_column_maxima_equal_the_converted_values() {
        // Signs, subnormals, zero columns and the largest finite f16, over two tasks of rows.
        let (rows, cols) = (1500, 12);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| {
                let (r, c) = (i / cols, i % cols);
                match c {
                    0 => 0.0,
                    1 => -(r as f32) * 1e-3,
                    2 => 6e-8 * (r % 7) as f32,
                    3 if r == 1234 => -65504.0,
                    _ => ((r * 31 + c * 17) % 101) as f32 / 50.0 - 1.0,
                }
            })
            .collect();
        let bytes = encode(GgmlType::F16, &values);
        let head = head_of(&bytes, GgmlType::F16, rows, cols);
        for kernels in all_kernels() {
            let screen = HeadScreen::build(&head, &kernels).unwrap();
            for c in 0..cols {
                let max = (0..rows)
                    .map(|r| f16::from_f32(values[r * cols + c]).to_f32().abs())
                    .fold(0f32, f32::max);
                let expected = if max > 0.0 { f64::from(max) } else { 1.0 };
                assert_eq!(screen.column_scales[c], expected, "column {c}");
            }
        }
    }

    #[test]
    fn screening_pays_for_long_top_k_runs_of_float_heads() {
        let long = SCREEN_MIN_TOKENS;
        for ty in [GgmlType::F16, GgmlType::BF16, GgmlType::F32] {
            assert!(screening_pays(ty, Some(1), long));
            assert!(screening_pays(ty, Some(40), 10 * long));
            assert!(
                !screening_pays(ty, Some(1), long - 1),
                "too short to repay the build"
            );
            assert!(
                !screening_pays(ty, None, long),
                "sampling reads every logit"
            );
        }
        for ty in [GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q6_K] {
            assert!(
                !screening_pays(ty, Some(1), long),
                "{ty:?} is already small"
            );
        }
    }

    fn isas() -> Vec<Isa> {
        all_kernels().iter().map(Kernels::isa).collect()
    }

    #[test]
    fn f16_rows_convert_as_half_does_for_every_bit_pattern() {
        let bytes: Vec<u8> = (0..=u16::MAX).flat_map(u16::to_le_bytes).collect();
        for isa in isas() {
            let mut out = vec![0f32; 1 << 16];
            f16_row_to_f32(isa, &bytes, &mut out);
            for (h, &v) in (0..=u16::MAX).zip(&out) {
                let want = f16::from_bits(h).to_f32();
                match want.is_nan() {
                    true => assert!(v.is_nan(), "{h:#06x} on {isa:?}: {v}"),
                    false => assert_eq!(v.to_bits(), want.to_bits(), "{h:#06x} on {isa:?}"),
                }
            }
        }
    }

    #[test]
    fn row_codes_are_nearest_and_the_same_on_every_isa() {
        // Lengths around the 4-wide lanes, zero and subnormal values, and the all-zero row.
        for (len, seed) in [(1, 1), (7, 2), (64, 3), (2563, 4), (9, 5)] {
            let mut row = uniform(seed, len);
            row.iter_mut().step_by(5).for_each(|v| *v *= 1e-41);
            if seed == 5 {
                row.fill(0.0);
            }
            let inverse: Vec<f64> = uniform(seed + 10, len)
                .iter()
                .map(|v| 1.5 + f64::from(*v))
                .collect();
            let mut results = Vec::new();
            for isa in isas() {
                let mut codes = vec![0i8; len];
                let (scale, l1) = encode_row(isa, &row, &inverse, &mut codes);
                assert_eq!(
                    l1,
                    codes
                        .iter()
                        .map(|q| u32::from(q.unsigned_abs()))
                        .sum::<u32>()
                );
                if seed == 5 {
                    assert_eq!((scale, l1), (0.0, 0));
                    continue;
                }
                assert_eq!(codes.iter().map(|q| q.unsigned_abs()).max(), Some(127));
                for ((&v, &ic), &q) in row.iter().zip(&inverse).zip(&codes) {
                    let y = f64::from(v) * ic / scale;
                    assert!((y - f64::from(q)).abs() <= 0.5 + 1e-9, "{y} coded {q}");
                }
                results.push((scale.to_bits(), l1, codes));
            }
            assert!(results.windows(2).all(|w| w[0] == w[1]), "length {len}");
        }
    }
}
