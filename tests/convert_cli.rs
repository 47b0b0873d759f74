//! `bitnet-convert` end to end: insta snapshots of its notes, tables and error messages (paths
//! redacted), so their wording is reviewed like code.
use crate::convert_common::*;
use assert_cmd::Command;

/// Runs the binary; returns (stdout, stderr, exit code) with `redact` paths replaced.
fn run(args: &[&str], redact: &[(&str, &str)]) -> (String, String, i32) {
    let out = Command::cargo_bin("bitnet-convert")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    let clean = |s: &[u8]| {
        let mut text = String::from_utf8_lossy(s).into_owned();
        for (from, to) in redact {
            text = text.replace(from, to);
        }
        text
    };
    (
        clean(&out.stdout),
        clean(&out.stderr),
        out.status.code().unwrap_or(-1),
    )
}

#[test]
fn tl1_conversion_notes_and_verify_table() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tl1.gguf");
    let out_s = out.to_str().unwrap();
    let ini = ini(bitnet_gguf::layout::LayoutKind::TL1).unwrap();
    let (stdout, stderr, code) = run(
        &[
            "hf-to-gguf",
            PACKED,
            "-o",
            out_s,
            "--layout",
            "tl1",
            "--kernel-config",
            ini.to_str().unwrap(),
            "--verify",
        ],
        &[(out_s, "[OUT]")],
    );
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("hf_to_gguf_tl1_stderr", stderr);
    insta::assert_snapshot!("hf_to_gguf_tl1_verify", stdout);
}

#[test]
fn upstream_tl2_without_ini_is_read_with_the_derived_tiling() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tq2.gguf");
    let out_s = out.to_str().unwrap();
    let tl2 = upstream("tl2");
    let (_, stderr, code) = run(
        &[
            "gguf-to-gguf",
            tl2.to_str().unwrap(),
            "-o",
            out_s,
            "--layout",
            "tq2_0",
        ],
        &[(out_s, "[OUT]")],
    );
    assert_eq!(code, 0, "{stderr}");
    insta::assert_snapshot!("gguf_to_gguf_tl2_derived_stderr", stderr);
}

#[test]
fn error_messages() {
    let dir = tempfile::tempdir().unwrap();
    let no_tok = dir.path().join("no-tokenizer");
    std::fs::create_dir(&no_tok).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(std::path::Path::new(PACKED).join(f), no_tok.join(f)).unwrap();
    }
    let tmp = dir.path().to_str().unwrap();
    let i2s = upstream("i2_s");
    let i2s = i2s.to_str().unwrap();
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "missing_tokenizer",
            vec![
                "hf-to-gguf".into(),
                no_tok.to_str().unwrap().into(),
                "-o".into(),
                format!("{tmp}/x.gguf"),
            ],
        ),
        (
            "output_is_input",
            vec![
                "gguf-to-gguf".into(),
                i2s.into(),
                "-o".into(),
                i2s.into(),
                "--layout".into(),
                "tl2".into(),
            ],
        ),
        (
            "output_exists",
            vec!["gguf-to-hf".into(), i2s.into(), "-o".into(), tmp.into()],
        ),
        (
            "tl2_ini_illegal",
            vec![
                "gguf-to-gguf".into(),
                i2s.into(),
                "-o".into(),
                format!("{tmp}/y.gguf"),
                "--layout".into(),
                "tl2".into(),
                "--kernel-config".into(),
                ini(bitnet_gguf::layout::LayoutKind::TL1)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .into(),
            ],
        ),
    ];
    let mut all = String::new();
    for (name, args) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (_, stderr, code) = run(&args, &[(tmp, "[TMP]")]);
        all.push_str(&format!("## {name} (exit {code})\n{stderr}\n"));
    }
    insta::assert_snapshot!("error_messages", all);
}
