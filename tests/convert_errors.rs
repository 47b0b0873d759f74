//! Every refusal the issue lists, as a typed error (library) or exit code 2 (binary).
use crate::convert_common::*;
use assert_cmd::Command;
use bitnet_gguf::convert::{self, Error, GgufToGguf, HfToGguf};
use bitnet_gguf::layout::LayoutKind;
use std::path::Path;

fn copy_dir(from: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// Byte range of one tensor's data inside `model.safetensors`.
fn tensor_range(file: &[u8], name: &str) -> std::ops::Range<usize> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
    let offsets = &header[name]["data_offsets"];
    let start = 8 + n + offsets[0].as_u64().unwrap() as usize;
    start..8 + n + offsets[1].as_u64().unwrap() as usize
}

fn patched_packed(dir: &Path, tensor: &str, patch: impl FnOnce(&mut [u8])) -> std::path::PathBuf {
    let ckpt = dir.join("ckpt");
    copy_dir(PACKED, &ckpt);
    let path = ckpt.join("model.safetensors");
    let mut bytes = read(&path);
    let range = tensor_range(&bytes, tensor);
    patch(&mut bytes[range]);
    std::fs::write(&path, bytes).unwrap();
    ckpt
}

fn quiet(input: &Path, out: &Path) -> HfToGguf {
    let mut opts = HfToGguf::new(input, out);
    opts.quiet = true;
    opts
}

#[test]
fn output_equal_to_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.gguf");
    std::fs::copy(upstream("i2_s"), &input).unwrap();
    let before = read(&input);
    let opts = GgufToGguf {
        input: input.clone(),
        output: input.clone(),
        layout: LayoutKind::TQ2_0,
        kernel_config: None,
        embed_type: None,
        verify: false,
        quiet: true,
    };
    assert!(matches!(
        convert::gguf_to_gguf(&opts),
        Err(Error::OutputIsInput { .. })
    ));
    assert!(read(&input) == before);
    // The binary says so and exits 2.
    let out = Command::cargo_bin("bitnet-convert")
        .unwrap()
        .args([
            "gguf-to-gguf",
            input.to_str().unwrap(),
            "-o",
            input.to_str().unwrap(),
            "--layout",
            "tq2_0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("bitnet-convert: "), "{stderr}");
    assert!(stderr.contains("the output is the input file"), "{stderr}");

    // hf-to-gguf refuses to write over any file of the checkpoint.
    let ckpt = dir.path().join("ckpt");
    copy_dir(PACKED, &ckpt);
    let weights = ckpt.join("model.safetensors");
    let before = read(&weights);
    let err = convert::hf_to_gguf(&quiet(&ckpt, &weights)).unwrap_err();
    assert!(matches!(err, Error::OutputIsInput { .. }), "{err}");
    assert!(read(&weights) == before);
}

#[test]
fn unknown_architecture_is_refused() {
    use bitnet_gguf::gguf::{GgufFile, MetaValue, Metadata};
    let dir = tempfile::tempdir().unwrap();
    let bytes = read(&upstream("i2_s"));
    let file = GgufFile::parse(&bytes).unwrap();
    let mut meta = Metadata::from_file(&file);
    meta.set("general.architecture", MetaValue::String("llama".into()));
    let descs: Vec<_> = file
        .tensors()
        .iter()
        .map(|t| bitnet_gguf::gguf::TensorDesc::new(t.name.clone(), t.dims.clone(), t.ggml_type))
        .collect();
    let mut w = bitnet_gguf::gguf::GgufWriter::new(Vec::new(), &meta, &descs).unwrap();
    for t in file.tensors() {
        w.write_tensor(&t.name, file.tensor_data(t).unwrap())
            .unwrap();
    }
    let path = dir.path().join("llama.gguf");
    std::fs::write(&path, w.finish().unwrap()).unwrap();
    let err = convert::ModelSource::open(&path, None).unwrap_err();
    assert!(
        matches!(&err, Error::UnknownArchitecture { found, .. } if found == "llama"),
        "{err}"
    );
}

#[test]
fn missing_tokenizer_is_refused_unless_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    copy_dir(PACKED, &ckpt);
    std::fs::remove_file(ckpt.join("tokenizer.json")).unwrap();
    let out = dir.path().join("out.gguf");
    let err = convert::hf_to_gguf(&quiet(&ckpt, &out)).unwrap_err();
    assert!(matches!(err, Error::MissingTokenizer { .. }), "{err}");
    assert!(err.to_string().contains("--no-tokenizer"));
    assert!(!out.exists());
    let mut opts = quiet(&ckpt, &out);
    opts.no_tokenizer = true;
    let report = convert::hf_to_gguf(&opts).unwrap();
    assert!(report
        .notes
        .iter()
        .any(|n| n.contains("no tokenizer.ggml.* keys")));
    let bytes = read(&out);
    let file = bitnet_gguf::gguf::GgufFile::parse(&bytes).unwrap();
    assert!(file.get("tokenizer.ggml.tokens").is_none());
}

#[test]
fn non_ternary_packed_value_is_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let tensor = "model.layers.1.mlp.up_proj.weight";
    let ckpt = patched_packed(dir.path(), tensor, |b| b[100] = 0xff);
    let out = dir.path().join("out.gguf");
    let err = convert::hf_to_gguf(&quiet(&ckpt, &out)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(tensor), "{text}");
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left"
    );
}

#[test]
fn nan_scale_is_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let tensor = "model.layers.0.self_attn.k_proj.weight_scale";
    let ckpt = patched_packed(dir.path(), tensor, |b| b.copy_from_slice(&[0xc0, 0x7f]));
    let out = dir.path().join("out.gguf");
    let err = convert::hf_to_gguf(&quiet(&ckpt, &out)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("k_proj"), "{text}");
    assert!(!out.exists());
}

#[test]
fn illegal_tl_shape_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.gguf");
    // TL1's ini has bm = 64 and BK = 128: legal for TL1, illegal for TL2.
    let mut opts = quiet(Path::new(PACKED), &out);
    opts.layout = LayoutKind::TL2;
    opts.kernel_config = ini(LayoutKind::TL1);
    let err = convert::hf_to_gguf(&opts).unwrap_err();
    assert!(matches!(err, Error::KernelConfig { .. }), "{err}");
    assert!(err.to_string().contains("TL2 requires 32"), "{err}");
    // An ini that lacks a shape of the model.
    let ini_path = dir.path().join("short.ini");
    std::fs::write(
        &ini_path,
        "[Kernels_0]\nm=256\nk=256\nbm=128\nbk=64\nbmm=64\n",
    )
    .unwrap();
    opts.layout = LayoutKind::TL1;
    opts.kernel_config = Some(ini_path);
    let err = convert::hf_to_gguf(&opts).unwrap_err();
    assert!(err.to_string().contains("no section"), "{err}");
    assert!(!out.exists());
}

#[test]
fn missing_tensor_is_an_error() {
    use bitnet_gguf::gguf::{GgufFile, GgufWriter, Metadata, TensorDesc};
    let dir = tempfile::tempdir().unwrap();
    let bytes = read(&upstream("i2_s"));
    let file = GgufFile::parse(&bytes).unwrap();
    let kept: Vec<_> = file
        .tensors()
        .iter()
        .filter(|t| t.name != "blk.1.attn_v.weight")
        .collect();
    let descs: Vec<TensorDesc> = kept
        .iter()
        .map(|t| TensorDesc::new(t.name.clone(), t.dims.clone(), t.ggml_type))
        .collect();
    let input = dir.path().join("short.gguf");
    let mut w = GgufWriter::new(Vec::new(), &Metadata::from_file(&file), &descs).unwrap();
    for t in &kept {
        w.write_tensor(&t.name, file.tensor_data(t).unwrap())
            .unwrap();
    }
    std::fs::write(&input, w.finish().unwrap()).unwrap();
    let err = convert::ModelSource::open(&input, None).unwrap_err();
    assert!(
        matches!(&err, Error::MissingTensor { tensor, .. } if tensor == "blk.1.attn_v.weight"),
        "{err}"
    );
}

#[test]
fn verify_exits_1_on_differences_and_0_when_equal() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("x.gguf");
    official(PACKED, &gguf, LayoutKind::I2_S, convert::EmbedType::F16);
    // Two of ref-tiny's bf16 embedding values are below f16's normal range and lose bits in
    // the F16 embedding: `verify` compares values exactly and reports them.
    let out = Command::cargo_bin("bitnet-convert")
        .unwrap()
        .args(["verify", PACKED, gguf.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bad: Vec<&str> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == false)
        .map(|r| r["tensor"].as_str().unwrap())
        .collect();
    assert_eq!(bad, ["token_embd.weight"]);
    let out = Command::cargo_bin("bitnet-convert")
        .unwrap()
        .args([
            "verify",
            upstream("i2_s").to_str().unwrap(),
            gguf.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn synth_tiny_converts_and_verifies_through_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("tiny");
    let gguf = dir.path().join("tiny.gguf");
    let run = |args: &[&str]| {
        Command::cargo_bin("bitnet-convert")
            .unwrap()
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "synth",
        "--preset",
        "tiny",
        "-o",
        ckpt.to_str().unwrap(),
        "--format",
        "master",
        "--seed",
        "7",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&[
        "hf-to-gguf",
        ckpt.to_str().unwrap(),
        "-o",
        gguf.to_str().unwrap(),
        "--layout",
        "tl2",
        "--verify",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Master scales are f32 absmeans: exact in TL2's f32 slot, so verify passes without ulps.
    let out = run(&["verify", ckpt.to_str().unwrap(), gguf.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
