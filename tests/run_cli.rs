//! bitnet-run end to end: every command on the ref-tiny files and on a small synthetic model.

use super::run_common::*;
use assert_cmd::Command;
use bitnet_gguf::convert::{self, EmbedType, HfToGguf};
use bitnet_gguf::hf::synth::{SynthOptions, SynthPreset};
use bitnet_gguf::hf::CheckpointFormat;
use bitnet_gguf::runtime::parity::read_f32_tensors;
use std::path::{Path, PathBuf};

fn bitnet_run() -> Command {
    Command::cargo_bin("bitnet-run").unwrap()
}

/// A synthetic tiny-preset checkpoint (random weights, synthetic byte-level BPE tokenizer)
/// converted to an I2_S GGUF with an F16 embedding in `dir`, as `bitnet-convert synth` then
/// `bitnet-convert hf-to-gguf` would write it.
fn synthetic_tiny_gguf(dir: &Path, seed: u64) -> PathBuf {
    synthetic_tiny_gguf_with(dir, seed, EmbedType::F16)
}

/// As [`synthetic_tiny_gguf`], with the embedding (and tied lm_head) in `embed_type`.
fn synthetic_tiny_gguf_with(dir: &Path, seed: u64, embed_type: EmbedType) -> PathBuf {
    let checkpoint = dir.join("checkpoint");
    convert::synth(
        &checkpoint,
        &SynthOptions {
            preset: SynthPreset::Tiny,
            format: CheckpointFormat::Packed,
            seed,
        },
    )
    .unwrap();
    let model = dir.join("tiny.gguf");
    let mut opts = HfToGguf::new(&checkpoint, &model);
    opts.quiet = true;
    opts.embed_type = embed_type;
    convert::hf_to_gguf(&opts).unwrap();
    model
}

#[test]
fn parity_command_passes_and_fails_on_thresholds() {
    let ok = bitnet_run()
        .args([
            "parity",
            "fixtures/ref-tiny/gguf/ref-tiny-tl2.gguf",
            "--reference",
            REFERENCE,
        ])
        .args([
            "--kernel-config",
            "fixtures/ref-tiny/gguf/ref-tiny-tl2.kernel_config.ini",
        ])
        .args(["--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(report["overall"]["top1_agree"], 104);
    // ik's logits are 0.1 away on average: the default threshold of 0.05 must fail (exit 3).
    let fail = bitnet_run()
        .args([
            "parity",
            "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
            "--reference",
            REFERENCE,
        ])
        .args(["--logits", "ik_iq2_bn"])
        .output()
        .unwrap();
    assert_eq!(fail.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&fail.stderr).contains("below thresholds"));
    // llama.cpp's F16 KV cache: 99/104 top-1 and 0.066 mean, below the transformers thresholds
    // that the default f32 cache meets (see docs/run.md).
    let f16 = bitnet_run()
        .args([
            "parity",
            "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
            "--reference",
            REFERENCE,
        ])
        .args(["--kv-cache", "f16", "--json"])
        .output()
        .unwrap();
    assert_eq!(f16.status.code(), Some(3));
    let report: serde_json::Value = serde_json::from_slice(&f16.stdout).unwrap();
    assert_eq!(report["overall"]["top1_agree"], 99);
}

#[test]
fn parity_against_a_second_model_and_tiling_is_reported() {
    let out = bitnet_run()
        .args([
            "parity",
            "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
            "--against",
        ])
        .args(["fixtures/ref-tiny/gguf/ref-tiny-tl1.gguf", "--json"])
        .args([
            "--kernel-config",
            "fixtures/ref-tiny/gguf/ref-tiny-tl1.kernel_config.ini",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["overall"]["max_abs_diff"], 0.0);
    assert_eq!(
        report["overall"]["greedy_match"],
        report["overall"]["greedy_total"]
    );
}

#[test]
fn tl_file_without_tiling_derives_one_and_says_so() {
    // No --kernel-config: the derivation rule (which knows ref-tiny's shapes) picks the tiling.
    let out = bitnet_run()
        .args([
            "logits",
            "fixtures/ref-tiny/gguf/ref-tiny-tl1.gguf",
            "--tokens",
            "509,364,220",
        ])
        .args(["-o", "/dev/null"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("TL tiling: TL1"), "{stderr}");
    assert!(stderr.contains("derived"), "{stderr}");
}

/// `bitnet-run logits` of three tokens of `model`, with and without `flag`: stderr and the
/// written logits file of each run.
fn logits_without_and_with(model: &str, flag: &str) -> [(String, Vec<u8>); 2] {
    let dir = tempfile::tempdir().unwrap();
    [false, true].map(|with| {
        let out = dir.path().join(format!("l-{with}.safetensors"));
        let mut cmd = bitnet_run();
        cmd.args(["logits", model, "--tokens", "509,364,220", "-o"])
            .arg(&out);
        if with {
            cmd.arg(flag);
        }
        let done = cmd.assert().success();
        let stderr = String::from_utf8_lossy(&done.get_output().stderr).into_owned();
        (stderr, std::fs::read(&out).unwrap())
    })
}

#[test]
fn repack_flag_reencodes_and_keeps_the_logits() {
    let [(plain, a), (repacked, b)] =
        logits_without_and_with("fixtures/ref-tiny/gguf/ref-tiny-tq2_0.gguf", "--repack");
    let line = "re-encoded as I2_S at load: TQ2_0 x14";
    assert!(
        !plain.contains(line) && repacked.contains(line),
        "{plain}\n{repacked}"
    );
    assert!(a == b, "--repack changed the logits");
}

#[test]
fn no_mmap_flag_reads_the_file_and_keeps_the_logits() {
    let [(mapped, a), (read, b)] =
        logits_without_and_with("fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf", "--no-mmap");
    assert!(
        !mapped.contains("into memory") && read.contains("into memory"),
        "{mapped}\n{read}"
    );
    assert!(a == b, "--no-mmap changed the logits");
}

/// stdout and stderr of `bitnet-run ARGS`, which must succeed.
fn run_ok(args: &[&str]) -> (String, String) {
    let out = bitnet_run().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn screen_head_flag_keeps_the_generated_text() {
    let model = "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf";
    for sampling in [
        &["--temp", "0"][..],
        &["--temp", "0.9", "--top-k", "30", "--seed", "3"],
    ] {
        let args = [
            &["generate", model, "-p", "The quick brown fox", "-n", "24"],
            sampling,
        ]
        .concat();
        let (plain, _) = run_ok(&args);
        let (screened, stderr) = run_ok(&[&args[..], &["--screen-head", "-t", "2"]].concat());
        assert_eq!(plain, screened, "{sampling:?}");
        assert!(stderr.contains("screened lm_head"), "{stderr}");
    }
    let (json, _) = run_ok(&[
        "bench",
        model,
        "-p",
        "0",
        "-n",
        "8",
        "-r",
        "1",
        "--json",
        "--screen-head",
    ]);
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(r["screen"]["tokens"], 16, "{r}");
    // A quantized head is not screened: said, and generation runs the full head.
    let dir = tempfile::tempdir().unwrap();
    let q8 = synthetic_tiny_gguf_with(dir.path(), 3, EmbedType::Q8_0);
    let q8 = q8.to_str().unwrap();
    let (_, stderr) = run_ok(&["generate", q8, "-p", "abc", "-n", "4", "--screen-head"]);
    assert!(
        stderr.contains("--screen-head ignored") && stderr.contains("Q8_0"),
        "{stderr}"
    );
}

#[test]
fn generate_screens_by_default_when_it_pays() {
    let model = "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf";
    let generate = |extra: &[&str]| {
        let args = [&["generate", model, "-p", "The quick brown fox"][..], extra].concat();
        let (text, stderr) = run_ok(&args);
        (text, stderr.contains("screened lm_head"))
    };
    // Long enough to repay the copy, greedy: screened, with the same text as unscreened.
    let (text, screened) = generate(&["-n", "64"]);
    assert!(screened);
    assert_eq!((text, false), generate(&["-n", "64", "--screen-head=off"]));
    assert!(generate(&["-n", "64", "--screen-head=auto"]).1);
    // Too short, or a sampler that reads every logit: not screened unless asked.
    assert!(!generate(&["-n", "63"]).1);
    assert!(!generate(&["-n", "64", "--temp", "0.8", "--top-k", "0"]).1);
    assert!(generate(&["-n", "8", "--screen-head=on"]).1);
    // bench's default is off (its tg is compared with llama-bench's every-logit tg).
    let bench = |extra: &[&str]| {
        let args = [&["bench", model, "-p", "0", "-r", "1", "--json"][..], extra].concat();
        let (json, _) = run_ok(&args);
        let r: serde_json::Value = serde_json::from_str(&json).unwrap();
        !r["screen"].is_null()
    };
    assert!(!bench(&["-n", "64"]));
    assert!(bench(&["-n", "64", "--screen-head=auto"]));
    assert!(!bench(&["-n", "8", "--screen-head=auto"]));
}

#[test]
fn generate_and_perplexity_repack_by_default_when_it_pays() {
    let tq2 = "fixtures/ref-tiny/gguf/ref-tiny-tq2_0.gguf";
    let repacked = |stderr: &str| stderr.contains("re-encoded as I2_S at load: TQ2_0 x14");
    let generate = |model: &str, extra: &[&str]| {
        let args = [&["generate", model, "-p", "The quick brown fox"][..], extra].concat();
        let (text, stderr) = run_ok(&args);
        (text, stderr)
    };
    // Long enough to repay the load: re-packed, with the same text as the file's own kernels.
    let (text, stderr) = generate(tq2, &["-n", "64"]);
    assert!(repacked(&stderr), "{stderr}");
    let (plain, stderr) = generate(tq2, &["-n", "64", "--repack=off"]);
    assert!(!repacked(&stderr), "{stderr}");
    assert_eq!(text, plain);
    // Too short: not unless asked; `--repack` alone is `on`.
    assert!(!repacked(&generate(tq2, &["-n", "63"]).1));
    assert!(repacked(&generate(tq2, &["-n", "8", "--repack"]).1));
    assert!(repacked(&generate(tq2, &["-n", "8", "--repack=on"]).1));
    // Nothing to re-pack (I2_S projections, F16 head): auto says nothing.
    let (_, stderr) = generate("fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf", &["-n", "64"]);
    assert!(!stderr.contains("re-encode"), "{stderr}");
    // A Q4_0 head is interleaved from 256 tokens on (it only pays where its kernel is
    // compute-bound); TQ2_0 projections with it are re-encoded from 64.
    let interleaved = |stderr: &str| stderr.contains("Q4_0 lm_head interleaved");
    let dir = tempfile::tempdir().unwrap();
    let q4 = synthetic_tiny_gguf_with(dir.path(), 5, EmbedType::Q4_0);
    let q4 = q4.to_str().unwrap();
    let (text, stderr) = generate(q4, &["-n", "256"]);
    assert!(interleaved(&stderr), "{stderr}");
    assert_eq!(text, generate(q4, &["-n", "256", "--repack=off"]).0);
    let (_, stderr) = generate(q4, &["-n", "255"]);
    assert!(
        !interleaved(&stderr) && !stderr.contains("re-encode"),
        "{stderr}"
    );
    assert!(interleaved(&generate(q4, &["-n", "8", "--repack"]).1));
    // perplexity evaluates --ctx tokens per chunk.
    let perplexity = |extra: &[&str]| {
        let args = [&["perplexity", tq2, "README.md"][..], extra].concat();
        run_ok(&args)
    };
    let (result, stderr) = perplexity(&["--ctx", "64"]);
    assert!(repacked(&stderr), "{stderr}");
    assert_eq!(result, perplexity(&["--ctx", "64", "--repack=off"]).0);
    assert!(!repacked(&perplexity(&["--ctx", "32"]).1));
    // logits and bench run the file's own kernels unless asked.
    let (_, stderr) = run_ok(&["logits", tq2, "--tokens", "1,2", "-o", "/dev/null"]);
    assert!(!repacked(&stderr), "{stderr}");
    let (_, stderr) = run_ok(&["bench", tq2, "-p", "64", "-n", "64", "-r", "1"]);
    assert!(!repacked(&stderr), "{stderr}");
    let args = [
        "bench",
        tq2,
        "-p",
        "8",
        "-n",
        "8",
        "-r",
        "3",
        "--repack=auto",
    ];
    assert!(repacked(&run_ok(&args).1));
}

#[test]
fn commands_refuse_the_flags_they_would_ignore() {
    // parity maps the file and runs its own kernels (its job is to check them); logits and
    // perplexity need every logit. A flag they took without effect would mislead.
    let model = "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf";
    for (args, flag) in [
        (&["parity", model, "--reference", REFERENCE][..], "--repack"),
        (&["parity", model, "--reference", REFERENCE], "--no-mmap"),
        (
            &["parity", model, "--reference", REFERENCE],
            "--screen-head",
        ),
        (
            &["logits", model, "--tokens", "1,2", "-o", "/dev/null"],
            "--screen-head",
        ),
        (&["perplexity", model, "README.md"], "--screen-head"),
    ] {
        let out = bitnet_run().args(args).arg(flag).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?} {flag}: {stderr}");
        assert!(stderr.contains(flag), "{stderr}");
    }
}

#[test]
fn logits_command_writes_the_reference_shape() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.safetensors");
    bitnet_run()
        .args([
            "logits",
            "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
            "--text",
            "The quick brown fox",
        ])
        .arg("-o")
        .arg(&out)
        .assert()
        .success();
    let t = read_f32_tensors(&out).unwrap();
    assert_eq!(t[0].1, vec![14, 512]);
    let reference =
        read_f32_tensors(&std::path::Path::new(REFERENCE).join("logits_packed.safetensors"))
            .unwrap();
    let seq0 = &reference.iter().find(|r| r.0 == "seq0").unwrap().2;
    let mean: f32 = t[0]
        .2
        .iter()
        .zip(seq0)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / seq0.len() as f32;
    assert!(mean < 0.05, "{mean}");
}

#[test]
fn generate_streams_text_and_chat_stops_at_end_of_turn() {
    let out = bitnet_run()
        .args([
            "generate",
            "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
            "-p",
            "The quick brown fox",
            "-n",
            "8",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(!out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens/s"));
    bitnet_run()
        .args([
            "generate",
            "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
            "-p",
            "Hi",
            "-n",
            "4",
            "--chat",
        ])
        .args([
            "--temp", "0.8", "--top-k", "20", "--top-p", "0.9", "--seed", "7",
        ])
        .assert()
        .success();
}

#[test]
fn synthetic_model_runs_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let model = synthetic_tiny_gguf(dir.path(), 5);
    let text = dir.path().join("t.txt");
    std::fs::write(&text, "abcdefgh ".repeat(20)).unwrap();
    bitnet_run()
        .arg("perplexity")
        .arg(&model)
        .arg(&text)
        .args(["--ctx", "32"])
        .assert()
        .success();
    let bench = bitnet_run()
        .arg("bench")
        .arg(&model)
        .args(["-p", "8", "-n", "4", "-r", "2", "--threads", "2", "--json"])
        .assert()
        .success()
        .get_output()
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&bench.stdout).unwrap();
    assert_eq!(r["prompt"]["samples"].as_array().unwrap().len(), 2);
    // A model against itself agrees exactly (no tokenizer merges needed: byte tokens).
    let same = bitnet_run()
        .arg("parity")
        .arg(&model)
        .arg("--against")
        .arg(&model)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .clone();
    let r: serde_json::Value = serde_json::from_slice(&same.stdout).unwrap();
    assert_eq!(r["overall"]["mean_abs_diff"], 0.0);
    // The converter carries the synthetic tokenizer into the GGUF, so text works too.
    let logits = dir.path().join("l.safetensors");
    bitnet_run()
        .arg("logits")
        .arg(&model)
        .args(["--text", "abcdefgh"])
        .arg("-o")
        .arg(&logits)
        .assert()
        .success();
    let t = read_f32_tensors(&logits).unwrap();
    assert_eq!(t[0].1[1], 512);
    let model = model.to_str().unwrap();
    for chat in [false, true] {
        let chat = if chat { &["--chat"][..] } else { &[] };
        let (_, stderr) = run_ok(&[&["generate", model, "-p", "abc", "-n", "4"], chat].concat());
        assert!(stderr.contains("tokens/s"), "{stderr}");
    }
}

#[test]
fn bad_inputs_are_clean_errors() {
    let out = bitnet_run()
        .args([
            "logits",
            "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf",
            "--tokens",
            "1,99999",
            "-o",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("bitnet-run: ") && stderr.contains("99999"),
        "{stderr}"
    );
    let out = bitnet_run()
        .args(["bench", "fixtures/gguf/bad/bad_magic.gguf"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
