//! Test support for the kernel tests: a minimal .npy reader and packers that produce weight bytes
//! with the layout codecs of `src/layout/` (themselves pinned to upstream bytes by the layout
//! tests), so the kernels are tested on exactly what the converter writes.

/// Reads a little-endian .npy v1 file; returns (descr, shape, data bytes).
pub fn read_npy(path: &str) -> (String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{path}: not npy");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let shape_txt = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (descr.to_string(), shape, bytes[10 + hlen..].to_vec())
}

pub fn npy_f32(path: &str) -> Vec<f32> {
    let (d, _, b) = read_npy(path);
    assert_eq!(d, "<f4", "{path}");
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn npy_i32(path: &str) -> Vec<i32> {
    let (d, _, b) = read_npy(path);
    assert_eq!(d, "<i4", "{path}");
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn npy_i8(path: &str) -> Vec<i8> {
    let (d, _, b) = read_npy(path);
    assert_eq!(d, "|i1", "{path}");
    b.into_iter().map(|v| v as i8).collect()
}

pub use crate::layout_common::{sha256_hex, splitmix_ternary};

use bitnet_gguf::layout::i2s::I2S;
use bitnet_gguf::layout::tl1::Tl1;
use bitnet_gguf::layout::tl2::Tl2;
use bitnet_gguf::layout::tq1_0::TQ1_0;
use bitnet_gguf::layout::tq2_0::TQ2_0;
use bitnet_gguf::layout::{Shape, TernaryCodec, TernaryTensor, Tl1Tiling, Tl2Tiling};

fn tensor(w: &[i8], rows: usize, cols: usize, scale: f32) -> TernaryTensor {
    TernaryTensor::new(Shape::new(rows, cols), w.to_vec(), scale).expect("ternary test weights")
}

/// TL1 payload (no scale slot) of `w` (M × K) under the given tiling, by the layout codec.
pub fn pack_tl1(w: &[i8], m: usize, k: usize, bm_tile: usize, bk: usize, bm: usize) -> Vec<u8> {
    let codec = Tl1::new(Tl1Tiling {
        tile_rows: bm_tile,
        block_k: bk,
        simd_rows: bm,
    });
    let shape = Shape::new(m, k);
    let mut region = codec
        .encode(&tensor(w, m, k, 1.0))
        .expect("legal TL1 test tiling");
    region.truncate(codec.payload_len(shape).expect("TL1 payload"));
    region
}

/// TL2 payload `L(M, K)` (no scale slot) of `w` under the given tiling, by the layout codec.
pub fn pack_tl2(w: &[i8], m: usize, k: usize, bm_tile: usize, bk: usize) -> Vec<u8> {
    let codec = Tl2::new(Tl2Tiling {
        tile_rows: bm_tile,
        block_k: bk,
    });
    let shape = Shape::new(m, k);
    let mut region = codec
        .encode(&tensor(w, m, k, 1.0))
        .expect("legal TL2 test tiling");
    region.truncate(codec.payload_len(shape).expect("TL2 payload"));
    region
}

/// A GGUF-style tensor region: payload, zeros to a multiple of 32, f32 scale, 28 zeros.
pub fn with_scale_slot(mut payload: Vec<u8>, scale: f32) -> Vec<u8> {
    payload.resize(payload.len().div_ceil(32) * 32, 0);
    payload.extend_from_slice(&scale.to_le_bytes());
    payload.extend_from_slice(&[0; 28]);
    payload
}

/// I2_S bytes + tail (the byte order is flat over row-major codes, so any K that is a
/// multiple of 128 gives the same bytes).
pub fn pack_i2s(w: &[i8], scale: f32) -> Vec<u8> {
    I2S.encode(&tensor(w, w.len() / 128, 128, scale))
        .expect("I2_S test weights")
}

/// TQ2_0 blocks with f16 `d` bits, by the layout codec.
pub fn pack_tq2_0(w: &[i8], d: u16) -> Vec<u8> {
    let scale = half::f16::from_bits(d).to_f32();
    TQ2_0
        .encode(&tensor(w, w.len() / 256, 256, scale))
        .expect("TQ2_0 test weights")
}

/// TQ1_0 blocks with f16 `d` bits, by the layout codec.
pub fn pack_tq1_0(w: &[i8], d: u16) -> Vec<u8> {
    let scale = half::f16::from_bits(d).to_f32();
    TQ1_0
        .encode(&tensor(w, w.len() / 256, 256, scale))
        .expect("TQ1_0 test weights")
}
