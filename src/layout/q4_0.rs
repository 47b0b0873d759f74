//! ggml Q4_0 (`block_q4_0`, 18 bytes per 32 values): f16 `d` then `qs[16]`; value `j` of a block
//! is the low nibble of `qs[j]` and value `j + 16` the high nibble, each `d · (nibble − 8)`.
//!
//! The quantizer is ggml's `quantize_row_q4_0_ref` (and gguf-py's `quants.py`): `max` is the
//! value of largest magnitude (the first one on ties), `d = max / −8` in f32, nibbles
//! `min(15, trunc(x · (1/d) + 8.5))` with the unrounded `1/d`, and `d` stored rounded to f16.

/// Values per block.
pub const BLOCK_VALUES: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 18;

/// Quantizes whole blocks: `values.len() / 32` blocks into `out` (18 bytes each).
/// The caller checks the lengths ([`super::block_quant::BlockQuant`] does).
pub(super) fn quantize_blocks(values: &[f32], out: &mut [u8]) {
    for (x, block) in values
        .chunks_exact(BLOCK_VALUES)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let (mut amax, mut max) = (0f32, 0f32);
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
                max = v;
            }
        }
        let d = max / -8.0;
        let id = if d == 0.0 { 0.0 } else { 1.0 / d };
        block[..2].copy_from_slice(&half::f16::from_f32(d).to_le_bytes());
        // C's `(int8_t)(x + 8.5f)` truncates toward zero; `as` does too (and saturates).
        let nibble = |v: f32| ((v * id + 8.5) as i8).min(15) as u8;
        for (j, q) in block[2..].iter_mut().enumerate() {
            *q = nibble(x[j]) | (nibble(x[j + 16]) << 4);
        }
    }
}

/// Dequantizes whole blocks: `out.len() / 32` blocks from `bytes` (`d · (nibble − 8)` in f32).
pub(super) fn dequantize_blocks(bytes: &[u8], out: &mut [f32]) {
    for (block, y) in bytes
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK_VALUES))
    {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let (low, high) = y.split_at_mut(16);
        for ((lo, hi), &q) in low.iter_mut().zip(high).zip(&block[2..]) {
            *lo = d * f32::from(i16::from(q & 15) - 8);
            *hi = d * f32::from(i16::from(q >> 4) - 8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_rule() {
        let mut values = vec![0.0f32; 32];
        values[0] = -1.6; // largest magnitude (first on ties): d = −1.6 / −8 = 0.2
        values[1] = 1.6; // 1.6·5 + 8.5 = 16.5 → 16 → clamped to 15
        values[16] = 0.3; // 1.5 + 8.5 = 10.0 → 10
        values[17] = -0.7; // −3.5 + 8.5 = 5.0 → 5
        let mut out = vec![0u8; 18];
        quantize_blocks(&values, &mut out);
        let d = half::f16::from_le_bytes([out[0], out[1]]).to_f32();
        assert_eq!(d, half::f16::from_f32(0.2).to_f32());
        assert_eq!(out[2], (10 << 4)); // −8 + 8.5 = 0.5 → 0
        assert_eq!(out[3], 15 | (5 << 4));
        assert_eq!(out[4], 8 | (8 << 4)); // zeros are nibble 8
        let mut back = vec![0f32; 32];
        dequantize_blocks(&out, &mut back);
        assert_eq!(back[0], d * -8.0);
        assert_eq!(back[1], d * 7.0);
        assert_eq!(back[2], 0.0);
        assert_eq!(back[16], d * 2.0);
    }
}
