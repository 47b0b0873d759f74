//! `hf-to-gguf`: an HF checkpoint (packed or master) to a GGUF file.

use super::metadata::{self, MetadataInputs, Profile, DEFAULT_PRE};
use super::plan::{projection_type, EmbedType, Job, TlPlan};
use super::source::{ModelSource, UserKernelConfig};
use super::{check_output, ConvertReport, Error};
use super::{finish_gguf, GgufOutput};
use crate::gguf::GgmlType;
use crate::hf::names::TensorRole;
use crate::hf::vocab::{Vocab, VocabOptions};
use crate::layout::LayoutKind;
use std::path::PathBuf;

/// Options of `bitnet-convert hf-to-gguf`.
#[derive(Debug, Clone, PartialEq)]
pub struct HfToGguf {
    /// The checkpoint directory.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// Projection layout.
    pub layout: LayoutKind,
    /// `token_embd.weight` type.
    pub embed_type: EmbedType,
    /// TL1/TL2 tiling file (else the derivation rule).
    pub kernel_config: Option<PathBuf>,
    /// `general.name` (else the input directory's name).
    pub name: Option<String>,
    /// Leave out `tokenizer.ggml.pre`.
    pub no_pre: bool,
    /// Convert without tokenizer files.
    pub no_tokenizer: bool,
    /// Key set to imitate.
    pub profile: Profile,
    /// Re-read the output and compare it with the input.
    pub verify: bool,
    /// No progress bar.
    pub quiet: bool,
}

impl HfToGguf {
    /// Defaults for everything but the paths.
    pub fn new(input: impl Into<PathBuf>, output: impl Into<PathBuf>) -> Self {
        Self {
            input: input.into(),
            output: output.into(),
            layout: LayoutKind::I2_S,
            embed_type: EmbedType::F16,
            kernel_config: None,
            name: None,
            no_pre: false,
            no_tokenizer: false,
            profile: Profile::Official,
            verify: false,
            quiet: false,
        }
    }
}

/// Converts an HF checkpoint to GGUF.
pub fn hf_to_gguf(opts: &HfToGguf) -> Result<ConvertReport, Error> {
    if !super::plan::GGUF_LAYOUTS.contains(&opts.layout) {
        return Err(Error::Usage {
            what: format!("--layout {} cannot be written to GGUF", opts.layout),
        });
    }
    check_output(&[&opts.input], &opts.output)?;
    // Never write over a file of the checkpoint (weights, shards, config, tokenizer).
    if let Ok(entries) = std::fs::read_dir(&opts.input) {
        let files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        let refs: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
        check_output(&refs, &opts.output)?;
    }
    if !opts.input.is_dir() {
        return Err(Error::Usage {
            what: format!(
                "{}: hf-to-gguf needs a checkpoint directory",
                opts.input.display()
            ),
        });
    }
    let user_tiling = opts
        .kernel_config
        .as_deref()
        .map(UserKernelConfig::read)
        .transpose()?;
    let source = ModelSource::open(&opts.input, None)?;
    let config = source.config().clone();
    let mut notes = vec![format!(
        "input: {} ({})",
        opts.input.display(),
        source.describe()
    )];

    let vocab = if opts.input.join("tokenizer.json").exists() {
        let options = VocabOptions {
            scores: opts.profile == Profile::Official,
            pre: None,
            vocab_size: Some(config.vocab_size),
        };
        Some(Vocab::read(&opts.input, &options)?)
    } else if opts.no_tokenizer {
        notes.push(
            "no tokenizer.json: the output has no tokenizer.ggml.* keys (no runtime can \
             encode or decode text with it)"
                .into(),
        );
        None
    } else {
        return Err(Error::MissingTokenizer {
            path: opts.input.clone(),
        });
    };

    let name = match &opts.name {
        Some(n) => n.clone(),
        None => std::fs::canonicalize(&opts.input)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into()),
    };
    let mut meta = metadata::build(
        &config,
        &MetadataInputs {
            profile: opts.profile,
            name: &name,
            layout: opts.layout,
            vocab: vocab.as_ref(),
            pre: (!opts.no_pre).then_some(DEFAULT_PRE),
        },
    );

    let tl = match TlPlan::for_output(opts.layout, &source, user_tiling.as_ref(), &mut meta)? {
        Some((plan, note)) => {
            notes.push(note);
            Some(plan)
        }
        None => {
            if user_tiling.is_some() {
                notes.push(format!(
                    "--kernel-config is ignored for layout {}",
                    opts.layout
                ));
            }
            None
        }
    };

    // Pipeline B order: the checkpoint's sorted tensor names, mapped to GGUF names.
    let mut jobs = Vec::new();
    let mut fallbacks = Vec::new();
    for t in source.tensors() {
        let Some(gguf_name) = t.role.gguf_name() else {
            continue;
        };
        let ty = match t.role {
            TensorRole::Embedding => opts.embed_type.ggml_type(),
            TensorRole::LmHead => GgmlType::F16,
            TensorRole::Projection { proj, .. } => {
                let ty = projection_type(opts.layout, proj.shape(&config));
                if ty == GgmlType::F16 && opts.layout != LayoutKind::F16 {
                    fallbacks.push(gguf_name.clone());
                }
                ty
            }
            _ => GgmlType::F32,
        };
        jobs.push(Job::new(&source, t.role, gguf_name, ty));
    }
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
            skip_dense_in_verify: opts.embed_type.is_lossy(),
        },
        &fallbacks,
        notes,
    )
}
