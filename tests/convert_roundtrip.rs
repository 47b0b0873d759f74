//! Round trips: packed -> each layout -> packed, and layout -> layout -> back, byte-identical.
use crate::convert_common::*;
use bitnet_gguf::convert::{self, EmbedType, GgufToHf};
use bitnet_gguf::hf::CheckpointFormat;
use bitnet_gguf::layout::LayoutKind;

fn to_hf(
    input: &std::path::Path,
    out: &std::path::Path,
    format: CheckpointFormat,
) -> convert::ConvertReport {
    let opts = GgufToHf {
        input: input.to_path_buf(),
        output: out.to_path_buf(),
        format,
        kernel_config: None,
        verify: true,
        quiet: true,
    };
    convert::gguf_to_hf(&opts).unwrap_or_else(|e| panic!("{}: {e}", input.display()))
}

#[test]
fn packed_to_each_layout_and_back_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let original = read(&std::path::Path::new(PACKED).join("model.safetensors"));
    for layout in ALL {
        // F32 embedding: bf16 -> f32 is exact, so the embedding survives too (an F16 embedding
        // loses the low bits of bf16 values below f16's normal range: 2 of ref-tiny's).
        let gguf = dir.path().join(format!("{layout}.gguf"));
        official(PACKED, &gguf, layout, EmbedType::F32);
        let back = dir.path().join(format!("{layout}-hf"));
        let report = to_hf(&gguf, &back, CheckpointFormat::Packed);
        assert_eq!(report.verify.unwrap().differences(), 0);
        assert!(
            read(&back.join("model.safetensors")) == original,
            "{layout}: model.safetensors differs"
        );
        let config: serde_json::Value =
            serde_json::from_slice(&read(&back.join("config.json"))).unwrap();
        assert_eq!(
            config["quantization_config"]["quantization_mode"],
            "offline"
        );
        assert_eq!(
            config["quantization_config"]["linear_class"],
            "autobitlinear"
        );
        assert!(back.join("tokenizer.json").exists());
        assert!(back.join("generation_config.json").exists());
    }
}

#[test]
fn every_layout_to_every_other_and_back_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for layout in ALL {
        let path = dir.path().join(format!("{layout}.gguf"));
        official(PACKED, &path, layout, EmbedType::F16);
        files.push((layout, path));
    }
    for (from, path) in &files {
        let original = read(path);
        for to in ALL {
            if to == *from {
                continue;
            }
            let there = dir.path().join(format!("{from}-to-{to}.gguf"));
            let back = dir.path().join(format!("{from}-to-{to}-back.gguf"));
            regguf(path, &there, to, None);
            regguf(&there, &back, *from, None);
            assert!(read(&back) == original, "{from} -> {to} -> {from} differs");
            std::fs::remove_file(&there).unwrap();
            std::fs::remove_file(&back).unwrap();
        }
    }
}

#[test]
fn upstream_tl_files_read_with_their_ini_convert_to_the_upstream_i2s_file() {
    let dir = tempfile::tempdir().unwrap();
    for layout in [LayoutKind::TL1, LayoutKind::TL2] {
        let out = dir.path().join(format!("{layout}-i2s.gguf"));
        let name = if layout == LayoutKind::TL1 {
            "tl1"
        } else {
            "tl2"
        };
        regguf(&upstream(name), &out, LayoutKind::I2_S, ini(layout));
        // TL2's file is upstream's too, so metadata and data both match the i2_s file.
        assert!(read(&out) == read(&upstream("i2_s")), "{layout}");
    }
}

#[test]
fn master_output_reternarizes_to_the_same_codes() {
    let dir = tempfile::tempdir().unwrap();
    let master = dir.path().join("master");
    let report = to_hf(&upstream("i2_s"), &master, CheckpointFormat::Master);
    assert_eq!(report.verify.unwrap().differences(), 0);
    let config: serde_json::Value =
        serde_json::from_slice(&read(&master.join("config.json"))).unwrap();
    assert_eq!(config["quantization_config"]["quantization_mode"], "online");
    let a = convert::ModelSource::open(&upstream("i2_s"), None).unwrap();
    let b = convert::ModelSource::open(&master, None).unwrap();
    for layer in 0..2 {
        for proj in bitnet_gguf::hf::Projection::ALL {
            let (ta, tb) = (
                a.ternary(layer, proj).unwrap(),
                b.ternary(layer, proj).unwrap(),
            );
            assert_eq!(ta.codes(), tb.codes());
            // absmean of the written bf16 values is the scale to within bf16 precision.
            assert!(((ta.scale() - tb.scale()) / ta.scale()).abs() < 1.0 / 256.0);
        }
    }
}

#[test]
fn sharded_checkpoint_with_transformers5_config_converts_to_the_upstream_file() {
    use bitnet_gguf::hf::Checkpoint;
    let src = Checkpoint::open(std::path::Path::new(PACKED)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ref-tiny");
    std::fs::create_dir(&ckpt).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(std::path::Path::new(PACKED).join(f), ckpt.join(f)).unwrap();
    }
    // transformers 5 spellings: rope_parameters.rope_theta and dtype.
    let mut config: serde_json::Value =
        serde_json::from_slice(&read(&std::path::Path::new(PACKED).join("config.json"))).unwrap();
    let obj = config.as_object_mut().unwrap();
    let theta = obj.remove("rope_theta").unwrap();
    obj.insert(
        "rope_parameters".into(),
        serde_json::json!({"rope_theta": theta, "rope_type": "default"}),
    );
    let dtype = obj.remove("torch_dtype").unwrap();
    obj.insert("dtype".into(), dtype);
    std::fs::write(ckpt.join("config.json"), config.to_string()).unwrap();
    let shard1 = src.tensor_names().count() / 3;
    crate::hf_checkpoint::write_two_shards(&src, &ckpt, shard1);
    let out = dir.path().join("out.gguf");
    hf_converter(ckpt.to_str().unwrap(), &out, LayoutKind::I2_S);
    assert!(read(&out) == read(&upstream("i2_s")));
}

#[test]
fn upstream_gguf_to_hf_and_back_reproduces_the_upstream_file() {
    let dir = tempfile::tempdir().unwrap();
    // The directory name becomes general.name in the hf-converter profile, as upstream's does.
    let hf = dir.path().join("ref-tiny");
    to_hf(&upstream("i2_s"), &hf, CheckpointFormat::Packed);
    // The rebuilt tokenizer_config.json equals the original one.
    let json =
        |p: &std::path::Path| -> serde_json::Value { serde_json::from_slice(&read(p)).unwrap() };
    assert_eq!(
        json(&hf.join("tokenizer_config.json")),
        json(&std::path::Path::new(PACKED).join("tokenizer_config.json"))
    );
    let out = dir.path().join("again.gguf");
    let mut opts = convert::HfToGguf::new(&hf, &out);
    opts.profile = bitnet_gguf::convert::Profile::HfConverter;
    opts.quiet = true;
    convert::hf_to_gguf(&opts).unwrap();
    assert!(read(&out) == read(&upstream("i2_s")));
}
