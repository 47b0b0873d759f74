//! Property tests for every codec on random legal shapes: `decode(encode(t)) == t` and
//! `encode(decode(b)) == b` for canonical bytes.
use bitnet_gguf::layout::dense::{Dense, DenseDtype};
use bitnet_gguf::layout::i2s::{I2S, I2S_ARM64};
use bitnet_gguf::layout::tl1::Tl1;
use bitnet_gguf::layout::tl2::Tl2;
use bitnet_gguf::layout::tq1_0::TQ1_0;
use bitnet_gguf::layout::tq2_0::TQ2_0;
use bitnet_gguf::layout::{
    gpu_w2a8, ScaleRounding, Shape, TernaryCodec, TernaryTensor, Tl1Tiling, Tl2Tiling,
};
use half::f16;
use proptest::prelude::*;

fn codes(n: usize) -> impl Strategy<Value = Vec<i8>> {
    proptest::collection::vec(-1i8..=1, n)
}

/// A ternary tensor of `shape` with a scale from `scale`.
fn tensor_of(
    shape: Shape,
    scale: impl Strategy<Value = f32>,
) -> impl Strategy<Value = TernaryTensor> {
    (codes(shape.rows * shape.cols), scale)
        .prop_map(move |(c, s)| TernaryTensor::new(shape, c, s).unwrap())
}

fn any_finite_f32() -> impl Strategy<Value = f32> {
    any::<u32>()
        .prop_map(f32::from_bits)
        .prop_filter("finite", |s| s.is_finite())
}

/// Positive scales f16 holds exactly (TQ stores d as f16).
fn f16_exact_scale() -> impl Strategy<Value = f32> {
    (1u16..0x7c00).prop_map(|bits| f16::from_bits(bits).to_f32())
}

fn round_trip(codec: &dyn TernaryCodec, t: &TernaryTensor) -> Result<(), TestCaseError> {
    let bytes = codec.encode(t).unwrap();
    prop_assert_eq!(bytes.len(), codec.byte_len(t.shape()).unwrap());
    let back = codec.decode(&bytes, t.shape()).unwrap();
    prop_assert_eq!(&back, t);
    prop_assert_eq!(codec.encode(&back).unwrap(), bytes);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn i2s_round_trips(t in (1usize..6, 1usize..4).prop_flat_map(|(m, kb)| tensor_of(Shape::new(m, 128 * kb), any_finite_f32()))) {
        round_trip(&I2S, &t)?;
        let arm = t.clone();
        round_trip(&I2S_ARM64, &arm)?;
    }

    /// Any payload without a 2-bit 3 is canonical.
    #[test]
    fn i2s_canonical_bytes(payload in proptest::collection::vec(any::<u8>(), 64), scale in any::<[u8; 4]>()) {
        let mut bytes: Vec<u8> = payload.iter().map(|&b| b & !((b & (b >> 1) & 0x55) << 1)).collect();
        bytes.extend_from_slice(&scale);
        bytes.extend_from_slice(&[0; 28]);
        let shape = Shape::new(2, 128);
        let t = I2S.decode(&bytes, shape).unwrap();
        prop_assert_eq!(I2S.encode(&t).unwrap(), bytes);
    }

    #[test]
    fn tl1_round_trips(
        (tiling, shape) in (prop_oneof![Just(32usize), Just(64)], 1usize..3, 1usize..3, 1usize..=8, 1usize..3)
            .prop_map(|(bm, a, tiles, b, c)| {
                let tiling = Tl1Tiling { tile_rows: bm * a, block_k: 16 * b, simd_rows: bm };
                (tiling, Shape::new(bm * a * tiles, 16 * b * c))
            }),
        seed in any::<u64>(),
    ) {
        let codec = Tl1::new(tiling);
        let t = random_tensor(shape, seed, 0.75);
        round_trip(&codec, &t)?;
    }

    /// Any payload whose nibbles are all <= 8 is canonical.
    #[test]
    fn tl1_canonical_bytes(nibbles in proptest::collection::vec(0u8..=8, 2 * 32 * 16 / 4)) {
        let shape = Shape::new(32, 16);
        let codec = Tl1::for_shape(shape).unwrap();
        let mut bytes: Vec<u8> = nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect();
        bytes.extend_from_slice(&0.5f32.to_le_bytes());
        bytes.extend_from_slice(&[0; 28]);
        let t = codec.decode(&bytes, shape).unwrap();
        prop_assert_eq!(codec.encode(&t).unwrap(), bytes);
    }

    #[test]
    fn tl2_round_trips(
        (tiling, shape) in (1usize..3, 1usize..3, 1usize..=10, 1usize..4, 0usize..8)
            .prop_map(|(a, tiles, b, c, j)| {
                let block_k = 24 * b;
                let two_k = 32 * (j % block_k.div_ceil(32));
                let tiling = Tl2Tiling { tile_rows: 32 * a, block_k };
                (tiling, Shape::new(32 * a * tiles, block_k * c + if two_k < block_k { two_k } else { 0 }))
            }),
        seed in any::<u64>(),
    ) {
        let codec = Tl2::new(tiling);
        prop_assume!(codec.check_shape(shape).is_ok());
        let t = random_tensor(shape, seed, 1.25);
        round_trip(&codec, &t)?;
    }

    #[test]
    fn tq_round_trips(t in (1usize..4, 1usize..3).prop_flat_map(|(m, kb)| tensor_of(Shape::new(m, 256 * kb), f16_exact_scale()))) {
        // An all-zero tensor keeps no scale (documented); skip that measure-zero case.
        prop_assume!(t.codes().iter().any(|&c| c != 0));
        round_trip(&TQ1_0, &t)?;
        round_trip(&TQ2_0, &t)?;
    }

    #[test]
    fn gpu_w2a8_round_trips(t in (1usize..4, 1usize..4).prop_flat_map(|(a, b)| tensor_of(Shape::new(16 * a, 32 * b), Just(1.0f32)))) {
        let bytes = gpu_w2a8::pack(&t).unwrap();
        let back = gpu_w2a8::unpack(&bytes, t.shape(), 1.0).unwrap();
        prop_assert_eq!(&back, &t);
        prop_assert_eq!(gpu_w2a8::pack(&back).unwrap(), bytes);
    }

    #[test]
    fn dense_round_trips(t in (1usize..5, 1usize..40).prop_flat_map(|(m, k)| tensor_of(Shape::new(m, k), f16_exact_scale()))) {
        prop_assume!(t.codes().iter().any(|&c| c != 0));
        for dtype in [DenseDtype::F32, DenseDtype::F16] {
            round_trip(&Dense { dtype, scale: None, rounding: ScaleRounding::Exact }, &t)?;
        }
        let codec = Dense { dtype: DenseDtype::BF16, scale: Some(t.scale()), rounding: ScaleRounding::Nearest };
        round_trip(&codec, &t)?;
    }
}

/// A tensor with codes from a cheap deterministic generator (proptest shrinks the seed).
fn random_tensor(shape: Shape, seed: u64, scale: f32) -> TernaryTensor {
    let mut state = seed | 1;
    let codes = (0..shape.rows * shape.cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 3) as i8 - 1
        })
        .collect();
    TernaryTensor::new(shape, codes, scale).unwrap()
}
