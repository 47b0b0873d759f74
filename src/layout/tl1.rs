//! TL1: bitnet.cpp's ARM lookup-table layout (`spec/tl1.md`), parameterised by a
//! [`Tl1Tiling`].
//!
//! Two consecutive weights of a row form a pair code `3*w0 + w1 + 4` (0..8); a byte holds two
//! pair codes (high nibble first). Bytes are ordered tile → K block → bm sub-tile → 64-byte
//! compute block → 16-row group → pair of pairs → row. The codec's bytes are the whole GGUF
//! tensor region: `M*K/4` payload bytes, then the f32 scale and 28 zero bytes (the slot
//! bitnet.cpp's gguf-py reserves for the hidden `<name>_scale` tensor).

use super::{
    check_len, check_zero, read_f32_le, Error, Shape, TernaryCodec, TernaryTensor, Tl1Tiling,
};
use rayon::prelude::*;

/// Bytes of the scale slot after the payload (f32 scale + 28 zero bytes).
pub const SCALE_SLOT_BYTES: usize = 32;

/// The TL1 codec for one tiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tl1 {
    /// BM, BK, bm.
    pub tiling: Tl1Tiling,
}

impl Tl1 {
    /// A codec for `tiling`.
    pub fn new(tiling: Tl1Tiling) -> Self {
        Self { tiling }
    }

    /// A codec with the tiling [`Tl1Tiling::derive`] gives for `shape`.
    pub fn for_shape(shape: Shape) -> Result<Self, Error> {
        Ok(Self::new(Tl1Tiling::derive(shape)?.0))
    }

    /// Bytes of packed codes (the region minus the scale slot): `M*K/4`.
    pub fn payload_len(&self, shape: Shape) -> Result<usize, Error> {
        Ok(self.byte_len(shape)? - SCALE_SLOT_BYTES)
    }
}

/// Pair code of two weights: `3*w0 + w1 + 4` (shared with TL2's two-weight part).
#[inline]
pub(crate) fn pair_code(w0: i8, w1: i8) -> u8 {
    (3 * w0 + w1 + 4) as u8
}

/// The four codes of every byte (two pair codes, high nibble first) in the low 32 bits,
/// little-endian in weight order, or [`INVALID_FOUR`] for a byte with a code above 8. Shared
/// with TL2's two-weight part.
pub(crate) static PAIR_FOUR: [u64; 256] = pair_four_table();

/// The [`PAIR_FOUR`] entry of a byte no writer produces.
const INVALID_FOUR: u64 = 1 << 63;

const fn pair_four_table() -> [u64; 256] {
    let mut table = [INVALID_FOUR; 256];
    let mut byte = 0;
    while byte < 256 {
        let (hi, lo) = ((byte >> 4) as u8, (byte & 15) as u8);
        if hi <= 8 && lo <= 8 {
            let codes = [hi / 3, hi % 3, lo / 3, lo % 3];
            let mut entry = 0u64;
            let mut i = 0;
            while i < 4 {
                entry |= ((codes[i] as i8 - 1) as u8 as u64) << (8 * i);
                i += 1;
            }
            table[byte] = entry;
        }
        byte += 1;
    }
    table
}

/// The pair code above 8 in `byte` (its high nibble's first), which no writer produces; `None`
/// when both are valid.
pub(crate) fn invalid_pair_code(byte: u8) -> Option<u8> {
    [byte >> 4, byte & 15].into_iter().find(|&code| code > 8)
}

/// Visits every byte of one tile in stored order: `visit(byte_index_in_tile, row_in_tile,
/// first_column)`, where the byte holds columns `first_column .. first_column + 4` of the row.
fn for_each_tile_byte(tiling: Tl1Tiling, k: usize, mut visit: impl FnMut(usize, usize, usize)) {
    let Tl1Tiling {
        tile_rows,
        block_k,
        simd_rows,
    } = tiling;
    let by = tiling.compute_block_cols();
    let mut at = 0;
    for kb in 0..k / block_k {
        for sb in 0..tile_rows / simd_rows {
            for cb in 0..block_k / by {
                for rg in 0..simd_rows / 16 {
                    for q in 0..by / 4 {
                        let col = kb * block_k + cb * by + 4 * q;
                        for r in 0..16 {
                            visit(at, sb * simd_rows + rg * 16 + r, col);
                            at += 1;
                        }
                    }
                }
            }
        }
    }
}

impl TernaryCodec for Tl1 {
    fn name(&self) -> &'static str {
        "TL1"
    }

    fn check_shape(&self, shape: Shape) -> Result<(), Error> {
        super::check_nonempty(self.name(), shape)?;
        if shape.numel().and_then(|n| n.checked_add(4 * 64)).is_none() {
            return Err(Error::IllegalShape {
                layout: self.name(),
                shape,
                rule: "element count overflows".into(),
            });
        }
        if shape.cols % 16 != 0 {
            return Err(Error::IllegalShape {
                layout: self.name(),
                shape,
                rule: format!(
                    "K = {} must be a multiple of 16 (the LUT kernel reads 16 activations at a time)",
                    shape.cols
                ),
            });
        }
        self.tiling.check(shape)
    }

    fn byte_len(&self, shape: Shape) -> Result<usize, Error> {
        self.check_shape(shape)?;
        // M is a multiple of 32 and K of 16, so M*K/4 is already a multiple of 32.
        Ok(shape.rows * shape.cols / 4 + SCALE_SLOT_BYTES)
    }

    fn encode(&self, tensor: &TernaryTensor) -> Result<Vec<u8>, Error> {
        let shape = tensor.shape();
        let len = self.byte_len(shape)?;
        let k = shape.cols;
        let tile_rows = self.tiling.tile_rows;
        let mut out = vec![0u8; len];
        let (payload, slot) = out.split_at_mut(len - SCALE_SLOT_BYTES);
        let codes = tensor.codes();
        payload
            .par_chunks_mut(tile_rows * k / 4)
            .enumerate()
            .for_each(|(tile, bytes)| {
                let rows = &codes[tile * tile_rows * k..(tile + 1) * tile_rows * k];
                for_each_tile_byte(self.tiling, k, |at, row, col| {
                    let w = &rows[row * k + col..row * k + col + 4];
                    bytes[at] = pair_code(w[0], w[1]) << 4 | pair_code(w[2], w[3]);
                });
            });
        slot[..4].copy_from_slice(&tensor.scale().to_le_bytes());
        Ok(out)
    }

    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        let len = self.byte_len(shape)?;
        check_len(self.name(), shape, bytes, len)?;
        let payload_len = len - SCALE_SLOT_BYTES;
        let scale = read_f32_le(bytes, payload_len);
        check_zero(
            self.name(),
            &bytes[payload_len + 4..],
            payload_len + 4,
            "the scale slot",
        )?;
        let k = shape.cols;
        let tile_rows = self.tiling.tile_rows;
        let tile_bytes = tile_rows * k / 4;
        let mut codes = vec![0i8; shape.rows * k];
        let first_bad = bytes[..payload_len]
            .par_chunks(tile_bytes)
            .zip(codes.par_chunks_mut(tile_rows * k))
            .enumerate()
            .filter_map(|(tile, (bytes, rows))| {
                let mut invalid = 0;
                for_each_tile_byte(self.tiling, k, |at, row, col| {
                    let entry = PAIR_FOUR[usize::from(bytes[at])];
                    invalid |= entry;
                    rows[row * k + col..row * k + col + 4]
                        .copy_from_slice(&(entry as u32).to_le_bytes().map(|code| code as i8));
                });
                if invalid & INVALID_FOUR == 0 {
                    return None;
                }
                bytes.iter().enumerate().find_map(|(at, &byte)| {
                    invalid_pair_code(byte).map(|code| (tile * tile_bytes + at, code))
                })
            })
            .min();
        if let Some((offset, code)) = first_bad {
            return Err(Error::InvalidCode {
                layout: self.name(),
                offset,
                code,
            });
        }
        Ok(TernaryTensor::from_decoded(shape, codes, scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec/tl1.md §7: M = 32, K = 16, BM = 32, BK = 16, bm = 32, scale 0.5.
    #[test]
    fn worked_example() {
        let shape = Shape::new(32, 16);
        let codes = (0..32)
            .flat_map(|m| (0..16).map(move |k| ((m + 2 * k) % 3) as i8 - 1))
            .collect();
        let t = TernaryTensor::new(shape, codes, 0.5).unwrap();
        let codec = Tl1::new(Tl1Tiling {
            tile_rows: 32,
            block_k: 16,
            simd_rows: 32,
        });
        let bytes = codec.encode(&t).unwrap();
        assert_eq!(bytes.len(), 160);
        assert_eq!(&bytes[..4], &[0x23, 0x37, 0x72, 0x23]);
        assert_eq!(&bytes[0x10..0x12], &[0x72, 0x23]);
        assert_eq!(&bytes[0x20..0x22], &[0x37, 0x72]);
        assert_eq!(&bytes[0x70..0x72], &[0x37, 0x72]);
        assert_eq!(&bytes[128..132], &[0, 0, 0, 0x3f]);
        assert_eq!(codec.decode(&bytes, shape).unwrap(), t);
    }

    #[test]
    fn pair_four_inverts_pair_code() {
        for a in -1..=1 {
            for b in -1..=1 {
                for c in -1..=1 {
                    for d in -1..=1 {
                        let byte = pair_code(a, b) << 4 | pair_code(c, d);
                        let entry = PAIR_FOUR[usize::from(byte)];
                        assert_eq!((entry as u32).to_le_bytes().map(|x| x as i8), [a, b, c, d]);
                    }
                }
            }
        }
        let valid = PAIR_FOUR.iter().filter(|&&e| e & INVALID_FOUR == 0).count();
        assert_eq!(valid, 81);
    }

    #[test]
    fn the_first_bad_byte_in_stored_order_is_named() {
        let shape = Shape::new(64, 32);
        let codec = Tl1::new(Tl1Tiling {
            tile_rows: 32,
            block_k: 16,
            simd_rows: 32,
        });
        let t = TernaryTensor::new(shape, vec![1; 64 * 32], 1.0).unwrap();
        let mut bytes = codec.encode(&t).unwrap();
        bytes[300] = 0x9f; // second tile; its high nibble is the bad one
        bytes[400] = 0x0c;
        assert_eq!(
            codec.decode(&bytes, shape).unwrap_err(),
            Error::InvalidCode {
                layout: "TL1",
                offset: 300,
                code: 9
            }
        );
        bytes[20] = 0x0c; // first tile: named first although its tile decodes in parallel
        assert_eq!(
            codec.decode(&bytes, shape).unwrap_err(),
            Error::InvalidCode {
                layout: "TL1",
                offset: 20,
                code: 12
            }
        );
    }

    #[test]
    fn bad_nibble_and_dirty_slot_are_rejected() {
        let shape = Shape::new(32, 16);
        let codec = Tl1::for_shape(shape).unwrap();
        let t = TernaryTensor::new(shape, vec![0; 512], 1.0).unwrap();
        let mut bytes = codec.encode(&t).unwrap();
        bytes[100] = 0x49;
        assert_eq!(
            codec.decode(&bytes, shape).unwrap_err(),
            Error::InvalidCode {
                layout: "TL1",
                offset: 100,
                code: 9
            }
        );
        bytes[100] = 0x44;
        bytes[140] = 1;
        assert!(matches!(
            codec.decode(&bytes, shape),
            Err(Error::NonZeroPadding { offset: 140, .. })
        ));
    }
}
