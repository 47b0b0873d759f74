//! Issue 5: our own conversions of ref-tiny, run by bitnet-run, against transformers and
//! ik_llama.cpp — every ternary layout from the packed checkpoint, and I2_S from the bf16 master.

use bitnet_gguf::convert::{hf_to_gguf, HfToGguf};
use bitnet_gguf::layout::LayoutKind;
use bitnet_gguf::runtime::parity::{compare_with_reference, ParityOptions, ParityReport};
use std::path::Path;

const REFERENCE: &str = "fixtures/ref-tiny/reference";

fn convert_and_compare(input: &str, layout: LayoutKind, logits: &str) -> ParityReport {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("{}.gguf", layout.name()));
    let mut opts = HfToGguf::new(input, &out);
    opts.layout = layout;
    opts.quiet = true;
    hf_to_gguf(&opts).unwrap_or_else(|e| panic!("{input} -> {layout}: {e}"));
    // The TL files record their tiling, so no kernel_config is needed to read them.
    compare_with_reference(
        &out,
        Path::new(REFERENCE),
        &ParityOptions {
            logits_name: logits.into(),
            ..ParityOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn our_conversions_of_every_ternary_layout_match_transformers_and_ik() {
    let layouts = [
        LayoutKind::I2_S,
        LayoutKind::TL1,
        LayoutKind::TL2,
        LayoutKind::TQ1_0,
        LayoutKind::TQ2_0,
    ];
    let mut first: Option<ParityReport> = None;
    for layout in layouts {
        let vs_hf = convert_and_compare("fixtures/ref-tiny/packed", layout, "packed");
        let a = &vs_hf.overall;
        eprintln!(
            "ours {layout} vs transformers: top-1 {}/{}, max {:.4}, mean {:.5}",
            a.top1_agree, a.positions, a.max_abs_diff, a.mean_abs_diff
        );
        assert!(a.top1_rate() >= 0.99, "{layout}: top-1 {}", a.top1_rate());
        assert!(
            a.mean_abs_diff <= 0.05,
            "{layout}: mean {}",
            a.mean_abs_diff
        );
        let vs_ik = convert_and_compare("fixtures/ref-tiny/packed", layout, "ik_iq2_bn");
        let b = &vs_ik.overall;
        assert!(
            b.top1_rate() >= 0.95,
            "{layout} vs ik: top-1 {}",
            b.top1_rate()
        );
        assert!(
            b.mean_abs_diff <= 0.15,
            "{layout} vs ik: mean {}",
            b.mean_abs_diff
        );
        // Same integer sums in every layout: identical logits (ref-tiny's bf16 scales are
        // exact in f16, so TQ matches too).
        match &first {
            None => first = Some(vs_hf),
            Some(f) => assert_eq!(
                (f.overall.max_abs_diff, f.overall.mean_abs_diff),
                (a.max_abs_diff, a.mean_abs_diff),
                "{layout} differs from I2_S"
            ),
        }
    }
}

#[test]
fn our_master_conversion_matches_transformers_master() {
    let r = convert_and_compare("fixtures/ref-tiny/master", LayoutKind::I2_S, "master");
    let a = &r.overall;
    eprintln!(
        "ours master I2_S vs transformers master: top-1 {}/{}, max {:.4}, mean {:.5}",
        a.top1_agree, a.positions, a.max_abs_diff, a.mean_abs_diff
    );
    assert!(a.top1_rate() >= 0.99, "top-1 {}", a.top1_rate());
    assert!(a.mean_abs_diff <= 0.05, "mean {}", a.mean_abs_diff);
}
