//! SIGKILL in the middle of a conversion leaves no output file and an untouched input.
use bitnet_gguf::hf::writer::{write_safetensors, TensorHeader};
use bitnet_gguf::hf::Dtype;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::{Duration, Instant};

/// A one-layer packed checkpoint with a 64 Mi-element embedding (128 MiB), so that converting
/// it takes long enough to be interrupted.
fn big_checkpoint(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read("fixtures/ref-tiny/packed/config.json").unwrap())
            .unwrap();
    config["vocab_size"] = 262_144.into();
    config["num_hidden_layers"] = 1.into();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut headers = vec![
        TensorHeader::new("model.embed_tokens.weight", Dtype::BF16, vec![262_144, 256]),
        TensorHeader::new("model.norm.weight", Dtype::BF16, vec![256]),
    ];
    let l = "model.layers.0";
    for (n, len) in [
        ("input_layernorm", 256),
        ("post_attention_layernorm", 256),
        ("self_attn.attn_sub_norm", 256),
        ("mlp.ffn_sub_norm", 768),
    ] {
        headers.push(TensorHeader::new(
            format!("{l}.{n}.weight"),
            Dtype::BF16,
            vec![len],
        ));
    }
    for (p, rows, cols) in [
        ("self_attn.q_proj", 64, 256),
        ("self_attn.k_proj", 32, 256),
        ("self_attn.v_proj", 32, 256),
        ("self_attn.o_proj", 64, 256),
        ("mlp.gate_proj", 192, 256),
        ("mlp.up_proj", 192, 256),
        ("mlp.down_proj", 64, 768),
    ] {
        headers.push(TensorHeader::new(
            format!("{l}.{p}.weight"),
            Dtype::U8,
            vec![rows, cols],
        ));
        headers.push(TensorHeader::new(
            format!("{l}.{p}.weight_scale"),
            Dtype::BF16,
            vec![1],
        ));
    }
    headers.sort_by(|a, b| a.name.cmp(&b.name));
    let meta = std::collections::BTreeMap::new();
    write_safetensors(
        &dir.join("model.safetensors"),
        &headers,
        &meta,
        |_, h, out| {
            let len = h.byte_len().unwrap() as usize;
            // U8 0x66: codes 0 and +1; BF16: 1.0.
            let fill: &[u8] = if h.dtype == Dtype::U8 {
                &[0x66]
            } else {
                &[0x80, 0x3f]
            };
            let chunk: Vec<u8> = fill.iter().copied().cycle().take(1 << 20).collect();
            let mut left = len;
            while left > 0 {
                let n = left.min(chunk.len());
                out.write_all(&chunk[..n])
                    .map_err(|source| bitnet_gguf::hf::Error::Io {
                        path: "x".into(),
                        source,
                    })?;
                left -= n;
            }
            Ok(())
        },
    )
    .unwrap();
}

fn hash(path: &Path) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn sigkill_midway_leaves_no_output_and_the_input_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("ckpt");
    big_checkpoint(&ckpt);
    let before = hash(&ckpt.join("model.safetensors"));
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("model.gguf");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-convert"))
        .args([
            "hf-to-gguf",
            ckpt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .arg("--no-tokenizer")
        .arg("--quiet")
        .spawn()
        .unwrap();
    // Wait until the temporary file beside the target exists and has data, then kill.
    let start = Instant::now();
    let mut seen = false;
    while start.elapsed() < Duration::from_secs(60) {
        let temp = std::fs::read_dir(&out_dir)
            .unwrap()
            .filter_map(Result::ok)
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".model.gguf.tmp-")
            });
        if let Some(t) = temp {
            if t.metadata().map(|m| m.len() > 1 << 20).unwrap_or(false) {
                seen = true;
                break;
            }
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        seen,
        "the conversion finished ({status}) before a temporary file was seen"
    );
    assert!(!out.exists(), "a partial output file exists");
    assert_eq!(hash(&ckpt.join("model.safetensors")), before);
    // The killed writer's temporary file is still there; the next conversion to the same
    // target removes it (its process is gone) and leaves only the finished file.
    let temps = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".model.gguf.tmp-"))
            .collect()
    };
    assert_eq!(temps(&out_dir).len(), 1, "{:?}", temps(&out_dir));
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_bitnet-convert"))
        .args([
            "hf-to-gguf",
            ckpt.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
        .args(["--no-tokenizer", "--quiet"])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(out.exists());
    assert_eq!(temps(&out_dir), Vec::<String>::new());
}
