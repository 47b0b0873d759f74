//! I2_S against bitnet.cpp's own bytes (`fixtures/vectors/i2s`).
use crate::layout_common::{npy_i8, read_fixture, read_json, sha256_hex};
use bitnet_gguf::layout::i2s::{I2sTail, I2S, I2S_ARM64};
use bitnet_gguf::layout::{Shape, TernaryCodec, TernaryTensor};

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

fn shape_of(vector: &serde_json::Value) -> Shape {
    let s = &vector["shape"];
    Shape::new(
        s["M_rows_out_features_ne1"].as_u64().unwrap() as usize,
        s["K_cols_in_features_ne0"].as_u64().unwrap() as usize,
    )
}

/// Every vector with an I2_S file: decode gives exactly the manifest's ternary matrix (checked
/// through the SHA-256 of its .npy, rebuilt from the decoded codes) and the manifest's scale,
/// and encoding that tensor gives the upstream bytes back.
#[test]
fn every_manifest_vector_round_trips_byte_exact() {
    let manifest = read_json("fixtures/vectors/i2s/manifest.json");
    let mut checked = 0;
    for vector in manifest["vectors"].as_array().unwrap() {
        let Some(expected) = vector.get("expected").and_then(|e| e.get("i2s")) else {
            continue;
        };
        let name = vector["name"].as_str().unwrap();
        let shape = shape_of(vector);
        let bytes = read_fixture(&format!(
            "fixtures/vectors/i2s/{}",
            expected["file"].as_str().unwrap()
        ));
        assert_eq!(
            sha256_hex(&bytes),
            expected["sha256"].as_str().unwrap(),
            "{name}"
        );
        let tensor = I2S.decode(&bytes, shape).unwrap();
        let ternary = [
            &vector["inputs"]["ternary"],
            &vector["inputs"]["ternary_reference"],
            &vector["expected"]["ternary"],
        ]
        .into_iter()
        .find_map(|entry| entry["sha256"].as_str())
        .unwrap();
        assert_eq!(
            sha256_hex(&npy_i8(shape, tensor.codes())),
            ternary,
            "{name} codes"
        );
        let scale_hex = vector["scale"]["f32_hex"]
            .as_str()
            .or(vector["intermediate"]["i2s_scale_f32"].as_str());
        if let Some(hex) = scale_hex {
            let bits = u32::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap();
            assert_eq!(tensor.scale().to_bits(), bits, "{name} scale");
        }
        assert_eq!(I2S.encode(&tensor).unwrap(), bytes, "{name} re-encode");
        checked += 1;
    }
    assert_eq!(checked, 5);
}

/// The ARM (64-value block) variant decodes to the same tensor as the x86 file, and is
/// only used when asked for.
#[test]
fn arm_qk64_variant_decodes_when_asked() {
    let shape = Shape::new(128, 256);
    let x86 = read_fixture("fixtures/vectors/i2s/r128x256_s1.i2s.bin");
    let arm = read_fixture("fixtures/vectors/i2s/r128x256_s1.i2s.arm_qk64.bin");
    assert_ne!(x86, arm);
    let expected = I2S.decode(&x86, shape).unwrap();
    assert_eq!(I2S_ARM64.decode(&arm, shape).unwrap(), expected);
    assert_eq!(I2S_ARM64.encode(&expected).unwrap(), arm);
    assert_ne!(I2S.decode(&arm, shape).ok(), Some(expected));
}

/// A file with stale bytes in tail bytes 4..31 (as llama-quantize may leave) re-encodes to the
/// same bytes when the tail is carried through.
#[test]
fn non_zero_tail_is_reproduced() {
    let shape = Shape::new(4, 128);
    let mut bytes = read_fixture("fixtures/vectors/i2s/t4x128.i2s.bin");
    for (i, b) in bytes[128 + 4..].iter_mut().enumerate() {
        *b = 0xa0 + i as u8;
    }
    let (tensor, tail) = I2S.decode_keeping_tail(&bytes, shape).unwrap();
    assert!(!tail.is_zero());
    assert_eq!(I2S.encode_with_tail(&tensor, &tail).unwrap(), bytes);
    assert_ne!(
        I2S.encode_with_tail(&tensor, &I2sTail::ZERO).unwrap(),
        bytes
    );
}
