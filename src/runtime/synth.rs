//! Synthetic BitNet b1.58 GGUF files with random ternary weights, for benchmarks and tests
//! that need a model of a given shape (the real 2B-4T layout of `bitnet-arch.md` §2.2: F16
//! embedding, F32 norms, seven I2_S projections per layer, tied lm_head).

use super::error::Error;
use crate::gguf::{keys, GgmlType, GgufWriter, MetaArray, MetaValue, Metadata, TensorDesc};
use crate::layout::{Shape, TernaryCodec, TernaryTensor};
use half::f16;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The shape of a synthetic model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthSpec {
    /// Vocabulary size.
    pub vocab: usize,
    /// Residual width.
    pub embedding: usize,
    /// Layers.
    pub layers: usize,
    /// FFN width.
    pub ffn: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads.
    pub kv_heads: usize,
    /// Context length written to the metadata.
    pub context: usize,
}

impl SynthSpec {
    /// BitNet-b1.58-2B-4T: vocab 128256, d 2560, 30 layers, FFN 6912, 20/5 heads.
    pub const BITNET_2B_4T: SynthSpec = SynthSpec {
        vocab: 128_256,
        embedding: 2560,
        layers: 30,
        ffn: 6912,
        heads: 20,
        kv_heads: 5,
        context: 4096,
    };
}

/// A splitmix64 stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Roughly normal (sum of four uniforms, centred), scaled by `sd`.
    fn normal(&mut self, sd: f32) -> f32 {
        let u = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum::<f32>();
        (u - 2.0) * 1.732 * sd
    }
}

/// Writes a synthetic `bitnet-b1.58` I2_S model of `spec` to `path` (random ternary codes with
/// about one third zeros, absmean-like scales, a byte-level vocabulary of `vocab` tokens).
pub fn write_synthetic_model(path: &Path, spec: &SynthSpec, seed: u64) -> Result<(), Error> {
    let arch = keys::ARCH_BITNET_B158;
    let d = spec.embedding;
    if spec.vocab < 259 || spec.heads == 0 || d % spec.heads != 0 || spec.kv_heads == 0 {
        return Err(Error::Invalid(format!(
            "synthetic model: unusable spec {spec:?}"
        )));
    }
    let head_dim = d / spec.heads;
    let mut meta = Metadata::new();
    let k = |s: &str| keys::arch_key(arch, s);
    let push =
        |meta: &mut Metadata, key: String, v: MetaValue| meta.push(key, v).map_err(Error::Gguf);
    push(
        &mut meta,
        keys::ARCHITECTURE.into(),
        MetaValue::String(arch.into()),
    )?;
    push(
        &mut meta,
        keys::NAME.into(),
        MetaValue::String("synthetic".into()),
    )?;
    push(
        &mut meta,
        k(keys::VOCAB_SIZE),
        MetaValue::U32(spec.vocab as u32),
    )?;
    push(
        &mut meta,
        k(keys::CONTEXT_LENGTH),
        MetaValue::U32(spec.context as u32),
    )?;
    push(
        &mut meta,
        k(keys::EMBEDDING_LENGTH),
        MetaValue::U32(d as u32),
    )?;
    push(
        &mut meta,
        k(keys::BLOCK_COUNT),
        MetaValue::U32(spec.layers as u32),
    )?;
    push(
        &mut meta,
        k(keys::FEED_FORWARD_LENGTH),
        MetaValue::U32(spec.ffn as u32),
    )?;
    push(
        &mut meta,
        k(keys::ROPE_DIMENSION_COUNT),
        MetaValue::U32(head_dim as u32),
    )?;
    push(
        &mut meta,
        k(keys::HEAD_COUNT),
        MetaValue::U32(spec.heads as u32),
    )?;
    push(
        &mut meta,
        k(keys::HEAD_COUNT_KV),
        MetaValue::U32(spec.kv_heads as u32),
    )?;
    push(&mut meta, keys::ADD_BOS_TOKEN.into(), MetaValue::Bool(true))?;
    push(&mut meta, k(keys::RMS_EPSILON), MetaValue::F32(1e-5))?;
    push(
        &mut meta,
        k(keys::ROPE_FREQ_BASE),
        MetaValue::F32(500_000.0),
    )?;
    push(&mut meta, keys::FILE_TYPE.into(), MetaValue::U32(40))?;
    push(
        &mut meta,
        keys::TOKENIZER_MODEL.into(),
        MetaValue::String("gpt2".into()),
    )?;
    // 256 byte tokens in the byte-level alphabet, then control tokens.
    let mut tokens: Vec<String> = (0..=255u8)
        .map(|b| crate::runtime::tokenizer::byte_level::encode(&[b]))
        .collect();
    let mut types = vec![1i32; 256];
    for i in 256..spec.vocab {
        tokens.push(match i - 256 {
            0 => "<|begin_of_text|>".to_string(),
            1 => "<|end_of_text|>".to_string(),
            2 => "<|eot_id|>".to_string(),
            n => format!("<|reserved_special_token_{n}|>"),
        });
        types.push(3);
    }
    push(
        &mut meta,
        keys::TOKENS.into(),
        MetaValue::Array(MetaArray::String(tokens)),
    )?;
    push(
        &mut meta,
        keys::TOKEN_TYPE.into(),
        MetaValue::Array(MetaArray::I32(types)),
    )?;
    push(
        &mut meta,
        keys::MERGES.into(),
        MetaValue::Array(MetaArray::String(Vec::new())),
    )?;
    push(&mut meta, keys::BOS_TOKEN_ID.into(), MetaValue::U32(256))?;
    push(&mut meta, keys::EOS_TOKEN_ID.into(), MetaValue::U32(257))?;

    let (kv, ff) = (spec.kv_heads * head_dim, spec.ffn);
    let mut descs = vec![TensorDesc::new(
        "token_embd.weight",
        vec![d as u64, spec.vocab as u64],
        GgmlType::F16,
    )];
    let mut plan: Vec<(String, Option<Shape>, usize)> = Vec::new();
    for l in 0..spec.layers {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        plan.push((n("attn_norm"), None, d));
        for (name, m, kk) in [
            ("attn_q", d, d),
            ("attn_k", kv, d),
            ("attn_v", kv, d),
            ("attn_output", d, d),
        ] {
            plan.push((n(name), Some(Shape::new(m, kk)), 0));
        }
        plan.push((n("attn_sub_norm"), None, d));
        plan.push((n("ffn_norm"), None, d));
        for (name, m, kk) in [("ffn_gate", ff, d), ("ffn_up", ff, d), ("ffn_down", d, ff)] {
            plan.push((n(name), Some(Shape::new(m, kk)), 0));
        }
        plan.push((n("ffn_sub_norm"), None, ff));
    }
    plan.push(("output_norm.weight".into(), None, d));
    for (name, shape, len) in &plan {
        descs.push(match shape {
            Some(s) => TensorDesc::new(name, vec![s.cols as u64, s.rows as u64], GgmlType::I2_S),
            None => TensorDesc::new(name, vec![*len as u64], GgmlType::F32),
        });
    }
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut writer = GgufWriter::new(out, &meta, &descs)?;
    let mut rng = Rng(seed);
    let sd = 4.0 / (d as f32).sqrt();
    let embd: Vec<u8> = (0..d * spec.vocab)
        .flat_map(|_| f16::from_f32(rng.normal(sd)).to_le_bytes())
        .collect();
    writer.write_tensor("token_embd.weight", &embd)?;
    drop(embd);
    for (name, shape, len) in &plan {
        match shape {
            Some(s) => {
                let codes: Vec<i8> = (0..s.rows * s.cols)
                    .map(|_| match rng.next() % 3 {
                        0 => -1,
                        1 => 0,
                        _ => 1,
                    })
                    .collect();
                let scale = 1.5 / (s.cols as f32).sqrt() * 1.5;
                let t = TernaryTensor::new(*s, codes, scale)?;
                let bytes = crate::layout::i2s::I2S.encode(&t)?;
                writer.write_tensor(name, &bytes)?;
            }
            None => {
                let v: Vec<u8> = (0..*len)
                    .flat_map(|_| (1.0 + rng.normal(0.1)).to_le_bytes())
                    .collect();
                writer.write_tensor(name, &v)?;
            }
        }
    }
    let mut out = writer.finish()?;
    out.flush().map_err(io)?;
    Ok(())
}
