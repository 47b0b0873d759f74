//! Scalar reference kernels: always built, written to follow the specs line by line.
//!
//! Every function here has a twin of the same name in `avx2.rs`; both produce identical integer
//! accumulators. Inputs are validated by the dispatcher (`mod.rs`); slice lengths are the
//! contract stated on each function.

use super::lut::{tl1_entry, tl2_entry};
use super::{Tl1Tile, Tl2Tile};

/// I2_S: raw `R = Σ code·q` (codes 0..2, `i2s.md` §7 step 2) for `out.len() / ntok` weight rows
/// (`k / 4` bytes each, blocks of 128 values in 32 bytes) against `ntok` activation rows of `q`.
/// `out[token * rows + row]`.
pub fn i2s_dot_rows(w: &[u8], k: usize, q: &[i8], ntok: usize, out: &mut [i32]) {
    let row_bytes = k / 4;
    let nrows = out.len() / ntok.max(1);
    for (t, out_tok) in out.chunks_exact_mut(nrows.max(1)).take(ntok).enumerate() {
        let qt = &q[t * k..(t + 1) * k];
        for (r, o) in out_tok.iter_mut().enumerate() {
            let row = &w[r * row_bytes..(r + 1) * row_bytes];
            let mut acc = 0i32;
            for (bytes, a) in row.chunks_exact(32).zip(qt.chunks_exact(128)) {
                for (b, &byte) in bytes.iter().enumerate() {
                    acc += i32::from((byte >> 6) & 3) * i32::from(a[b])
                        + i32::from((byte >> 4) & 3) * i32::from(a[b + 32])
                        + i32::from((byte >> 2) & 3) * i32::from(a[b + 64])
                        + i32::from(byte & 3) * i32::from(a[b + 96]);
                }
            }
            *o = acc;
        }
    }
}

/// TL1: exact `Σ_k w[m][k]·q[k]` for the `tile_rows` rows of one tile, read in the stored byte
/// order of `tl1.md` §3 and looked up in the LUT of §6.2. Accumulates in i32 (upstream keeps
/// int16 per BK block; identical for legal tilings).
pub fn tl1_tile(tile: Tl1Tile<'_>, lut: &[u8], out: &mut [i32]) {
    let Tl1Tile {
        bytes,
        k,
        tile_rows,
        block_k,
        simd_rows,
    } = tile;
    let by = 256 / simd_rows;
    out[..tile_rows].fill(0);
    let mut off = 0;
    for kb in 0..k / block_k {
        for sb in 0..tile_rows / simd_rows {
            for cb in 0..block_k / by {
                for rg in 0..simd_rows / 16 {
                    for pq in 0..by / 4 {
                        let p0 = (kb * block_k + cb * by) / 2 + 2 * pq;
                        for r in 0..16 {
                            let m = sb * simd_rows + rg * 16 + r;
                            let byte = bytes[off];
                            off += 1;
                            out[m] += i32::from(tl1_entry(lut, p0, byte >> 4))
                                + i32::from(tl1_entry(lut, p0 + 1, byte & 15));
                        }
                    }
                }
            }
        }
    }
}

/// Row of a 32-row TL2 block stored at byte position `pos` (`tl2.md` §3).
pub(super) fn tl2_row_of_pos(pos: usize) -> usize {
    [0, 16, 8, 24][pos / 8] + pos % 8
}

/// TL2: exact `Σ_k w[m][k]·q[k]` for one tile (`tl2.md` §3, §6.3): three part with sign plane,
/// then the two part.
pub fn tl2_tile(tile: Tl2Tile<'_>, lut3: &[u8], lut2: &[u8], out: &mut [i32]) {
    let bm = 32;
    let nsb = tile.tile_rows / bm;
    out[..tile.tile_rows].fill(0);
    // Section A: index bytes.
    let mut off = 0;
    for kb in 0..tile.three_k / tile.block_k {
        for sb in 0..nsb {
            for cb in 0..tile.block_k / 6 {
                let t0 = (kb * tile.block_k + cb * 6) / 3;
                for pos in 0..32 {
                    let m = sb * bm + tl2_row_of_pos(pos);
                    let byte = tile.three[off];
                    off += 1;
                    let sign_hi = tl2_sign(tile, m, t0);
                    let sign_lo = tl2_sign(tile, m, t0 + 1);
                    let v_hi = i32::from(tl2_entry(lut3, t0, byte >> 4));
                    let v_lo = i32::from(tl2_entry(lut3, t0 + 1, byte & 15));
                    out[m] += if sign_hi { -v_hi } else { v_hi };
                    out[m] += if sign_lo { -v_lo } else { v_lo };
                }
            }
        }
    }
    // Section C: the two-weight remainder.
    let mut off = 0;
    for kb in 0..tile.two_k / 32 {
        for sb in 0..nsb {
            for cb in 0..8 {
                let p0 = kb * 16 + cb * 2;
                for pos in 0..32 {
                    let m = sb * bm + tl2_row_of_pos(pos);
                    let byte = tile.two[off];
                    off += 1;
                    out[m] += i32::from(tl2_entry(lut2, p0, byte >> 4))
                        + i32::from(tl2_entry(lut2, p0 + 1, byte & 15));
                }
            }
        }
    }
}

/// Sign bit of triplet `t` (tile-relative K order) for tile row `m`, from section B.
fn tl2_sign(tile: Tl2Tile<'_>, m: usize, t: usize) -> bool {
    let (sb, row) = (m / 32, m % 32);
    let k = t * 3;
    let (kb, in_block) = (k / tile.block_k, k % tile.block_k);
    let (sg, i) = (in_block / 24, (in_block % 24) / 3);
    let nsb = tile.tile_rows / 32;
    let block = ((kb * nsb + sb) * (tile.block_k / 24) + sg) * 32;
    let j = row % 16;
    let word = u16::from_le_bytes([tile.signs[block + 2 * j], tile.signs[block + 2 * j + 1]]);
    let bit = if row < 16 { 15 - 2 * i } else { 14 - 2 * i };
    (word >> bit) & 1 == 1
}

/// TQ2_0: raw `Σ code·q` per 256-value block (codes 0..2, value = code − 1), for one weight row
/// of `out.len()` blocks of 66 bytes (`qs[64]` then f16 `d`). Element `j*4 + l*32 + m` of a block
/// sits in `qs[j + m]` at bit shift `2l`, j ∈ {0, 32} (ggml `dequantize_row_tq2_0`).
pub fn tq2_0_row(row: &[u8], q: &[i8], out: &mut [i32]) {
    for ((block, a), o) in row
        .chunks_exact(66)
        .zip(q.chunks_exact(256))
        .zip(out.iter_mut())
    {
        let mut acc = 0i32;
        for j in [0, 32] {
            for l in 0..4 {
                for m in 0..32 {
                    let code = (block[j + m] >> (2 * l)) & 3;
                    acc += i32::from(code) * i32::from(a[j * 4 + l * 32 + m]);
                }
            }
        }
        *o = acc;
    }
}

/// Trit `n` (0 = most significant) of a TQ1_0 byte, as the code 0..2 (ggml: `q = b·3^n mod 256`,
/// `(q·3) >> 8`).
pub(super) fn tq1_trit(byte: u8, n: usize) -> u8 {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    let q = byte.wrapping_mul(POW3[n]);
    ((u16::from(q) * 3) >> 8) as u8
}

/// TQ1_0: raw `Σ code·q` per 256-value block of 54 bytes (`qs[48]`, `qh[4]`, f16 `d`). Element
/// order (ggml `dequantize_row_tq1_0`): `qs[m]`, m < 32, trit n → element `n*32 + m`;
/// `qs[32 + m]`, m < 16 → `160 + n*16 + m`; `qh[j]` trit n < 4 → `240 + n*4 + j`.
pub fn tq1_0_row(row: &[u8], q: &[i8], out: &mut [i32]) {
    for ((block, a), o) in row
        .chunks_exact(54)
        .zip(q.chunks_exact(256))
        .zip(out.iter_mut())
    {
        let mut acc = 0i32;
        for n in 0..5 {
            for m in 0..32 {
                acc += i32::from(tq1_trit(block[m], n)) * i32::from(a[n * 32 + m]);
            }
            for m in 0..16 {
                acc += i32::from(tq1_trit(block[32 + m], n)) * i32::from(a[160 + n * 16 + m]);
            }
        }
        for n in 0..4 {
            for j in 0..4 {
                acc += i32::from(tq1_trit(block[48 + j], n)) * i32::from(a[240 + n * 4 + j]);
            }
        }
        *o = acc;
    }
}

/// F16 matvec: `out[r] = Σ_k f32(w_r[k]) · x[k]` for `out.len()` rows of `x.len()` little-endian
/// f16 values, row r starting at byte `r * row_stride`, summed as [`lane_dot`] does.
pub fn f16_rows(w: &[u8], row_stride: usize, x: &[f32], out: &mut [f32]) {
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * row_stride..][..x.len() * 2];
        *o = lane_dot(|i| f16_at(&row[2 * i..]), x);
    }
}

/// F32 matvec over little-endian f32 rows, as [`f16_rows`].
pub fn f32_rows(w: &[u8], row_stride: usize, x: &[f32], out: &mut [f32]) {
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * row_stride..][..x.len() * 4];
        *o = lane_dot(|i| f32_at(&row[4 * i..]), x);
    }
}

/// `Σ_i w(i)·x[i]` in the order of the AVX2 kernel, so both give the same bits: element i of
/// the first `K − K mod 16` goes to lane `i mod 16` (a separate multiply and add, not fused);
/// the lanes fold 8+8, 4+4, 2+2, 1+1; the last `K mod 16` products are summed in order and
/// added at the end.
fn lane_dot(w: impl Fn(usize) -> f32, x: &[f32]) -> f32 {
    let k16 = x.len() / 16 * 16;
    let mut lanes = [0f32; 16];
    for (i, &xv) in x[..k16].iter().enumerate() {
        lanes[i % 16] += w(i) * xv;
    }
    let tail: f32 = (k16..x.len()).map(|i| w(i) * x[i]).sum();
    fold8(std::array::from_fn(|l| lanes[l] + lanes[l + 8])) + tail
}

/// The sum of 8 lanes in the AVX2 kernels' order (`avx2::hsum_f32`): 4+4, then 2+2, then 1+1.
pub(super) fn fold8(s: [f32; 8]) -> f32 {
    let u: [f32; 4] = std::array::from_fn(|l| s[l] + s[l + 4]);
    (u[0] + u[2]) + (u[1] + u[3])
}

/// Integer matvec of the lm_head's 8-bit screening copy: `out[r] = Σ_k w_r[k] · x[k]` for
/// `out.len()` rows of `x.len()` i8 codes, row r starting at element `r * row_stride`, in i32.
/// The caller keeps `127 · max|x| · K` below 2³¹, so no sum overflows.
pub fn i8_rows(w: &[i8], row_stride: usize, x: &[i16], out: &mut [i32]) {
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * row_stride..][..x.len()];
        *o = row
            .iter()
            .zip(x)
            .map(|(&a, &b)| i32::from(a) * i32::from(b))
            .sum();
    }
}

/// Weighted sum of F16 rows: `out[j] += Σ_p weights[p] · f32(v_p[j])` over `weights.len()` rows
/// of `out.len()` values, row p starting at byte `p * row_stride`. In order of p, multiply then
/// add (not fused), so the AVX2 kernel's lanes give the same bits.
pub fn f16_weighted_rows(v: &[u8], row_stride: usize, weights: &[f32], out: &mut [f32]) {
    for (p, &wp) in weights.iter().enumerate() {
        let row = &v[p * row_stride..][..out.len() * 2];
        for (o, h) in out.iter_mut().zip(row.chunks_exact(2)) {
            *o += wp * f16_at(h);
        }
    }
}

/// Weighted sum of F32 rows, as [`f16_weighted_rows`].
pub fn f32_weighted_rows(v: &[u8], row_stride: usize, weights: &[f32], out: &mut [f32]) {
    for (p, &wp) in weights.iter().enumerate() {
        let row = &v[p * row_stride..][..out.len() * 4];
        for (o, b) in out.iter_mut().zip(row.chunks_exact(4)) {
            *o += wp * f32_at(b);
        }
    }
}

/// The little-endian f16 at the start of `b`, as f32 (also the AVX2 kernels' scalar tails).
pub(super) fn f16_at(b: &[u8]) -> f32 {
    half::f16::from_le_bytes([b[0], b[1]]).to_f32()
}

/// The little-endian f32 at the start of `b`.
pub(super) fn f32_at(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Q8_0 × Q8_0: exact `Σ w·q` per 32-value block of one row of `out.len()` blocks of 34 bytes
/// (f16 `d` then `qs[32]`, ggml `block_q8_0`), and each block's `d` as f32 in `d_out`.
pub fn q8_0_row(row: &[u8], q: &[i8], out: &mut [i32], d_out: &mut [f32]) {
    for (((block, a), o), d) in row
        .chunks_exact(34)
        .zip(q.chunks_exact(32))
        .zip(out.iter_mut())
        .zip(d_out.iter_mut())
    {
        *d = f16_at(block);
        *o = block[2..]
            .iter()
            .zip(a)
            .map(|(&w, &x)| i32::from(w as i8) * i32::from(x))
            .sum();
    }
}

/// Q4_0 × Q8_0: exact `Σ (nibble − 8)·q` per 32-value block of one row of `out.len()` blocks of
/// 18 bytes (f16 `d` then `qs[16]`, ggml `block_q4_0`: value j is the low nibble of `qs[j]`,
/// value j + 16 the high one), and each block's `d` as f32 in `d_out`.
pub fn q4_0_row(row: &[u8], q: &[i8], out: &mut [i32], d_out: &mut [f32]) {
    for (((block, a), o), d) in row
        .chunks_exact(18)
        .zip(q.chunks_exact(32))
        .zip(out.iter_mut())
        .zip(d_out.iter_mut())
    {
        *d = f16_at(block);
        *o = block[2..]
            .iter()
            .enumerate()
            .map(|(j, &w)| {
                let (lo, hi) = (i32::from(w & 15) - 8, i32::from(w >> 4) - 8);
                lo * i32::from(a[j]) + hi * i32::from(a[j + 16])
            })
            .sum();
    }
}

/// Q8_0 × Q8_0 straight to f32 (ggml's `vec_dot_q8_0_q8_0`): for `out.len()` rows of
/// `xd.len()` 34-byte blocks (`xd` the activation block scales), [`q8_0_row`]'s exact block dots
/// combined by [`block_epilogue`], the order the AVX2 kernel keeps too.
pub fn q8_0_rows(rows: &[u8], q: &[i8], xd: &[f32], out: &mut [f32]) {
    q8_blocks_f32(rows, 34, q8_0_row, q, xd, out);
}

/// Q4_0 × Q8_0 straight to f32 (ggml's `vec_dot_q4_0_q8_0`), as [`q8_0_rows`] over 18-byte
/// blocks with [`q4_0_row`].
pub fn q4_0_rows(rows: &[u8], q: &[i8], xd: &[f32], out: &mut [f32]) {
    q8_blocks_f32(rows, 18, q4_0_row, q, xd, out);
}

/// [`q4_0_rows`] on rows interleaved by 8 (`Q4_0x8Weights`): each row's ggml blocks are put
/// back together and run through [`q4_0_rows`], so the outputs are those of the matrix before
/// interleaving. `_sums` (Σq per block) is for the AVX2 kernel's `−8`.
pub fn q4_0x8_rows(groups: &[u8], q: &[i8], xd: &[f32], _sums: &[i32], out: &mut [f32]) {
    let nb = xd.len();
    let mut row = vec![0u8; nb * 18];
    for (group, outs) in groups.chunks_exact(nb * 144).zip(out.chunks_exact_mut(8)) {
        for (i, o) in outs.iter_mut().enumerate() {
            for (block, src) in row.chunks_exact_mut(18).zip(group.chunks_exact(144)) {
                for (byte, v) in block.iter_mut().enumerate() {
                    *v = src[super::q4_0x8_offset(i, byte)];
                }
            }
            q4_0_rows(&row, q, xd, std::slice::from_mut(o));
        }
    }
}

/// Each row's exact block dots (`block_dots`) through [`block_epilogue`].
fn q8_blocks_f32(
    rows: &[u8],
    block_bytes: usize,
    block_dots: super::Q8RowFn,
    q: &[i8],
    xd: &[f32],
    out: &mut [f32],
) {
    let nb = xd.len();
    let (mut dots, mut dw) = (vec![0i32; nb], vec![0f32; nb]);
    for (row, o) in rows.chunks_exact(nb * block_bytes).zip(out.iter_mut()) {
        block_dots(row, q, &mut dots, &mut dw);
        *o = block_epilogue(&dots, &dw, xd);
    }
}

/// The float epilogue of a block-quantized row: `Σ_b (d_w[b] · d_x[b]) · dots[b]`, block b added
/// (multiply, then add, not fused) into partial sum b mod 8, the partials folded by [`fold8`].
/// Every ISA's Q8_0, Q4_0 and Q6_K matmul sums in this order.
pub(super) fn block_epilogue(dots: &[i32], dw: &[f32], xd: &[f32]) -> f32 {
    let mut part = [0f32; 8];
    for (b, ((&v, &d), &xv)) in dots.iter().zip(dw).zip(xd).enumerate() {
        part[b % 8] += (d * xv) * v as f32;
    }
    fold8(part)
}

/// Q6_K × Q8_K: for each 256-value block of one row (`out.len()` blocks of 210 bytes, ggml
/// `block_q6_K`), the exact `Σ_j scale_j · Σ_{i in sub-block j} (code_i − 32) · q_i`, and the
/// block's `d` as f32 in `d_out`. `bsums` (the activations' 16-value sums) is not needed here:
/// the reference subtracts the 32 per value, the AVX2 kernel per sub-block.
pub fn q6_k_row(row: &[u8], q: &[i8], _bsums: &[i16], out: &mut [i32], d_out: &mut [f32]) {
    use crate::layout::q6_k::{code, BLOCK_BYTES, BLOCK_VALUES};
    for (((block, a), o), d) in row
        .chunks_exact(BLOCK_BYTES)
        .zip(q.chunks_exact(BLOCK_VALUES))
        .zip(out.iter_mut())
        .zip(d_out.iter_mut())
    {
        *d = f16_at(&block[208..]);
        *o = a
            .chunks_exact(16)
            .enumerate()
            .map(|(j, sub)| {
                let dot: i32 = sub
                    .iter()
                    .enumerate()
                    .map(|(i, &x)| (i32::from(code(block, j * 16 + i)) - 32) * i32::from(x))
                    .sum();
                i32::from(block[192 + j] as i8) * dot
            })
            .sum();
    }
}
