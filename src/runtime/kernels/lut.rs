//! TL1/TL2 lookup tables, built per activation row in the byte layout upstream's kernels use
//! (`tl1.md` §6.2, `tl2.md` §6.2). Building is O(K) per row and shared by the scalar and AVX2
//! kernels; the AVX2 kernels load the 16-byte halves straight into `pshufb` tables.

use crate::layout::tl2::TRIPLET_PATTERNS;

/// Bytes of one TL1/TL2 table group (16 entries, split into a low-byte and a high-byte half).
pub const GROUP_BYTES: usize = 32;

/// TL1 LUT length for K activations: one group per pair.
pub fn tl1_lut_len(k: usize) -> usize {
    k / 2 * GROUP_BYTES
}

/// Builds the TL1 LUT of `q` (K even) into `lut` (`tl1_lut_len(K)` bytes): per pair
/// `(a0, a1)`, `v[c] = (c/3 − 1)·a0 + (c%3 − 1)·a1` for c = 0..8, entries 9..15 zero; bytes
/// 0..15 = high bytes, 16..31 = low bytes.
pub fn tl1_build_lut(q: &[i8], lut: &mut [u8]) {
    for (pair, group) in q.chunks_exact(2).zip(lut.chunks_exact_mut(GROUP_BYTES)) {
        let (a0, a1) = (i16::from(pair[0]), i16::from(pair[1]));
        group.fill(0);
        for c in 0..9i16 {
            let v = (c / 3 - 1) * a0 + (c % 3 - 1) * a1;
            let [lo, hi] = v.to_le_bytes();
            group[c as usize] = hi;
            group[16 + c as usize] = lo;
        }
    }
}

/// Entry `c` of TL1 pair `p`'s table.
#[inline]
pub fn tl1_entry(lut: &[u8], p: usize, c: u8) -> i16 {
    let g = p * GROUP_BYTES + usize::from(c);
    i16::from_le_bytes([lut[g + 16], lut[g]])
}

/// TL2 LUT lengths `(three, two)` for a split `three_k + two_k`.
pub fn tl2_lut_lens(three_k: usize, two_k: usize) -> (usize, usize) {
    (three_k / 3 * GROUP_BYTES, two_k / 2 * GROUP_BYTES)
}

/// Builds the TL2 LUTs of `q` split at `three_k`: per triplet `v[i] = pattern(i)·(a0,a1,a2)`,
/// i = 0..13, per remainder pair TL1's nine entries; unused entries zero; bytes 0..15 = low
/// bytes, 16..31 = high bytes (the reverse of TL1).
pub fn tl2_build_luts(q: &[i8], three_k: usize, lut3: &mut [u8], lut2: &mut [u8]) {
    let (three, two) = q.split_at(three_k.min(q.len()));
    for (tri, group) in three
        .chunks_exact(3)
        .zip(lut3.chunks_exact_mut(GROUP_BYTES))
    {
        let a = [i16::from(tri[0]), i16::from(tri[1]), i16::from(tri[2])];
        group.fill(0);
        for (i, p) in TRIPLET_PATTERNS.iter().enumerate() {
            let v = i16::from(p[0]) * a[0] + i16::from(p[1]) * a[1] + i16::from(p[2]) * a[2];
            let [lo, hi] = v.to_le_bytes();
            group[i] = lo;
            group[16 + i] = hi;
        }
    }
    for (pair, group) in two.chunks_exact(2).zip(lut2.chunks_exact_mut(GROUP_BYTES)) {
        let (a0, a1) = (i16::from(pair[0]), i16::from(pair[1]));
        group.fill(0);
        for c in 0..9i16 {
            let v = (c / 3 - 1) * a0 + (c % 3 - 1) * a1;
            let [lo, hi] = v.to_le_bytes();
            group[c as usize] = lo;
            group[16 + c as usize] = hi;
        }
    }
}

/// Entry `c` of TL2 group `g`'s table (triplet or pair, depending on the LUT passed).
#[inline]
pub fn tl2_entry(lut: &[u8], g: usize, c: u8) -> i16 {
    let o = g * GROUP_BYTES + usize::from(c);
    i16::from_le_bytes([lut[o], lut[o + 16]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `tl1.md` §7: pair 0 of the worked example, q = (−127, −48).
    #[test]
    fn tl1_pair_table_matches_worked_example() {
        let mut lut = [0u8; 32];
        tl1_build_lut(&[-127, -48], &mut lut);
        assert_eq!(&lut[..9], &[0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(
            &lut[16..25],
            &[0xaf, 0x7f, 0x4f, 0x30, 0x00, 0xd0, 0xb1, 0x81, 0x51]
        );
    }

    /// `tl2.md` §7: triplet 0 of the worked example, q = (−127, −48, 32).
    #[test]
    fn tl2_triplet_table_matches_worked_example() {
        let mut lut3 = [0u8; 32];
        tl2_build_luts(&[-127, -48, 32], 3, &mut lut3, &mut []);
        let low = [
            0x00, 0x20, 0xb0, 0xd0, 0xf0, 0x91, 0xb1, 0xd1, 0x61, 0x81, 0xa1, 0x31, 0x51, 0x71, 0,
            0,
        ];
        assert_eq!(&lut3[..16], &low);
        assert_eq!(&lut3[16..18], &[0, 0]);
        assert!(lut3[18..30].iter().all(|&b| b == 0xff));
    }
}
