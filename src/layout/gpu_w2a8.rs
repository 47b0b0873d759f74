//! bitnet.cpp's GPU W2A8 int2 packing (`spec/gpu-w2a8.md` §4, `gpu/pack_weight.py`).
//!
//! Code `c = t + 2` (1, 2, 3; 0 never used). The [N, K] matrix is cut into 16×32 tiles stored
//! in order (row tile, column tile), 128 bytes each: 32 little-endian u32 words, word `w` holding
//! 16 columns `16h .. 16h+16` (h = (w/8) % 2) of tile row `8*(w/16) + w%8`; inside a word, byte
//! `b` holds elements `b, b+4, b+8, b+12` at bit pairs 0-1, 2-3, 4-5, 6-7.
//!
//! The scale is not part of these bytes: the checkpoint keeps a separate bf16 `weight_scale`
//! vector of four entries (see [`scale_vector_bytes`]); concatenating parts (wqkv, w13) is the
//! converter's job.

use super::{check_len, Error, ScaleRounding, Shape, TernaryTensor};
use half::bf16;

/// Name used in errors.
pub const NAME: &str = "GPU_W2A8";
/// Rows per tile.
pub const TILE_ROWS: usize = 16;
/// Columns per tile.
pub const TILE_COLS: usize = 32;
/// Bytes per tile.
pub const TILE_BYTES: usize = TILE_ROWS * TILE_COLS / 4;
/// Entries of the `weight_scale` vector.
pub const SCALE_VECTOR_LEN: usize = 4;

/// Checks the packer's rules: N (rows) a multiple of 16, K (cols) a multiple of 32. (The
/// CUDA kernel additionally needs K % 128 == 0 and a compiled (N, K).)
pub fn check_shape(shape: Shape) -> Result<(), Error> {
    super::check_nonempty(NAME, shape)?;
    if shape.rows % TILE_ROWS != 0 || shape.cols % TILE_COLS != 0 {
        return Err(Error::IllegalShape {
            layout: NAME,
            shape,
            rule: format!(
                "N = {} must be a multiple of 16 and K = {} a multiple of 32 (16x32 tiles; \
                 upstream silently drops remainders)",
                shape.rows, shape.cols
            ),
        });
    }
    shape.numel().ok_or(Error::IllegalShape {
        layout: NAME,
        shape,
        rule: "element count overflows".into(),
    })?;
    Ok(())
}

/// Packed size: N·K/4 bytes.
pub fn byte_len(shape: Shape) -> Result<usize, Error> {
    check_shape(shape)?;
    Ok(shape.rows * shape.cols / 4)
}

/// Calls `visit(byte_index, row, first_column)` for every output byte; the byte holds
/// columns `first_column + {0, 4, 8, 12}` of `row` in bit pairs 0, 2, 4, 6.
fn for_each_byte(shape: Shape, mut visit: impl FnMut(usize, usize, usize)) {
    let mut at = 0;
    for nb in 0..shape.rows / TILE_ROWS {
        for kb in 0..shape.cols / TILE_COLS {
            for w in 0..32 {
                let row = nb * TILE_ROWS + 8 * (w / 16) + w % 8;
                let col = kb * TILE_COLS + 16 * ((w / 8) % 2);
                for b in 0..4 {
                    visit(at, row, col + b);
                    at += 1;
                }
            }
        }
    }
}

/// Packs the codes of `tensor` exactly as `convert_weight_int8_to_int2` does (the scale is
/// ignored; see [`scale_vector_bytes`]).
pub fn pack(tensor: &TernaryTensor) -> Result<Vec<u8>, Error> {
    let shape = tensor.shape();
    let mut out = vec![0u8; byte_len(shape)?];
    let (k, codes) = (shape.cols, tensor.codes());
    for_each_byte(shape, |at, row, col| {
        let base = row * k + col;
        out[at] = (0..4).fold(0u8, |byte, i| {
            byte | ((codes[base + 4 * i] + 2) as u8) << (2 * i)
        });
    });
    Ok(out)
}

/// Unpacks codes (row-major, in {-1, 0, +1}); `scale` becomes the tensor's scale. A 2-bit
/// field 0 (never written) is an error.
pub fn unpack(bytes: &[u8], shape: Shape, scale: f32) -> Result<TernaryTensor, Error> {
    check_len(NAME, shape, bytes, byte_len(shape)?)?;
    let k = shape.cols;
    let mut codes = vec![0i8; shape.rows * k];
    let mut bad = None;
    for_each_byte(shape, |at, row, col| {
        let byte = bytes[at];
        for i in 0..4 {
            let code = (byte >> (2 * i)) & 3;
            if code == 0 {
                bad.get_or_insert(at);
            }
            codes[row * k + col + 4 * i] = code as i8 - 2;
        }
    });
    if let Some(offset) = bad {
        return Err(Error::InvalidCode {
            layout: NAME,
            offset,
            code: 0,
        });
    }
    Ok(TernaryTensor::from_decoded(shape, codes, scale))
}

/// The bytes of a `weight_scale` tensor: bf16 little-endian, `scales` (one per part: q, k, v
/// or gate, up, or a single one) followed by zeros up to four entries.
pub fn scale_vector_bytes(
    scales: &[f32],
    rounding: ScaleRounding,
) -> Result<[u8; 2 * SCALE_VECTOR_LEN], Error> {
    if scales.len() > SCALE_VECTOR_LEN {
        return Err(Error::InvalidScale {
            layout: NAME,
            scale: scales.len() as f32,
            why: "at most four parts per weight_scale vector",
        });
    }
    let mut out = [0u8; 2 * SCALE_VECTOR_LEN];
    for (i, &scale) in scales.iter().enumerate() {
        let value = bf16::from_f32(scale);
        if !scale.is_finite() {
            return Err(Error::InvalidScale {
                layout: NAME,
                scale,
                why: "scale must be finite",
            });
        }
        if rounding == ScaleRounding::Exact && value.to_f32() != scale {
            return Err(Error::InexactScale {
                layout: NAME,
                scale,
                bits: scale.to_bits(),
                target: "bf16",
                hint: " (use ScaleRounding::Nearest to round)",
            });
        }
        out[2 * i..2 * i + 2].copy_from_slice(&value.to_bits().to_le_bytes());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn tile(f: impl Fn(usize, usize) -> i8) -> TernaryTensor {
        let codes = (0..16)
            .flat_map(|n| (0..32).map(move |k| (n, k)))
            .map(|(n, k)| f(n, k));
        TernaryTensor::new(Shape::new(16, 32), codes.collect(), 1.0).unwrap()
    }

    /// spec/gpu-w2a8.md §4.1.
    #[test]
    fn worked_example() {
        assert!(pack(&tile(|_, _| 0)).unwrap().iter().all(|&b| b == 0xaa));
        for ((n, k), at, value) in [
            ((0, 0), 0, 0xab),
            ((0, 1), 1, 0xab),
            ((0, 4), 0, 0xae),
            ((0, 16), 32, 0xab),
            ((1, 0), 4, 0xab),
            ((8, 0), 64, 0xab),
            ((15, 31), 127, 0xea),
        ] {
            let bytes = pack(&tile(|r, c| i8::from((r, c) == (n, k)))).unwrap();
            assert_eq!(bytes[at], value, "probe {n},{k}");
            assert_eq!(bytes.iter().filter(|&&b| b != 0xaa).count(), 1);
        }
        let t = tile(|n, k| ((n + k) % 3) as i8 - 1);
        let bytes = pack(&t).unwrap();
        assert_eq!(
            &bytes[..8],
            &[0x79, 0x9e, 0xe7, 0x79, 0x9e, 0xe7, 0x79, 0x9e]
        );
        assert_eq!(
            format!("{:x}", Sha256::digest(&bytes)),
            "a429729793faef90414c221eabadc0b751fef2de40574066771a8cb68b07e600"
        );
        assert_eq!(unpack(&bytes, t.shape(), 1.0).unwrap(), t);
    }

    #[test]
    fn scale_vector() {
        let bytes = scale_vector_bytes(&[1.0, 0.5], ScaleRounding::Exact).unwrap();
        assert_eq!(bytes, [0x80, 0x3f, 0x00, 0x3f, 0, 0, 0, 0]);
        assert!(scale_vector_bytes(&[0.1], ScaleRounding::Exact).is_err());
        assert!(scale_vector_bytes(&[0.1], ScaleRounding::Nearest).is_ok());
    }
}
