//! `bitnet-inspect` end to end: insta snapshots of the human and JSON output on the fixtures
//! (paths redacted), exit codes, and `diff`.

use assert_cmd::Command;

fn inspect(args: &[&str]) -> (String, String, i32) {
    let out = Command::cargo_bin("bitnet-inspect")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    let redact = |s: &[u8]| {
        let mut text = String::from_utf8_lossy(s).into_owned();
        for a in args.iter().filter(|a| a.ends_with(".gguf")) {
            text = text.replace(a, "[FILE]");
        }
        text
    };
    (
        redact(&out.stdout),
        redact(&out.stderr),
        out.status.code().unwrap_or(-1),
    )
}

const TINY: &str = "fixtures/vectors/i2s/t4x128.tiny.gguf";
const I2S: &str = "fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf";
const TL2: &str = "fixtures/ref-tiny/gguf/ref-tiny-tl2.gguf";
const TQ1: &str = "fixtures/ref-tiny/gguf/ref-tiny-tq1_0.gguf";
const IQ2: &str = "fixtures/ref-tiny/gguf/ref-tiny-iq2_bn.gguf";

#[test]
fn human_report_tiny() {
    let (out, _, code) = inspect(&[TINY, "--metadata", "--stats", "--loadable"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("human_tiny", out);
}

#[test]
fn human_report_ref_tiny_i2s() {
    let (out, _, code) = inspect(&[I2S, "--loadable", "--stats", "--tensors", "blk.0.*"]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("human_ref_tiny_i2s", out);
}

#[test]
fn json_reports() {
    for (name, path) in [
        ("json_tiny", TINY),
        ("json_ref_tiny_i2s", I2S),
        ("json_ref_tiny_tl2", TL2),
        ("json_ref_tiny_tq1_0", TQ1),
        ("json_ref_tiny_iq2_bn", IQ2),
    ] {
        let (out, _, code) = inspect(&[path, "--json"]);
        assert_eq!(code, 0, "{name}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        // The documented minimum schema.
        assert!(
            v["metadata"].is_object() && v["tensors"].is_array(),
            "{name}"
        );
        for t in v["tensors"].as_array().unwrap() {
            for field in ["name", "type", "shape", "offset", "bytes"] {
                assert!(!t[field].is_null(), "{name}: tensor lacks {field}");
            }
        }
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn validate_exit_codes() {
    // A complete model: no error-level finding.
    assert_eq!(inspect(&[I2S, "--validate", "--validate-data"]).2, 0);
    // The tiny file lacks keys the loader requires.
    assert_eq!(inspect(&[TINY, "--validate"]).2, 1);
    // Readable only leniently: error-level finding.
    let (out, _, code) = inspect(&["fixtures/gguf/bad/not_contiguous.gguf", "--validate"]);
    assert_eq!(code, 1);
    assert!(out.contains("NotContiguous") || out.contains("contiguous"));
    // Data checks.
    assert_eq!(
        inspect(&["fixtures/gguf/bad/i2_s_code_3.gguf", "--validate"]).2,
        0
    );
    assert_eq!(
        inspect(&["fixtures/gguf/bad/i2_s_code_3.gguf", "--validate-data"]).2,
        1
    );
    // Not readable at all.
    let (_, err, code) = inspect(&["fixtures/gguf/bad/bad_magic.gguf", "--validate"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!("error_bad_magic", err);
    let (_, err, code) = inspect(&["fixtures/does-not-exist.gguf"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("bitnet-inspect: "), "{err}");
}

#[test]
fn diff_reports_type_and_data_changes() {
    let (out, _, code) = inspect(&["diff", I2S, I2S]);
    assert_eq!((out.trim(), code), ("identical metadata and tensors", 0));
    let (out, _, code) = inspect(&["diff", I2S, TL2]);
    assert_eq!(code, 1);
    insta::assert_snapshot!("diff_i2s_tl2", out);
}

/// `--stats` decodes every ternary layout: the five ref-tiny files hold the same model, so each
/// tensor has the same code counts and scale in all of them (TQ scales are f16: equal here
/// because the checkpoint's bf16 scales are exact in f16).
#[test]
fn stats_agree_across_every_ternary_layout() {
    let stats_of = |layout: &str| -> serde_json::Value {
        let path = format!("fixtures/ref-tiny/gguf/ref-tiny-{layout}.gguf");
        let (out, err, code) = inspect(&["--stats", "--json", &path]);
        assert_eq!(code, 0, "{layout}: {err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        report["stats"].clone()
    };
    let reference = stats_of("i2_s");
    let rows = reference.as_array().unwrap();
    assert_eq!(rows.len(), 14);
    for row in rows {
        assert!(row["error"].is_null(), "{row}");
    }
    for layout in ["tl1", "tl2", "tq1_0", "tq2_0"] {
        let other = stats_of(layout);
        for (a, b) in rows.iter().zip(other.as_array().unwrap()) {
            for field in ["name", "minus", "zero", "plus", "scale"] {
                assert_eq!(a[field], b[field], "{layout} {} {field}", a["name"]);
            }
        }
    }
}
