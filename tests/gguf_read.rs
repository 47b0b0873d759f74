//! Reading upstream-written GGUF files and writing them back byte for byte.

use bitnet_gguf::gguf::{self, GgmlType, GgufFile, Value, Verdict};
use sha2::{Digest, Sha256};

const TINY: &str = "fixtures/vectors/i2s/t4x128.tiny.gguf";
const REF_TINY: &[&str] = &[
    "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
    "fixtures/ref-tiny/gguf/ref-tiny-tl1.gguf",
    "fixtures/ref-tiny/gguf/ref-tiny-tl2.gguf",
    "fixtures/ref-tiny/gguf/ref-tiny-tq1_0.gguf",
    "fixtures/ref-tiny/gguf/ref-tiny-tq2_0.gguf",
    "fixtures/ref-tiny/gguf/ref-tiny-iq2_bn.gguf",
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Spec §11: the byte walk-through of the tiny file.
#[test]
fn tiny_file_matches_the_spec_walkthrough() {
    let bytes = std::fs::read(TINY).unwrap();
    assert_eq!(
        hex(&Sha256::digest(&bytes)),
        "2a2c3bd09bb5a1f1fbcb136eca2276907409cde4e05c98c844adb03c2b1ee326"
    );
    let f = GgufFile::parse(&bytes).unwrap();
    assert_eq!(f.version(), 3);
    assert_eq!(f.metadata().len(), 9);
    assert_eq!(f.architecture(), Some("bitnet-b1.58"));
    assert_eq!(
        f.get_u32("bitnet-b1.58.context_length").unwrap(),
        Some(4096)
    );
    assert_eq!(
        f.get_f32("bitnet-b1.58.attention.layer_norm_rms_epsilon")
            .unwrap()
            .map(f32::to_bits),
        Some(0x3727c5ac)
    );
    assert_eq!(
        f.get_f32("bitnet-b1.58.rope.freq_base").unwrap(),
        Some(500000.0)
    );
    assert_eq!(
        f.get_bool("tokenizer.ggml.add_bos_token").unwrap(),
        Some(true)
    );
    let tokens: Vec<_> = f
        .get_array("tokenizer.ggml.tokens")
        .unwrap()
        .unwrap()
        .strings()
        .map(|s| s.to_string_lossy())
        .collect();
    assert_eq!(tokens, ["a", "b"]);
    let types: Vec<_> = f
        .get_array("tokenizer.ggml.token_type")
        .unwrap()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(types, [Value::I32(1), Value::I32(3)]);
    assert_eq!(f.get_u32("general.file_type").unwrap(), Some(40));
    // Typed getters insist on the exact type.
    assert!(f.get_u32("general.name").is_err());

    let q = &f.tensors()[0];
    assert_eq!(q.name, "blk.0.attn_q.weight");
    assert_eq!(
        (q.dims.as_slice(), q.ggml_type),
        (&[128, 4][..], GgmlType::I2_S)
    );
    assert_eq!((q.offset, q.byte_len), (0, 160));
    assert_eq!(q.info_offset, 0x1c5);
    let n = f.tensor("output_norm.weight").unwrap();
    assert_eq!(
        (n.offset, n.byte_len, n.ggml_type),
        (160, 512, GgmlType::F32)
    );
    assert_eq!(f.infos_end(), 0x232);
    assert_eq!(f.data_start(), 0x240);
    let data = f.tensor_data(n).unwrap();
    assert_eq!(data.len(), 512);
    assert!(data.chunks(4).all(|c| c == 1.0f32.to_le_bytes()));
    assert!(f.validate_data().is_empty());
    assert!(f.warnings().is_empty());
}

#[test]
fn reference_files_parse_with_expected_types() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read("fixtures/ref-tiny/gguf/manifest.json").unwrap())
            .unwrap();
    for path in REF_TINY {
        let bytes = std::fs::read(path).unwrap();
        let f = GgufFile::parse(&bytes).unwrap_or_else(|e| panic!("{path}: {e}"));
        let name = path.rsplit('/').next().unwrap();
        let entry = &manifest["files"][name];
        assert_eq!(entry["bytes"].as_u64(), Some(bytes.len() as u64), "{name}");
        assert_eq!(
            entry["n_kv"].as_u64(),
            Some(f.metadata().len() as u64),
            "{name}"
        );
        let mut counts = std::collections::BTreeMap::new();
        for t in f.tensors() {
            *counts.entry(t.ggml_type.name().to_string()).or_insert(0u64) += 1;
        }
        let expected: std::collections::BTreeMap<String, u64> = entry["tensor_types"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        assert_eq!(counts, expected, "{name}");
        // Upstream writers pad the last tensor too: the file ends right after it.
        let last = f.tensors().last().unwrap();
        let end = (f.data_start() + last.offset + last.byte_len).next_multiple_of(32);
        assert_eq!(end, bytes.len() as u64, "{name}");
    }
}

#[test]
fn dialect_detection_on_reference_files() {
    let cases = [
        ("ref-tiny-i2_s.gguf", "ambiguous"),
        ("ref-tiny-tl1.gguf", "bitnet.cpp"),
        ("ref-tiny-tl2.gguf", "bitnet.cpp"),
        ("ref-tiny-iq2_bn.gguf", "ik_llama.cpp"),
        ("ref-tiny-tq1_0.gguf", "bitnet.cpp"),
    ];
    for (name, want) in cases {
        let bytes = std::fs::read(format!("fixtures/ref-tiny/gguf/{name}")).unwrap();
        let f = GgufFile::parse(&bytes).unwrap();
        let got = gguf::detect_dialect(&f).verdict;
        match (&got, want) {
            (Verdict::Ambiguous(_), "ambiguous") => {}
            (Verdict::Unique(d), w) if d.name() == w => {}
            _ => panic!("{name}: {got:?}, wanted {want}"),
        }
    }
}

#[test]
fn read_then_write_reproduces_every_fixture_byte_for_byte() {
    let mut paths = vec![TINY];
    paths.extend_from_slice(REF_TINY);
    for path in paths {
        let bytes = std::fs::read(path).unwrap();
        let f = GgufFile::parse(&bytes).unwrap();
        let out = gguf::rewrite(&f, Vec::new()).unwrap();
        assert!(out == bytes, "{path}: rewrite differs");
    }
}
