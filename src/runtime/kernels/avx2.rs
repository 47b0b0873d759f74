//! AVX2 kernels, same names and contracts as `scalar.rs`.
//!
//! The public (to `kernels`) functions are safe wrappers: they are only reachable through
//! `KernelTable::for_isa(Isa::Avx2)`, which checks AVX2, FMA and F16C first. Each wrapper asserts
//! the slice lengths its raw-pointer loop relies on.
//!
//! Exactness: I2_S and TQ use `_mm256_maddubs_epi16` of u8 codes (0..3) × i8 activations: a pair
//! sum is at most 2·3·128 = 768, four or eight of them at most 6144, so the i16 stage never
//! saturates; every block is widened to i32 (`_mm256_madd_epi16`), unlike upstream's int16 runs.
//! TL1/TL2 keep int16 partial sums for at most 32 compute blocks (≤ 32·2·384 = 24576) before
//! widening, whatever the tiling's BK.

use super::{cache_aligned_mut, Tl1Tile, Tl2Tile};
use std::arch::x86_64::*;

// ---------------------------------------------------------------------------------------------
// Helpers.

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_i32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn hsum_f32(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: callers pass pointers with 32 readable bytes.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn load16(p: *const u8) -> __m128i {
    // SAFETY: callers pass pointers with 16 readable bytes.
    unsafe { _mm_loadu_si128(p as *const __m128i) }
}

// ---------------------------------------------------------------------------------------------
// I2_S.

/// See `scalar::i2s_dot_rows`.
pub fn i2s_dot_rows(w: &[u8], k: usize, q: &[i8], ntok: usize, out: &mut [i32]) {
    let nrows = out.len() / ntok.max(1);
    assert!(k % 128 == 0 && w.len() >= nrows * (k / 4) && q.len() >= ntok * k);
    // SAFETY: lengths checked above; AVX2 checked when the table was chosen.
    unsafe { i2s_dot_rows_imp(w, k, q, ntok, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn i2s_dot_rows_imp(w: &[u8], k: usize, q: &[i8], ntok: usize, out: &mut [i32]) {
    let nrows = out.len() / ntok.max(1);
    let mut r = 0;
    if ntok >= 4 && nrows >= 2 {
        // Prompt GEMM: int16-accumulating 2×4 tiles (2×4 measured faster than 3×4, 4×2 and
        // 2×6). Tokens are the outer loop so that the 4 tokens' activations (4·K bytes) stay in
        // L1 while every row pair streams past them; the other order re-reads all tokens'
        // activations (up to 128·6912 bytes, the size of L2) for every row pair.
        let (pairs, tiled) = (nrows / 2 * 2, ntok / 4 * 4);
        // The rows' codes are unpacked to one byte each once, here, rather than in every tile,
        // into a buffer each thread keeps between calls.
        UNPACKED.with_borrow_mut(|buf| {
            // SAFETY: AVX2 is this function's own precondition; the lengths are checked inside.
            unsafe { i2s_gemm_unpacked(w, k, q, out, (pairs, tiled, nrows), buf) }
        });
        for r in (0..pairs).step_by(2) {
            for t in tiled..ntok {
                // SAFETY: rows r, r+1 and token t are in range.
                unsafe { i2s_tile::<2, 1>(w, q, out, I2sAt { r, t, nrows, k }) };
            }
        }
        r = pairs;
    }
    while r < nrows {
        // One token: 4 rows share each activation load. Several tokens (the row left over by
        // the GEMM above): each weight row's codes are unpacked once and used for 4 tokens.
        let rr = match (ntok >= 4, nrows - r) {
            (false, n) if n >= 4 => 4,
            (true, n) if n >= 2 => 2,
            _ => 1,
        };
        let mut t = 0;
        while t < ntok {
            let tt = if ntok - t >= 4 { 4 } else { 1 };
            let at = I2sAt { r, t, nrows, k };
            // SAFETY: rows r..r+rr and tokens t..t+tt are in range (rr, tt chosen above).
            unsafe {
                match (rr, tt) {
                    (4, 4) | (4, 1) => i2s_tile::<4, 1>(w, q, out, at),
                    (2, 4) => i2s_tile::<2, 4>(w, q, out, at),
                    (2, 1) => i2s_tile::<2, 1>(w, q, out, at),
                    (1, 4) => i2s_tile::<1, 4>(w, q, out, at),
                    _ => i2s_tile::<1, 1>(w, q, out, at),
                }
            }
            t += if rr == 4 { 1 } else { tt };
        }
        r += rr;
    }
}

thread_local! {
    /// The prompt GEMM's unpacked codes (one byte per weight, up to 17.7 MB for a 2B-4T FFN
    /// matrix), kept per thread between calls and freed when the thread ends: a fresh buffer
    /// per call cost page faults and zeroing every time.
    static UNPACKED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The prompt GEMM over rows `0..pairs` and tokens `0..tiled` (of `nrows` output rows), on
/// the rows' codes unpacked into `buf`.
#[target_feature(enable = "avx2")]
unsafe fn i2s_gemm_unpacked(
    w: &[u8],
    k: usize,
    q: &[i8],
    out: &mut [i32],
    (pairs, tiled, nrows): (usize, usize, usize),
    buf: &mut Vec<u8>,
) {
    let codes = cache_aligned_mut(buf, pairs * k);
    // SAFETY: AVX2 is this function's own precondition; the lengths are asserted inside.
    unsafe { i2s_unpack(&w[..pairs * k / 4], codes) };
    for t in (0..tiled).step_by(4) {
        for r in (0..pairs).step_by(2) {
            // SAFETY: rows r, r+1 and tokens t..t+4 are in range.
            unsafe { i2s_tile_gemm(codes, q, out, I2sAt { r, t, nrows, k }) };
        }
    }
}

#[derive(Clone, Copy)]
struct I2sAt {
    r: usize,
    t: usize,
    nrows: usize,
    k: usize,
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn i2s_tile<const R: usize, const T: usize>(w: &[u8], q: &[i8], out: &mut [i32], at: I2sAt) {
    let I2sAt { r, t, nrows, k } = at;
    let row_bytes = k / 4;
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_si256(); T]; R];
    let wp = w[r * row_bytes..(r + R) * row_bytes].as_ptr();
    let qp = q[t * k..(t + T) * k].as_ptr() as *const u8;
    // The 4 rows of a GEMV tile are 4 short streams (K/4 bytes each), too short for the
    // hardware prefetcher to train on: prefetch the next tile (the same bytes, contiguous after
    // this one) two lines per block, so the whole next tile is requested during this one.
    let next_tile = wp.wrapping_add(R * row_bytes);
    for b in 0..k / 128 {
        if R == 4 && T == 1 {
            let p = next_tile.wrapping_add(b * 32 * R) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
        for (i, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: block b of row r+i lies inside the slice taken above.
            let bytes = unsafe { load(wp.add(i * row_bytes + b * 32)) };
            let c0 = _mm256_and_si256(_mm256_srli_epi16::<6>(bytes), mask);
            let c1 = _mm256_and_si256(_mm256_srli_epi16::<4>(bytes), mask);
            let c2 = _mm256_and_si256(_mm256_srli_epi16::<2>(bytes), mask);
            let c3 = _mm256_and_si256(bytes, mask);
            for (j, acc_rt) in acc_r.iter_mut().enumerate() {
                // SAFETY: activations 0..128 of block b of token t+j are inside the slice.
                let a = unsafe { qp.add(j * k + b * 128) };
                let (a0, a1, a2, a3) =
                    unsafe { (load(a), load(a.add(32)), load(a.add(64)), load(a.add(96))) };
                let p01 =
                    _mm256_add_epi16(_mm256_maddubs_epi16(c0, a0), _mm256_maddubs_epi16(c1, a1));
                let p23 =
                    _mm256_add_epi16(_mm256_maddubs_epi16(c2, a2), _mm256_maddubs_epi16(c3, a3));
                let p = _mm256_madd_epi16(_mm256_add_epi16(p01, p23), ones);
                *acc_rt = _mm256_add_epi32(*acc_rt, p);
            }
        }
    }
    for (i, acc_r) in acc.iter().enumerate() {
        for (j, &v) in acc_r.iter().enumerate() {
            out[(t + j) * nrows + r + i] = unsafe { hsum_i32(v) };
        }
    }
}

/// I2_S bytes to one code (0..=2) per byte in weight order: byte j of a 32-byte block holds
/// weights j, j+32, j+64, j+96 in bits 7-6, 5-4, 3-2, 1-0.
#[target_feature(enable = "avx2")]
unsafe fn i2s_unpack(w: &[u8], codes: &mut [u8]) {
    let mask = _mm256_set1_epi8(3);
    assert_eq!(codes.len(), w.len() * 4);
    for (src, dst) in w.chunks_exact(32).zip(codes.chunks_exact_mut(128)) {
        // SAFETY: 32 source bytes and 4·32 destination bytes per block.
        unsafe {
            let bytes = load(src.as_ptr());
            for (part, shift) in [6, 4, 2, 0].into_iter().enumerate() {
                let c = _mm256_and_si256(_mm256_srl_epi16(bytes, _mm_cvtsi32_si128(shift)), mask);
                _mm256_storeu_si256(dst.as_mut_ptr().add(32 * part) as *mut __m256i, c);
            }
        }
    }
}

/// Two weight rows against 4 tokens for the prompt GEMM, on unpacked codes (one byte each, see
/// [`i2s_unpack`]), summing in int16: codes (0..=2) times int8 activations (≥ −128) give at
/// most 4·2·2·128 = 2048 per int16 lane and 128-value block, so 8 blocks sum to ≤ 16384 before
/// one `madd` widens them (`i2s_tile` widens every block). Each activation load feeds both
/// rows; the 8 accumulators, 2 rows of codes and the activation fit the 16 registers.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn i2s_tile_gemm(codes: &[u8], q: &[i8], out: &mut [i32], at: I2sAt) {
    const R: usize = 2;
    const T: usize = 4;
    const FLUSH: usize = 8;
    let I2sAt { r, t, nrows, k } = at;
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = [[_mm256_setzero_si256(); T]; R];
    let cp = codes[r * k..(r + R) * k].as_ptr();
    let qp = q[t * k..(t + T) * k].as_ptr() as *const u8;
    let blocks = k / 128;
    let mut b0 = 0;
    while b0 < blocks {
        let mut acc16 = [[_mm256_setzero_si256(); T]; R];
        for b in b0..(b0 + FLUSH).min(blocks) {
            for part in 0..4 {
                let at = b * 128 + 32 * part;
                // SAFETY: values at..at+32 of rows r, r+1 lie inside the slice taken above.
                let c = unsafe { [load(cp.add(at)), load(cp.add(k + at))] };
                for j in 0..T {
                    // SAFETY: activations at..at+32 of token t+j are in range.
                    let av = unsafe { load(qp.add(j * k + at)) };
                    for (acc_row, &ci) in acc16.iter_mut().zip(&c) {
                        acc_row[j] = _mm256_add_epi16(acc_row[j], _mm256_maddubs_epi16(ci, av));
                    }
                }
            }
        }
        for (a32, a16) in acc32.iter_mut().zip(&acc16) {
            for (x32, &x16) in a32.iter_mut().zip(a16) {
                *x32 = _mm256_add_epi32(*x32, _mm256_madd_epi16(x16, ones));
            }
        }
        b0 += FLUSH;
    }
    for (i, a32) in acc32.iter().enumerate() {
        for (j, &v) in a32.iter().enumerate() {
            out[(t + j) * nrows + r + i] = unsafe { hsum_i32(v) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TL1 / TL2 table lookups (pshufb on 16-entry byte tables).

/// Looks up the high nibbles of `x` in tables `a` and the low nibbles in tables `b` (each a pair
/// of low-byte/high-byte halves) and returns the int16 sums for byte positions 0..7 and 8..15 of
/// each 128-bit lane.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lookup_pair(
    x: __m256i,
    a_lo: __m256i,
    a_hi: __m256i,
    b_lo: __m256i,
    b_hi: __m256i,
) -> (__m256i, __m256i, __m256i, __m256i) {
    let low = _mm256_set1_epi8(0x0f);
    let nh = _mm256_and_si256(_mm256_srli_epi16::<4>(x), low);
    let nl = _mm256_and_si256(x, low);
    let (al, ah) = (_mm256_shuffle_epi8(a_lo, nh), _mm256_shuffle_epi8(a_hi, nh));
    let (bl, bh) = (_mm256_shuffle_epi8(b_lo, nl), _mm256_shuffle_epi8(b_hi, nl));
    (
        _mm256_unpacklo_epi8(al, ah),
        _mm256_unpackhi_epi8(al, ah),
        _mm256_unpacklo_epi8(bl, bh),
        _mm256_unpackhi_epi8(bl, bh),
    )
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn widen_lo(v: __m256i) -> __m256i {
    _mm256_cvtepi16_epi32(_mm256_castsi256_si128(v))
}

#[inline]
#[target_feature(enable = "avx2")]
unsafe fn widen_hi(v: __m256i) -> __m256i {
    _mm256_cvtepi16_epi32(_mm256_extracti128_si256::<1>(v))
}

/// See `scalar::tl1_tile`.
pub fn tl1_tile(tile: Tl1Tile<'_>, lut: &[u8], out: &mut [i32]) {
    assert!(
        (tile.simd_rows == 32 || tile.simd_rows == 64)
            && tile.bytes.len() >= tile.tile_rows * tile.k / 4
            && lut.len() >= tile.k / 2 * 32
            && out.len() >= tile.tile_rows
    );
    // SAFETY: lengths checked above; AVX2 checked when the table was chosen.
    unsafe { tl1_tile_imp(tile, lut, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn tl1_tile_imp(tile: Tl1Tile<'_>, lut: &[u8], out: &mut [i32]) {
    let Tl1Tile {
        bytes,
        k,
        tile_rows,
        block_k,
        simd_rows,
    } = tile;
    let by = 256 / simd_rows;
    let (nsb, ncb, nkb) = (tile_rows / simd_rows, block_k / by, k / block_k);
    let lp = lut.as_ptr();
    // TL1 group of pair p: 16 high bytes at 32p, 16 low bytes at 32p + 16.
    let halves = |p: usize| unsafe { (load16(lp.add(32 * p + 16)), load16(lp.add(32 * p))) };
    for sb in 0..nsb {
        let mut acc32 = [_mm256_setzero_si256(); 8];
        let mut acc16 = [_mm256_setzero_si256(); 4];
        let mut pending = 0;
        let flush = |acc16: &mut [__m256i; 4], acc32: &mut [__m256i; 8]| unsafe {
            if simd_rows == 32 {
                // Both lanes hold the same 8 rows (different pairs): add them.
                for i in 0..4 {
                    let s = _mm256_add_epi32(widen_lo(acc16[i]), widen_hi(acc16[i]));
                    acc32[i] = _mm256_add_epi32(acc32[i], s);
                }
            } else {
                // acc16[i]: lane 0 = rows 8i'.., lane 1 = the rows 16 further on.
                for (i, dst) in [(0, 0), (1, 1), (2, 4), (3, 5)] {
                    acc32[dst] = _mm256_add_epi32(acc32[dst], widen_lo(acc16[i]));
                    acc32[dst + 2] = _mm256_add_epi32(acc32[dst + 2], widen_hi(acc16[i]));
                }
            }
            *acc16 = [_mm256_setzero_si256(); 4];
        };
        for kb in 0..nkb {
            let chunk = ((kb * nsb + sb) * ncb) * 64;
            for cb in 0..ncb {
                let (a_lo, a_hi, b_lo, b_hi);
                if simd_rows == 32 {
                    // Lane 0: pairs P | P+1, lane 1: pairs P+2 | P+3 (same 16 rows).
                    let p = (kb * block_k + cb * 8) / 2;
                    let ((l0, h0), (l2, h2)) = (halves(p), halves(p + 2));
                    let ((l1, h1), (l3, h3)) = (halves(p + 1), halves(p + 3));
                    a_lo = _mm256_set_m128i(l2, l0);
                    a_hi = _mm256_set_m128i(h2, h0);
                    b_lo = _mm256_set_m128i(l3, l1);
                    b_hi = _mm256_set_m128i(h3, h1);
                } else {
                    // All 64 rows use pairs P | P+1.
                    let p = (kb * block_k + cb * 4) / 2;
                    let ((l0, h0), (l1, h1)) = (halves(p), halves(p + 1));
                    a_lo = _mm256_broadcastsi128_si256(l0);
                    a_hi = _mm256_broadcastsi128_si256(h0);
                    b_lo = _mm256_broadcastsi128_si256(l1);
                    b_hi = _mm256_broadcastsi128_si256(h1);
                }
                for half in 0..2 {
                    // SAFETY: compute block (kb, sb, cb) lies inside the tile.
                    let x = unsafe { load(bytes.as_ptr().add(chunk + cb * 64 + half * 32)) };
                    let (a0, a1, b0, b1) = unsafe { lookup_pair(x, a_lo, a_hi, b_lo, b_hi) };
                    let i = half * 2;
                    acc16[i] = _mm256_add_epi16(acc16[i], _mm256_add_epi16(a0, b0));
                    acc16[i + 1] = _mm256_add_epi16(acc16[i + 1], _mm256_add_epi16(a1, b1));
                }
                pending += 1;
                if pending == 32 {
                    flush(&mut acc16, &mut acc32);
                    pending = 0;
                }
            }
        }
        flush(&mut acc16, &mut acc32);
        for (i, v) in acc32.iter().take(simd_rows / 8).enumerate() {
            let dst = &mut out[sb * simd_rows + i * 8..sb * simd_rows + i * 8 + 8];
            // SAFETY: 8 i32 fit in `dst`.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, *v) };
        }
    }
}

/// See `scalar::tl2_tile`.
pub fn tl2_tile(tile: Tl2Tile<'_>, lut3: &[u8], lut2: &[u8], out: &mut [i32]) {
    let rows = tile.tile_rows;
    assert!(
        tile.three.len() >= rows * tile.three_k / 6
            && tile.signs.len() >= rows * tile.three_k / 24
            && tile.two.len() >= rows * tile.two_k / 4
            && lut3.len() >= tile.three_k / 3 * 32
            && lut2.len() >= tile.two_k / 2 * 32
            && out.len() >= rows
            && rows % 32 == 0
            && tile.block_k % 24 == 0
    );
    // SAFETY: lengths checked above; AVX2 checked when the table was chosen.
    unsafe { tl2_tile_imp(tile, lut3, lut2, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn tl2_tile_imp(tile: Tl2Tile<'_>, lut3: &[u8], lut2: &[u8], out: &mut [i32]) {
    let Tl2Tile {
        three,
        signs,
        two,
        tile_rows,
        block_k,
        three_k,
        two_k,
    } = tile;
    let (nsb, ncb, nsg, nkb) = (tile_rows / 32, block_k / 6, block_k / 24, three_k / block_k);
    // TL2 group g: 16 low bytes at 32g, 16 high bytes at 32g + 16; same table in both lanes.
    let table = |lut: &[u8], g: usize| unsafe {
        let p = lut.as_ptr().add(32 * g);
        (
            _mm256_broadcastsi128_si256(load16(p)),
            _mm256_broadcastsi128_si256(load16(p.add(16))),
        )
    };
    let flush = |acc16: &mut [__m256i; 2], acc32: &mut [__m256i; 4]| unsafe {
        // acc16[0] = rows 0..15 in order, acc16[1] = rows 16..31 (the R(pos) swizzle's purpose).
        for i in 0..2 {
            acc32[2 * i] = _mm256_add_epi32(acc32[2 * i], widen_lo(acc16[i]));
            acc32[2 * i + 1] = _mm256_add_epi32(acc32[2 * i + 1], widen_hi(acc16[i]));
        }
        *acc16 = [_mm256_setzero_si256(); 2];
    };
    // All-ones where the sign bit `bit` of each 16-bit word is set.
    let sign_mask = |w: __m256i, bit: i32| {
        _mm256_srai_epi16::<15>(_mm256_sll_epi16(w, _mm_cvtsi32_si128(15 - bit)))
    };
    let apply = |v: __m256i, s: __m256i| _mm256_xor_si256(_mm256_add_epi16(v, s), s);
    for sb in 0..nsb {
        let mut acc32 = [_mm256_setzero_si256(); 4];
        let mut acc16 = [_mm256_setzero_si256(); 2];
        let mut pending = 0;
        for kb in 0..nkb {
            let idx = ((kb * nsb + sb) * ncb) * 32;
            let sgn = ((kb * nsb + sb) * nsg) * 32;
            for sg in 0..nsg {
                // SAFETY: sign block (kb, sb, sg) lies inside the tile's section B.
                let words = unsafe { load(signs.as_ptr().add(sgn + sg * 32)) };
                for c in 0..4 {
                    let cb = sg * 4 + c;
                    let t0 = (kb * block_k + cb * 6) / 3;
                    let ((al, ah), (bl, bh)) = (table(lut3, t0), table(lut3, t0 + 1));
                    // SAFETY: compute block (kb, sb, cb) lies inside section A.
                    let x = unsafe { load(three.as_ptr().add(idx + cb * 32)) };
                    let (a0, a1, b0, b1) = unsafe { lookup_pair(x, al, ah, bl, bh) };
                    // Triplet i = 2c (high nibble) and 2c + 1 (low nibble) of the sign group:
                    // rows 0..15 use bit 15 − 2i, rows 16..31 bit 14 − 2i.
                    let i = 2 * c as i32;
                    let a0 = apply(a0, sign_mask(words, 15 - 2 * i));
                    let a1 = apply(a1, sign_mask(words, 14 - 2 * i));
                    let b0 = apply(b0, sign_mask(words, 13 - 2 * i));
                    let b1 = apply(b1, sign_mask(words, 12 - 2 * i));
                    acc16[0] = _mm256_add_epi16(acc16[0], _mm256_add_epi16(a0, b0));
                    acc16[1] = _mm256_add_epi16(acc16[1], _mm256_add_epi16(a1, b1));
                    pending += 1;
                    if pending == 32 {
                        flush(&mut acc16, &mut acc32);
                        pending = 0;
                    }
                }
            }
        }
        flush(&mut acc16, &mut acc32);
        for kb in 0..two_k / 32 {
            let idx = ((kb * nsb + sb) * 8) * 32;
            for cb in 0..8 {
                let p0 = kb * 16 + cb * 2;
                let ((al, ah), (bl, bh)) = (table(lut2, p0), table(lut2, p0 + 1));
                // SAFETY: compute block (kb, sb, cb) lies inside section C.
                let x = unsafe { load(two.as_ptr().add(idx + cb * 32)) };
                let (a0, a1, b0, b1) = unsafe { lookup_pair(x, al, ah, bl, bh) };
                acc16[0] = _mm256_add_epi16(acc16[0], _mm256_add_epi16(a0, b0));
                acc16[1] = _mm256_add_epi16(acc16[1], _mm256_add_epi16(a1, b1));
            }
            // 8 compute blocks per 32 columns: widen every block.
            flush(&mut acc16, &mut acc32);
        }
        for (i, v) in acc32.iter().enumerate() {
            let dst = &mut out[sb * 32 + i * 8..sb * 32 + i * 8 + 8];
            // SAFETY: 8 i32 fit in `dst`.
            unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, *v) };
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TQ2_0 / TQ1_0.

/// See `scalar::tq2_0_row`.
pub fn tq2_0_row(row: &[u8], q: &[i8], out: &mut [i32]) {
    assert!(row.len() >= out.len() * 66 && q.len() >= out.len() * 256);
    // SAFETY: lengths checked above; AVX2 checked when the table was chosen.
    unsafe { tq2_0_row_imp(row, q, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn tq2_0_row_imp(row: &[u8], q: &[i8], out: &mut [i32]) {
    let mask = _mm256_set1_epi8(3);
    let ones = _mm256_set1_epi16(1);
    for (b, o) in out.iter_mut().enumerate() {
        let qs = row[b * 66..b * 66 + 64].as_ptr();
        let a = q[b * 256..(b + 1) * 256].as_ptr() as *const u8;
        let mut s = _mm256_setzero_si256();
        for j in [0usize, 32] {
            // SAFETY: qs has 64 bytes, a has 256.
            let (x, a) = unsafe { (load(qs.add(j)), a.add(j * 4)) };
            let c0 = _mm256_and_si256(x, mask);
            let c1 = _mm256_and_si256(_mm256_srli_epi16::<2>(x), mask);
            let c2 = _mm256_and_si256(_mm256_srli_epi16::<4>(x), mask);
            let c3 = _mm256_and_si256(_mm256_srli_epi16::<6>(x), mask);
            let (a0, a1, a2, a3) =
                unsafe { (load(a), load(a.add(32)), load(a.add(64)), load(a.add(96))) };
            s = _mm256_add_epi16(
                s,
                _mm256_add_epi16(_mm256_maddubs_epi16(c0, a0), _mm256_maddubs_epi16(c1, a1)),
            );
            s = _mm256_add_epi16(
                s,
                _mm256_add_epi16(_mm256_maddubs_epi16(c2, a2), _mm256_maddubs_epi16(c3, a3)),
            );
        }
        *o = unsafe { hsum_i32(_mm256_madd_epi16(s, ones)) };
    }
}

/// Bytewise `v · mul mod 256` (AVX2 has no 8-bit multiply: even and odd bytes in 16-bit lanes).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn mul_u8(v: __m256i, mul: __m256i) -> __m256i {
    let even = _mm256_set1_epi16(0x00ff);
    let pe = _mm256_and_si256(
        _mm256_mullo_epi16(_mm256_and_si256(v, even), _mm256_and_si256(mul, even)),
        even,
    );
    let po = _mm256_slli_epi16::<8>(_mm256_mullo_epi16(
        _mm256_srli_epi16::<8>(v),
        _mm256_srli_epi16::<8>(mul),
    ));
    _mm256_or_si256(pe, po)
}

/// Leading trit of each byte as a code 0..2: `(q·3) >> 8` = [q ≥ 86] + [q ≥ 171].
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn lead_trit(q: __m256i) -> __m256i {
    let ge86 = _mm256_cmpeq_epi8(_mm256_max_epu8(q, _mm256_set1_epi8(86)), q);
    let ge171 = _mm256_cmpeq_epi8(_mm256_max_epu8(q, _mm256_set1_epi8(171u8 as i8)), q);
    _mm256_sub_epi8(_mm256_setzero_si256(), _mm256_add_epi8(ge86, ge171))
}

/// See `scalar::tq1_0_row`.
pub fn tq1_0_row(row: &[u8], q: &[i8], out: &mut [i32]) {
    assert!(row.len() >= out.len() * 54 && q.len() >= out.len() * 256);
    // SAFETY: lengths checked above; AVX2 checked when the table was chosen.
    unsafe { tq1_0_row_imp(row, q, out) }
}

#[target_feature(enable = "avx2")]
unsafe fn tq1_0_row_imp(row: &[u8], q: &[i8], out: &mut [i32]) {
    let ones = _mm256_set1_epi16(1);
    let pow3 = |n: i8| _mm256_set1_epi8(n);
    // Multipliers for the two 16-byte halves of the last two vectors.
    let m01 = _mm256_set_m128i(_mm_set1_epi8(3), _mm_set1_epi8(1));
    let m23 = _mm256_set_m128i(_mm_set1_epi8(27), _mm_set1_epi8(9));
    let m_last = _mm256_set_m128i(
        _mm_setr_epi8(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27),
        _mm_set1_epi8(81),
    );
    for (b, o) in out.iter_mut().enumerate() {
        let blk = &row[b * 54..b * 54 + 54];
        let a = q[b * 256..(b + 1) * 256].as_ptr() as *const u8;
        let qh = u32::from_le_bytes([blk[48], blk[49], blk[50], blk[51]]);
        // SAFETY: blk has 54 bytes (32 + 16 read), a has 256.
        let (x32, x16) = unsafe { (load(blk.as_ptr()), load16(blk.as_ptr().add(32))) };
        let x16x2 = _mm256_broadcastsi128_si256(x16);
        let last = _mm256_set_m128i(_mm_set1_epi32(qh as i32), x16);
        let vecs = [
            (x32, pow3(1)),
            (x32, pow3(3)),
            (x32, pow3(9)),
            (x32, pow3(27)),
            (x32, pow3(81)),
            (x16x2, m01),
            (x16x2, m23),
            (last, m_last),
        ];
        let mut s = _mm256_setzero_si256();
        for (i, (v, m)) in vecs.into_iter().enumerate() {
            let code = lead_trit(mul_u8(v, m));
            // SAFETY: i*32 + 32 <= 256.
            let av = unsafe { load(a.add(i * 32)) };
            s = _mm256_add_epi16(s, _mm256_maddubs_epi16(code, av));
        }
        *o = unsafe { hsum_i32(_mm256_madd_epi16(s, ones)) };
    }
}

// ---------------------------------------------------------------------------------------------
// Q8_0 and Q4_0 (weights) × Q8_0 (activations).

/// See `scalar::q8_0_row`.
pub fn q8_0_row(row: &[u8], q: &[i8], out: &mut [i32], d_out: &mut [f32]) {
    assert!(row.len() >= out.len() * 34 && q.len() >= out.len() * 32 && d_out.len() >= out.len());
    // SAFETY: lengths checked above; AVX2/F16C checked when the table was chosen.
    unsafe { q8_blocks_imp::<false>(row, q, out, d_out) }
}

/// See `scalar::q4_0_row`.
pub fn q4_0_row(row: &[u8], q: &[i8], out: &mut [i32], d_out: &mut [f32]) {
    assert!(row.len() >= out.len() * 18 && q.len() >= out.len() * 32 && d_out.len() >= out.len());
    // SAFETY: lengths checked above; AVX2/F16C checked when the table was chosen.
    unsafe { q8_blocks_imp::<true>(row, q, out, d_out) }
}

/// The 8 exact i32 lane dots of block `b` against activations `x` (lane l: values 4l..4l+4).
/// Q8_0 uses ggml's `mul_sum_i8_pairs`: |w| (u8) × sign(x, w) (i8) in `maddubs`, exact since
/// |w| ≤ 128 and |x| ≤ 127 (the activation quantizer's range): a pair is at most
/// 2·128·127 = 32512. Q4_0 skips the sign trick: `maddubs` takes the nibbles as they are
/// (u8 0..=15) and the `−8` comes off as `maddubs(8, x)`, both exact in i16 (a pair is at most
/// 2·15·128 = 3840).
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_lanes<const Q4: bool>(rp: *const u8, b: usize, x: __m256i) -> __m256i {
    let ones = _mm256_set1_epi16(1);
    // SAFETY: callers keep block b inside the row.
    let pairs = unsafe {
        if Q4 {
            // Both halves hold the 16 bytes; the high half shifted by 4 gives the high nibbles.
            let packed = _mm256_broadcastsi128_si256(load16(rp.add(b * 18 + 2)));
            let nibbles = _mm256_and_si256(
                _mm256_srlv_epi64(packed, _mm256_setr_epi64x(0, 0, 4, 4)),
                _mm256_set1_epi8(15),
            );
            _mm256_sub_epi16(
                _mm256_maddubs_epi16(nibbles, x),
                _mm256_maddubs_epi16(_mm256_set1_epi8(8), x),
            )
        } else {
            let w = load(rp.add(b * 34 + 2));
            _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w))
        }
    };
    _mm256_madd_epi16(pairs, ones)
}

/// Lane i of the result is the sum of the 8 lanes of `v[i]` (an 8×8 transpose-and-add).
#[inline]
#[target_feature(enable = "avx2")]
fn sum_lanes_8x8(v: [__m256i; 8]) -> __m256i {
    // Per 128-bit half: [a0+a2, b0+b2, a1+a3, b1+b3].
    let pairs = |a, b| _mm256_add_epi32(_mm256_unpacklo_epi32(a, b), _mm256_unpackhi_epi32(a, b));
    // Per 128-bit half: the four vectors' sums of that half.
    let quads = |p, q| _mm256_add_epi32(_mm256_unpacklo_epi64(p, q), _mm256_unpackhi_epi64(p, q));
    let lo = quads(pairs(v[0], v[1]), pairs(v[2], v[3]));
    let hi = quads(pairs(v[4], v[5]), pairs(v[6], v[7]));
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(lo, hi),
        _mm256_permute2x128_si256::<0x31>(lo, hi),
    )
}

/// The exact dots of blocks `b..b+8`, block b+i in lane i.
#[inline]
#[target_feature(enable = "avx2")]
unsafe fn block_dots8<const Q4: bool>(rp: *const u8, qp: *const u8, b: usize) -> __m256i {
    // SAFETY: callers keep blocks b..b+8 inside the row and the activations.
    sum_lanes_8x8(std::array::from_fn(|i| unsafe {
        block_lanes::<Q4>(rp, b + i, load(qp.add((b + i) * 32)))
    }))
}

/// The f16 `d` (first two bytes) of block `b` of `block_bytes`.
#[inline]
unsafe fn block_d(rp: *const u8, block_bytes: usize, b: usize) -> u16 {
    // SAFETY: callers keep block b inside the row.
    unsafe { (rp.add(b * block_bytes) as *const u16).read_unaligned() }
}

/// The `d` of blocks `b..b+8` as f32: gathered by scalar loads (Zen's integer pipes are idle in
/// these kernels) and converted by F16C, which is exact like `half`'s conversion.
#[inline]
#[target_feature(enable = "avx2,f16c")]
unsafe fn block_d8(rp: *const u8, block_bytes: usize, b: usize) -> __m256 {
    // SAFETY: callers keep blocks b..b+8 inside the row.
    let d = |i: usize| u64::from(unsafe { block_d(rp, block_bytes, b + i) });
    let four = |i: usize| d(i) | d(i + 1) << 16 | d(i + 2) << 32 | d(i + 3) << 48;
    _mm256_cvtph_ps(_mm_set_epi64x(four(4) as i64, four(0) as i64))
}

/// Q8_0 or Q4_0 weights × Q8_0 activations: every block's exact dot and its `d`, eight blocks
/// at a time.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q8_blocks_imp<const Q4: bool>(row: &[u8], q: &[i8], out: &mut [i32], d_out: &mut [f32]) {
    let block_bytes = if Q4 { 18 } else { 34 };
    let (rp, qp) = (row.as_ptr(), q.as_ptr() as *const u8);
    let full = out.len() / 8 * 8;
    for b in (0..full).step_by(8) {
        // SAFETY: blocks b..b+8 are inside row, q, out and d_out (asserted by the wrappers).
        unsafe {
            let dots = block_dots8::<Q4>(rp, qp, b);
            _mm256_storeu_si256(out.as_mut_ptr().add(b) as *mut __m256i, dots);
            _mm256_storeu_ps(d_out.as_mut_ptr().add(b), block_d8(rp, block_bytes, b));
        }
    }
    for b in full..out.len() {
        // SAFETY: block b is inside row and q.
        unsafe {
            out[b] = hsum_i32(block_lanes::<Q4>(rp, b, load(qp.add(b * 32))));
            d_out[b] = half::f16::from_bits(block_d(rp, block_bytes, b)).to_f32();
        }
    }
}

/// See `scalar::q8_0_rows`.
pub fn q8_0_rows(rows: &[u8], q: &[i8], xd: &[f32], out: &mut [f32]) {
    assert!(rows.len() >= out.len() * xd.len() * 34 && q.len() >= xd.len() * 32);
    // SAFETY: lengths checked above; AVX2/F16C checked when the table was chosen.
    unsafe { q8_rows_imp::<false>(rows, q, xd, out) }
}

/// See `scalar::q4_0_rows`.
pub fn q4_0_rows(rows: &[u8], q: &[i8], xd: &[f32], out: &mut [f32]) {
    assert!(rows.len() >= out.len() * xd.len() * 18 && q.len() >= xd.len() * 32);
    // SAFETY: lengths checked above; AVX2/F16C checked when the table was chosen.
    unsafe { q8_rows_imp::<true>(rows, q, xd, out) }
}

/// Q8_0/Q4_0 rows straight to f32 in `scalar::block_epilogue`'s order: eight blocks at a time,
/// block b's exact dot in lane b mod 8, converted once and multiplied by the eight
/// `d_w · d_x` (not fused); the last `nb mod 8` blocks go through the scalar partials.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q8_rows_imp<const Q4: bool>(rows: &[u8], q: &[i8], xd: &[f32], out: &mut [f32]) {
    let nb = xd.len();
    let full = nb / 8 * 8;
    let block_bytes = if Q4 { 18 } else { 34 };
    let (qp, xdp) = (q.as_ptr() as *const u8, xd.as_ptr());
    for (r, o) in out.iter_mut().enumerate() {
        // SAFETY (all reads below): row r's nb blocks lie inside `rows`, and q/xd hold nb blocks
        // (asserted by the wrappers).
        let rp = unsafe { rows.as_ptr().add(r * nb * block_bytes) };
        let mut acc = _mm256_setzero_ps();
        for b in (0..full).step_by(8) {
            let (dots, dwx) = unsafe {
                let dots = _mm256_cvtepi32_ps(block_dots8::<Q4>(rp, qp, b));
                (
                    dots,
                    _mm256_mul_ps(block_d8(rp, block_bytes, b), _mm256_loadu_ps(xdp.add(b))),
                )
            };
            acc = _mm256_add_ps(acc, _mm256_mul_ps(dwx, dots));
        }
        let mut part = [0f32; 8];
        // SAFETY: part has 8 lanes.
        unsafe { _mm256_storeu_ps(part.as_mut_ptr(), acc) };
        for b in full..nb {
            let (dot, dw) = unsafe {
                let dot = hsum_i32(block_lanes::<Q4>(rp, b, load(qp.add(b * 32))));
                (
                    dot,
                    half::f16::from_bits(block_d(rp, block_bytes, b)).to_f32(),
                )
            };
            part[b % 8] += (dw * xd[b]) * dot as f32;
        }
        *o = super::scalar::fold8(part);
    }
}

/// See `scalar::q4_0x8_rows`.
pub fn q4_0x8_rows(groups: &[u8], q: &[i8], xd: &[f32], sums: &[i32], out: &mut [f32]) {
    let nb = xd.len();
    assert!(out.len() % 8 == 0 && groups.len() >= out.len() / 8 * nb * 144);
    assert!(q.len() >= nb * 32 && sums.len() >= nb);
    // SAFETY: lengths checked above; AVX2/F16C checked when the table was chosen.
    unsafe { q4_0x8_rows_imp(groups, q, xd, sums, out) }
}

/// Eight interleaved Q4_0 rows at a time, one row per lane. Per block, each 32-byte chunk's low
/// and high nibbles go through `maddubs` against 4 broadcast activations; the 8 products stay
/// exact in i16 (a lane gathers 8 pairs: at most 8·2·15·128 = 30720), `madd` widens them, and
/// `8·Σq` comes off in i32: each lane holds its row's exact block dot. The float steps are
/// `scalar::block_epilogue`'s, lane-wise: block b into accumulator b mod 8, then `fold8`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q4_0x8_rows_imp(groups: &[u8], q: &[i8], xd: &[f32], sums: &[i32], out: &mut [f32]) {
    let nb = xd.len();
    let low4 = _mm256_set1_epi8(15);
    let ones = _mm256_set1_epi16(1);
    let qp = q.as_ptr() as *const u8;
    // The 4 activations at byte `at` of the token, in every 32-bit lane.
    // SAFETY: callers pass at + 4 <= nb * 32.
    let x4 = |at: usize| unsafe { _mm256_set1_epi32((qp.add(at) as *const i32).read_unaligned()) };
    for (g, outs) in out.chunks_exact_mut(8).enumerate() {
        // SAFETY (the reads): group g's nb blocks of 144 bytes lie inside `groups` (asserted).
        let gp = unsafe { groups.as_ptr().add(g * nb * 144) };
        let mut acc = [_mm256_setzero_ps(); 8];
        for b in 0..nb {
            let bp = unsafe { gp.add(b * 144) };
            let mut s = _mm256_setzero_si256();
            for c in 0..4 {
                let v = unsafe { load(bp.add(16 + 32 * c)) };
                let (lo, hi) = (
                    _mm256_and_si256(v, low4),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(v), low4),
                );
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(lo, x4(b * 32 + 4 * c)));
                s = _mm256_add_epi16(s, _mm256_maddubs_epi16(hi, x4(b * 32 + 16 + 4 * c)));
            }
            let dot = _mm256_sub_epi32(_mm256_madd_epi16(s, ones), _mm256_set1_epi32(8 * sums[b]));
            let d = _mm256_cvtph_ps(unsafe { load16(bp) });
            let dwx = _mm256_mul_ps(d, _mm256_set1_ps(xd[b]));
            acc[b % 8] = _mm256_add_ps(acc[b % 8], _mm256_mul_ps(dwx, _mm256_cvtepi32_ps(dot)));
        }
        let u: [__m256; 4] = std::array::from_fn(|l| _mm256_add_ps(acc[l], acc[l + 4]));
        let sum = _mm256_add_ps(_mm256_add_ps(u[0], u[2]), _mm256_add_ps(u[1], u[3]));
        // SAFETY: outs has 8 lanes.
        unsafe { _mm256_storeu_ps(outs.as_mut_ptr(), sum) };
    }
}

// ---------------------------------------------------------------------------------------------
// Q6_K.

/// See `scalar::q6_k_row`.
pub fn q6_k_row(row: &[u8], q: &[i8], bsums: &[i16], out: &mut [i32], d_out: &mut [f32]) {
    let nb = out.len();
    assert!(row.len() >= nb * 210 && q.len() >= nb * 256 && bsums.len() >= nb * 16);
    assert!(d_out.len() >= nb);
    // SAFETY: lengths checked above; AVX2/F16C checked when the table was chosen.
    unsafe { q6_k_row_imp(row, q, bsums, out, d_out) }
}

/// ggml's `vec_dot_q6_K_q8_K` integer part: the unsigned codes (0..=63) go through `maddubs`
/// with the activations (exact: a pair is at most 2·63·128 = 16128), each 16-value half is
/// weighted by its sub-block scale in `madd`, and the `−32` offset is taken off once per block
/// as `32 · Σ_j scale_j · bsum_j`.
#[target_feature(enable = "avx2,f16c")]
unsafe fn q6_k_row_imp(row: &[u8], q: &[i8], bsums: &[i16], out: &mut [i32], d_out: &mut [f32]) {
    let low4 = _mm256_set1_epi8(0x0F);
    let low2 = _mm256_set1_epi8(0x03);
    // Byte shuffles that put scale 2k in the low 8 lanes and 2k+1 in the high 8 lanes.
    let pair = |k: i8| {
        _mm_setr_epi8(
            2 * k,
            2 * k,
            2 * k,
            2 * k,
            2 * k,
            2 * k,
            2 * k,
            2 * k,
            2 * k + 1,
            2 * k + 1,
            2 * k + 1,
            2 * k + 1,
            2 * k + 1,
            2 * k + 1,
            2 * k + 1,
            2 * k + 1,
        )
    };
    let pairs = [0, 1, 2, 3, 4, 5, 6, 7].map(pair);
    let (rp, qp) = (row.as_ptr(), q.as_ptr() as *const u8);
    for b in 0..out.len() {
        // SAFETY: block b lies inside `row`, `q` and `bsums` (asserted by the wrapper).
        let (block, x) = unsafe { (rp.add(b * 210), qp.add(b * 256)) };
        _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(4 * 210) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(4 * 210 + 64) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(4 * 210 + 128) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(block.wrapping_add(4 * 210 + 192) as *const i8);
        let scales = unsafe { load16(block.add(192)) };
        let mut acc = _mm256_setzero_si256();
        for half in 0..2 {
            // SAFETY: offsets stay inside the 210-byte block and the 256 activations.
            let (ql0, ql1, qh) = unsafe {
                (
                    load(block.add(half * 64)),
                    load(block.add(half * 64 + 32)),
                    load(block.add(128 + half * 32)),
                )
            };
            let codes = [
                _mm256_or_si256(
                    _mm256_and_si256(ql0, low4),
                    _mm256_slli_epi16::<4>(_mm256_and_si256(qh, low2)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(ql1, low4),
                    _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<2>(qh), low2)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), low4),
                    _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<4>(qh), low2)),
                ),
                _mm256_or_si256(
                    _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), low4),
                    _mm256_slli_epi16::<4>(_mm256_and_si256(_mm256_srli_epi16::<6>(qh), low2)),
                ),
            ];
            for (part, &c) in codes.iter().enumerate() {
                // SAFETY: activations half*128 + part*32 .. +32 are inside the block's 256.
                let xv = unsafe { load(x.add(half * 128 + part * 32)) };
                let p16 = _mm256_maddubs_epi16(c, xv);
                let sc = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, pairs[half * 4 + part]));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(sc, p16));
            }
        }
        // SAFETY: the block's 16 bsums are inside `bsums`.
        let bs = unsafe { _mm256_loadu_si256(bsums.as_ptr().add(b * 16) as *const __m256i) };
        let offset = _mm256_madd_epi16(_mm256_cvtepi8_epi16(scales), bs);
        let total = _mm256_sub_epi32(acc, _mm256_slli_epi32::<5>(offset));
        out[b] = unsafe { hsum_i32(total) };
        d_out[b] = super::scalar::f16_at(&row[b * 210 + 208..]);
    }
}

// ---------------------------------------------------------------------------------------------
// Dense F16 / F32.

/// See `scalar::f16_rows`.
pub fn f16_rows(w: &[u8], row_stride: usize, x: &[f32], out: &mut [f32]) {
    assert_strided_rows(w.len(), row_stride, out.len(), x.len() * 2);
    // SAFETY: length checked above; AVX2/FMA/F16C checked when the table was chosen.
    unsafe { dense_rows_imp::<true>(w, row_stride, x, out) }
}

/// See `scalar::f32_rows`.
pub fn f32_rows(w: &[u8], row_stride: usize, x: &[f32], out: &mut [f32]) {
    assert_strided_rows(w.len(), row_stride, out.len(), x.len() * 4);
    // SAFETY: as `f16_rows`.
    unsafe { dense_rows_imp::<false>(w, row_stride, x, out) }
}

/// See `scalar::f16_weighted_rows`.
pub fn f16_weighted_rows(v: &[u8], row_stride: usize, weights: &[f32], out: &mut [f32]) {
    assert_strided_rows(v.len(), row_stride, weights.len(), out.len() * 2);
    // SAFETY: as `f16_rows`.
    unsafe { weighted_rows_imp::<true>(v, row_stride, weights, out) }
}

/// See `scalar::f32_weighted_rows`.
pub fn f32_weighted_rows(v: &[u8], row_stride: usize, weights: &[f32], out: &mut [f32]) {
    assert_strided_rows(v.len(), row_stride, weights.len(), out.len() * 4);
    // SAFETY: as `f16_rows`.
    unsafe { weighted_rows_imp::<false>(v, row_stride, weights, out) }
}

/// See `scalar::i8_rows`.
pub fn i8_rows(w: &[i8], row_stride: usize, x: &[i16], out: &mut [i32]) {
    assert_strided_rows(w.len(), row_stride, out.len(), x.len());
    // SAFETY: length checked above; AVX2 checked when the table was chosen.
    unsafe { i8_rows_imp(w, row_stride, x, out) }
}

/// One row at a time (the copy is streamed from memory once per token, and one row is one
/// sequential stream): 16 codes widened to i16 and multiplied in pairs (`madd`), 64 per step
/// into four i32 accumulators; the last `K mod 16` in scalar code. Integer sums, so the order
/// does not change the result.
#[target_feature(enable = "avx2")]
unsafe fn i8_rows_imp(w: &[i8], row_stride: usize, x: &[i16], out: &mut [i32]) {
    let k = x.len();
    let (k64, k16) = (k / 64 * 64, k / 16 * 16);
    let xp = x.as_ptr();
    for (r, o) in out.iter_mut().enumerate() {
        let row = &w[r * row_stride..][..k];
        let rp = row.as_ptr();
        let widened = |i: usize| {
            // SAFETY: i + 16 ≤ K for every caller below, inside both the row and x.
            unsafe {
                let c = _mm256_cvtepi8_epi16(_mm_loadu_si128(rp.add(i) as *const __m128i));
                _mm256_madd_epi16(c, _mm256_loadu_si256(xp.add(i) as *const __m256i))
            }
        };
        let mut acc = [_mm256_setzero_si256(); 4];
        let mut i = 0;
        while i < k64 {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_epi32(*a, widened(i + 16 * j));
            }
            i += 64;
        }
        while i < k16 {
            acc[0] = _mm256_add_epi32(acc[0], widened(i));
            i += 16;
        }
        let sum = _mm256_add_epi32(
            _mm256_add_epi32(acc[0], acc[1]),
            _mm256_add_epi32(acc[2], acc[3]),
        );
        // SAFETY: AVX2 is enabled in this function.
        let mut total = unsafe { hsum_i32(sum) };
        for j in k16..k {
            total += i32::from(row[j]) * i32::from(x[j]);
        }
        *o = total;
    }
}

/// Panics unless `rows` rows of `row_bytes` bytes, `stride` bytes apart, lie inside `len` bytes
/// (what the raw-pointer loops rely on; `Kernels` checks the same and returns an error first).
fn assert_strided_rows(len: usize, stride: usize, rows: usize, row_bytes: usize) {
    assert!(rows == 0 || (stride >= row_bytes && (rows - 1) * stride + row_bytes <= len));
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load8<const F16: bool>(row: *const u8, i: usize) -> __m256 {
    // SAFETY: callers keep i + 8 within the row.
    unsafe {
        if F16 {
            _mm256_cvtph_ps(load16(row.add(i * 2)))
        } else {
            _mm256_loadu_ps(row.add(i * 4) as *const f32)
        }
    }
}

/// `acc + w·x` as a separate multiply and add: the scalar reference's rounding (no FMA).
#[inline]
#[target_feature(enable = "avx2")]
fn mul_add(acc: __m256, w: __m256, x: __m256) -> __m256 {
    _mm256_add_ps(acc, _mm256_mul_ps(w, x))
}

/// Element `i` of a little-endian F16 or F32 row, for the scalar tails.
fn elem_at<const F16: bool>(row: &[u8], i: usize) -> f32 {
    if F16 {
        super::scalar::f16_at(&row[2 * i..])
    } else {
        super::scalar::f32_at(&row[4 * i..])
    }
}

/// Above this many rows a dense GEMV call goes one row at a time (see `dense_rows_imp`).
const STREAM_ROWS: usize = 64;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dense_rows_imp<const F16: bool>(w: &[u8], row_stride: usize, x: &[f32], out: &mut [f32]) {
    let k = x.len();
    let elem = if F16 { 2 } else { 4 };
    let k16 = k / 16 * 16;
    let xp = x.as_ptr();
    let row_at = |r: usize| &w[r * row_stride..][..k * elem];
    let tail =
        |row: &[u8], from: usize| -> f32 { (from..k).map(|i| elem_at::<F16>(row, i) * x[i]).sum() };
    let mut r = 0;
    // A call over many rows (the lm_head for one token) streams them from DRAM. One row at a
    // time is one sequential stream, which the hardware prefetcher follows at the full read
    // rate; four interleaved rows (four streams, one row apart) ran at 40–60 % of it, with or
    // without software prefetch. Fewer rows (a prompt's 16-row groups, which every token after
    // the first finds in cache; attention over a KV cache) take 4-row tiles that share each
    // activation load. Each row's sum is the same either way.
    let tiled = out.len() <= STREAM_ROWS;
    // Four rows at a time share each activation load; two accumulators per row hide the add
    // latency. Multiply and add are separate so the sums equal `scalar::lane_dot`'s bits.
    while tiled && r + 4 <= out.len() {
        let rows = [0, 1, 2, 3].map(|i| row_at(r + i).as_ptr());
        let mut acc = [[_mm256_setzero_ps(); 2]; 4];
        // Prefetch the next four rows (contiguous after these when the rows are packed), two
        // lines per step: the first token of a prompt's 16-row group reads them from DRAM.
        let next = rows[0].wrapping_add(4 * row_stride);
        let step_bytes = 16 * elem * 4;
        let mut i = 0;
        while i < k16 {
            let p = next.wrapping_add(i / 16 * step_bytes) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
            if elem == 4 {
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(128));
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(192));
            }
            // SAFETY: i + 16 <= k for x and for every row.
            let (x0, x1) = unsafe { (_mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(xp.add(i + 8))) };
            for (a, &p) in acc.iter_mut().zip(&rows) {
                let (w0, w1) = unsafe { (load8::<F16>(p, i), load8::<F16>(p, i + 8)) };
                a[0] = mul_add(a[0], w0, x0);
                a[1] = mul_add(a[1], w1, x1);
            }
            i += 16;
        }
        for (j, a) in acc.iter().enumerate() {
            out[r + j] = unsafe { hsum_f32(_mm256_add_ps(a[0], a[1])) } + tail(row_at(r + j), k16);
        }
        r += 4;
    }
    while r < out.len() {
        let row = row_at(r);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut i = 0;
        while i < k16 {
            // SAFETY: i + 16 <= k.
            unsafe {
                let (x0, x1) = (_mm256_loadu_ps(xp.add(i)), _mm256_loadu_ps(xp.add(i + 8)));
                acc[0] = mul_add(acc[0], load8::<F16>(row.as_ptr(), i), x0);
                acc[1] = mul_add(acc[1], load8::<F16>(row.as_ptr(), i + 8), x1);
            }
            i += 16;
        }
        out[r] = unsafe { hsum_f32(_mm256_add_ps(acc[0], acc[1])) } + tail(row, k16);
        r += 1;
    }
}

/// `out += Σ_p weights[p] · row_p`, up to 64 output lanes held in registers over all rows;
/// every lane adds `weights[p] · v` in order of p with a separate multiply and add, exactly as
/// the scalar reference.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn weighted_rows_imp<const F16: bool>(
    v: &[u8],
    row_stride: usize,
    weights: &[f32],
    out: &mut [f32],
) {
    const LANES: usize = 8;
    const REGS: usize = 8;
    let n = out.len();
    let n8 = n / LANES * LANES;
    let vp = v.as_ptr();
    let mut j0 = 0;
    while j0 < n8 {
        let regs = ((n8 - j0) / LANES).min(REGS);
        let mut acc = [_mm256_setzero_ps(); REGS];
        for (i, a) in acc.iter_mut().enumerate().take(regs) {
            // SAFETY: j0 + 8·i + 8 <= n8 <= out.len().
            *a = unsafe { _mm256_loadu_ps(out.as_ptr().add(j0 + i * LANES)) };
        }
        for (p, &wp) in weights.iter().enumerate() {
            let wv = _mm256_set1_ps(wp);
            // SAFETY: row p holds out.len() values from byte p·row_stride (checked by callers).
            let row = unsafe { vp.add(p * row_stride) };
            for (i, a) in acc.iter_mut().enumerate().take(regs) {
                let x = unsafe { load8::<F16>(row, j0 + i * LANES) };
                *a = mul_add(*a, wv, x);
            }
        }
        for (i, a) in acc.iter().enumerate().take(regs) {
            // SAFETY: as the loads above.
            unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(j0 + i * LANES), *a) };
        }
        j0 += regs * LANES;
    }
    for (p, &wp) in weights.iter().enumerate() {
        let row = &v[p * row_stride..];
        for (j, o) in out.iter_mut().enumerate().skip(n8) {
            *o += wp * elem_at::<F16>(row, j);
        }
    }
}
