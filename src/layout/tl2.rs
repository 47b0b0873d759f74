//! TL2: bitnet.cpp's x86 lookup-table layout (`spec/tl2.md`), parameterised by a
//! [`Tl2Tiling`].
//!
//! Columns `[0, three_k)` (three_k = floor(K/BK)·BK) are stored as triplets: a 4-bit magnitude
//! index `|9w0 + 3w1 + w2|` (section A, two per byte, rows swizzled inside 32-row blocks) plus
//! a sign bit (section B, 16-bit little-endian words pairing rows j and j+16). The remaining
//! `two_k` columns use TL1's pair code (section C, same 32-row swizzle). Section D pads with
//! zeros to the fixed size L(M, K). The codec's bytes are the whole GGUF tensor region:
//! payload, zeros up to a multiple of 32, then the f32 scale and 28 zero bytes.

use super::tl1::{invalid_pair_code, pair_code, PAIR_FOUR};
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

/// The 6 codes of every section-A byte (two magnitude indices, high nibble first), `None`
/// for a byte with an index past the 14 patterns.
fn triplet_byte_table() -> [Option<[i8; 6]>; 256] {
    std::array::from_fn(|byte| {
        let hi = TRIPLET_PATTERNS.get(byte >> 4)?;
        let lo = TRIPLET_PATTERNS.get(byte & 15)?;
        Some([hi[0], hi[1], hi[2], lo[0], lo[1], lo[2]])
    })
}

/// Six codes per (section-A byte, its two sign bits): `SIGNED_SIX[byte][hi_negative |
/// lo_negative << 1]` holds them in its low 48 bits, little-endian in weight order, and
/// [`INVALID_SIX`] when the byte names an index past the 14 patterns or a sign is set on an
/// all-zero triplet (neither of which bitnet.cpp writes).
static SIGNED_SIX: [[u64; 4]; 256] = signed_six_table();

/// The [`SIGNED_SIX`] entry of a byte or sign that a canonical TL2 tensor never holds.
const INVALID_SIX: u64 = 1 << 63;

const fn signed_six_table() -> [[u64; 4]; 256] {
    let mut table = [[INVALID_SIX; 4]; 256];
    let mut byte = 0;
    while byte < 256 {
        let (hi, lo) = (byte >> 4, byte & 15);
        let known = hi < TRIPLET_PATTERNS.len() && lo < TRIPLET_PATTERNS.len();
        let mut signs = 0;
        while known && signs < 4 {
            let mut entry = 0u64;
            let mut h = 0;
            while h < 2 {
                let pattern = TRIPLET_PATTERNS[if h == 0 { hi } else { lo }];
                let negative = signs >> h & 1 == 1;
                if negative && pattern[0] == 0 && pattern[1] == 0 && pattern[2] == 0 {
                    entry = INVALID_SIX;
                    break;
                }
                let mut i = 0;
                while i < 3 {
                    let w = if negative { -pattern[i] } else { pattern[i] };
                    entry |= (w as u8 as u64) << (8 * (3 * h + i));
                    i += 1;
                }
                h += 1;
            }
            table[byte][signs] = entry;
            signs += 1;
        }
        byte += 1;
    }
    table
}

/// Decodes one [`ThreeBlock`] like [`decode_three_block`], returning `false` instead of the
/// error when the block holds an invalid index or a sign on a zero triplet. Per row, one sign
/// word covers 8 triplets (4 index bytes), and each byte with its two signs is one lookup.
fn decode_three_block_fast(
    bytes: &[u8],
    block: ThreeBlock,
    triplets: usize,
    k: usize,
    codes: &mut [i8],
) -> bool {
    let index = &bytes[block.index_at..block.index_at + 16 * triplets];
    let signs = &bytes[block.sign_at..block.sign_at + triplets / 8 * 32];
    let mut invalid = 0u64;
    for rel in 0..BLOCK_ROWS {
        let pos = swizzled_row(rel);
        // Rows j and j+16 share sign words, at bits 15 − 2i and 14 − 2i (sign_position).
        let shift = u32::from(rel < 16);
        let start = (block.row0 + rel) * k + 3 * block.first;
        let row = &mut codes[start..start + 3 * triplets];
        for (g, out) in row.chunks_exact_mut(24).enumerate() {
            let at = 2 * (16 * g + rel % 16);
            let word = u32::from(u16::from_le_bytes([signs[at], signs[at + 1]])) >> shift;
            let entry = |p: usize| {
                let byte = index[32 * (4 * g + p) + pos];
                let sign_pair = (word >> (14 - 4 * p) & 1) | (word >> (12 - 4 * p) & 1) << 1;
                SIGNED_SIX[usize::from(byte)][sign_pair as usize]
            };
            let [e0, e1, e2, e3] = [entry(0), entry(1), entry(2), entry(3)];
            invalid |= e0 | e1 | e2 | e3;
            // The four 6-byte entries as three 8-byte words (an invalid entry's flag bit
            // lands among the codes, which the reference path then rewrites).
            let words = [e0 | e1 << 48, e1 >> 16 | e2 << 32, e2 >> 32 | e3 << 16];
            for (chunk, word) in out.chunks_exact_mut(8).zip(words) {
                chunk.copy_from_slice(&word.to_le_bytes().map(|byte| byte as i8));
            }
        }
    }
    invalid & INVALID_SIX == 0
}

/// Decodes one [`ThreeBlock`] of `bytes` (a whole TL2 tensor) into `codes` (row-major, K =
/// `k`): magnitudes from the index bytes (`by_byte`: [`triplet_byte_table`]), negated where
/// the sign bit is set. The reference for [`decode_three_block_fast`], and the path that names
/// the first invalid byte or sign when the fast one finds one.
fn decode_three_block(
    bytes: &[u8],
    block: ThreeBlock,
    by_byte: &[Option<[i8; 6]>; 256],
    triplets: usize,
    k: usize,
    codes: &mut [i8],
) -> Result<(), Error> {
    let layout = "TL2";
    let index = &bytes[block.index_at..block.index_at + 16 * triplets];
    let signs = &bytes[block.sign_at..block.sign_at + triplets / 8 * 32];
    // Row by row, so the codes are written in order; the swizzle is its own inverse.
    for rel in 0..BLOCK_ROWS {
        let pos = swizzled_row(rel);
        let start = (block.row0 + rel) * k + 3 * block.first;
        let row = &mut codes[start..start + 3 * triplets];
        for (t, out) in (0..triplets).step_by(2).zip(row.chunks_exact_mut(6)) {
            let byte = index[16 * t + pos];
            let Some(mut six) = by_byte[usize::from(byte)] else {
                return Err(invalid_index(layout, block.index_at + 16 * t + pos, byte));
            };
            for (h, three) in six.chunks_exact_mut(3).enumerate() {
                let (word, bit) = sign_position(t + h, rel);
                let negative = signs[2 * word + bit / 8] >> (bit % 8) & 1;
                if negative & u8::from(three == [0, 0, 0]) != 0 {
                    return Err(Error::NonCanonical {
                        layout,
                        offset: block.sign_at + 2 * word,
                        what: format!(
                            "sign bit set for row {}, triplet {} whose index is 0",
                            block.row0 + rel,
                            block.first + t + h
                        ),
                    });
                }
                // Branch-free: sign bits are as good as random to the predictor.
                let mask = -(negative as i8);
                three.iter_mut().for_each(|w| *w = (*w ^ mask) - mask);
            }
            out.copy_from_slice(&six);
        }
    }
    Ok(())
}

/// The error for a section-A byte with an index past the 14 patterns.
#[cold]
fn invalid_index(layout: &'static str, offset: usize, byte: u8) -> Error {
    let (hi, lo) = (byte >> 4, byte & 15);
    let code = if usize::from(hi) >= TRIPLET_PATTERNS.len() {
        hi
    } else {
        lo
    };
    Error::InvalidCode {
        layout,
        offset,
        code,
    }
}

/// (index, sign) of a triplet.
#[inline]
fn triplet_code(w: &[i8]) -> (u8, bool) {
    let v = 9 * w[0] + 3 * w[1] + w[2];
    (v.unsigned_abs(), v < 0)
}

/// Where one 32-row block of one K-block of the three part is stored ([`Tl2::walk_three`]).
#[derive(Debug, Clone, Copy)]
struct ThreeBlock {
    /// First of its `32 · BK/6` index bytes (section A). Byte `32·cb + pos` holds triplets
    /// `first + 2cb` (high nibble) and `first + 2cb + 1` of row `row0 + swizzled_row(pos)`.
    index_at: usize,
    /// First of its `16 · BK/24` little-endian sign words (section B). Word `16·g + j` holds
    /// the signs of triplets `first + 8g + i` (i < 8): row `row0 + j` at bit `15 − 2i`, row
    /// `row0 + j + 16` at bit `14 − 2i`.
    sign_at: usize,
    /// First row of the block.
    row0: usize,
    /// First triplet (column / 3) of the K-block.
    first: usize,
}

/// The sign bit of triplet `t` (counted from the K-block's first) of row `rel` (0..32) in a
/// [`ThreeBlock`]'s sign words: (word index, bit).
#[inline]
fn sign_position(t: usize, rel: usize) -> (usize, usize) {
    let i = t % 8;
    (
        16 * (t / 8) + rel % 16,
        if rel < 16 { 15 - 2 * i } else { 14 - 2 * i },
    )
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

    /// Visits the 32-row blocks of the three part in stored order (tiles, then K-blocks, then
    /// row blocks). Per tile and K-block, section A holds the index bytes of every row block,
    /// then section B, in its own region, their sign words.
    fn walk_three(&self, shape: Shape, s: &Sections, mut visit: impl FnMut(ThreeBlock)) {
        let Tl2Tiling { tile_rows, block_k } = self.tiling;
        let (index_bytes, sign_bytes) = (BLOCK_ROWS * block_k / 6, block_k / 24 * 32);
        let (mut a, mut b) = (0, s.signs_at);
        for tile in 0..shape.rows / tile_rows {
            for kb in 0..s.three_k / block_k {
                for sb in 0..tile_rows / BLOCK_ROWS {
                    visit(ThreeBlock {
                        index_at: a,
                        sign_at: b,
                        row0: tile * tile_rows + sb * BLOCK_ROWS,
                        first: kb * block_k / 3,
                    });
                    a += index_bytes;
                    b += sign_bytes;
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
        let triplets = self.tiling.block_k / 3;
        self.walk_three(shape, &s, |block| {
            // Row by row, as decode reads them; the swizzle is its own inverse.
            for rel in 0..BLOCK_ROWS {
                let pos = swizzled_row(rel);
                let start = (block.row0 + rel) * k + 3 * block.first;
                let row = &codes[start..start + 3 * triplets];
                for (t, six) in (0..triplets).step_by(2).zip(row.chunks_exact(6)) {
                    let (hi, hi_negative) = triplet_code(&six[..3]);
                    let (lo, lo_negative) = triplet_code(&six[3..]);
                    out[block.index_at + 16 * t + pos] = hi << 4 | lo;
                    for (h, negative) in [(0, hi_negative), (1, lo_negative)] {
                        let (word, bit) = sign_position(t + h, rel);
                        out[block.sign_at + 2 * word + bit / 8] |= u8::from(negative) << (bit % 8);
                    }
                }
            }
        });
        self.walk_two(shape, &s, |at, row, col| {
            let w = &codes[row * k + col..row * k + col + 4];
            out[at] = pair_code(w[0], w[1]) << 4 | pair_code(w[2], w[3]);
        });
        let slot = len - SCALE_SLOT_BYTES;
        out[slot..slot + 4].copy_from_slice(&tensor.scale().to_le_bytes());
        Ok(out)
    }

    fn decode(&self, bytes: &[u8], shape: Shape) -> Result<TernaryTensor, Error> {
        self.decode_with(bytes, shape, true)
    }
}

impl Tl2 {
    /// [`TernaryCodec::decode`], with the three part through [`decode_three_block_fast`] when
    /// `fast` (always, but in the tests that hold it to the reference path).
    fn decode_with(&self, bytes: &[u8], shape: Shape, fast: bool) -> Result<TernaryTensor, Error> {
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
        // The first error in stored order (the walks cannot return early).
        let mut first_error: Option<Error> = None;
        let (triplets, by_byte) = (self.tiling.block_k / 3, triplet_byte_table());
        self.walk_three(shape, &s, |block| {
            if first_error.is_none()
                && !(fast && decode_three_block_fast(bytes, block, triplets, k, &mut codes))
            {
                first_error =
                    decode_three_block(bytes, block, &by_byte, triplets, k, &mut codes).err();
            }
        });
        self.walk_two(shape, &s, |at, row, col| {
            match invalid_pair_code(bytes[at]) {
                None => {
                    let four = PAIR_FOUR[usize::from(bytes[at])] as u32;
                    codes[row * k + col..row * k + col + 4]
                        .copy_from_slice(&four.to_le_bytes().map(|code| code as i8));
                }
                Some(code) => {
                    first_error.get_or_insert(Error::InvalidCode {
                        layout: name,
                        offset: at,
                        code,
                    });
                }
            }
        });
        match first_error {
            Some(e) => Err(e),
            None => Ok(TernaryTensor::from_decoded(shape, codes, scale)),
        }
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
        let signs_at = s_signs(&codec, shape);
        // Bit 0 of the first word: row 16 (the word's second row), triplet 7.
        bytes[signs_at] = 1;
        match codec.decode(&bytes, shape) {
            Err(Error::NonCanonical { offset, what, .. }) => {
                assert_eq!(offset, signs_at);
                assert_eq!(what, "sign bit set for row 16, triplet 7 whose index is 0");
            }
            other => panic!("{other:?}"),
        }
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
            Err(Error::InvalidCode {
                code: 14,
                offset: 0,
                ..
            })
        ));
    }

    proptest::proptest! {
        /// The fast block decoder gives the reference's codes on every tensor and fails where
        /// it fails: bytes are random codes with one byte of sections A/B (or anywhere) set
        /// to a random value, which is often an invalid index or a sign on a zero triplet.
        #[test]
        fn fast_decode_matches_the_reference(
            (row_blocks, k_blocks, two) in (1usize..3, 1usize..4, proptest::bool::ANY),
            codes in proptest::collection::vec(-1i8..=1, 64 * (48 * 3 + 32)),
            (at, value) in (proptest::num::usize::ANY, proptest::num::u8::ANY),
            corrupt in proptest::bool::ANY,
        ) {
            let tiling = Tl2Tiling { tile_rows: 32 * row_blocks, block_k: 48 };
            let shape = Shape::new(32 * row_blocks, 48 * k_blocks + if two { 32 } else { 0 });
            let codec = Tl2::new(tiling);
            let codes = codes[..shape.rows * shape.cols].to_vec();
            let t = TernaryTensor::new(shape, codes, 0.5).unwrap();
            let mut bytes = codec.encode(&t).unwrap();
            if corrupt {
                let data_end = codec.sections(shape).unwrap().two_at;
                bytes[at % data_end] = value;
            }
            let fast = codec.decode_with(&bytes, shape, true);
            let reference = codec.decode_with(&bytes, shape, false);
            proptest::prop_assert_eq!(format!("{fast:?}"), format!("{reference:?}"));
            if !corrupt {
                proptest::prop_assert_eq!(fast.unwrap(), t);
            }
        }
    }

    #[test]
    fn a_bad_pair_code_in_the_two_weight_part_is_named() {
        let shape = Shape::new(32, 80);
        let codec = Tl2::new(Tl2Tiling {
            tile_rows: 32,
            block_k: 48,
        });
        let t = TernaryTensor::new(shape, vec![1; 32 * 80], 1.0).unwrap();
        let clean = codec.encode(&t).unwrap();
        let two_at = codec.sections(shape).unwrap().two_at;
        for (at, byte, code) in [(two_at, 0x9a, 9), (two_at + 70, 0x4c, 12)] {
            let mut bytes = clean.clone();
            bytes[at] = byte;
            assert_eq!(
                codec.decode(&bytes, shape).unwrap_err(),
                Error::InvalidCode {
                    layout: "TL2",
                    offset: at,
                    code
                }
            );
        }
    }

    fn s_signs(codec: &Tl2, shape: Shape) -> usize {
        codec.sections(shape).unwrap().signs_at
    }
}
