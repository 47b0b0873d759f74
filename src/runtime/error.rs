//! Errors of the runtime (model loading, forward pass, parity and benchmarks).

use std::path::PathBuf;

/// Why the runtime refused a file or a request. Variants name the tensor, key or file involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The GGUF container could not be read.
    #[error("{0}")]
    Gguf(#[from] crate::gguf::Error),
    /// A kernel refused a weight view or a call.
    #[error("{0}")]
    Kernel(#[from] crate::runtime::kernels::Error),
    /// The tokenizer metadata is unusable.
    #[error("tokenizer: {0}")]
    Tokenizer(#[from] crate::runtime::tokenizer::Error),
    /// A TL tiling could not be found or is illegal.
    #[error("{0}")]
    Layout(#[from] crate::layout::Error),
    /// `general.architecture` is not a graph this runtime implements.
    #[error("architecture {arch:?} is not supported: {reason}")]
    UnsupportedArchitecture {
        /// The architecture string of the file.
        arch: String,
        /// Why, and what is supported.
        reason: String,
    },
    /// A required metadata key is missing.
    #[error("metadata key {key} is missing ({why})")]
    MissingKey {
        /// The key.
        key: String,
        /// Why it is needed.
        why: &'static str,
    },
    /// A hyper-parameter has an impossible value.
    #[error("metadata key {key} = {value}: {rule}")]
    BadHyperParameter {
        /// The key.
        key: String,
        /// Its value, as text.
        value: String,
        /// The rule it breaks.
        rule: String,
    },
    /// A tensor the graph needs is missing.
    #[error("tensor {name} is missing")]
    MissingTensor {
        /// Tensor name.
        name: String,
    },
    /// A tensor has other dims than the hyper-parameters imply.
    #[error("tensor {name}: expected dims (ne0, ne1) = {expected:?}, found {found:?}")]
    TensorDims {
        /// Tensor name.
        name: String,
        /// Expected dims, ne0 first.
        expected: Vec<u64>,
        /// Dims in the file.
        found: Vec<u64>,
    },
    /// A tensor has a type this runtime cannot use in its role.
    #[error("tensor {name}: type {ggml_type} is not supported {role}")]
    UnsupportedType {
        /// Tensor name.
        name: String,
        /// GGML type name.
        ggml_type: &'static str,
        /// The role, e.g. "as a projection".
        role: &'static str,
    },
    /// A token id outside the vocabulary.
    #[error("token id {id} is outside the vocabulary of {vocab} tokens")]
    TokenOutOfRange {
        /// The id.
        id: u32,
        /// Vocabulary size.
        vocab: usize,
    },
    /// An item of a token id list is not a `u32`.
    #[error("token id {text:?}")]
    BadTokenId {
        /// The item as given.
        text: String,
        /// Why it does not parse.
        source: std::num::ParseIntError,
    },
    /// The KV cache cannot hold more positions.
    #[error("context full: {needed} positions needed, the context holds {capacity}")]
    ContextFull {
        /// Positions the request needs.
        needed: usize,
        /// Cache capacity.
        capacity: usize,
    },
    /// The model has no tokenizer metadata but the request needs text.
    #[error("the model has no usable tokenizer metadata: {0}")]
    NoTokenizer(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A reference file (inputs.json, logits, generations) is malformed.
    #[error("{path}: {message}")]
    Reference {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A request is invalid (empty prompt, zero context, ...).
    #[error("{0}")]
    Invalid(String),
}
