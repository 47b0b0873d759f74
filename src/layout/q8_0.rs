//! ggml Q8_0 (`block_q8_0`, 34 bytes per 32 values): f16 `d` then `qs[32]` (int8); a value is
//! `d · q`.
//!
//! The quantizer is ggml's `quantize_row_q8_0_ref` (and gguf-py's `quants.py`): `d = amax / 127`
//! in f32, `q = round(x · (1/d))` rounding half away from zero with the unrounded `1/d`, and `d`
//! stored rounded to f16.

/// Values per block.
pub const BLOCK_VALUES: usize = 32;
/// Bytes per block.
pub const BLOCK_BYTES: usize = 34;

/// Quantizes whole blocks: `values.len() / 32` blocks into `out` (34 bytes each).
/// The caller checks the lengths ([`super::block_quant::BlockQuant`] does).
pub(super) fn quantize_blocks(values: &[f32], out: &mut [u8]) {
    for (x, block) in values
        .chunks_exact(BLOCK_VALUES)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut qs = [0i8; BLOCK_VALUES];
        let d = quantize_block(x, &mut qs);
        block[..2].copy_from_slice(&d.to_le_bytes());
        for (b, q) in block[2..].iter_mut().zip(qs) {
            *b = q as u8;
        }
    }
}

/// One block by the rule above: the codes of `x` (32 values) into `q`, and the f16 `d`. Also
/// the runtime's Q8_0 activation quantizer, so weights and activations share the rule.
pub fn quantize_block(x: &[f32], q: &mut [i8]) -> half::f16 {
    let amax = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    for (q, &v) in q.iter_mut().zip(x) {
        *q = (v * id).round() as i8;
    }
    half::f16::from_f32(d)
}

/// Dequantizes whole blocks: `out.len() / 32` blocks from `bytes` (`d · q` in f32).
pub(super) fn dequantize_blocks(bytes: &[u8], out: &mut [f32]) {
    for (block, y) in bytes
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK_VALUES))
    {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        for (v, &q) in y.iter_mut().zip(&block[2..]) {
            *v = d * f32::from(q as i8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_rule() {
        let mut values = vec![0.0f32; 32];
        values[0] = 1.27;
        values[1] = -0.635;
        values[2] = 0.005;
        let mut out = vec![0u8; 34];
        quantize_blocks(&values, &mut out);
        let d = half::f16::from_le_bytes([out[0], out[1]]).to_f32();
        assert!((d - 0.01).abs() < 1e-5);
        assert_eq!(out[2] as i8, 127);
        assert_eq!(out[3] as i8, -64); // -63.5 rounds away from zero
        assert_eq!(out[4] as i8, 1); // 0.5 rounds away from zero
        let mut back = vec![0f32; 32];
        dequantize_blocks(&out, &mut back);
        assert_eq!(back[0], d * 127.0);
        assert_eq!(back[5], 0.0);
    }
}
