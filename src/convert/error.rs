//! The one error type of the conversion layer: every variant names the file and, where one is
//! involved, the tensor, the key or what was expected against what was found.

use std::path::PathBuf;

/// Why a conversion or a verification could not be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A Hugging Face checkpoint is invalid (config, tensors, tokenizer).
    #[error(transparent)]
    Hf(#[from] crate::hf::Error),
    /// A GGUF file is invalid.
    #[error("{}: {source}", path.display())]
    Gguf {
        /// The file.
        path: PathBuf,
        /// The container error.
        #[source]
        source: crate::gguf::Error,
    },
    /// A tensor cannot be decoded from, or encoded to, a layout.
    #[error("{}: tensor `{tensor}`: {source}", path.display())]
    Layout {
        /// The file read or written.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The codec error.
        #[source]
        source: crate::layout::Error,
    },
    /// The output path names one of the inputs.
    #[error("{}: the output is the input file; choose another -o", path.display())]
    OutputIsInput {
        /// The path.
        path: PathBuf,
    },
    /// The output already exists (directories are never merged into).
    #[error("{}: already exists", path.display())]
    OutputExists {
        /// The path.
        path: PathBuf,
    },
    /// `tokenizer.json` is missing and `--no-tokenizer` was not given.
    #[error("{}: no tokenizer.json; pass --no-tokenizer to convert anyway (the output then has no tokenizer.ggml.* keys, so no runtime can encode or decode text with it)", path.display())]
    MissingTokenizer {
        /// The checkpoint directory.
        path: PathBuf,
    },
    /// The GGUF file is not a BitNet b1.58 model.
    #[error("{}: architecture `{found}` is not supported (expected bitnet-b1.58, bitnet-25 or bitnet)", path.display())]
    UnknownArchitecture {
        /// The file.
        path: PathBuf,
        /// `general.architecture`.
        found: String,
    },
    /// A required metadata key is missing or has the wrong type.
    #[error("{}: metadata `{key}`: expected {expected}, found {found}", path.display())]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The key.
        key: String,
        /// What is needed.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A tensor the model needs is not in the file.
    #[error("{}: missing tensor `{tensor}`", path.display())]
    MissingTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A tensor that is not part of a BitNet b1.58 model.
    #[error("{}: unexpected tensor `{tensor}`", path.display())]
    UnexpectedTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
    },
    /// A tensor has a type or shape this conversion cannot handle.
    #[error("{}: tensor `{tensor}`: expected {expected}, found {found}", path.display())]
    BadTensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// What is accepted.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A `kernel_config.ini` is invalid or lacks a shape.
    #[error("{}: {source}", path.display())]
    KernelConfig {
        /// The ini file (or the GGUF file that recorded it).
        path: PathBuf,
        /// The parse or lookup error.
        #[source]
        source: crate::layout::Error,
    },
    /// An option that does not apply to the inputs.
    #[error("{what}")]
    Usage {
        /// What is wrong.
        what: String,
    },
    /// `--verify` found differences between the output and the input.
    #[error("verification failed: {differences} of {compared} tensors differ")]
    VerifyFailed {
        /// Tensors that differ (or are missing on one side).
        differences: usize,
        /// Tensors compared.
        compared: usize,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn layout(
        path: impl Into<PathBuf>,
        tensor: impl Into<String>,
        source: crate::layout::Error,
    ) -> Self {
        Error::Layout {
            path: path.into(),
            tensor: tensor.into(),
            source,
        }
    }
}
