//! ref-tiny through `hf-to-gguf` against the files upstream tools made from it.
use crate::convert_common::*;
use bitnet_gguf::convert::{self, EmbedType, ModelSource};
use bitnet_gguf::gguf::{GgufFile, Value};
use bitnet_gguf::hf::Projection;
use bitnet_gguf::layout::LayoutKind;

/// The metadata keys our TL outputs add (tiling recorded so no reader has to guess).
const TL_KEYS: [&str; 2] = ["bitnet.tl.kernel_config", "bitnet.tl.tiling_source"];

#[test]
fn hf_converter_profile_reproduces_every_upstream_file() {
    let dir = tempfile::tempdir().unwrap();
    for (layout, name) in TERNARY {
        let out = dir.path().join(format!("{name}.gguf"));
        hf_converter(PACKED, &out, layout);
        let ours = read(&out);
        let theirs = read(&upstream(name));
        assert_eq!(
            tensor_data(&ours),
            tensor_data(&theirs),
            "{name}: tensor data"
        );
        let mut ours_meta = metadata(&ours);
        if matches!(layout, LayoutKind::TL1 | LayoutKind::TL2) {
            // The only difference: our two tiling keys, appended at the end.
            let extra: Vec<String> = ours_meta
                .drain(ours_meta.len() - 2..)
                .map(|e| e.0)
                .collect();
            assert_eq!(extra, TL_KEYS);
        } else {
            assert!(ours == theirs, "{name}: whole file byte-identical");
        }
        assert_eq!(ours_meta, metadata(&theirs), "{name}: metadata");
    }
}

#[test]
fn tl_outputs_record_the_tiling() {
    let dir = tempfile::tempdir().unwrap();
    for layout in [LayoutKind::TL1, LayoutKind::TL2] {
        let out = dir.path().join(format!("{layout}.gguf"));
        hf_converter(PACKED, &out, layout);
        let bytes = read(&out);
        let file = GgufFile::parse(&bytes).unwrap();
        let ini_text = std::fs::read_to_string(ini(layout).unwrap()).unwrap();
        let recorded = file.get_str(TL_KEYS[0]).unwrap().unwrap();
        let parse = bitnet_gguf::layout::KernelConfig::parse;
        assert_eq!(parse(recorded).unwrap(), parse(&ini_text).unwrap());
        assert_eq!(file.get_str(TL_KEYS[1]).unwrap(), Some("kernel_config.ini"));
        // Read back without an ini: the recorded tiling is used.
        let source = ModelSource::open(&out, None).unwrap();
        assert_eq!(
            source.tiling_origin(),
            Some(bitnet_gguf::layout::TilingOrigin::Recorded)
        );
        source.ternary(0, Projection::Down).unwrap();
    }
}

#[test]
fn official_profile_has_the_official_key_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("official.gguf");
    official(PACKED, &out, LayoutKind::I2_S, EmbedType::F16);
    let bytes = read(&out);
    let keys: Vec<String> = metadata(&bytes).into_iter().map(|e| e.0).collect();
    let a = "bitnet-b1.58";
    let expected: Vec<String> = [
        "general.architecture".to_string(),
        "general.name".into(),
        format!("{a}.vocab_size"),
        format!("{a}.context_length"),
        format!("{a}.embedding_length"),
        format!("{a}.block_count"),
        format!("{a}.feed_forward_length"),
        format!("{a}.rope.dimension_count"),
        format!("{a}.attention.head_count"),
        format!("{a}.attention.head_count_kv"),
        "tokenizer.ggml.add_bos_token".into(),
        format!("{a}.attention.layer_norm_rms_epsilon"),
        format!("{a}.rope.freq_base"),
        "general.file_type".into(),
        "tokenizer.ggml.model".into(),
        "tokenizer.ggml.pre".into(),
        "tokenizer.ggml.tokens".into(),
        "tokenizer.ggml.scores".into(),
        "tokenizer.ggml.token_type".into(),
        "tokenizer.ggml.merges".into(),
        "tokenizer.ggml.bos_token_id".into(),
        "tokenizer.ggml.eos_token_id".into(),
        "tokenizer.ggml.padding_token_id".into(),
        "tokenizer.chat_template".into(),
        "general.quantization_version".into(),
    ]
    .into();
    assert_eq!(keys, expected);
    let file = GgufFile::parse(&bytes).unwrap();
    assert_eq!(
        file.get_bool("tokenizer.ggml.add_bos_token").unwrap(),
        Some(true)
    );
    assert_eq!(
        file.get_u32("tokenizer.ggml.padding_token_id").unwrap(),
        Some(510)
    );
    assert_eq!(
        file.get_u32("general.quantization_version").unwrap(),
        Some(2)
    );
    assert_eq!(file.get_u32("general.file_type").unwrap(), Some(40));
    assert_eq!(file.get_str("general.name").unwrap(), Some("packed"));
    assert_eq!(
        file.get_str("tokenizer.chat_template").unwrap(),
        Some(convert::metadata::BITNET_CHAT_TEMPLATE)
    );
    let scores = file.get_array("tokenizer.ggml.scores").unwrap().unwrap();
    let scores: Vec<Value> = scores.iter().collect();
    assert_eq!(scores.len(), 512);
    assert_eq!(scores[0], Value::F32(0.0));
    assert_eq!(scores[511], Value::F32(-1000.0));
    // Same tensors, same bytes as upstream's file.
    assert_eq!(tensor_data(&bytes), tensor_data(&read(&upstream("i2_s"))));

    // --no-pre leaves the key out.
    let out = dir.path().join("nopre.gguf");
    let mut opts = convert::HfToGguf::new(PACKED, &out);
    opts.no_pre = true;
    opts.quiet = true;
    convert::hf_to_gguf(&opts).unwrap();
    let bytes = read(&out);
    assert!(GgufFile::parse(&bytes)
        .unwrap()
        .get("tokenizer.ggml.pre")
        .is_none());
}

#[test]
fn master_gives_the_codes_of_packed_and_its_scales_round_to_them() {
    let dir = tempfile::tempdir().unwrap();
    let from_packed = dir.path().join("p.gguf");
    let from_master = dir.path().join("m.gguf");
    official(PACKED, &from_packed, LayoutKind::I2_S, EmbedType::F16);
    official(MASTER, &from_master, LayoutKind::I2_S, EmbedType::F16);
    let p = ModelSource::open(&from_packed, None).unwrap();
    let m = ModelSource::open(&from_master, None).unwrap();
    for layer in 0..2 {
        for proj in Projection::ALL {
            let tp = p.ternary(layer, proj).unwrap();
            let tm = m.ternary(layer, proj).unwrap();
            assert_eq!(tp.codes(), tm.codes(), "{}", proj.gguf_name(layer));
            // The packed checkpoint stores the bf16 rounding of the master's absmean: equal
            // after rounding, i.e. within half a bf16 ulp (2^15 f32 ulps).
            assert_eq!(
                half::bf16::from_f32(tm.scale()).to_f32(),
                tp.scale(),
                "{}",
                proj.gguf_name(layer)
            );
            let ulps = bitnet_gguf::hf::master::ulp_distance(tp.scale(), tm.scale());
            assert!(ulps <= 1 << 15, "{ulps}");
        }
    }
    // Everything else is identical.
    let report = convert::compare(
        &p,
        &m,
        &convert::VerifyOptions {
            scale_ulps: 1 << 15,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.differences(), 0, "{report}");
}

#[test]
fn tq_projections_with_k_not_a_multiple_of_256_fall_back_to_f16() {
    // ref-tiny has K = 256 and 768 everywhere: no fallback, and the report says nothing.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tq.gguf");
    let report = hf_converter(PACKED, &out, LayoutKind::TQ2_0);
    assert!(report.notes.iter().all(|n| !n.contains("F16 instead")));
    let shape = bitnet_gguf::layout::Shape::new(256, 384);
    assert_eq!(
        convert::plan::projection_type(LayoutKind::TQ1_0, shape),
        bitnet_gguf::gguf::GgmlType::F16
    );
}

/// The token embedding of the model at `path` (a GGUF file or a checkpoint directory): its
/// type name, its byte length and its values as the converter reads them.
fn embedding(path: &std::path::Path) -> (&'static str, usize, Vec<f32>) {
    let source = ModelSource::open(path, None).unwrap();
    let data = source
        .dense(bitnet_gguf::hf::names::TensorRole::Embedding)
        .unwrap();
    (data.type_name(), data.bytes().len(), data.to_f32())
}

#[test]
fn q8_0_embedding_is_within_half_a_step_of_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q8.gguf");
    official(PACKED, &out, LayoutKind::I2_S, EmbedType::Q8_0);
    let ((ty, _, vq), (_, _, vp)) = (embedding(&out), embedding(PACKED.as_ref()));
    assert_eq!(ty, "Q8_0");
    assert_eq!(vq.len(), 512 * 256);
    for (bq, bp) in vq.chunks(32).zip(vp.chunks(32)) {
        let amax = bp.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let step = half::f16::from_f32(amax / 127.0).to_f32();
        for (x, y) in bq.iter().zip(bp) {
            assert!(
                (x - y).abs() <= step * 0.5 + amax * 1e-3,
                "{x} vs {y} (step {step})"
            );
        }
    }
    // --verify skips the (lossy by request) embedding and passes.
    let mut opts = convert::HfToGguf::new(PACKED, dir.path().join("q8v.gguf"));
    opts.embed_type = EmbedType::Q8_0;
    opts.verify = true;
    opts.quiet = true;
    let report = convert::hf_to_gguf(&opts).unwrap();
    assert_eq!(report.verify.unwrap().differences(), 0);
}

/// Q6_K and Q4_0 embeddings: within their quantization step of the input, `--verify` passes,
/// and gguf-to-gguf re-quantizes an F32-embedding file to the same bytes and dequantizes back to
/// the values the runtime and converter read.
#[test]
fn quantized_embeddings_convert_between_files() {
    // (type, bytes of ref-tiny's 512×256 embedding, values per step group, error bound / amax):
    // Q6_K: half a sub-block step (amax/31) plus the int8 scale's rounding; Q4_0: a whole step
    // (amax/8), since the side opposite the block's max clamps at nibble 15.
    for (embed, name, len, group, bound) in [
        (EmbedType::Q6_K, "Q6_K", 512 * 210, 16, 0.5 / 31.0 + 0.02),
        (EmbedType::Q4_0, "Q4_0", 4096 * 18, 32, 1.0 / 8.0 + 0.01),
    ] {
        quantized_embedding_converts(embed, name, len, group, bound);
    }
}

fn quantized_embedding_converts(
    embed: EmbedType,
    name: &str,
    len: usize,
    group: usize,
    bound: f32,
) {
    use bitnet_gguf::gguf::{map_file, GgufFile};
    let dir = tempfile::tempdir().unwrap();
    let (q6, f32_embed) = (dir.path().join("q6.gguf"), dir.path().join("f32.gguf"));
    official(PACKED, &q6, LayoutKind::I2_S, embed);
    official(PACKED, &f32_embed, LayoutKind::I2_S, EmbedType::F32);
    let ((ty, bytes, vq), (_, _, vp)) = (embedding(&q6), embedding(PACKED.as_ref()));
    assert_eq!(ty, name);
    assert_eq!(bytes, len);
    for (bq, bp) in vq.chunks(group).zip(vp.chunks(group)) {
        let amax = bp.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        for (x, y) in bq.iter().zip(bp) {
            assert!((x - y).abs() <= amax * bound, "{name}: {x} vs {y}");
        }
    }
    let mut opts = convert::HfToGguf::new(PACKED, dir.path().join("q6v.gguf"));
    opts.embed_type = embed;
    opts.verify = true;
    opts.quiet = true;
    assert_eq!(
        convert::hf_to_gguf(&opts)
            .unwrap()
            .verify
            .unwrap()
            .differences(),
        0
    );

    let embedding_bytes = |path: &std::path::Path| {
        let map = map_file(path).unwrap();
        let file = GgufFile::parse(&map).unwrap();
        let info = file.tensor("token_embd.weight").unwrap();
        (info.ggml_type, file.tensor_data(info).unwrap().to_vec())
    };
    let requantized = dir.path().join("re.gguf");
    let mut g = convert::GgufToGguf {
        input: f32_embed.clone(),
        output: requantized.clone(),
        layout: LayoutKind::I2_S,
        kernel_config: None,
        embed_type: Some(embed),
        verify: true,
        quiet: true,
    };
    convert::gguf_to_gguf(&g).unwrap();
    assert_eq!(embedding_bytes(&requantized), embedding_bytes(&q6));
    g.input = q6.clone();
    g.output = dir.path().join("back.gguf");
    g.embed_type = Some(EmbedType::F32);
    convert::gguf_to_gguf(&g).unwrap();
    let (ty, back) = embedding_bytes(&g.output);
    assert_eq!(ty, bitnet_gguf::gguf::GgmlType::F32);
    let back: Vec<f32> = back
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(back, vq);
}
