//! `gguf-to-gguf`: one ternary layout to another; every other tensor and key kept, except the
//! token embedding when a new type is asked for.

use super::metadata::file_type;
use super::plan::{projection_type, EmbedType, Job, TlPlan};
use super::source::{ModelSource, UserKernelConfig, TL_KERNEL_CONFIG_KEY, TL_TILING_SOURCE_KEY};
use super::{check_output, ConvertReport, Error};
use super::{finish_gguf, GgufOutput};
use crate::gguf::{keys, GgmlType, MetaValue, Metadata};
use crate::hf::names::TensorRole;
use crate::layout::LayoutKind;
use std::path::PathBuf;

/// Options of `bitnet-convert gguf-to-gguf`.
#[derive(Debug, Clone, PartialEq)]
pub struct GgufToGguf {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// Projection layout of the output.
    pub layout: LayoutKind,
    /// Tiling for TL inputs without recorded tiling and for TL outputs.
    pub kernel_config: Option<PathBuf>,
    /// New type for `token_embd.weight` (`None`: copied as it is).
    pub embed_type: Option<EmbedType>,
    /// Re-read the output and compare it with the input.
    pub verify: bool,
    /// No progress bar.
    pub quiet: bool,
}

/// Converts between GGUF layouts.
pub fn gguf_to_gguf(opts: &GgufToGguf) -> Result<ConvertReport, Error> {
    if !super::plan::GGUF_LAYOUTS.contains(&opts.layout) {
        return Err(Error::Usage {
            what: format!("--layout {} cannot be written to GGUF", opts.layout),
        });
    }
    check_output(&[&opts.input], &opts.output)?;
    let user_tiling = opts
        .kernel_config
        .as_deref()
        .map(UserKernelConfig::read)
        .transpose()?;
    let source = ModelSource::open(&opts.input, user_tiling.as_ref())?;
    if !source.is_gguf() {
        return Err(Error::Usage {
            what: format!("{}: gguf-to-gguf needs a GGUF file", opts.input.display()),
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
    let mut meta = {
        let file = source.gguf_file()?.ok_or_else(|| Error::Usage {
            what: "not a GGUF file".into(),
        })?;
        Metadata::from_file(&file)
    };
    meta.set(keys::FILE_TYPE, MetaValue::U32(file_type(opts.layout)));
    meta.remove(TL_KERNEL_CONFIG_KEY);
    meta.remove(TL_TILING_SOURCE_KEY);
    let tl = match TlPlan::for_output(opts.layout, &source, user_tiling.as_ref(), &mut meta)? {
        Some((plan, note)) => {
            notes.push(note);
            Some(plan)
        }
        None => None,
    };
    let config = source.config().clone();
    let mut jobs = Vec::new();
    let mut fallbacks = Vec::new();
    let mut embedding_requantized = false;
    let file = source.gguf_file()?;
    for t in source.tensors() {
        let ty_in = file
            .as_ref()
            .and_then(|f| f.tensor(&t.name))
            .map(|i| i.ggml_type)
            .unwrap_or(GgmlType::F32);
        let mut job = match t.role {
            TensorRole::Projection { proj, .. } => {
                let ty = projection_type(opts.layout, proj.shape(&config));
                if ty == GgmlType::F16 && opts.layout != LayoutKind::F16 {
                    fallbacks.push(t.name.clone());
                }
                Job::new(&source, t.role, t.name.clone(), ty)
            }
            TensorRole::Embedding if opts.embed_type.is_some_and(|e| e.ggml_type() != ty_in) => {
                let ty = opts.embed_type.map_or(ty_in, EmbedType::ggml_type);
                notes.push(format!("{}: {} -> {}", t.name, ty_in.name(), ty.name()));
                embedding_requantized |= opts.embed_type.is_some_and(EmbedType::is_lossy);
                Job::new(&source, t.role, t.name.clone(), ty)
            }
            _ => {
                let mut j = Job::new(&source, t.role, t.name.clone(), ty_in);
                j.copy = true;
                j
            }
        };
        job.desc.name = t.name.clone();
        jobs.push(job);
    }
    drop(file);
    finish_gguf(
        &source,
        &meta,
        &jobs,
        tl.as_ref(),
        GgufOutput {
            path: &opts.output,
            layout: opts.layout,
            quiet: opts.quiet,
            verify: opts.verify,
            skip_dense_in_verify: embedding_requantized,
        },
        &fallbacks,
        notes,
    )
}
