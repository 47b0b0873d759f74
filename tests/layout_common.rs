//! Helpers shared by the layout tests: hashing, the fixtures' splitmix64 generator, npy bytes.
use bitnet_gguf::layout::{Shape, TernaryTensor};
use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Reads a fixture file relative to the crate root.
pub fn read_fixture(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Parses a JSON fixture manifest.
pub fn read_json(path: &str) -> serde_json::Value {
    serde_json::from_slice(&read_fixture(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The TL fixtures' weight generator (manifest `generators.weights`): splitmix64 output for
/// i = 1..=M*K, ternary = (z mod 3) - 1, row-major.
pub fn splitmix_ternary(seed: u64, n: usize) -> Vec<i8> {
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z % 3) as i8 - 1
        })
        .collect()
}

/// The bytes numpy writes for an int8 C-order array (`.npy` v1, header padded to 64).
pub fn npy_i8(shape: Shape, codes: &[i8]) -> Vec<u8> {
    let dict = format!(
        "{{'descr': '|i1', 'fortran_order': False, 'shape': ({}, {}), }}",
        shape.rows, shape.cols
    );
    let unpadded = 10 + dict.len() + 1;
    let header_len = unpadded.div_ceil(64) * 64 - 10;
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(10 + header_len - 1, b' ');
    out.push(b'\n');
    out.extend(codes.iter().map(|&c| c as u8));
    out
}

/// f32 from a manifest hex string of its little-endian bytes (e.g. `"0000003f"` = 0.5).
pub fn f32_from_le_hex(hex: &str) -> f32 {
    let bytes: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// A tensor from codes and scale (test inputs are always valid).
pub fn tensor(shape: Shape, codes: Vec<i8>, scale: f32) -> TernaryTensor {
    TernaryTensor::new(shape, codes, scale).unwrap()
}
