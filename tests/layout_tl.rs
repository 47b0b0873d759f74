//! TL1 / TL2 against every case of `fixtures/vectors/{tl1,tl2}/manifest.json`. Weights are
//! regenerated from the manifest's generators (splitmix64 or the formula examples) and
//! checked against the manifest's SHA-256 before use.
use crate::layout_common::{f32_from_le_hex, read_json, sha256_hex, splitmix_ternary, tensor};
use bitnet_gguf::layout::tl1::Tl1;
use bitnet_gguf::layout::tl2::Tl2;
use bitnet_gguf::layout::{Shape, TernaryCodec, TernaryTensor, Tl1Tiling, Tl2Tiling};

fn case_tensor(case: &serde_json::Value) -> TernaryTensor {
    let id = case["id"].as_str().unwrap();
    let shape = Shape::new(
        case["shape"]["M"].as_u64().unwrap() as usize,
        case["shape"]["K"].as_u64().unwrap() as usize,
    );
    let (m, k) = (shape.rows, shape.cols);
    let codes: Vec<i8> = match case["seed"]["weights"].as_u64() {
        Some(seed) => splitmix_ternary(seed, m * k),
        None if id == "tl1/example_m32_k16" => (0..m)
            .flat_map(|r| (0..k).map(move |c| ((r + 2 * c) % 3) as i8 - 1))
            .collect(),
        None if id == "tl2/example_m32_k80" => (0..m)
            .flat_map(|r| (0..k).map(move |c| ((r + c + c / 3) % 3) as i8 - 1))
            .collect(),
        None => panic!("{id}: unknown generator"),
    };
    let raw: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
    assert_eq!(
        sha256_hex(&raw),
        case["ternary_i8_sha256"].as_str().unwrap(),
        "{id}: regenerated weights"
    );
    let scale = f32_from_le_hex(case["weight_scale_le_hex"].as_str().unwrap());
    tensor(shape, codes, scale)
}

fn param(case: &serde_json::Value, key: &str) -> usize {
    case["params"][key].as_u64().unwrap() as usize
}

fn check_case(case: &serde_json::Value, codec: &dyn TernaryCodec) {
    let id = case["id"].as_str().unwrap();
    let t = case_tensor(case);
    let region = codec.encode(&t).unwrap();
    let packed = &case["expected_packed"];
    let payload_len = packed["bytes"].as_u64().unwrap() as usize;
    assert_eq!(
        sha256_hex(&region[..payload_len]),
        packed["sha256"].as_str().unwrap(),
        "{id}: payload"
    );
    let expected = &case["expected_ggml_tensor_region"];
    assert_eq!(
        region.len() as u64,
        expected["bytes"].as_u64().unwrap(),
        "{id}"
    );
    assert_eq!(
        sha256_hex(&region),
        expected["sha256"].as_str().unwrap(),
        "{id}: region"
    );
    assert_eq!(codec.decode(&region, t.shape()).unwrap(), t, "{id}: decode");
}

#[test]
fn tl1_every_manifest_case_is_byte_exact() {
    let manifest = read_json("fixtures/vectors/tl1/manifest.json");
    let cases = manifest["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let tiling = Tl1Tiling {
            tile_rows: param(case, "BM"),
            block_k: param(case, "BK"),
            simd_rows: param(case, "bm"),
        };
        assert_eq!(tiling.compute_block_cols(), param(case, "by"));
        check_case(case, &Tl1::new(tiling));
    }
}

#[test]
fn tl2_every_manifest_case_is_byte_exact() {
    let manifest = read_json("fixtures/vectors/tl2/manifest.json");
    let cases = manifest["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        assert_eq!(param(case, "bm"), Tl2Tiling::SIMD_ROWS);
        let tiling = Tl2Tiling {
            tile_rows: param(case, "BM"),
            block_k: param(case, "BK"),
        };
        let k = case["shape"]["K"].as_u64().unwrap() as usize;
        assert_eq!(tiling.three_k(k), param(case, "three_k"));
        assert_eq!(tiling.two_k(k), param(case, "two_k"));
        check_case(case, &Tl2::new(tiling));
    }
}

/// The 2B-4T cases use the proposed configurations of `spec/kernel-configs.md` §4; the
/// derivation rule must give exactly those.
#[test]
fn proposed_configurations_are_what_derive_gives() {
    for (file, is_tl1) in [
        ("fixtures/vectors/tl1/manifest.json", true),
        ("fixtures/vectors/tl2/manifest.json", false),
    ] {
        let manifest = read_json(file);
        for case in manifest["cases"].as_array().unwrap() {
            if !case["config_status"]
                .as_str()
                .unwrap()
                .starts_with("proposed")
            {
                continue;
            }
            let shape = Shape::new(
                case["shape"]["M"].as_u64().unwrap() as usize,
                case["shape"]["K"].as_u64().unwrap() as usize,
            );
            if is_tl1 {
                let (t, _) = Tl1Tiling::derive(shape).unwrap();
                assert_eq!(
                    (t.tile_rows, t.block_k, t.simd_rows),
                    (param(case, "BM"), param(case, "BK"), param(case, "bm"))
                );
            } else {
                let (t, _) = Tl2Tiling::derive(shape).unwrap();
                assert_eq!(
                    (t.tile_rows, t.block_k),
                    (param(case, "BM"), param(case, "BK"))
                );
            }
        }
    }
}
