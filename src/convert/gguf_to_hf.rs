//! `gguf-to-hf`: a GGUF file to an HF checkpoint directory (packed or bf16 master), with
//! config, generation config and tokenizer files rebuilt from the GGUF metadata.
//!
//! Packed output: U8 `[M/4, K]` + BF16 `weight_scale` per projection (`autobitlinear`,
//! offline); embedding and norms BF16. Master output (`autobitlinear`, online): each projection
//! is stored as BF16 `code × scale × n / nnz`, the values whose absmean is `scale`, so that
//! online ternarization gives back the codes and (to bf16 precision) the scale. Plain
//! `code × scale` would re-ternarize to `scale × nnz / n`, a different model.

use super::source::ModelSource;
use super::verify::{self, VerifyOptions};
use super::{check_output, ConvertReport, Error};
use crate::hf::config::QuantizationMode;
use crate::hf::master::{ternarize, ulp_distance};
use crate::hf::names::TensorRole;
use crate::hf::writer::{write_safetensors, TensorHeader};
use crate::hf::{CheckpointFormat, Dtype};
use crate::io::AtomicDir;
use crate::layout::hf_packed::{HfScale, ScaleConvention, ScaleDtype, ScaleRounding, HF_PACKED};
use crate::layout::Shape;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Options of `bitnet-convert gguf-to-hf`.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufToHf {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The directory to create.
    pub output: PathBuf,
    /// Packed or master.
    pub format: CheckpointFormat,
    /// Tiling for TL inputs without recorded tiling.
    pub kernel_config: Option<PathBuf>,
    /// Re-read the output and compare it with the input.
    pub verify: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// What one safetensors tensor is made of.
#[derive(Debug, Clone, Copy)]
enum Part {
    Dense(TensorRole),
    Weight(TensorRole),
    Scale(TensorRole),
}

/// Converts a GGUF file to an HF checkpoint directory (created atomically: written beside the
/// target under a temporary name, then renamed).
pub fn gguf_to_hf(opts: &GgufToHf) -> Result<ConvertReport, Error> {
    check_output(&[&opts.input], &opts.output)?;
    if opts.output.exists() {
        return Err(Error::OutputExists {
            path: opts.output.clone(),
        });
    }
    let user = opts
        .kernel_config
        .as_deref()
        .map(super::source::UserKernelConfig::read)
        .transpose()?;
    let source = ModelSource::open(&opts.input, user.as_ref())?;
    if !source.is_gguf() {
        return Err(Error::Usage {
            what: format!("{}: gguf-to-hf needs a GGUF file", opts.input.display()),
        });
    }
    let mut notes = vec![format!(
        "input: {} ({})",
        opts.input.display(),
        source.describe()
    )];
    if let Some(origin) = source.tiling_origin_text() {
        notes.push(format!("input TL tiling: {origin}"));
    }
    let dir = AtomicDir::create(&opts.output).map_err(|e| Error::io(&opts.output, e))?;
    let tensors = write_dir(&source, opts, dir.path(), &mut notes)?;
    dir.commit().map_err(|e| Error::io(&opts.output, e))?;
    let verify = if opts.verify {
        let written = ModelSource::open(&opts.output, None)?;
        let options = VerifyOptions {
            scale_ulps: match opts.format {
                CheckpointFormat::Packed => 0,
                CheckpointFormat::Master => 1 << 16,
            },
            skip_dense: false,
            dense_as_output: true,
        };
        Some(verify::compare(&source, &written, &options)?)
    } else {
        None
    };
    let bytes = std::fs::metadata(opts.output.join("model.safetensors"))
        .map(|m| m.len())
        .unwrap_or(0);
    Ok(ConvertReport {
        output: opts.output.clone(),
        bytes,
        tensors,
        notes,
        verify,
    })
}

fn write_json(path: &Path, value: &serde_json::Value) -> Result<(), Error> {
    let mut text = serde_json::to_vec_pretty(value).unwrap_or_default();
    text.push(b'\n');
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

fn write_dir(
    source: &ModelSource,
    opts: &GgufToHf,
    dir: &Path,
    notes: &mut Vec<String>,
) -> Result<usize, Error> {
    let config = source.config().clone();
    let mode = match opts.format {
        CheckpointFormat::Packed => QuantizationMode::Offline,
        CheckpointFormat::Master => QuantizationMode::Online,
    };
    write_json(
        &dir.join("config.json"),
        &config.to_json(mode, ScaleConvention::Multiply),
    )?;
    let mut generation = serde_json::Map::new();
    generation.insert("_from_model_config".into(), true.into());
    if let Some(b) = config.bos_token_id {
        generation.insert("bos_token_id".into(), b.into());
    }
    if let Some(&e) = config.eos_token_ids.first() {
        generation.insert("eos_token_id".into(), e.into());
    }
    write_json(
        &dir.join("generation_config.json"),
        &serde_json::Value::Object(generation),
    )?;
    match source.vocab()? {
        Some(vocab) => vocab.write_files(dir, config.max_position_embeddings)?,
        None => notes.push("the GGUF file has no tokenizer: no tokenizer files written".into()),
    }

    // Tensors sorted by HF name, as transformers/safetensors write them.
    let mut parts: BTreeMap<String, (TensorHeader, Part)> = BTreeMap::new();
    for role in super::source::expected_roles(&config) {
        let name = role.hf_name();
        match role {
            TensorRole::Projection { layer, proj } => {
                let shape = proj.shape(&config);
                match opts.format {
                    CheckpointFormat::Packed => {
                        let [rows, cols] = HF_PACKED
                            .packed_shape(shape)
                            .map_err(|e| Error::layout(&opts.input, proj.gguf_name(layer), e))?;
                        parts.insert(
                            name.clone(),
                            (
                                TensorHeader::new(&name, Dtype::U8, vec![rows, cols]),
                                Part::Weight(role),
                            ),
                        );
                        let scale_name = proj.hf_scale_name(layer);
                        parts.insert(
                            scale_name.clone(),
                            (
                                TensorHeader::new(scale_name, Dtype::BF16, vec![1]),
                                Part::Scale(role),
                            ),
                        );
                    }
                    CheckpointFormat::Master => {
                        parts.insert(
                            name.clone(),
                            (
                                TensorHeader::new(&name, Dtype::BF16, vec![shape.rows, shape.cols]),
                                Part::Weight(role),
                            ),
                        );
                    }
                }
            }
            _ => {
                let shape = source.dense_shape(role);
                parts.insert(
                    name.clone(),
                    (
                        TensorHeader::new(&name, Dtype::BF16, shape),
                        Part::Dense(role),
                    ),
                );
            }
        }
    }
    // safetensors (Python and Rust) lay tensors out by dtype alignment, largest first, then by
    // name; the header lists them in that order too. Doing the same reproduces such files.
    let mut ordered: Vec<(TensorHeader, Part)> = parts.into_values().collect();
    ordered.sort_by(|(a, _), (b, _)| {
        b.dtype
            .size()
            .cmp(&a.dtype.size())
            .then_with(|| a.name.cmp(&b.name))
    });
    let headers: Vec<TensorHeader> = ordered.iter().map(|(h, _)| h.clone()).collect();
    let kinds: Vec<Part> = ordered.iter().map(|(_, p)| *p).collect();
    let metadata = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let inexact = Mutex::new(Vec::<String>::new());
    let lossy_dense = Mutex::new(Vec::<String>::new());
    let scale_format = HfScale {
        dtype: ScaleDtype::BF16,
        convention: ScaleConvention::Multiply,
    };
    let path = dir.join("model.safetensors");
    let hf_err = |e: std::io::Error| crate::hf::Error::io(&path, e);
    let mut conversion_error: Option<Error> = None;
    let result = write_safetensors(&path, &headers, &metadata, |i, header, out| {
        let mut step = || -> Result<(), Error> {
            match kinds[i] {
                Part::Dense(role) => {
                    let data = source.dense(role)?;
                    let values = data.to_f32();
                    let mut bytes = Vec::with_capacity(values.len() * 2);
                    let mut lossy = false;
                    for v in values {
                        let b = half::bf16::from_f32(v);
                        lossy |= b.to_f32() != v;
                        bytes.extend_from_slice(&b.to_le_bytes());
                    }
                    if lossy {
                        if let Ok(mut l) = lossy_dense.lock() {
                            l.push(header.name.clone());
                        }
                    }
                    out.write_all(&bytes).map_err(hf_err)?;
                    source.release(role);
                }
                Part::Weight(role) | Part::Scale(role) => {
                    let TensorRole::Projection { layer, proj } = role else {
                        return Ok(());
                    };
                    // Scales are written before the U8 weights (dtype order), so each
                    // projection is decoded twice rather than held in memory between the two.
                    let tensor = source.ternary(layer, proj)?;
                    let shape = tensor.shape();
                    let gguf_name = proj.gguf_name(layer);
                    match (kinds[i], opts.format) {
                        (Part::Scale(_), _) => {
                            let bytes = scale_format
                                .encode(tensor.scale(), ScaleRounding::Nearest)
                                .map_err(|e| Error::layout(&opts.input, &gguf_name, e))?;
                            let stored = half::bf16::from_le_bytes([bytes[0], bytes[1]]).to_f32();
                            if stored != tensor.scale() {
                                if let Ok(mut l) = inexact.lock() {
                                    l.push(format!(
                                        "{gguf_name}: scale {} stored as bf16 {stored}",
                                        tensor.scale()
                                    ));
                                }
                            }
                            out.write_all(&bytes).map_err(hf_err)?;
                        }
                        (_, CheckpointFormat::Packed) => {
                            let [rows, cols] = HF_PACKED
                                .packed_shape(shape)
                                .map_err(|e| Error::layout(&opts.input, &gguf_name, e))?;
                            let mut bytes = vec![0u8; rows * cols];
                            HF_PACKED
                                .encode_into(tensor.codes(), shape, &mut bytes)
                                .map_err(|e| Error::layout(&opts.input, &gguf_name, e))?;
                            out.write_all(&bytes).map_err(hf_err)?;
                        }
                        (_, CheckpointFormat::Master) => {
                            let (bytes, message) = master_bytes(&tensor, shape);
                            if let Some(m) = message {
                                if let Ok(mut l) = inexact.lock() {
                                    l.push(format!("{gguf_name}: {m}"));
                                }
                            }
                            out.write_all(&bytes).map_err(hf_err)?;
                        }
                    }
                    if matches!(kinds[i], Part::Weight(_)) {
                        source.release(role);
                    }
                }
            }
            Ok(())
        };
        step().map_err(|e| {
            let text = e.to_string();
            conversion_error = Some(e);
            crate::hf::Error::Unsupported {
                path: PathBuf::from(&header.name),
                what: text,
            }
        })
    });
    if let Err(e) = result {
        return Err(conversion_error.take().unwrap_or(Error::Hf(e)));
    }
    let inexact = inexact.into_inner().unwrap_or_default();
    if !inexact.is_empty() {
        notes.push(format!(
            "warning: {} projection(s) do not survive bf16 exactly (a re-conversion gives other scales): {}",
            inexact.len(),
            inexact.join("; ")
        ));
    }
    let lossy = lossy_dense.into_inner().unwrap_or_default();
    if !lossy.is_empty() {
        notes.push(format!(
            "warning: values of {} tensor(s) rounded to bf16: {}",
            lossy.len(),
            lossy.join(", ")
        ));
    }
    Ok(headers.len())
}

/// BF16 master values `code × scale × n / nnz` (absmean = scale), and a message when online
/// ternarization of the written values does not give back the codes or the exact scale.
fn master_bytes(tensor: &crate::layout::TernaryTensor, shape: Shape) -> (Vec<u8>, Option<String>) {
    let [neg, _, pos] = tensor.code_counts();
    let nnz = neg + pos;
    let n = tensor.codes().len();
    let magnitude = if nnz == 0 {
        0.0
    } else {
        (f64::from(tensor.scale()) * n as f64 / nnz as f64) as f32
    };
    let level = half::bf16::from_f32(magnitude);
    let values = [
        (-level).to_le_bytes(),
        half::bf16::ZERO.to_le_bytes(),
        level.to_le_bytes(),
    ];
    let mut bytes = Vec::with_capacity(n * 2);
    for &c in tensor.codes() {
        bytes.extend_from_slice(&values[(c + 1) as usize]);
    }
    let as_f32: Vec<f32> = tensor
        .codes()
        .iter()
        .map(|&c| f32::from(c) * level.to_f32())
        .collect();
    let message = match ternarize(&as_f32, shape) {
        Ok((t, _)) if t.codes() != tensor.codes() => {
            Some("codes change on re-ternarization".into())
        }
        Ok((t, _)) if t.scale() != tensor.scale() => Some(format!(
            "re-ternarizes to scale {} instead of {} ({} ulps)",
            t.scale(),
            tensor.scale(),
            ulp_distance(t.scale(), tensor.scale())
        )),
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    (bytes, message)
}
