//! The hostile corpus `fixtures/gguf/bad/`: one tiny file per validation rule, generated here.
//!
//! `expected.json` names the error variant each file must give and the mode it is read in
//! (`strict` = default reader, `lenient` = `Contiguity::Lenient`, `data` = parses, then
//! `validate_data` must report it). To regenerate after changing the generator:
//! `BLESS=1 cargo test --test tests gguf_bad`.

use bitnet_gguf::gguf::{Contiguity, GgufFile, ReadOptions};
use std::collections::BTreeMap;
use std::path::Path;

const DIR: &str = "fixtures/gguf/bad";

fn s(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text);
}
fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn u64le(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A KV record: key, type id, raw payload.
fn kv(key: &[u8], ty: u32, payload: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    s(&mut o, key);
    u32le(&mut o, ty);
    o.extend_from_slice(payload);
    o
}

fn str_payload(text: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    s(&mut o, text);
    o
}

fn arch() -> Vec<u8> {
    kv(b"general.architecture", 8, &str_payload(b"llama"))
}

/// A tensor-info record.
fn ti(name: &[u8], dims: &[u64], ty: u32, offset: u64) -> Vec<u8> {
    let mut o = Vec::new();
    s(&mut o, name);
    u32le(&mut o, dims.len() as u32);
    for &d in dims {
        u64le(&mut o, d);
    }
    u32le(&mut o, ty);
    u64le(&mut o, offset);
    o
}

/// A whole file: header with the given counts, records, zero padding to 32, then `data`.
fn file(version: u32, kvs: &[Vec<u8>], infos: &[Vec<u8>], data: &[u8]) -> Vec<u8> {
    let mut o = b"GGUF".to_vec();
    u32le(&mut o, version);
    u64le(&mut o, infos.len() as u64);
    u64le(&mut o, kvs.len() as u64);
    for k in kvs {
        o.extend_from_slice(k);
    }
    for t in infos {
        o.extend_from_slice(t);
    }
    while o.len() % 32 != 0 {
        o.push(0);
    }
    o.extend_from_slice(data);
    o
}

fn f32_tensor() -> Vec<u8> {
    ti(b"t", &[8], 0, 0)
}

fn good() -> Vec<u8> {
    file(3, &[arch()], &[f32_tensor()], &[0u8; 32])
}

fn set_u64(mut b: Vec<u8>, at: usize, v: u64) -> Vec<u8> {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    b
}

/// (file name, mode, expected error code, rule, bytes)
fn corpus() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Vec<u8>,
)> {
    let a = arch;
    let t = f32_tensor;
    let d32 = [0u8; 32];
    let mut c = vec![
        ("empty", "strict", "Truncated", "V1", Vec::new()),
        (
            "short_header",
            "strict",
            "Truncated",
            "V1",
            good()[..12].to_vec(),
        ),
        ("bad_magic", "strict", "BadMagic", "V1", {
            let mut b = good();
            b[0] = b'g';
            b
        }),
        ("big_endian", "strict", "BigEndian", "V2", {
            let mut b = good();
            b[4..8].copy_from_slice(&3u32.to_be_bytes());
            b
        }),
        (
            "version_1",
            "strict",
            "UnsupportedVersion",
            "V2",
            file(1, &[a()], &[t()], &d32),
        ),
        (
            "version_4",
            "strict",
            "UnsupportedVersion",
            "V2",
            file(4, &[a()], &[t()], &d32),
        ),
        (
            "huge_kv_count",
            "strict",
            "LimitExceeded",
            "V3",
            set_u64(good(), 16, u64::MAX / 2),
        ),
        (
            "huge_tensor_count",
            "strict",
            "LimitExceeded",
            "V3",
            set_u64(good(), 8, 1 << 40),
        ),
        (
            "kv_count_past_eof",
            "strict",
            "LimitExceeded",
            "V3",
            set_u64(good(), 16, 9),
        ),
        (
            "key_len_past_eof",
            "strict",
            "Truncated",
            "V4",
            set_u64(good(), 24, 5000),
        ),
        (
            "key_len_huge",
            "strict",
            "LimitExceeded",
            "V4",
            set_u64(good(), 24, u64::MAX),
        ),
        (
            "empty_key",
            "strict",
            "EmptyKey",
            "V4",
            file(3, &[a(), kv(b"", 4, &[1, 0, 0, 0])], &[t()], &d32),
        ),
        (
            "duplicate_key",
            "strict",
            "DuplicateKey",
            "V4",
            file(3, &[a(), a()], &[t()], &d32),
        ),
        (
            "key_invalid_utf8",
            "strict",
            "InvalidUtf8",
            "V7",
            file(3, &[a(), kv(b"x\xff", 4, &[1, 0, 0, 0])], &[t()], &d32),
        ),
        (
            "unknown_value_type",
            "strict",
            "UnknownValueType",
            "V5",
            file(3, &[a(), kv(b"x", 13, &[1, 0, 0, 0])], &[t()], &d32),
        ),
        (
            "array_elem_type_unknown",
            "strict",
            "UnknownValueType",
            "V5",
            file(
                3,
                &[a(), kv(b"x", 9, &[200, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7])],
                &[t()],
                &d32,
            ),
        ),
        ("nested_array", "strict", "NestedArray", "V5", {
            let mut p = Vec::new();
            u32le(&mut p, 9);
            u64le(&mut p, 1);
            u32le(&mut p, 4);
            u64le(&mut p, 1);
            u32le(&mut p, 7);
            file(3, &[a(), kv(b"x", 9, &p)], &[t()], &d32)
        }),
        ("array_count_past_eof", "strict", "LimitExceeded", "V5", {
            let mut p = Vec::new();
            u32le(&mut p, 4);
            u64le(&mut p, 1 << 40);
            u32le(&mut p, 7);
            file(3, &[a(), kv(b"x", 9, &p)], &[t()], &d32)
        }),
        (
            "string_array_count_past_eof",
            "strict",
            "LimitExceeded",
            "V5",
            {
                let mut p = Vec::new();
                u32le(&mut p, 8);
                u64le(&mut p, 1 << 20);
                file(3, &[a(), kv(b"x", 9, &p)], &[t()], &d32)
            },
        ),
        ("string_value_past_eof", "strict", "Truncated", "V4", {
            let mut b = file(3, &[a()], &[], &[]);
            b.truncate(24 + 8 + 20 + 4 + 8 + 2);
            b
        }),
        (
            "bool_byte_2",
            "strict",
            "InvalidBool",
            "V6",
            file(3, &[a(), kv(b"x", 7, &[2])], &[t()], &d32),
        ),
        ("bool_array_byte_7", "strict", "InvalidBool", "V6", {
            let mut p = Vec::new();
            u32le(&mut p, 7);
            u64le(&mut p, 3);
            p.extend_from_slice(&[0, 1, 7]);
            file(3, &[a(), kv(b"x", 9, &p)], &[t()], &d32)
        }),
        (
            "alignment_wrong_type",
            "strict",
            "WrongType",
            "V8",
            file(
                3,
                &[a(), kv(b"general.alignment", 10, &32u64.to_le_bytes())],
                &[t()],
                &d32,
            ),
        ),
        (
            "alignment_not_pow2",
            "strict",
            "BadAlignment",
            "V8",
            file(
                3,
                &[a(), kv(b"general.alignment", 4, &48u32.to_le_bytes())],
                &[t()],
                &d32,
            ),
        ),
        (
            "alignment_zero",
            "strict",
            "BadAlignment",
            "V8",
            file(
                3,
                &[a(), kv(b"general.alignment", 4, &0u32.to_le_bytes())],
                &[t()],
                &d32,
            ),
        ),
        (
            "alignment_4",
            "strict",
            "BadAlignment",
            "V8",
            file(
                3,
                &[a(), kv(b"general.alignment", 4, &4u32.to_le_bytes())],
                &[t()],
                &d32,
            ),
        ),
        (
            "missing_architecture",
            "strict",
            "MissingArchitecture",
            "V9",
            file(
                3,
                &[kv(b"general.name", 8, &str_payload(b"x"))],
                &[t()],
                &d32,
            ),
        ),
        (
            "architecture_wrong_type",
            "strict",
            "WrongType",
            "V9",
            file(
                3,
                &[kv(b"general.architecture", 4, &[1, 0, 0, 0])],
                &[t()],
                &d32,
            ),
        ),
        (
            "tensor_name_empty",
            "strict",
            "TensorNameLength",
            "V10",
            file(3, &[a()], &[ti(b"", &[8], 0, 0)], &d32),
        ),
        (
            "tensor_name_64_bytes",
            "strict",
            "TensorNameLength",
            "V10",
            file(3, &[a()], &[ti(&[b'n'; 64], &[8], 0, 0)], &d32),
        ),
        (
            "tensor_name_invalid_utf8",
            "strict",
            "InvalidUtf8",
            "V7",
            file(3, &[a()], &[ti(b"t\xc3", &[8], 0, 0)], &d32),
        ),
        (
            "duplicate_tensor",
            "strict",
            "DuplicateTensor",
            "V10",
            file(3, &[a()], &[t(), ti(b"t", &[8], 0, 32)], &[0u8; 64]),
        ),
        (
            "n_dims_0",
            "strict",
            "BadDimCount",
            "V11",
            file(3, &[a()], &[ti(b"t", &[], 0, 0)], &d32),
        ),
        (
            "n_dims_5",
            "strict",
            "BadDimCount",
            "V11",
            file(3, &[a()], &[ti(b"t", &[8, 1, 1, 1, 1], 0, 0)], &d32),
        ),
        (
            "zero_dim",
            "strict",
            "ZeroDim",
            "V12",
            file(3, &[a()], &[ti(b"t", &[8, 0], 0, 0)], &d32),
        ),
        (
            "element_count_overflow",
            "strict",
            "ElementCountOverflow",
            "V12",
            file(3, &[a()], &[ti(b"t", &[1 << 32, 1 << 32], 0, 0)], &d32),
        ),
        (
            "unknown_tensor_type",
            "strict",
            "UnknownTensorType",
            "V13",
            file(3, &[a()], &[ti(b"t", &[8], 99, 0)], &d32),
        ),
        (
            "i8_s_tensor",
            "strict",
            "MemoryOnlyType",
            "V13",
            file(3, &[a()], &[ti(b"t", &[32], 37, 0)], &d32),
        ),
        (
            "q8_0_not_block_multiple",
            "strict",
            "BadShapeForType",
            "V14",
            file(3, &[a()], &[ti(b"t", &[33], 8, 0)], &[0u8; 64]),
        ),
        (
            "i2_s_one_dim",
            "strict",
            "BadShapeForType",
            "V14",
            file(3, &[a()], &[ti(b"t", &[128], 36, 0)], &[0u8; 64]),
        ),
        (
            "i2_s_ne0_not_128",
            "strict",
            "BadShapeForType",
            "V14",
            file(3, &[a()], &[ti(b"t", &[64, 2], 36, 0)], &[0u8; 64]),
        ),
        (
            "tl2_ne0_below_256",
            "strict",
            "BadShapeForType",
            "V14",
            file(3, &[a()], &[ti(b"t", &[128, 32], 39, 0)], &[0u8; 2048]),
        ),
        (
            "misaligned_offset",
            "strict",
            "MisalignedOffset",
            "V15",
            file(3, &[a()], &[ti(b"t", &[8], 0, 4)], &[0u8; 64]),
        ),
        (
            "not_contiguous",
            "strict",
            "NotContiguous",
            "V16",
            file(3, &[a()], &[t(), ti(b"u", &[8], 0, 64)], &[0u8; 96]),
        ),
        (
            "data_past_eof",
            "strict",
            "OutOfBounds",
            "V17",
            file(3, &[a()], &[t()], &[0u8; 16]),
        ),
        (
            "offset_overflow_lenient",
            "lenient",
            "OutOfBounds",
            "V17",
            file(3, &[a()], &[ti(b"t", &[8], 0, u64::MAX - 31)], &d32),
        ),
        (
            "overlap_lenient",
            "lenient",
            "Overlap",
            "V18",
            file(
                3,
                &[a()],
                &[ti(b"t", &[16], 0, 0), ti(b"u", &[8], 0, 32)],
                &[0u8; 96],
            ),
        ),
        (
            "f32_nan",
            "data",
            "NonFinite",
            "V19",
            file(3, &[a()], &[t()], &{
                let mut d = [0u8; 32];
                d[4..8].copy_from_slice(&f32::NAN.to_le_bytes());
                d
            }),
        ),
        (
            "f16_inf",
            "data",
            "NonFinite",
            "V19",
            file(3, &[a()], &[ti(b"t", &[16], 1, 0)], &{
                let mut d = [0u8; 32];
                d[2..4].copy_from_slice(&0x7c00u16.to_le_bytes());
                d
            }),
        ),
        (
            "i2_s_code_3",
            "data",
            "InvalidI2sCode",
            "V20",
            file(3, &[a()], &[ti(b"t", &[128, 1], 36, 0)], &{
                let mut d = [0x55u8; 64];
                d[5] = 0x57;
                d[32..].fill(0);
                d
            }),
        ),
        (
            "i2_s_negative_scale",
            "data",
            "InvalidI2sScale",
            "V20",
            file(3, &[a()], &[ti(b"t", &[128, 1], 36, 0)], &{
                let mut d = [0x55u8; 64];
                d[32..].fill(0);
                d[32..36].copy_from_slice(&(-1.0f32).to_le_bytes());
                d
            }),
        ),
    ];
    c.sort_by_key(|e| e.0);
    c
}

fn error_code(mode: &str, bytes: &[u8]) -> String {
    let opts = ReadOptions {
        contiguity: if mode == "lenient" {
            Contiguity::Lenient
        } else {
            Contiguity::Strict
        },
        ..ReadOptions::default()
    };
    match GgufFile::parse_with(bytes, &opts) {
        Err(e) => {
            assert!(e.offset().is_some(), "{e} has no offset");
            e.code().to_owned()
        }
        Ok(f) if mode == "data" => f
            .validate_data()
            .first()
            .map(|e| e.code().to_owned())
            .unwrap_or_else(|| "accepted".into()),
        Ok(_) => "accepted".into(),
    }
}

#[test]
fn committed_corpus_matches_the_generator() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut table = BTreeMap::new();
    for (name, mode, code, rule, bytes) in corpus() {
        let path = Path::new(DIR).join(format!("{name}.gguf"));
        if bless {
            std::fs::create_dir_all(DIR).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            committed == bytes,
            "{name}: committed file differs from the generator"
        );
        table.insert(
            format!("{name}.gguf"),
            serde_json::json!({"mode": mode, "error": code, "rule": rule}),
        );
    }
    let json = serde_json::to_string_pretty(&table).unwrap() + "\n";
    let expected_path = Path::new(DIR).join("expected.json");
    if bless {
        std::fs::write(&expected_path, &json).unwrap();
    }
    assert_eq!(std::fs::read_to_string(expected_path).unwrap(), json);
    assert!(table.len() >= 30);
}

#[test]
fn every_bad_file_gives_exactly_its_error() {
    let table: BTreeMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(Path::new(DIR).join("expected.json")).unwrap(),
    )
    .unwrap();
    let mut entries = std::fs::read_dir(DIR).unwrap().count();
    entries -= 1; // expected.json
    assert_eq!(
        entries,
        table.len(),
        "every file in {DIR} is listed in expected.json"
    );
    for (name, want) in &table {
        let bytes = std::fs::read(Path::new(DIR).join(name)).unwrap();
        let got = error_code(want["mode"].as_str().unwrap(), &bytes);
        assert_eq!(got, want["error"].as_str().unwrap(), "{name}");
    }
    // The generator's base file is valid: every rejection above is the mutation's doing.
    assert!(GgufFile::parse(&good()).is_ok());
}
