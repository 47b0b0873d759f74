//! Byte-pair merging of one pre-token, with HF `tokenizers` BPE semantics.
//!
//! Start from one symbol per byte, then repeatedly join the adjacent pair with the lowest merge
//! rank (the leftmost one on ties) until no adjacent pair has a merge. Candidate pairs wait in
//! a min-heap keyed by (rank, position); entries made stale by an earlier merge are recognised
//! and dropped when popped, so a piece of `n` bytes costs O(n log n).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

/// What joining a pair of tokens gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Merge {
    /// Priority: the merge's index in the merge list (lower merges first).
    pub(crate) rank: u32,
    /// The token the pair becomes.
    pub(crate) joined: u32,
}

/// Merges keyed by the (left, right) token-id pair.
pub(crate) type MergeTable = HashMap<u64, Merge, BuildHasherDefault<FxHasher>>;

/// The key of the pair (left, right) in a [`MergeTable`].
pub(crate) fn pair_key(left: u32, right: u32) -> u64 {
    (u64::from(left) << 32) | u64::from(right)
}

/// Marks "no neighbour" in [`Symbol::prev`] / [`Symbol::next`].
const NONE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Symbol {
    token: u32,
    prev: u32,
    next: u32,
    /// False once merged into its left neighbour.
    alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Candidate {
    rank: u32,
    position: u32,
    joined: u32,
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap pops the greatest: make that the lowest rank, then the leftmost position.
        other
            .rank
            .cmp(&self.rank)
            .then_with(|| other.position.cmp(&self.position))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Buffers reused across pieces, so encoding a long text does not allocate per piece.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    symbols: Vec<Symbol>,
    heap: BinaryHeap<Candidate>,
}

/// Merge `piece` (at least one byte) and append its token ids to `out`.
/// `byte_tokens[b]` is the token of the single byte `b`.
pub(crate) fn merge_piece(
    piece: &[u8],
    byte_tokens: &[u32; 256],
    merges: &MergeTable,
    scratch: &mut Scratch,
    out: &mut Vec<u32>,
) {
    // Positions are u32; a longer piece (> 4 GiB) is merged in independent chunks, which only
    // differs from whole-piece merging at the chunk seams.
    const MAX_CHUNK: usize = (u32::MAX - 1) as usize;
    for chunk in piece.chunks(MAX_CHUNK) {
        merge_chunk(chunk, byte_tokens, merges, scratch, out);
    }
}

fn merge_chunk(
    piece: &[u8],
    byte_tokens: &[u32; 256],
    merges: &MergeTable,
    scratch: &mut Scratch,
    out: &mut Vec<u32>,
) {
    let symbols = &mut scratch.symbols;
    let heap = &mut scratch.heap;
    symbols.clear();
    heap.clear();
    let count = piece.len() as u32;
    symbols.extend(piece.iter().zip(0u32..).map(|(&byte, i)| Symbol {
        token: byte_tokens[usize::from(byte)],
        prev: if i == 0 { NONE } else { i - 1 },
        next: if i + 1 == count { NONE } else { i + 1 },
        alive: true,
    }));
    for (window, position) in symbols.windows(2).zip(0u32..) {
        if let Some(merge) = merges.get(&pair_key(window[0].token, window[1].token)) {
            heap.push(Candidate {
                rank: merge.rank,
                position,
                joined: merge.joined,
            });
        }
    }

    while let Some(top) = heap.pop() {
        let position = top.position as usize;
        let left = symbols[position];
        if !left.alive || left.next == NONE {
            continue;
        }
        let right_position = left.next as usize;
        let right = symbols[right_position];
        // Stale if the pair at this position has changed since the candidate was pushed.
        match merges.get(&pair_key(left.token, right.token)) {
            Some(merge) if merge.joined == top.joined => {}
            _ => continue,
        }
        symbols[position].token = top.joined;
        symbols[position].next = right.next;
        symbols[right_position].alive = false;
        if right.next != NONE {
            symbols[right.next as usize].prev = top.position;
        }
        if left.prev != NONE {
            let before = symbols[left.prev as usize];
            if let Some(merge) = merges.get(&pair_key(before.token, top.joined)) {
                heap.push(Candidate {
                    rank: merge.rank,
                    position: left.prev,
                    joined: merge.joined,
                });
            }
        }
        if right.next != NONE {
            let after = symbols[right.next as usize];
            if let Some(merge) = merges.get(&pair_key(top.joined, after.token)) {
                heap.push(Candidate {
                    rank: merge.rank,
                    position: top.position,
                    joined: merge.joined,
                });
            }
        }
    }

    // Symbol 0 is never merged away (only right-hand symbols are), so walk from it.
    let mut position = if symbols.is_empty() { NONE } else { 0 };
    while position != NONE {
        let symbol = symbols[position as usize];
        out.push(symbol.token);
        position = symbol.next;
    }
}

/// The Fx hash (as in rustc): fast for the small integer and short byte-string keys of a
/// vocabulary. Keys come from the vocabulary file, not from the text being encoded.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FxHasher {
    hash: u64,
}

impl FxHasher {
    const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::SEED);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u32(&mut self, value: u32) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes are tokens 0..256 (token = byte value); merges as (left, right, joined).
    fn table(merges: &[(u32, u32, u32)]) -> MergeTable {
        merges
            .iter()
            .zip(0u32..)
            .map(|(&(left, right, joined), rank)| (pair_key(left, right), Merge { rank, joined }))
            .collect()
    }

    fn run(piece: &[u8], merges: &MergeTable) -> Vec<u32> {
        let byte_tokens: [u32; 256] = std::array::from_fn(|b| b as u32);
        let mut out = Vec::new();
        merge_piece(
            piece,
            &byte_tokens,
            merges,
            &mut Scratch::default(),
            &mut out,
        );
        out
    }

    #[test]
    fn lowest_rank_first_then_leftmost() {
        let (a, b, c) = (u32::from(b'a'), u32::from(b'b'), u32::from(b'c'));
        // rank 0: b c -> 300, rank 1: a b -> 301, rank 2: a 300 -> 302
        let merges = table(&[(b, c, 300), (a, b, 301), (a, 300, 302)]);
        assert_eq!(run(b"abc", &merges), [302]);
        assert_eq!(run(b"abab", &merges), [301, 301]);
        // "aaa" with a single merge a a: the leftmost pair wins.
        let merges = table(&[(a, a, 400)]);
        assert_eq!(run(b"aaa", &merges), [400, a]);
        assert_eq!(run(b"aaaa", &merges), [400, 400]);
        assert_eq!(run(b"x", &merges), [u32::from(b'x')]);
    }
}
