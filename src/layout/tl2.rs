//! TL2: bitnet.cpp's x86 lookup-table layout (`spec/tl2.md`), parameterised by a
//! [`Tl2Tiling`].
//!
//! Columns `[0, three_k)` (three_k = floor(K/BK)·BK) are stored as triplets: a 4-bit magnitude
//! index `|9w0 + 3w1 + w2|` (section A, two per byte, rows swizzled inside 32-row blocks) plus
//! a sign bit (section B, 16-bit little-endian words pairing rows j and j+16). The remaining
//! `two_k` columns use TL1's pair code (section C, same 32-row swizzle). Section D pads with
//! zeros to the fixed size L(M, K). The codec's bytes are the whole GGUF tensor region:
//! payload, zeros up to a multiple of 32, then the f32 scale and 28 zero bytes.

use super::tl1::{pair_code, pair_weights};
use super::{
    check_len, check_zero, pad32, read_f32_le, Error, Shape, TernaryCodec, TernaryTensor, Tl2Tiling,
};

/// Bytes of the scale slot after the padded payload (f32 scale + 28 zero bytes).
pub const SCALE_SLOT_BYTES: usize = 32;

/// Rows per block (bm) in every section.
const BLOCK_ROWS: usize = 32;
/// Columns per block of the two-weight part (BK2).
const TWO_BLOCK_K: usize = 32;

/// Row (inside a 32-row block) stored at byte position `pos` of a 32-byte index block.
#[inline]
fn swizzled_row(pos: usize) -> usize {
    [0, 16, 8, 24][pos / 8] + pos % 8
}

/// The 14 positive canonical triplet patterns by magnitude index (`spec/tl2.md` §2):
/// `TRIPLET_PATTERNS[i]` has `9*w0 + 3*w1 + w2 == i`; a set sign bit negates the pattern.
pub const TRIPLET_PATTERNS: [[i8; 3]; 14] = [
    [0, 0, 0],
    [0, 0, 1],
    [0, 1, -1],
    [0, 1, 0],
    [0, 1, 1],
    [1, -1, -1],
    [1, -1, 0],
    [1, -1, 1],
    [1, 0, -1],
    [1, 0, 0],
    [1, 0, 1],
    [1, 1, -1],
    [1, 1, 0],
    [1, 1, 1],
];

/// (index, sign) of a triplet.
#[inline]
fn triplet_code(w: &[i8]) -> (u8, bool) {
    let v = 9 * w[0] + 3 * w[1] + w[2];
    (v.unsigned_abs(), v < 0)
}

/// Byte offsets of the sections inside the payload.
#[derive(Debug, Clone, Copy)]
struct Sections {
    three_k: usize,
    two_k: usize,
    signs_at: usize,
    two_at: usize,
    data_end: usize,
    payload_len: usize,
}

/// The TL2 codec for one tiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tl2 {
    /// BM, BK (bm is always 32).
    pub tiling: Tl2Tiling,
}

impl Tl2 {
    /// A codec for `tiling`.
    pub fn new(tiling: Tl2Tiling) -> Self {
        Self { tiling }
    }

    /// A codec with the tiling [`Tl2Tiling::derive`] gives for `shape`.
    pub fn for_shape(shape: Shape) -> Result<Self, Error> {
        Ok(Self::new(Tl2Tiling::derive(shape)?.0))
    }

    /// L(M, K): payload bytes (sections A-D) before padding to 32.
    pub fn payload_len(&self, shape: Shape) -> Result<usize, Error> {
        self.check_shape(shape)?;
        Tl2Tiling::payload_len(shape)
    }

    fn sections(&self, shape: Shape) -> Result<Sections, Error> {
        let payload_len = self.payload_len(shape)?;
        let m = shape.rows;
        let three_k = self.tiling.three_k(shape.cols);
        let two_k = self.tiling.two_k(shape.cols);
        let signs_at = m * three_k / 6;
        let two_at = signs_at + m * three_k / 24;
        Ok(Sections {
            three_k,
            two_k,
            signs_at,
            two_at,
            data_end: two_at + m * two_k / 4,
            payload_len,
        })
    }

    /// Visits the stored order of the three part. `index(at, row, triplet)` is called for
    /// every index byte (holding triplets `triplet` and `triplet + 1`); `sign(at, row, tb)`
    /// for every sign word (rows `row` and `row + 16`, triplets `tb .. tb + 8`).
    fn walk_three(
        &self,
        shape: Shape,
        s: &Sections,
        mut index: impl FnMut(usize, usize, usize),
        mut sign: impl FnMut(usize, usize, usize),
    ) {
        let Tl2Tiling { tile_rows, block_k } = self.tiling;
        let (mut a, mut b) = (0, s.signs_at);
        for tile in 0..shape.rows / tile_rows {
            for kb in 0..s.three_k / block_k {
                for sb in 0..tile_rows / BLOCK_ROWS {
                    let row0 = tile * tile_rows + sb * BLOCK_ROWS;
                    for cb in 0..block_k / 6 {
                        let t0 = (kb * block_k + cb * 6) / 3;
                        for pos in 0..BLOCK_ROWS {
                            index(a, row0 + swizzled_row(pos), t0);
                            a += 1;
                        }
                    }
                }
                // Section B has the same tile/K-block nesting, in its own region.
                for sb in 0..tile_rows / BLOCK_ROWS {
                    let row0 = tile * tile_rows + sb * BLOCK_ROWS;
                    for sg in 0..block_k / 24 {
                        let tb = (kb * block_k + sg * 24) / 3;
                        for j in 0..16 {
                            sign(b, row0 + j, tb);
                            b += 2;
                        }
                    }
                }
            }
        }
    }

    /// Visits the two part: `visit(at, row, first_column)` for every byte (columns
    /// `first_column .. first_column + 4`).
    fn walk_two(&self, shape: Shape, s: &Sections, mut visit: impl FnMut(usize, usize, usize)) {
        let tile_rows = self.tiling.tile_rows;
        let mut at = s.two_at;
        for tile in 0..shape.rows / tile_rows {
            for kb in 0..s.two_k / TWO_BLOCK_K {
                for sb in 0..tile_rows / BLOCK_ROWS {
                    let row0 = tile * tile_rows + sb * BLOCK_ROWS;
                    for cb in 0..8 {
                        let col = s.three_k + kb * TWO_BLOCK_K + cb * 4;
                        for pos in 0..BLOCK_ROWS {
                            visit(at, row0 + swizzled_row(pos), col);
                            at += 1;
                        }
                    }
                }
            }
        }
    }
}

impl TernaryCodec for Tl2 {
    fn name(&self) -> &'static str {
        "TL2"
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
        self.tiling.check(shape)
    }

    fn byte_len(&self, shape: Shape) -> Result<usize, Error> {
        Ok(pad32(self.payload_len(shape)?) + SCALE_SLOT_BYTES)
    }

    fn encode(&self, tensor: &TernaryTensor) -> Result<Vec<u8>, Error> {
        let shape = tensor.shape();
        let s = self.sections(shape)?;
        let len = pad32(s.payload_len) + SCALE_SLOT_BYTES;
        let k = shape.cols;
        let codes = tensor.codes();
        let mut out = vec![0u8; len];
        // The two walks write disjoint bytes; one buffer, two phases.
        let mut index_bytes = Vec::with_capacity(s.signs_at);
        let mut sign_words = Vec::with_capacity(s.two_at - s.signs_at);
        self.walk_three(
            shape,
            &s,
            |_, row, t| {
                let w = &codes[row * k + 3 * t..row * k + 3 * t + 6];
                let (hi, _) = triplet_code(&w[..3]);
                let (lo, _) = triplet_code(&w[3..]);
                index_bytes.push(hi << 4 | lo);
            },
            |_, row, tb| {
                let mut word = 0u16;
                for i in 0..8 {
                    let at = |r: usize| r * k + 3 * (tb + i);
                    let (_, upper) = triplet_code(&codes[at(row)..at(row) + 3]);
                    let (_, lower) = triplet_code(&codes[at(row + 16)..at(row + 16) + 3]);
                    word |= u16::from(upper) << (15 - 2 * i) | u16::from(lower) << (14 - 2 * i);
                }
                sign_words.extend_from_slice(&word.to_le_bytes());
            },
        );
        out[..s.signs_at].copy_from_slice(&index_bytes);
        out[s.signs_at..s.two_at].copy_from_slice(&sign_words);
        self.walk_two(shape, &s, |at, row, col| {
            let w = &codes[row * k + col..row * k + col + 4];
            out[at] = pair_code(w[0], w[1]) << 4 | pair_code(w[2], w[3]);
        });
        let slot = len - SCALE_SLOT_BYTES;
        out[slot..slot + 4].copy_from_slice(&tensor.scale().to_le_bytes());
        Ok(out)
    }

    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        let s = self.sections(shape)?;
        let len = pad32(s.payload_len) + SCALE_SLOT_BYTES;
        check_len(self.name(), shape, bytes, len)?;
        let slot = len - SCALE_SLOT_BYTES;
        let name = self.name();
        check_zero(
            name,
            &bytes[s.data_end..s.payload_len],
            s.data_end,
            "section D padding",
        )?;
        check_zero(
            name,
            &bytes[s.payload_len..slot],
            s.payload_len,
            "the padding to 32",
        )?;
        check_zero(name, &bytes[slot + 4..], slot + 4, "the scale slot")?;
        let scale = read_f32_le(bytes, slot);
        let k = shape.cols;
        let mut codes = vec![0i8; shape.rows * k];
        let mut first_error: Option<Error> = None;
        let mut note = |e: Error| {
            first_error.get_or_insert(e);
        };
        // Pass 1: magnitudes (always non-negative patterns). Pass 2: signs negate triplets.
        let mut sign_checks = Vec::new();
        self.walk_three(
            shape,
            &s,
            |at, row, t| {
                let byte = bytes[at];
                for (half, idx) in [(0, byte >> 4), (1, byte & 15)] {
                    let Some(pattern) = TRIPLET_PATTERNS.get(usize::from(idx)) else {
                        note(Error::InvalidCode {
                            layout: name,
                            offset: at,
                            code: idx,
                        });
                        continue;
                    };
                    let start = row * k + 3 * (t + half);
                    codes[start..start + 3].copy_from_slice(pattern);
                }
            },
            |at, row, tb| sign_checks.push((at, row, tb)),
        );
        for (at, row, tb) in sign_checks {
            let word = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
            for i in 0..8 {
                for (r, bit) in [(row, 15 - 2 * i), (row + 16, 14 - 2 * i)] {
                    if word >> bit & 1 == 0 {
                        continue;
                    }
                    let start = r * k + 3 * (tb + i);
                    let triplet = &mut codes[start..start + 3];
                    if triplet.iter().all(|&w| w == 0) {
                        note(Error::NonCanonical {
                            layout: name,
                            offset: at,
                            what: format!(
                                "sign bit set for row {r}, triplet {} whose index is 0",
                                tb + i
                            ),
                        });
                    }
                    triplet.iter_mut().for_each(|w| *w = -*w);
                }
            }
        }
        self.walk_two(shape, &s, |at, row, col| {
            let byte = bytes[at];
            let (hi, lo) = (byte >> 4, byte & 15);
            if hi > 8 || lo > 8 {
                note(Error::InvalidCode {
                    layout: name,
                    offset: at,
                    code: if hi > 8 { hi } else { lo },
                });
                return;
            }
            let (a, b) = pair_weights(hi);
            let (c, d) = pair_weights(lo);
            codes[row * k + col..row * k + col + 4].copy_from_slice(&[a, b, c, d]);
        });
        if let Some(e) = first_error {
            return Err(e);
        }
        Ok(TernaryTensor::from_decoded(shape, codes, scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec/tl2.md §7: M = 32, K = 80, BM = 32, BK = 48, scale 0.5.
    #[test]
    fn worked_example() {
        let shape = Shape::new(32, 80);
        let codes = (0..32)
            .flat_map(|m| (0..80).map(move |k| ((m + k + k / 3) % 3) as i8 - 1))
            .collect();
        let t = TernaryTensor::new(shape, codes, 0.5).unwrap();
        let codec = Tl2::new(Tl2Tiling {
            tile_rows: 32,
            block_k: 48,
        });
        let bytes = codec.encode(&t).unwrap();
        assert_eq!(bytes.len(), 928);
        assert_eq!(&bytes[..3], &[0x82, 0x26, 0x68]);
        assert_eq!(&bytes[8..11], &[0x26, 0x68, 0x82]);
        assert_eq!(&bytes[256..259], &[0x18, 0x86, 0x61]);
        assert_eq!(&bytes[320..323], &[0x52, 0x63, 0x17]);
        assert!(bytes[576..896].iter().all(|&b| b == 0));
        assert_eq!(&bytes[896..900], &[0, 0, 0, 0x3f]);
        assert_eq!(codec.decode(&bytes, shape).unwrap(), t);
    }

    #[test]
    fn sign_on_zero_triplet_and_dirty_padding_are_rejected() {
        let shape = Shape::new(32, 80);
        let codec = Tl2::for_shape(shape).unwrap();
        let t = TernaryTensor::new(shape, vec![0; 32 * 80], 1.0).unwrap();
        let clean = codec.encode(&t).unwrap();
        let mut bytes = clean.clone();
        bytes[s_signs(&codec, shape)] = 1;
        assert!(matches!(
            codec.decode(&bytes, shape),
            Err(Error::NonCanonical { .. })
        ));
        let mut bytes = clean.clone();
        bytes[600] = 1;
        assert!(matches!(
            codec.decode(&bytes, shape),
            Err(Error::NonZeroPadding { offset: 600, .. })
        ));
        let mut bytes = clean;
        bytes[0] = 0xe0;
        assert!(matches!(
            codec.decode(&bytes, shape),
            Err(Error::InvalidCode { code: 14, .. })
        ));
    }

    fn s_signs(codec: &Tl2, shape: Shape) -> usize {
        codec.sections(shape).unwrap().signs_at
    }
}
