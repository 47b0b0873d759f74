//! HF checkpoints: ref-tiny packed and master (`fixtures/ref-tiny/{packed,master}`), the packed
//! codec against upstream's I2_S bytes, and master ternarization against transformers.
use bitnet_gguf::hf::master::{self, ulp_distance};
use bitnet_gguf::hf::{Checkpoint, CheckpointFormat, Error, Projection};
use bitnet_gguf::layout::hf_packed::{ScaleConvention, ScaleRounding, HF_PACKED};
use bitnet_gguf::layout::{i2s::I2S, TernaryCodec};
use sha2::{Digest, Sha256};
use std::path::Path;

const PACKED: &str = "fixtures/ref-tiny/packed";
const MASTER: &str = "fixtures/ref-tiny/master";

/// Per-tensor SHA-256 of the I2_S data in upstream's `ref-tiny-i2_s.gguf`
/// (shared/fixtures/ref-tiny/gguf/manifest.json, files."ref-tiny-i2_s.gguf".tensors).
const I2S_SHA256: [(&str, &str); 14] = [
    (
        "blk.0.ffn_down.weight",
        "700391d369ddb92a00d39a68838dbe666bbc7bb91b935b020100fccc686bdea4",
    ),
    (
        "blk.0.ffn_gate.weight",
        "6115734fcfdb962dbe772e289bc4bacf44f750ea434a3046b9352fcbc08afd9f",
    ),
    (
        "blk.0.ffn_up.weight",
        "5ef9484e4009ccc63de85d57e7d3688f67bedfeb31440baebd23f1eef52017d9",
    ),
    (
        "blk.0.attn_k.weight",
        "c48792ce64a473689ffba8e65cedd870578e947d12f9cc4fd387cd6e21bd7890",
    ),
    (
        "blk.0.attn_output.weight",
        "b09ee368d08a80bbb8fbc6d65818958bbaa67bc1d4b3eea74019c268ad96bf8e",
    ),
    (
        "blk.0.attn_q.weight",
        "a30c74666123239f0a8e5e6a013b1e8f0f840485f50941ce877948cb451daf29",
    ),
    (
        "blk.0.attn_v.weight",
        "3a6b226f00b974ff1c81db17a856162309a311c86d6a3313e2dfca81a14198ce",
    ),
    (
        "blk.1.ffn_down.weight",
        "892427b082d8118f76e0f38ab9647bf3fc5bd1240cc8a81935df1021ccfc7a1c",
    ),
    (
        "blk.1.ffn_gate.weight",
        "242a5b361cfd0e028aab4c37606a0bbb52ba9a302dbaacc8a936c87a81514522",
    ),
    (
        "blk.1.ffn_up.weight",
        "0a87b7823e5e96da40360e77f3f81691d453ce7a429417d486be47615f74f390",
    ),
    (
        "blk.1.attn_k.weight",
        "8cee03f3457ac8e1a76c6d99bb8b69a378b479aebe403c733da9b303facbda4c",
    ),
    (
        "blk.1.attn_output.weight",
        "d4d4f7d1098d9777f4b513614b9edede2ffc598b87957a9a5a03e17fa9fa433b",
    ),
    (
        "blk.1.attn_q.weight",
        "ce8d9d638ca568338e1a566397fc501f8826971af30c92cf18527731682484bd",
    ),
    (
        "blk.1.attn_v.weight",
        "991b76a19ba8338e022490f10ad465650aba2dc0fc4964ef58d92b5dc2eebcbf",
    ),
];

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn packed_checkpoint_opens() {
    let ck = Checkpoint::open(Path::new(PACKED)).unwrap();
    assert_eq!(ck.format(), CheckpointFormat::Packed);
    assert_eq!(ck.scale_convention(), ScaleConvention::Multiply);
    // 1 embedding + 1 final norm + 2 layers × (4 norms + 7 weights + 7 scales).
    assert_eq!(ck.tensor_names().count(), 2 + 2 * 18);
    ck.validate().unwrap();
}

#[test]
fn master_checkpoint_opens() {
    let ck = Checkpoint::open(Path::new(MASTER)).unwrap();
    assert_eq!(ck.format(), CheckpointFormat::Master);
    assert_eq!(ck.tensor_names().count(), 2 + 2 * 11);
}

/// Packed → canonical → I2_S reproduces upstream's bytes, scale included, for all 14 tensors;
/// and canonical → HF packed gives back the checkpoint's bytes.
#[test]
fn packed_decodes_to_upstream_i2s_and_back() {
    let ck = Checkpoint::open(Path::new(PACKED)).unwrap();
    for (gguf_name, sha) in I2S_SHA256 {
        let role = bitnet_gguf::hf::TensorRole::from_gguf_name(gguf_name).unwrap();
        let bitnet_gguf::hf::TensorRole::Projection { layer, proj } = role else {
            panic!("{gguf_name}")
        };
        let t = ck.projection(layer, proj, ScaleRounding::Exact).unwrap();
        let i2s = I2S.encode(&t).unwrap();
        assert_eq!(hex(&Sha256::digest(&i2s)), sha, "{gguf_name}");
        let (bytes, scale) = HF_PACKED
            .encode_with_scale(
                &t,
                ck.scale_format(layer, proj).unwrap(),
                ScaleRounding::Exact,
            )
            .unwrap();
        assert_eq!(bytes, ck.tensor(&proj.hf_weight_name(layer)).unwrap().data);
        assert_eq!(scale, ck.tensor(&proj.hf_scale_name(layer)).unwrap().data);
    }
}

/// Master → ternary: codes equal transformers' (the packed checkpoint's) for every tensor;
/// scales within 1 f32 ulp of torch's f32 absmean; bf16(our scale) equals the stored scale.
#[test]
fn master_ternarization_matches_transformers() {
    let packed = Checkpoint::open(Path::new(PACKED)).unwrap();
    let master_ck = Checkpoint::open(Path::new(MASTER)).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read("fixtures/ref-tiny/reference/manifest.json").unwrap(),
    )
    .unwrap();
    let torch_scales = manifest["weight_scales_float32_before_bf16"]
        .as_object()
        .unwrap();
    let mut compared = 0;
    let mut max_ulps = 0;
    for layer in 0..2 {
        for proj in Projection::ALL {
            let ours = master_ck
                .projection(layer, proj, ScaleRounding::Exact)
                .unwrap();
            let theirs = packed
                .projection(layer, proj, ScaleRounding::Exact)
                .unwrap();
            assert_eq!(ours.codes(), theirs.codes(), "codes of {layer} {proj:?}");
            let key = format!("model.layers.{layer}.{}", proj.hf_module());
            let torch = torch_scales[&key].as_f64().unwrap() as f32;
            let ulps = ulp_distance(ours.scale(), torch);
            max_ulps = max_ulps.max(ulps);
            assert!(ulps <= 1, "{key}: ours {} torch {torch}", ours.scale());
            // The stored bf16 scale is bf16(torch's); ours rounds to the same bf16.
            assert_eq!(
                half::bf16::from_f32(ours.scale()).to_f32(),
                theirs.scale(),
                "{key}"
            );
            // Codes from torch's own mean are the same too.
            let values = master_ck
                .tensor(&proj.hf_weight_name(layer))
                .unwrap()
                .to_f32()
                .unwrap();
            let s = master::scale_from_mean(torch);
            assert!(values
                .iter()
                .zip(theirs.codes())
                .all(|(&w, &c)| master::ternary_code(w, s.inverse) == c));
            compared += 1;
        }
    }
    assert_eq!(compared, torch_scales.len());
    // manifest: 3 of 14 torch means differ by 1 ulp from the correctly rounded mean.
    assert!(max_ulps <= 1);
}

fn copy_dir(from: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn contradictory_config_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(PACKED, dir.path());
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"offline\"", "\"online\""),
    )
    .unwrap();
    match Checkpoint::open(dir.path()) {
        Err(Error::Contradiction { what, .. }) => assert!(what.ends_with(".weight"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn wrong_shape_from_config_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(PACKED, dir.path());
    let cfg = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        cfg.replace("\"intermediate_size\": 768", "\"intermediate_size\": 512"),
    )
    .unwrap();
    assert!(matches!(
        Checkpoint::open(dir.path()),
        Err(Error::WrongShape { .. })
    ));
}

#[test]
fn sharded_checkpoint_opens_and_index_is_checked() {
    let src = Checkpoint::open(Path::new(PACKED)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(Path::new(PACKED).join(f), dir.path().join(f)).unwrap();
    }
    let names: Vec<String> = src.tensor_names().map(str::to_string).collect();
    let index = write_two_shards(&src, dir.path(), names.len() / 2);
    let index_path = dir.path().join("model.safetensors.index.json");
    std::fs::write(&index_path, index.to_string()).unwrap();
    let ck = Checkpoint::open(dir.path()).unwrap();
    assert_eq!(ck.files().len(), 2);
    let t0 = ck
        .projection(1, Projection::Down, ScaleRounding::Exact)
        .unwrap();
    assert_eq!(
        t0,
        src.projection(1, Projection::Down, ScaleRounding::Exact)
            .unwrap()
    );

    // An index entry pointing at the wrong shard is a contradiction.
    let mut bad = index.clone();
    bad["weight_map"][&names[0]] = "model-00002-of-00002.safetensors".into();
    std::fs::write(&index_path, bad.to_string()).unwrap();
    assert!(matches!(
        Checkpoint::open(dir.path()),
        Err(Error::Contradiction { .. })
    ));
    // A path escaping the directory is refused.
    let mut bad = index;
    bad["weight_map"][&names[0]] = "../x.safetensors".into();
    std::fs::write(&index_path, bad.to_string()).unwrap();
    assert!(matches!(
        Checkpoint::open(dir.path()),
        Err(Error::BadField { .. })
    ));
}

/// Writes `src`'s tensors as two shards in `dir` (the first `first` sorted names in shard 1, the
/// rest in shard 2) plus `model.safetensors.index.json`, and returns the index.
pub(crate) fn write_two_shards(src: &Checkpoint, dir: &Path, first: usize) -> serde_json::Value {
    use bitnet_gguf::hf::writer::{write_safetensors, TensorHeader};
    let names: Vec<String> = src.tensor_names().map(str::to_string).collect();
    let (a, b) = names.split_at(first);
    let mut weight_map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", a),
        ("model-00002-of-00002.safetensors", b),
    ] {
        let headers: Vec<TensorHeader> = part
            .iter()
            .map(|n| {
                let t = src.tensor(n).unwrap();
                TensorHeader::new(n.clone(), t.dtype, t.shape.to_vec())
            })
            .collect();
        write_safetensors(
            &dir.join(file),
            &headers,
            &Default::default(),
            |_, h, out| {
                out.write_all(src.tensor(&h.name).unwrap().data)
                    .map_err(|source| Error::Io {
                        path: file.into(),
                        source,
                    })
            },
        )
        .unwrap();
        for n in part {
            weight_map.insert(n.clone(), file.into());
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    index
}
