//! Truncation and corruption sweep: thousands of damaged copies of valid files must each give a
//! clean error or a clean read, never a panic. Successful reads are also pushed through the
//! inspect report, data validation and the writer, so those paths see hostile input too.

use bitnet_gguf::gguf::{self, GgufFile};
use bitnet_gguf::inspect::{self, InspectOptions};

/// xorshift64*: deterministic, no dependency (also `run_mutation`'s).
pub(crate) struct Rng(pub(crate) u64);
impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn exercise(bytes: &[u8]) {
    let options = InspectOptions {
        stats: true,
        validate_data: true,
        ..InspectOptions::default()
    };
    if let Ok(report) = inspect::inspect_bytes("mutant", bytes, &options) {
        let _ = report.to_text();
        let _ = report.to_json();
    }
    if let Ok(f) = GgufFile::parse(bytes) {
        let _ = f.validate_data();
        let out = gguf::rewrite(&f, Vec::new()).expect("a valid file can be rewritten");
        // Rewriting a rewritten file is a fixed point.
        let again = gguf::rewrite(
            &GgufFile::parse(&out).expect("rewrite output parses"),
            Vec::new(),
        )
        .expect("rewrite twice");
        assert!(again == out);
    }
}

fn sweep(path: &str, seed: u64, mutations: usize) {
    let original = std::fs::read(path).unwrap();
    let header_end = GgufFile::parse(&original).unwrap().data_start() as usize;
    // Every truncation inside the header, and a sample inside the data.
    for len in 0..header_end.min(original.len()) {
        exercise(&original[..len]);
    }
    let mut rng = Rng(seed);
    for _ in 0..64 {
        let len = header_end + rng.below(original.len() - header_end);
        exercise(&original[..len]);
    }
    let mut buf = original.clone();
    for i in 0..mutations {
        buf.copy_from_slice(&original);
        // Mostly hit the header, where the structure is.
        let region = if rng.below(8) == 0 {
            buf.len()
        } else {
            header_end
        };
        match rng.below(4) {
            0 => {
                for _ in 0..1 + rng.below(4) {
                    let at = rng.below(region);
                    buf[at] ^= 1 << rng.below(8);
                }
            }
            1 => {
                let at = rng.below(region);
                buf[at] = rng.next() as u8;
            }
            2 => {
                // An extreme little-endian u64 or u32 at a random position.
                let at = rng.below(region.saturating_sub(8));
                let v = [
                    0,
                    1,
                    u64::MAX,
                    u64::MAX / 2,
                    1 << 32,
                    1 << 63,
                    63,
                    64,
                    0xFFFF_FFFF,
                ][rng.below(9)];
                let width = if rng.below(2) == 0 { 8 } else { 4 };
                buf[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            }
            _ => {
                let at = rng.below(region);
                let len = 1 + rng.below(16);
                let end = (at + len).min(buf.len());
                buf[at..end].fill(if i % 2 == 0 { 0 } else { 0xFF });
            }
        }
        let cut = if rng.below(4) == 0 {
            rng.below(buf.len())
        } else {
            buf.len()
        };
        exercise(&buf[..cut]);
    }
}

#[test]
fn truncated_and_corrupted_tiny_file_never_panics() {
    sweep(
        "fixtures/vectors/i2s/t4x128.tiny.gguf",
        0x9E37_79B9_7F4A_7C15,
        4000,
    );
}

#[test]
fn truncated_and_corrupted_reference_file_never_panics() {
    sweep(
        "fixtures/ref-tiny/gguf/ref-tiny-tl2.gguf",
        0xD1B5_4A32_D192_ED03,
        300,
    );
}
