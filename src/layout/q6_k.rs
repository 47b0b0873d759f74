//! ggml Q6_K (`block_q6_K`, 210 bytes per 256 values), the ~6.6-bit type llama.cpp and
//! ik_llama.cpp use for a quantized token embedding / output matrix.
//!
//! A block holds 16 sub-blocks of 16 values, in this byte order:
//! `ql[128]` (low 4 bits of each 6-bit code), `qh[64]` (high 2 bits), `scales[16]` (int8, one per
//! sub-block), `d` (f16 super-block scale). A value is `d · scales[j] · (q − 32)`, q in 0..=63.
//! Within each half of a block (128 values, 64 `ql` bytes, 32 `qh` bytes), value `l + 32·p`
//! (`l` < 32, part `p` < 4) has its low nibble in `ql[l + 32·(p % 2)]` (low nibble for p < 2,
//! high for p ≥ 2) and its high bits in `qh[l]` at bit `2·p`.
//!
//! The quantizer is ggml's `quantize_row_q6_K_ref` (no importance matrix), operation for
//! operation in f32: each sub-block's scale is chosen by `make_qx_quants(16, 32, x, rmse_type 1)`
//! (19 trial scales, weights x²), the 16 scales are quantized to int8 against the largest, and
//! the codes are recomputed against the stored scales. `tests/layout_blockq.rs` checks the bytes
//! against ggml's own output. A C build that contracts `a*b + c` into an FMA could differ in the
//! last bit of a trial sum and so, rarely, in a code; the byte layout and the dequantized values
//! never differ.

/// Values per block.
pub const BLOCK_VALUES: usize = 256;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 210;

const QL: usize = 0;
const QH: usize = 128;
const SCALES: usize = 192;
const D: usize = 208;

/// ggml's `GROUP_MAX_EPS`: a group whose largest magnitude is below this is all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round to nearest, ties to even (the `+ 1.5·2²³` trick), as i32.
fn nearest_int(v: f32) -> i32 {
    super::round_half_even(v)
}

/// ggml's `make_qx_quants(n, nmax, x, L, rmse_type = 1, qw = NULL)`: the scale for `x` that
/// maximizes `(Σ w·x·l)² / Σ w·l²` (w = x²) over 19 candidate inverse scales, with the codes
/// `l + nmax` in `codes`.
fn make_qx_quants(nmax: i32, x: &[f32], codes: &mut [u8]) -> f32 {
    let (mut max, mut amax) = (0f32, 0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        codes.fill(0);
        return 0.0;
    }
    let nmax_f = nmax as f32;
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0f32, 0f32);
        for &v in x {
            let l = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let set_codes = |iscale: f32, codes: &mut [u8]| {
        for (c, &v) in codes.iter_mut().zip(x) {
            *c = (quant(iscale, v) + nmax) as u8;
        }
    };
    let iscale = -nmax_f / max;
    set_codes(iscale, codes);
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale = -(nmax_f + 0.1f32 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            set_codes(iscale, codes);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// [`make_qx_quants`] on 8 groups of 16 values at once (`x`: 128 values, `codes`: 128 codes,
/// `scales`: 8), one group per lane. Every lane does the scalar function's f32 operations in
/// its order, so the results are the same bits, and the compiler can keep the 8 lanes in
/// vectors: the 19 trial sums of one group are a chain of dependent adds, which left the
/// scalar version waiting on latency. Groups holding a non-finite value take the scalar path
/// (below, every `iscale · v` is finite and within ±129, where
/// [`super::round_half_even_small`] is exact without [`super::round_half_even`]'s range check).
fn make_qx_quants_x8(nmax: i32, x: &[f32], codes: &mut [u8], scales: &mut [f32]) {
    if !x.iter().all(|v| v.is_finite()) {
        for ((xs, cs), s) in x
            .chunks_exact(16)
            .zip(codes.chunks_exact_mut(16))
            .zip(scales)
        {
            *s = make_qx_quants(nmax, xs, cs);
        }
        return;
    }
    let rows: [[f32; 8]; 16] = std::array::from_fn(|i| std::array::from_fn(|g| x[16 * g + i]));
    let (mut max, mut amax) = ([0f32; 8], [0f32; 8]);
    for row in &rows {
        for g in 0..8 {
            if row[g].abs() > amax[g] {
                amax[g] = row[g].abs();
                max[g] = row[g];
            }
        }
    }
    let sums = |iscale: &[f32; 8]| {
        let (mut sumlx, mut suml2) = ([0f32; 8], [0f32; 8]);
        for row in &rows {
            for g in 0..8 {
                let v = row[g];
                let l = super::round_half_even_small(iscale[g] * v).clamp(-nmax, nmax - 1) as f32;
                let w = v * v;
                sumlx[g] += w * v * l;
                suml2[g] += w * l * l;
            }
        }
        (sumlx, suml2)
    };
    let nmax_f = nmax as f32;
    let mut chosen: [f32; 8] = std::array::from_fn(|g| -nmax_f / max[g]);
    let (sumlx, suml2) = sums(&chosen);
    let mut scale: [f32; 8] = std::array::from_fn(|g| {
        if suml2[g] != 0.0 {
            sumlx[g] / suml2[g]
        } else {
            0.0
        }
    });
    let mut best: [f32; 8] = std::array::from_fn(|g| scale[g] * sumlx[g]);
    for is in (-9..=9).filter(|&is| is != 0) {
        let iscale: [f32; 8] = std::array::from_fn(|g| -(nmax_f + 0.1f32 * is as f32) / max[g]);
        let (sumlx, suml2) = sums(&iscale);
        for g in 0..8 {
            if suml2[g] > 0.0 && sumlx[g] * sumlx[g] > best[g] * suml2[g] {
                chosen[g] = iscale[g];
                scale[g] = sumlx[g] / suml2[g];
                best[g] = scale[g] * sumlx[g];
            }
        }
    }
    for (g, (cs, s)) in codes.chunks_exact_mut(16).zip(scales).enumerate() {
        if amax[g] < GROUP_MAX_EPS {
            cs.fill(0);
            *s = 0.0;
            continue;
        }
        for (c, &v) in cs.iter_mut().zip(&x[16 * g..16 * g + 16]) {
            *c = (nearest_int(chosen[g] * v).clamp(-nmax, nmax - 1) + nmax) as u8;
        }
        *s = scale[g];
    }
}

/// Quantizes whole blocks: `values.len() / 256` blocks into `out` (`210` bytes each).
/// The caller checks the lengths ([`super::block_quant::BlockQuant`] does).
pub(super) fn quantize_blocks(values: &[f32], out: &mut [u8]) {
    for (x, block) in values
        .chunks_exact(BLOCK_VALUES)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        quantize_block(x, block);
    }
}

fn quantize_block(x: &[f32], block: &mut [u8]) {
    let mut codes = [0u8; BLOCK_VALUES];
    let mut scales = [0f32; 16];
    for ((xs, cs), ss) in x
        .chunks_exact(128)
        .zip(codes.chunks_exact_mut(128))
        .zip(scales.chunks_exact_mut(8))
    {
        make_qx_quants_x8(32, xs, cs, ss);
    }
    let (mut max_scale, mut max_abs_scale) = (0f32, 0f32);
    for &s in &scales {
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    block.fill(0);
    if max_abs_scale < GROUP_MAX_EPS {
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = half::f16::from_f32(1.0 / iscale);
    block[D..D + 2].copy_from_slice(&d.to_le_bytes());
    let d = d.to_f32();
    for (j, (&s, (xs, cs))) in scales
        .iter()
        .zip(x.chunks_exact(16).zip(codes.chunks_exact_mut(16)))
        .enumerate()
    {
        // C's `MIN(127, nearest_int(..))` stored into an int8_t.
        let sc = nearest_int(iscale * s).min(127) as i8;
        block[SCALES + j] = sc as u8;
        let dl = d * f32::from(sc);
        if dl == 0.0 {
            continue; // keep make_qx_quants' codes, as ggml does
        }
        for (c, &v) in cs.iter_mut().zip(xs) {
            *c = (nearest_int(v / dl).clamp(-32, 31) + 32) as u8;
        }
    }
    for half in 0..2 {
        let (c, ql, qh) = (half * 128, QL + half * 64, QH + half * 32);
        for l in 0..32 {
            let q = [0, 32, 64, 96].map(|o| codes[c + l + o]);
            block[ql + l] = (q[0] & 0xF) | ((q[2] & 0xF) << 4);
            block[ql + l + 32] = (q[1] & 0xF) | ((q[3] & 0xF) << 4);
            block[qh + l] =
                (q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6);
        }
    }
}

/// The 6-bit code (0..=63) of value `i` (< 256) of a block.
pub fn code(block: &[u8], i: usize) -> u8 {
    let (half, rest) = (i / 128, i % 128);
    let (part, l) = (rest / 32, rest % 32);
    let low = block[QL + half * 64 + l + 32 * (part % 2)];
    let low = if part < 2 { low & 0xF } else { low >> 4 };
    let high = (block[QH + half * 32 + l] >> (2 * part)) & 3;
    low | (high << 4)
}

/// Dequantizes whole blocks: `out.len() / 256` blocks from `bytes`, as ggml's
/// `dequantize_row_q6_K` computes them (`(d · scale) · (q − 32)` in f32).
pub(super) fn dequantize_blocks(bytes: &[u8], out: &mut [f32]) {
    for (block, y) in bytes
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK_VALUES))
    {
        let d = half::f16::from_le_bytes([block[D], block[D + 1]]).to_f32();
        for (i, v) in y.iter_mut().enumerate() {
            let sc = block[SCALES + i / 16] as i8;
            *v = d * f32::from(sc) * f32::from(code(block, i) as i8 - 32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(x: &[f32]) -> (Vec<u8>, Vec<f32>) {
        let mut bytes = vec![0u8; x.len() / BLOCK_VALUES * BLOCK_BYTES];
        quantize_blocks(x, &mut bytes);
        let mut y = vec![0f32; x.len()];
        dequantize_blocks(&bytes, &mut y);
        (bytes, y)
    }

    #[test]
    fn codes_sit_where_ggml_puts_them() {
        // Every value distinct in its code: value i gets code i % 64 under scale 1, d 1.
        let mut block = vec![0u8; BLOCK_BYTES];
        for i in 0..BLOCK_VALUES {
            let q = (i % 64) as u8;
            let (half, rest) = (i / 128, i % 128);
            let (part, l) = (rest / 32, rest % 32);
            let ql = &mut block[QL + half * 64 + l + 32 * (part % 2)];
            *ql |= if part < 2 { q & 0xF } else { (q & 0xF) << 4 };
            block[QH + half * 32 + l] |= (q >> 4) << (2 * part);
        }
        for i in 0..BLOCK_VALUES {
            assert_eq!(code(&block, i), (i % 64) as u8, "value {i}");
        }
    }

    #[test]
    fn error_is_within_half_a_step() {
        let x: Vec<f32> = (0..1024)
            .map(|i| ((i as f32) * 0.731).sin() * 0.05)
            .collect();
        let (bytes, y) = roundtrip(&x);
        for (b, (xs, ys)) in bytes
            .chunks_exact(BLOCK_BYTES)
            .zip(x.chunks_exact(256).zip(y.chunks_exact(256)))
        {
            let d = half::f16::from_le_bytes([b[D], b[D + 1]]).to_f32();
            for j in 0..16 {
                let step = (d * f32::from(b[SCALES + j] as i8)).abs();
                for i in j * 16..j * 16 + 16 {
                    assert!((xs[i] - ys[i]).abs() <= step * 0.5 + 1e-7, "value {i}");
                }
            }
        }
    }

    #[test]
    fn an_all_zero_block_is_all_zero_bytes() {
        let (bytes, y) = roundtrip(&[0.0; 256]);
        assert!(bytes.iter().all(|&b| b == 0));
        assert!(y.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn non_finite_input_does_not_panic() {
        let mut x = vec![0.01f32; 256];
        x[3] = f32::NAN;
        x[100] = f32::INFINITY;
        let _ = roundtrip(&x);
    }

    /// The 8-lane search gives the scalar search's codes and scales, bit for bit: random
    /// groups, and groups that are all zero, below GROUP_MAX_EPS, constant, negative-led,
    /// at rounding ties, or (taking the scalar path) non-finite.
    #[test]
    fn eight_lane_search_equals_the_scalar_one() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / 16_777_216.0 - 0.5
        };
        for round in 0..400 {
            let mut x: Vec<f32> = (0..128).map(|_| next() * 0.2).collect();
            match round % 8 {
                1 => x[..16].fill(0.0),
                2 => x[16..32].iter_mut().for_each(|v| *v *= 1e-16),
                3 => x[32..48].fill(-0.75),
                4 => x[48..64]
                    .iter_mut()
                    .enumerate()
                    .for_each(|(i, v)| *v = i as f32 - 7.5),
                5 => x[64] = f32::NAN,
                6 => x[127] = f32::NEG_INFINITY,
                7 => x[80..96].iter_mut().for_each(|v| *v = -v.abs()),
                _ => {}
            }
            for nmax in [32, 128] {
                let (mut codes, mut scales) = ([0u8; 128], [0f32; 8]);
                make_qx_quants_x8(nmax, &x, &mut codes, &mut scales);
                for g in 0..8 {
                    let mut expected = [0u8; 16];
                    let scale = make_qx_quants(nmax, &x[16 * g..16 * g + 16], &mut expected);
                    assert_eq!(
                        scales[g].to_bits(),
                        scale.to_bits(),
                        "round {round} group {g}"
                    );
                    assert_eq!(
                        codes[16 * g..16 * g + 16],
                        expected,
                        "round {round} group {g}"
                    );
                }
            }
        }
    }
}
