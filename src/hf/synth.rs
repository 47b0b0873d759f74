//! Random but realistic checkpoints (`bitnet-convert synth`): exactly the real tensor names,
//! shapes, dtypes and config of a preset, with ternary codes (~1/3 zeros), per-tensor scales of
//! realistic magnitude, norms near 1, a BF16 embedding and a synthetic byte-level BPE tokenizer
//! of the preset's vocab size. Deterministic for a seed; written atomically (a temporary
//! directory beside the target, then one rename).

use super::checkpoint::CheckpointFormat;
use super::config::HfConfig;
use super::names::{float_tensors, LayerNorm, Projection, TensorRole};
use super::vocab::{
    byte_tokens_in_order, write_json, Vocab, TOKEN_TYPE_CONTROL, TOKEN_TYPE_NORMAL,
};
use super::writer::{write_safetensors, TensorHeader};
use super::Error;
use crate::io::AtomicDir;
use rayon::prelude::*;
use safetensors::Dtype;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;

/// A model shape to imitate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SynthPreset {
    /// BitNet b1.58 2B-4T: hidden 2560, ffn 6912, 30 layers, 20 heads, 5 kv heads, vocab
    /// 128256, context 4096, theta 500000, eps 1e-5.
    TwoB4T,
    /// The ref-tiny fixture model: hidden 256, ffn 768, 2 layers, 4 heads, 2 kv heads, vocab
    /// 512, context 256.
    Tiny,
}

impl SynthPreset {
    /// Parses `"2b-4t"` or `"tiny"`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "2b-4t" => Some(SynthPreset::TwoB4T),
            "tiny" => Some(SynthPreset::Tiny),
            _ => None,
        }
    }

    /// `"2b-4t"` or `"tiny"`.
    pub fn name(self) -> &'static str {
        match self {
            SynthPreset::TwoB4T => "2b-4t",
            SynthPreset::Tiny => "tiny",
        }
    }

    /// The special tokens at the top of the vocabulary, in id order.
    pub fn special_tokens(self) -> Vec<String> {
        match self {
            SynthPreset::Tiny => vec![
                "<|begin_of_text|>".into(),
                "<|end_of_text|>".into(),
                "<|eot_id|>".into(),
            ],
            SynthPreset::TwoB4T => {
                let mut v: Vec<String> = vec!["<|begin_of_text|>".into(), "<|end_of_text|>".into()];
                v.extend((0..4).map(|i| format!("<|reserved_special_token_{i}|>")));
                v.push("<|start_header_id|>".into());
                v.push("<|end_header_id|>".into());
                v.push("<|reserved_special_token_4|>".into());
                v.push("<|eot_id|>".into());
                v.extend((5..=250).map(|i| format!("<|reserved_special_token_{i}|>")));
                v
            }
        }
    }

    /// The `config.json` this preset writes for a format.
    pub fn config_json(self, format: CheckpointFormat) -> Value {
        let (v, h, f, l, nh, nkv, ctx) = match self {
            SynthPreset::TwoB4T => (128256, 2560, 6912, 30, 20, 5, 4096),
            SynthPreset::Tiny => (512, 256, 768, 2, 4, 2, 256),
        };
        let specials = self.special_tokens().len();
        let bos = v - specials;
        json!({
            "architectures": ["BitNetForCausalLM"],
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": bos,
            "eos_token_id": bos + 1,
            "hidden_act": "relu2",
            "hidden_size": h,
            "initializer_range": 0.02,
            "intermediate_size": f,
            "max_position_embeddings": ctx,
            "model_type": "bitnet",
            "num_attention_heads": nh,
            "num_hidden_layers": l,
            "num_key_value_heads": nkv,
            "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0,
            "tie_word_embeddings": true,
            "torch_dtype": "bfloat16",
            "use_cache": true,
            "vocab_size": v,
            "quantization_config": {
                "quant_method": "bitnet",
                "linear_class": "autobitlinear",
                "quantization_mode": match format {
                    CheckpointFormat::Packed => "offline",
                    CheckpointFormat::Master => "online",
                }
            }
        })
    }

    /// The parsed config of this preset.
    pub fn config(self, format: CheckpointFormat) -> HfConfig {
        // The preset JSON is built above and always valid.
        HfConfig::from_json(Path::new("config.json"), self.config_json(format))
            .unwrap_or_else(|e| unreachable!("preset config is invalid: {e}"))
    }

    /// `generation_config.json`.
    pub fn generation_config_json(self) -> Value {
        let specials = self.special_tokens();
        let v = self.config_json(CheckpointFormat::Packed)["vocab_size"]
            .as_u64()
            .unwrap_or(0) as usize;
        let bos = v - specials.len();
        let eot = bos + specials.iter().position(|s| s == "<|eot_id|>").unwrap_or(1);
        json!({"_from_model_config": true, "bos_token_id": bos,
               "eos_token_id": [bos + 1, eot], "do_sample": false})
    }
}

/// What to synthesize.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynthOptions {
    /// Model shape.
    pub preset: SynthPreset,
    /// Packed (U8 + weight_scale) or bf16 master.
    pub format: CheckpointFormat,
    /// PRNG seed; the same seed gives byte-identical files.
    pub seed: u64,
}

/// splitmix64: a tiny, fast, well-mixed PRNG (no dependency).
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Approximately standard normal (Irwin-Hall of four 16-bit uniforms, unit variance).
    fn normal(&mut self) -> f32 {
        let r = self.next();
        let sum = (r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48);
        ((sum as f32 / 65536.0) - 2.0) * 1.732_050_8
    }
}

fn mix(seed: u64, a: u64, b: u64) -> SplitMix64 {
    let mut g = SplitMix64(seed ^ a.wrapping_mul(0xA076_1D64_78BD_642F));
    let x = g.next();
    SplitMix64(x ^ b.wrapping_mul(0xE703_7ED1_A0B4_28DB))
}

/// The 81 bytes whose four 2-bit fields are all valid codes (0, 1, 2).
fn valid_packed_bytes() -> [u8; 81] {
    let mut out = [0u8; 81];
    for (i, o) in out.iter_mut().enumerate() {
        let mut x = i;
        for k in 0..4 {
            *o |= ((x % 3) as u8) << (2 * k);
            x /= 3;
        }
    }
    out
}

/// How one tensor's bytes are generated.
#[derive(Debug, Clone, Copy)]
enum Fill {
    /// Uniform codes, one third zeros.
    Packed,
    /// BF16 `mean + sigma·N(0,1)`.
    Bf16Normal { mean: f32, sigma: f32 },
    /// One BF16 value.
    Bf16Value(f32),
}

const CHUNK: usize = 1 << 20;

fn fill_chunk(fill: Fill, seed: u64, tensor: u64, chunk: u64, out: &mut [u8]) {
    let mut g = mix(seed, tensor, chunk);
    match fill {
        Fill::Packed => {
            let lut = valid_packed_bytes();
            for quad in out.chunks_mut(4) {
                let r = g.next();
                for (k, b) in quad.iter_mut().enumerate() {
                    let x = (r >> (16 * k)) & 0xffff;
                    *b = lut[((x * 81) >> 16) as usize];
                }
            }
        }
        Fill::Bf16Normal { mean, sigma } => {
            // 4096 normal samples, then five 12-bit table lookups per random word: fast enough
            // to write the 2B-4T embedding in well under a second per core.
            let table: Vec<[u8; 2]> = (0..4096)
                .map(|_| half::bf16::from_f32(mean + sigma * g.normal()).to_le_bytes())
                .collect();
            for group in out.chunks_mut(10) {
                let r = g.next();
                for (k, pair) in group.chunks_exact_mut(2).enumerate() {
                    pair.copy_from_slice(&table[((r >> (12 * k)) & 0xfff) as usize]);
                }
            }
        }
        Fill::Bf16Value(v) => {
            for pair in out.chunks_exact_mut(2) {
                pair.copy_from_slice(&half::bf16::from_f32(v).to_le_bytes());
            }
        }
    }
}

/// Writes a synthetic checkpoint directory at `out_dir` (which must not exist).
pub fn synthesize(out_dir: &Path, options: &SynthOptions) -> Result<(), Error> {
    if out_dir.exists() {
        return Err(Error::OutputExists {
            path: out_dir.to_path_buf(),
        });
    }
    let dir = AtomicDir::create(out_dir).map_err(|e| Error::io(out_dir, e))?;
    write_all(dir.path(), options)?;
    dir.commit().map_err(|e| Error::io(out_dir, e))
}

fn write_all(dir: &Path, options: &SynthOptions) -> Result<(), Error> {
    let preset = options.preset;
    let config = preset.config(options.format);
    write_json(
        &dir.join("config.json"),
        &preset.config_json(options.format),
    )?;
    write_json(
        &dir.join("generation_config.json"),
        &preset.generation_config_json(),
    )?;
    synth_vocab(preset, &config, options.seed).write_files(dir, config.max_position_embeddings)?;

    let mut plan: Vec<(TensorHeader, Fill)> = Vec::new();
    let h = config.hidden_size;
    let mut scale_rng = mix(options.seed, u64::MAX, 0);
    for (role, shape) in float_tensors(&config) {
        let fill = match role {
            TensorRole::Embedding | TensorRole::LmHead => Fill::Bf16Normal {
                mean: 0.0,
                sigma: 4.0 / (h as f32).sqrt(),
            },
            TensorRole::Norm {
                norm: LayerNorm::Input | LayerNorm::AttnSub,
                ..
            } if preset == SynthPreset::TwoB4T => Fill::Bf16Normal {
                mean: 0.3,
                sigma: 0.05,
            },
            _ => Fill::Bf16Normal {
                mean: 1.0,
                sigma: 0.1,
            },
        };
        plan.push((TensorHeader::new(role.hf_name(), Dtype::BF16, shape), fill));
    }
    for layer in 0..config.num_hidden_layers {
        for proj in Projection::ALL {
            let s = proj.shape(&config);
            // Per-tensor weight spread: c/sqrt(K) with c in [1, 2] for tiny (as the fixture),
            // |W| around 1.5 for 2B-4T (as the published master).
            let sigma = match preset {
                SynthPreset::Tiny => (1.0 + scale_rng.unit() as f32) / (s.cols as f32).sqrt(),
                SynthPreset::TwoB4T => 1.2 + 1.2 * scale_rng.unit() as f32,
            };
            match options.format {
                CheckpointFormat::Packed => {
                    plan.push((
                        TensorHeader::new(
                            proj.hf_weight_name(layer),
                            Dtype::U8,
                            vec![s.rows / 4, s.cols],
                        ),
                        Fill::Packed,
                    ));
                    // mean|W| of a normal is sigma·sqrt(2/pi).
                    let scale = sigma * 0.797_884_6;
                    plan.push((
                        TensorHeader::new(proj.hf_scale_name(layer), Dtype::BF16, vec![1]),
                        Fill::Bf16Value(scale),
                    ));
                }
                CheckpointFormat::Master => plan.push((
                    TensorHeader::new(
                        proj.hf_weight_name(layer),
                        Dtype::BF16,
                        vec![s.rows, s.cols],
                    ),
                    Fill::Bf16Normal { mean: 0.0, sigma },
                )),
            }
        }
    }
    plan.sort_by(|a, b| a.0.name.cmp(&b.0.name));
    let headers: Vec<TensorHeader> = plan.iter().map(|(h, _)| h.clone()).collect();
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let path = dir.join("model.safetensors");
    let seed = options.seed;
    write_safetensors(&path, &headers, &meta, |i, header, out| {
        let fill = plan[i].1;
        let total = header.byte_len().unwrap_or(0) as usize;
        let chunks = total.div_ceil(CHUNK);
        // Generate a batch of chunks in parallel, then write them in order.
        let batch = 32;
        let mut start = 0;
        while start < chunks {
            let end = (start + batch).min(chunks);
            let buffers: Vec<Vec<u8>> = (start..end)
                .into_par_iter()
                .map(|c| {
                    let len = CHUNK.min(total - c * CHUNK);
                    let mut buf = vec![0u8; len];
                    fill_chunk(fill, seed, i as u64, c as u64, &mut buf);
                    buf
                })
                .collect();
            for b in &buffers {
                out.write_all(b).map_err(|e| Error::io(&path, e))?;
            }
            start = end;
        }
        Ok(())
    })
}

/// A synthetic byte-level BPE vocabulary: 256 byte tokens, generated merges, the preset's
/// special tokens at the top.
pub fn synth_vocab(preset: SynthPreset, config: &HfConfig, seed: u64) -> Vocab {
    let specials = preset.special_tokens();
    let base = config.vocab_size.saturating_sub(specials.len());
    let mut tokens = byte_tokens_in_order();
    tokens.truncate(base);
    let mut seen: HashSet<String> = tokens.iter().cloned().collect();
    let mut merges = Vec::with_capacity(base.saturating_sub(256));
    let mut g = mix(seed, 0x7070, 1);
    while tokens.len() < base {
        // Skew towards early (short, frequent) tokens, like real merge lists.
        let n = tokens.len() as f64;
        let pick = |g: &mut SplitMix64| ((g.unit() * g.unit()) * n) as usize;
        let (a, b) = (pick(&mut g), pick(&mut g));
        let joined = format!("{}{}", tokens[a], tokens[b]);
        if joined.chars().count() > 16 || seen.contains(&joined) {
            continue;
        }
        merges.push(format!("{} {}", tokens[a], tokens[b]));
        seen.insert(joined.clone());
        tokens.push(joined);
    }
    let mut token_types = vec![TOKEN_TYPE_NORMAL; tokens.len()];
    let bos = tokens.len() as u32;
    for s in specials {
        tokens.push(s);
        token_types.push(TOKEN_TYPE_CONTROL);
    }
    Vocab {
        model: "gpt2".into(),
        pre: None,
        tokens,
        token_types,
        scores: None,
        merges,
        special_ids: vec![("bos", bos), ("eos", bos + 1)],
        add_bos_token: None,
        add_eos_token: None,
        chat_template: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_lut_has_no_code_three() {
        for b in valid_packed_bytes() {
            assert_eq!(b & (b >> 1) & 0x55, 0);
        }
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut g = SplitMix64(1);
        let n = 100_000;
        let v: Vec<f32> = (0..n).map(|_| g.normal()).collect();
        let mean = v.iter().sum::<f32>() / n as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n as f32;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
    }

    #[test]
    fn tiny_vocab_layout() {
        let config = SynthPreset::Tiny.config(CheckpointFormat::Packed);
        let v = synth_vocab(SynthPreset::Tiny, &config, 1);
        assert_eq!(v.tokens.len(), 512);
        assert_eq!(v.merges.len(), 509 - 256);
        assert_eq!(v.tokens[509], "<|begin_of_text|>");
        assert_eq!(v.special_id("eos"), Some(510));
    }
}
