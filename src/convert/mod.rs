//! Conversions between HF checkpoints and GGUF layouts (`bitnet-convert`), and verification.
//!
//! Every command reads its inputs through [`ModelSource`] (memory-mapped, tensor by tensor),
//! writes through a temporary file beside the target that is renamed only when complete
//! ([`crate::io::AtomicFile`]), and refuses to write over an input.
//!
//! ```no_run
//! use bitnet_gguf::convert::{hf_to_gguf, HfToGguf};
//! let report = hf_to_gguf(&HfToGguf::new("fixtures/ref-tiny/packed", "/tmp/ref-tiny.gguf"))?;
//! println!("{} tensors, {} bytes", report.tensors, report.bytes);
//! # Ok::<(), bitnet_gguf::convert::Error>(())
//! ```

mod error;
mod gguf_to_gguf;
mod gguf_to_hf;
mod hf_to_gguf;
pub mod metadata;
pub mod plan;
pub mod source;
pub mod verify;

pub use error::Error;
pub use gguf_to_gguf::{gguf_to_gguf, GgufToGguf};
pub use gguf_to_hf::{gguf_to_hf, GgufToHf};
pub use hf_to_gguf::{hf_to_gguf, HfToGguf};
pub use metadata::Profile;
pub use plan::EmbedType;
pub use source::{ModelSource, UserKernelConfig};
pub use verify::{compare, VerifyOptions, VerifyReport};

use crate::gguf::{GgufWriter, Metadata};
use crate::io::{same_file, AtomicFile};
use crate::layout::LayoutKind;
use std::path::{Path, PathBuf};

/// What a converting command did.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvertReport {
    /// The file or directory written.
    pub output: PathBuf,
    /// Bytes written (the GGUF file, or `model.safetensors`).
    pub bytes: u64,
    /// Tensors written.
    pub tensors: usize,
    /// Things the user should know (tiling used, fallbacks, roundings).
    pub notes: Vec<String>,
    /// The `--verify` result, when asked for.
    pub verify: Option<VerifyReport>,
}

/// Refuses an output that is one of the inputs (or, for a directory input, inside it).
pub(crate) fn check_output(inputs: &[&Path], output: &Path) -> Result<(), Error> {
    for input in inputs {
        let same = same_file(input, output).map_err(|e| Error::io(output, e))?;
        if same {
            return Err(Error::OutputIsInput {
                path: output.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Where and how [`finish_gguf`] writes.
pub(crate) struct GgufOutput<'a> {
    pub(crate) path: &'a Path,
    pub(crate) layout: LayoutKind,
    pub(crate) quiet: bool,
    pub(crate) verify: bool,
    /// The embedding was quantized (Q8_0, Q6_K, Q4_0): compare only the other tensors when
    /// verifying.
    pub(crate) skip_dense_in_verify: bool,
}

/// The common end of every GGUF-writing command: note the F16 fallbacks, write atomically,
/// note rounded scales, re-read and verify the output on request, and report.
pub(crate) fn finish_gguf(
    source: &ModelSource,
    metadata: &Metadata,
    jobs: &[plan::Job],
    tl: Option<&plan::TlPlan>,
    out: GgufOutput<'_>,
    fallbacks: &[String],
    mut notes: Vec<String>,
) -> Result<ConvertReport, Error> {
    if !fallbacks.is_empty() {
        notes.push(format!(
            "{} needs K % 256 == 0: {} projection(s) stored as F16 instead (lossless): {}",
            out.layout,
            fallbacks.len(),
            fallbacks.join(", ")
        ));
    }
    let (bytes, outcome) = write_gguf(source, metadata, jobs, tl, out.path, out.quiet)?;
    if !outcome.rounded_scales.is_empty() {
        notes.push(format!(
            "{} scale(s) rounded to the layout's 16-bit scale type",
            outcome.rounded_scales.len()
        ));
    }
    let verify = if out.verify {
        let written = ModelSource::open(out.path, None)?;
        let options = VerifyOptions {
            scale_ulps: if outcome.rounded_scales.is_empty() {
                0
            } else {
                1 << 16
            },
            skip_dense: out.skip_dense_in_verify,
            dense_as_output: true,
        };
        Some(verify::compare(source, &written, &options)?)
    } else {
        None
    };
    Ok(ConvertReport {
        output: out.path.to_path_buf(),
        bytes,
        tensors: jobs.len(),
        notes,
        verify,
    })
}

/// Writes a GGUF file atomically; returns its size.
pub(crate) fn write_gguf(
    source: &ModelSource,
    metadata: &Metadata,
    jobs: &[plan::Job],
    tl: Option<&plan::TlPlan>,
    output: &Path,
    quiet: bool,
) -> Result<(u64, plan::WriteOutcome), Error> {
    let descs: Vec<_> = jobs.iter().map(|j| j.desc.clone()).collect();
    let file = AtomicFile::create(output).map_err(|e| Error::io(output, e))?;
    let gguf_err = |source| Error::Gguf {
        path: output.to_path_buf(),
        source,
    };
    let mut writer = GgufWriter::new(file, metadata, &descs).map_err(gguf_err)?;
    let outcome = plan::write_jobs(source, jobs, tl, &mut writer, quiet).map_err(|e| match e {
        Error::Layout { tensor, source, .. } => Error::Layout {
            path: output.to_path_buf(),
            tensor,
            source,
        },
        other => other,
    })?;
    let file = writer.finish().map_err(gguf_err)?;
    file.commit().map_err(|e| Error::io(output, e))?;
    let bytes = std::fs::metadata(output).map(|m| m.len()).unwrap_or(0);
    Ok((bytes, outcome))
}

/// `bitnet-convert synth`: writes a synthetic checkpoint (see [`crate::hf::synth`]).
pub fn synth(out_dir: &Path, options: &crate::hf::synth::SynthOptions) -> Result<(), Error> {
    crate::hf::synth::synthesize(out_dir, options).map_err(Error::Hf)
}
