//! I2_S against bitnet.cpp's own bytes (`fixtures/vectors/i2s`).
use bitnet_gguf::layout::{i2s::I2S, Shape, TernaryCodec, TernaryTensor};

/// spec/i2s.md §9.2: T[r][c] = ((c + r) mod 3) - 1, scale 0.5.
#[test]
fn t4x128_matches_upstream_bytes() {
    let shape = Shape::new(4, 128);
    let codes = (0..4)
        .flat_map(|r| (0..128).map(move |c| ((c + r) % 3) as i8 - 1))
        .collect();
    let t = TernaryTensor::new(shape, codes, 0.5).unwrap();
    let expected = std::fs::read("fixtures/vectors/i2s/t4x128.i2s.bin").unwrap();
    assert_eq!(I2S.encode(&t).unwrap(), expected);
    assert_eq!(I2S.decode(&expected, shape).unwrap(), t);
}
