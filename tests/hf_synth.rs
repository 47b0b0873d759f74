//! `hf::synth`: synthetic checkpoints open as valid checkpoints of the preset's shape.
use bitnet_gguf::hf::synth::{synthesize, SynthOptions, SynthPreset};
use bitnet_gguf::hf::vocab::{Vocab, VocabOptions};
use bitnet_gguf::hf::{Checkpoint, CheckpointFormat, Error, Projection};
use bitnet_gguf::layout::hf_packed::ScaleRounding;
use std::path::Path;

fn synth(format: CheckpointFormat, seed: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    synthesize(
        &out,
        &SynthOptions {
            preset: SynthPreset::Tiny,
            format,
            seed,
        },
    )
    .unwrap();
    (dir, out)
}

#[test]
fn tiny_packed_is_a_valid_checkpoint_like_ref_tiny() {
    let (_dir, out) = synth(CheckpointFormat::Packed, 7);
    let ck = Checkpoint::open(&out).unwrap();
    let reference = Checkpoint::open(Path::new("fixtures/ref-tiny/packed")).unwrap();
    assert_eq!(ck.format(), CheckpointFormat::Packed);
    ck.validate().unwrap();
    // Same names, dtypes and shapes as the real fixture.
    let sig = |c: &Checkpoint| -> Vec<(String, String, Vec<usize>)> {
        c.tensors()
            .map(|t| {
                (
                    t.name.to_string(),
                    format!("{:?}", t.dtype),
                    t.shape.to_vec(),
                )
            })
            .collect()
    };
    assert_eq!(sig(&ck), sig(&reference));
    let mut config = ck.config().raw.clone();
    config["quantization_config"] = reference.config().raw["quantization_config"].clone();
    assert_eq!(config, reference.config().raw);
    // About a third zeros, scales of fixture magnitude.
    let t = ck
        .projection(0, Projection::Gate, ScaleRounding::Exact)
        .unwrap();
    let [neg, zero, pos] = t.code_counts();
    let n = (neg + zero + pos) as f64;
    assert!(
        (zero as f64 / n - 1.0 / 3.0).abs() < 0.01,
        "{neg} {zero} {pos}"
    );
    assert!((0.02..0.2).contains(&t.scale()), "{}", t.scale());
    let vocab = Vocab::read(&out, &VocabOptions::default()).unwrap();
    assert_eq!(vocab.tokens.len(), 512);
    assert_eq!(vocab.special_id("bos"), Some(509));
}

#[test]
fn tiny_master_is_valid_and_seed_deterministic() {
    let (_d1, a) = synth(CheckpointFormat::Master, 3);
    let (_d2, b) = synth(CheckpointFormat::Master, 3);
    let (_d3, c) = synth(CheckpointFormat::Master, 4);
    let ck = Checkpoint::open(&a).unwrap();
    assert_eq!(ck.format(), CheckpointFormat::Master);
    let t = ck
        .projection(1, Projection::Down, ScaleRounding::Exact)
        .unwrap();
    let zero = t.code_counts()[1] as f64 / t.codes().len() as f64;
    assert!((0.25..0.4).contains(&zero), "{zero}");
    let read = |p: &Path| std::fs::read(p.join("model.safetensors")).unwrap();
    assert_eq!(read(&a), read(&b));
    assert_ne!(read(&a), read(&c));
}

#[test]
fn existing_output_is_refused() {
    let (_dir, out) = synth(CheckpointFormat::Packed, 1);
    let err = synthesize(
        &out,
        &SynthOptions {
            preset: SynthPreset::Tiny,
            format: CheckpointFormat::Packed,
            seed: 1,
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::OutputExists { .. }));
}
