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
