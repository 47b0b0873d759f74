//! The screened lm_head in a running model: generation gives the same tokens with and without
//! it, greedy and top-k sampling, on ref-tiny's upstream-written file (F16 head).

use super::run_common::*;
use bitnet_gguf::gguf::GgmlType;
use bitnet_gguf::layout::Shape;
use bitnet_gguf::runtime::bench::bench;
use bitnet_gguf::runtime::generate::{generate, greedy_continuation};
use bitnet_gguf::runtime::head_screen::SCREEN_TRIAL_TOKENS;
use bitnet_gguf::runtime::kernels::{Isa, Kernels};
use bitnet_gguf::runtime::model::DenseMatrix;
use bitnet_gguf::runtime::parity::read_inputs;
use bitnet_gguf::runtime::sampling::{SamplingParams, TopLogits};
use bitnet_gguf::runtime::{HeadScreen, Logits, Model, Session};
use std::path::Path;

fn isas() -> Vec<Option<Isa>> {
    let mut v = vec![Some(Isa::Scalar)];
    if Isa::Avx2.available() {
        v.push(Some(Isa::Avx2));
    }
    v
}

/// Tokens `params` samples after `prefix`, with the session's head screen or without.
fn sampled(session: &mut Session<'_>, prefix: &[u32], params: SamplingParams) -> Vec<u32> {
    session.reset();
    let mut out = Vec::new();
    generate(
        session,
        prefix,
        24,
        params,
        |_| false,
        |id| {
            out.push(id);
            Ok(true)
        },
    )
    .unwrap();
    out
}

fn same_generations(model: &Model<'_>, kernels: &Kernels) {
    let screen = HeadScreen::build(&model.output, kernels).unwrap();
    let mut full = Session::new(model, kernels, 64);
    let mut screened = Session::new(model, kernels, 64);
    screened.set_head_screen(Some(&screen));
    let seqs = read_inputs(Path::new(REFERENCE)).unwrap();
    for s in &seqs {
        let prefix = &s.ids[..s.ids.len().min(8)];
        assert_eq!(
            greedy_continuation(&mut full, prefix, 24).unwrap(),
            greedy_continuation(&mut screened, prefix, 24).unwrap(),
            "{}",
            s.name
        );
        for (temperature, top_k, top_p, seed) in [(0.8, 40, 0.95, 1), (1.5, 5, 1.0, 2)] {
            let params = SamplingParams {
                temperature,
                top_k,
                top_p,
                seed,
            };
            assert_eq!(
                sampled(&mut full, prefix, params),
                sampled(&mut screened, prefix, params),
                "{} {params:?}",
                s.name
            );
        }
        // Step by step: the screened top equals the full logits' top, bit for bit.
        full.reset();
        screened.reset();
        for &id in &s.ids {
            let logits = full.forward(&[id], Logits::Last).unwrap();
            let want = TopLogits::from_logits(&logits, 10).unwrap();
            let got = screened.forward_top(&[id], 10).unwrap();
            assert_eq!(got.argmax, want.argmax);
            let bits = |t: &TopLogits| -> Vec<(usize, u32)> {
                t.entries.iter().map(|&(i, v)| (i, v.to_bits())).collect()
            };
            assert_eq!(bits(&got), bits(&want));
        }
    }
    let stats = screened.screen_stats();
    assert!(!full.has_head_screen() && screened.has_head_screen());
    // It screened most tokens (512 rows: more than 64 candidates runs the full head).
    assert!(stats.tokens > 100, "{stats:?}");
    assert!(stats.full_passes * 4 < stats.tokens, "{stats:?}");
}

#[test]
fn screened_head_generates_the_same_tokens() {
    with_model("i2_s", |model, _| {
        for isa in isas() {
            same_generations(model, &Kernels::new(2, isa).unwrap());
        }
    });
}

#[test]
fn a_screen_that_cannot_help_is_dropped() {
    with_model("i2_s", |model, _| {
        // Every row the same: all of them tie for the top, so every screened token would
        // recompute all rows and then run the full head.
        let shape = model.output.shape();
        let row: Vec<u8> = (0..shape.cols)
            .flat_map(|j| half::f16::from_f32((j % 7) as f32 * 0.01 - 0.03).to_le_bytes())
            .collect();
        let bytes = row.repeat(shape.rows);
        let mut tied = model.clone();
        tied.output = DenseMatrix::new(
            "output.weight",
            GgmlType::F16,
            &bytes,
            Shape::new(shape.rows, shape.cols),
        )
        .unwrap();
        let kernels = Kernels::new(2, None).unwrap();
        let screen = HeadScreen::build(&tied.output, &kernels).unwrap();
        let mut screened = Session::new(&tied, &kernels, 64);
        screened.set_head_screen(Some(&screen));
        let got = greedy_continuation(&mut screened, &[1, 2, 3], 20).unwrap();
        let stats = screened.screen_stats();
        assert!(stats.gave_up && !screened.has_head_screen(), "{stats:?}");
        assert_eq!(
            (stats.tokens, stats.full_passes),
            (SCREEN_TRIAL_TOKENS, SCREEN_TRIAL_TOKENS)
        );
        let mut full = Session::new(&tied, &kernels, 64);
        assert_eq!(got, greedy_continuation(&mut full, &[1, 2, 3], 20).unwrap());
        // bench reports the screen that gave up, not "no screen".
        let mut benched = Session::new(&tied, &kernels, 64);
        benched.set_head_screen(Some(&screen));
        let report = bench(&mut benched, 0, 12, 1).unwrap();
        assert!(report.screen.is_some_and(|s| s.gave_up), "{report:?}");
    });
}
