//! bitnet-run on the upstream-made ref-tiny GGUFs: parity with transformers and ik_llama.cpp,
//! agreement between layouts, batched vs token-by-token, AVX2 vs scalar, the tokenizer.

use super::run_common::*;
use bitnet_gguf::gguf::GgufFile;
use bitnet_gguf::runtime::kernels::Isa;
use bitnet_gguf::runtime::parity::{compare_with_reference, read_inputs, Agreement, ParityOptions};
use bitnet_gguf::runtime::{tokenizer_from_gguf, KvPrecision, LoadOptions, Logits, Repack};
use bitnet_gguf::runtime::{Model, RepackParts, Session};
use std::path::Path;

fn parity(layout: &str, logits: &str) -> bitnet_gguf::runtime::parity::ParityReport {
    compare_with_reference(
        &gguf_path(layout),
        Path::new(REFERENCE),
        &ParityOptions {
            logits_name: logits.into(),
            kernel_config: kernel_config(layout),
            ..ParityOptions::default()
        },
    )
    .unwrap()
}

#[test]
fn every_layout_matches_transformers_packed() {
    for layout in LAYOUTS {
        let r = parity(layout, "packed");
        let a = &r.overall;
        eprintln!(
            "{layout} vs transformers: top-1 {}/{}, max {:.4}, mean {:.5}, KL {:.2e}, greedy {}/{}",
            a.top1_agree,
            a.positions,
            a.max_abs_diff,
            a.mean_abs_diff,
            a.mean_kl,
            a.greedy_match,
            a.greedy_total
        );
        assert_eq!(a.positions, 104);
        assert!(a.top1_rate() >= 0.99, "{layout}: top-1 {}", a.top1_rate());
        assert!(
            a.mean_abs_diff <= 0.05,
            "{layout}: mean {}",
            a.mean_abs_diff
        );
        assert_eq!(a.greedy_total, 64);
        assert!(a.greedy_match >= 60, "{layout}: greedy {}", a.greedy_match);
    }
}

#[test]
fn every_layout_matches_ik_llama_cpp() {
    for layout in LAYOUTS {
        let a = parity(layout, "ik_iq2_bn").overall;
        eprintln!(
            "{layout} vs ik IQ2_BN: top-1 {}/{}, max {:.4}, mean {:.5}",
            a.top1_agree, a.positions, a.max_abs_diff, a.mean_abs_diff
        );
        assert!(a.top1_rate() >= 0.95, "{layout}: top-1 {}", a.top1_rate());
        assert!(
            a.mean_abs_diff <= 0.15,
            "{layout}: mean {}",
            a.mean_abs_diff
        );
    }
}

#[test]
fn i2s_tl1_tl2_give_identical_logits_and_tq_differ_by_scale_rounding_only() {
    let k = kernels(None);
    let i2s = with_model("i2_s", |m, _| all_logits(m, &k, true));
    for layout in ["tl1", "tl2"] {
        let other = with_model(layout, |m, _| all_logits(m, &k, true));
        assert_eq!(i2s, other, "{layout} logits differ from I2_S");
    }
    for layout in ["tq1_0", "tq2_0"] {
        let other = with_model(layout, |m, _| all_logits(m, &k, true));
        let mut a = Agreement::default();
        for (x, y) in other.iter().zip(&i2s) {
            a.add(x, y, 512);
        }
        eprintln!(
            "{layout} vs I2_S: top-1 {}/{}, max {:.3e}, mean {:.3e}",
            a.top1_agree, a.positions, a.max_abs_diff, a.mean_abs_diff
        );
        // The f16 block scale d is the bf16 weight_scale rounded to f16: ref-tiny's scales
        // (bf16, 8 significant bits) are exact in f16, so the logits are identical here.
        assert_eq!(a.top1_agree, a.positions);
        assert!(a.max_abs_diff <= 1e-3, "{layout}: max {}", a.max_abs_diff);
    }
}

#[test]
fn batched_prompt_path_equals_token_by_token_decode() {
    let k = kernels(None);
    for layout in ["i2_s", "tl2", "tq2_0"] {
        with_model(layout, |m, _| {
            // Every step is row-independent, so the two paths are bit-identical.
            assert_eq!(
                all_logits(m, &k, true),
                all_logits(m, &k, false),
                "{layout}"
            );
        });
    }
}

#[test]
fn avx2_and_scalar_kernels_give_the_same_logits() {
    if !Isa::Avx2.available() {
        eprintln!("no AVX2: nothing to compare");
        return;
    }
    let scalar = kernels(Some(Isa::Scalar));
    let avx2 = kernels(Some(Isa::Avx2));
    for layout in LAYOUTS {
        with_model(layout, |m, _| {
            // Integer accumulators are identical and the float kernels sum in the same lane
            // order, so the logits are bit-identical.
            let a = all_logits(m, &scalar, true);
            let b = all_logits(m, &avx2, true);
            assert!(a == b, "{layout}: scalar and AVX2 logits differ");
        });
    }
}

#[test]
fn two_threads_give_the_same_logits_as_one() {
    let one = kernels(None);
    let two = bitnet_gguf::runtime::kernels::Kernels::new(2, None).unwrap();
    for layout in ["i2_s", "tl1", "tq1_0"] {
        with_model(layout, |m, _| {
            assert_eq!(
                all_logits(m, &one, true),
                all_logits(m, &two, true),
                "{layout}"
            );
        });
    }
}

#[test]
fn f16_kv_cache_stays_close_but_is_farther_from_transformers() {
    // llama.cpp's F16 cache is available; it rounds v before the sub-norm and quantizer.
    let k = kernels(None);
    let seqs = read_inputs(Path::new(REFERENCE)).unwrap();
    with_model("i2_s", |m, _| {
        let mut f16 = Session::with_kv_precision(m, &k, 64, KvPrecision::F16);
        let mut f32 = Session::new(m, &k, 64);
        let mut a = Agreement::default();
        for s in &seqs {
            f16.reset();
            f32.reset();
            let x = f16.forward(&s.ids, Logits::All).unwrap();
            let y = f32.forward(&s.ids, Logits::All).unwrap();
            a.add(&x, &y, 512);
        }
        eprintln!(
            "F16 vs F32 KV: mean {:.4}, top-1 {}/{}",
            a.mean_abs_diff, a.top1_agree, a.positions
        );
        assert!(a.mean_abs_diff > 0.0 && a.mean_abs_diff < 0.2);
    });
}

/// `Logits::From(i)` gives exactly `Logits::All`'s rows from i on (perplexity scores only the
/// second half of a chunk and asks for just those); `From` past the end gives nothing.
#[test]
fn logits_from_a_position_are_the_tail_of_all_logits() {
    let k = kernels(None);
    let seqs = read_inputs(Path::new(REFERENCE)).unwrap();
    with_model("i2_s", |m, _| {
        let mut session = Session::new(m, &k, 64);
        for s in &seqs {
            session.reset();
            let all = session.forward(&s.ids, Logits::All).unwrap();
            let vocab = all.len() / s.ids.len();
            for from in [0, 1, s.ids.len() / 2, s.ids.len() - 1, s.ids.len() + 3] {
                session.reset();
                let tail = session.forward(&s.ids, Logits::From(from)).unwrap();
                let start = from.min(s.ids.len()) * vocab;
                assert!(tail == all[start..], "from {from}");
            }
        }
    });
}

#[test]
fn tokenizer_from_the_i2s_gguf_encodes_the_reference_inputs() {
    let mapped = map(&gguf_path("i2_s"));
    let file = GgufFile::parse(&mapped).unwrap();
    let tok = tokenizer_from_gguf(&file).unwrap();
    assert!(
        tok.add_bos(),
        "llama-bpe pre-tokenizer without the flag: bos is added"
    );
    assert_eq!(tok.eot_id(), Some(511));
    for s in read_inputs(Path::new(REFERENCE)).unwrap() {
        // The reference encoded special-token text as the special tokens (seq3 has <|eot_id|>).
        let mut ids = tok.encode_prompt(&s.text, true);
        ids.truncate(s.ids.len());
        assert_eq!(ids, s.ids, "{}", s.name);
    }
}

#[test]
fn loading_refuses_the_bitnet_architecture_with_an_explanation() {
    use bitnet_gguf::gguf::{MetaValue, Metadata};
    let mapped = map(&gguf_path("i2_s"));
    let file = GgufFile::parse(&mapped).unwrap();
    let mut meta = Metadata::from_file(&file);
    meta.set("general.architecture", MetaValue::String("bitnet".into()));
    assert!(bitnet_gguf::runtime::HyperParams::from_gguf(&file, &mut Vec::new()).is_ok());
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
    let bytes = w.finish().unwrap();
    let renamed = GgufFile::parse(&bytes).unwrap();
    let err =
        bitnet_gguf::runtime::Model::load(&renamed, &bitnet_gguf::runtime::LoadOptions::default())
            .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("different network"), "{text}");
}

/// Logits of the ref-tiny model of `layout` from `bytes` (the file, possibly altered), with the
/// native kernels and re-packed ([`Repack`]); and the repack's summary.
fn native_and_repacked(layout: &str, bytes: &[u8]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>, String) {
    let k = kernels(None);
    let file = GgufFile::parse(bytes).unwrap();
    let opts = LoadOptions {
        kernel_config: kernel_config(layout),
    };
    let native = Model::load(&file, &opts).unwrap();
    let repack = Repack::build(&file, &native, RepackParts::ALL).unwrap();
    let repacked = Model::load_repacked(&file, &opts, &repack).unwrap();
    (
        all_logits(&native, &k, true),
        all_logits(&repacked, &k, true),
        repack.summary(),
    )
}

#[test]
fn projections_repacked_as_i2s_give_the_same_logits() {
    for layout in ["tl1", "tl2", "tq1_0", "tq2_0"] {
        let bytes = std::fs::read(gguf_path(layout)).unwrap();
        let (native, repacked, summary) = native_and_repacked(layout, &bytes);
        // Same codes, one scale, the same epilogue arithmetic: bit-identical.
        assert!(
            native == repacked,
            "{layout}: logits differ after the repack"
        );
        let expected = format!("re-encoded as I2_S at load: {} x14", layout.to_uppercase());
        assert_eq!(summary, expected, "{layout}");
    }
}

/// A Q4_0 lm_head interleaved by 8 rows at load: its kernel sums in the Q4_0 kernel's order,
/// so the logits are bit-identical.
#[test]
fn a_q4_0_head_interleaved_gives_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q4.gguf");
    let mut opts = bitnet_gguf::convert::HfToGguf::new("fixtures/ref-tiny/packed", &out);
    opts.embed_type = bitnet_gguf::convert::EmbedType::Q4_0;
    opts.quiet = true;
    bitnet_gguf::convert::hf_to_gguf(&opts).unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let (native, repacked, summary) = native_and_repacked("i2_s", &bytes);
    assert!(native == repacked, "logits differ after the repack");
    assert_eq!(
        summary,
        "no projection to re-encode; Q4_0 lm_head interleaved by 8 rows"
    );
}

#[test]
fn a_tq_tensor_with_two_block_scales_keeps_its_own_kernel() {
    let mut bytes = std::fs::read(gguf_path("tq2_0")).unwrap();
    let (at, len) = {
        let file = GgufFile::parse(&bytes).unwrap();
        let info = file.tensor("blk.0.ffn_up.weight").unwrap();
        (
            (file.data_start() + info.offset) as usize,
            info.byte_len as usize,
        )
    };
    // TQ2_0 blocks are qs[64] then f16 d: halve the d of block 1 (its codes are non-zero).
    assert!(len > 2 * 66);
    let d = half::f16::from_le_bytes([bytes[at + 66 + 64], bytes[at + 66 + 65]]);
    let halved = half::f16::from_f32(d.to_f32() / 2.0).to_le_bytes();
    bytes[at + 66 + 64..at + 66 + 66].copy_from_slice(&halved);
    let (native, repacked, summary) = native_and_repacked("tq2_0", &bytes);
    assert!(native == repacked, "logits differ after the repack");
    assert!(
        summary.starts_with("re-encoded as I2_S at load: TQ2_0 x13; 1 kept in their own layout")
            && summary.contains("blk.0.ffn_up.weight"),
        "{summary}"
    );
}
