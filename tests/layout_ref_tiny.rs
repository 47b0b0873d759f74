//! ref-tiny: every I2_S tensor of the upstream-converted file, decoded and re-encoded to TQ1_0,
//! TQ2_0, TL1 and TL2, equals the corresponding tensor of the upstream-written files. There is
//! no GGUF reader on this layer: tensors are sliced with the manifest's offsets.
use crate::layout_common::{read_fixture, read_json, sha256_hex};
use bitnet_gguf::layout::i2s::I2S;
use bitnet_gguf::layout::tl1::Tl1;
use bitnet_gguf::layout::tl2::Tl2;
use bitnet_gguf::layout::tq1_0::TQ1_0;
use bitnet_gguf::layout::tq2_0::TQ2_0;
use bitnet_gguf::layout::{KernelConfig, Shape, TernaryCodec, Tl1Tiling, Tl2Tiling};

const DIR: &str = "fixtures/ref-tiny/gguf";

/// One GGUF file with its manifest entry.
struct File {
    bytes: Vec<u8>,
    entry: serde_json::Value,
    data_start: usize,
}

impl File {
    fn open(manifest: &serde_json::Value, name: &str) -> File {
        let entry = manifest["files"][name].clone();
        let bytes = read_fixture(&format!("{DIR}/{name}"));
        assert_eq!(
            sha256_hex(&bytes),
            entry["sha256"].as_str().unwrap(),
            "{name}"
        );
        let data_start = entry["metadata_region_bytes"].as_u64().unwrap() as usize;
        // The data section starts right after the metadata, aligned to 32, and the last
        // tensor ends exactly at the end of the file.
        assert_eq!(data_start % 32, 0);
        let last = entry["tensors"].as_array().unwrap().last().unwrap();
        let end = data_start
            + last["offset"].as_u64().unwrap() as usize
            + last["nbytes"].as_u64().unwrap() as usize;
        assert_eq!(end, bytes.len(), "{name}: data start");
        File {
            bytes,
            entry,
            data_start,
        }
    }

    /// (name, type, shape, region bytes) of every tensor, checked against its SHA-256.
    fn tensors(&self) -> Vec<(String, String, Shape, &[u8])> {
        self.entry["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let offset = self.data_start + t["offset"].as_u64().unwrap() as usize;
                let region = &self.bytes[offset..offset + t["nbytes"].as_u64().unwrap() as usize];
                assert_eq!(sha256_hex(region), t["sha256"].as_str().unwrap());
                let ne: Vec<usize> = t["ne"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect();
                let shape = if ne.len() == 2 {
                    Shape::new(ne[1], ne[0])
                } else {
                    Shape::new(1, ne[0])
                };
                let name = t["name"].as_str().unwrap().to_string();
                (name, t["type"].as_str().unwrap().to_string(), shape, region)
            })
            .collect()
    }

    fn region(&self, name: &str) -> &[u8] {
        self.tensors()
            .into_iter()
            .find(|(n, ..)| n == name)
            .map(|(.., r)| r)
            .unwrap_or_else(|| panic!("no tensor {name}"))
    }
}

#[test]
fn every_i2s_tensor_re_encodes_to_the_upstream_tq_and_tl_files() {
    let manifest = read_json(&format!("{DIR}/manifest.json"));
    let i2s = File::open(&manifest, "ref-tiny-i2_s.gguf");
    let tq1 = File::open(&manifest, "ref-tiny-tq1_0.gguf");
    let tq2 = File::open(&manifest, "ref-tiny-tq2_0.gguf");
    let tl1 = File::open(&manifest, "ref-tiny-tl1.gguf");
    let tl2 = File::open(&manifest, "ref-tiny-tl2.gguf");
    let tl1_ini = String::from_utf8(read_fixture(&format!(
        "{DIR}/ref-tiny-tl1.kernel_config.ini"
    )))
    .unwrap();
    let tl2_ini = String::from_utf8(read_fixture(&format!(
        "{DIR}/ref-tiny-tl2.kernel_config.ini"
    )))
    .unwrap();
    let tl1_config = KernelConfig::parse(&tl1_ini).unwrap();
    let tl2_config = KernelConfig::parse(&tl2_ini).unwrap();
    assert_eq!(tl1_config.to_ini_string(), tl1_ini);
    assert_eq!(tl2_config.to_ini_string(), tl2_ini);

    let mut checked = 0;
    for (name, kind, shape, region) in i2s.tensors() {
        if kind != "I2_S" {
            continue;
        }
        let tensor = I2S.decode(region, shape).unwrap();
        assert_eq!(I2S.encode(&tensor).unwrap(), region, "{name}: I2_S");
        let tl1_tiling = tl1_config.tl1_tiling(shape).unwrap();
        let tl2_tiling = tl2_config.tl2_tiling(shape).unwrap();
        // Without the ini, the derivation rule gives the same tilings.
        assert_eq!(Tl1Tiling::derive(shape).unwrap().0, tl1_tiling);
        assert_eq!(Tl2Tiling::derive(shape).unwrap().0, tl2_tiling);
        let targets: [(&File, &dyn TernaryCodec); 4] = [
            (&tq1, &TQ1_0),
            (&tq2, &TQ2_0),
            (&tl1, &Tl1::new(tl1_tiling)),
            (&tl2, &Tl2::new(tl2_tiling)),
        ];
        for (file, codec) in targets {
            let expected = file.region(&name);
            assert_eq!(
                codec.encode(&tensor).unwrap(),
                expected,
                "{name}: {}",
                codec.name()
            );
            // And back: every layout decodes to the same tensor (scales are f16-exact here).
            assert_eq!(codec.decode(expected, shape).unwrap(), tensor, "{name}");
        }
        checked += 1;
    }
    assert_eq!(checked, 14);
}
