use std::path::PathBuf;

/// Why a Hugging Face checkpoint could not be read or written.
///
/// Every variant names the file and, where one is involved, the tensor or config field.
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
    /// A JSON file is not valid JSON.
    #[error("{}: invalid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The parser error.
        #[source]
        source: serde_json::Error,
    },
    /// A safetensors file is malformed.
    #[error("{}: invalid safetensors file: {source}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// The parser error.
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A required config field is missing.
    #[error("{}: missing field `{field}`", path.display())]
    MissingField {
        /// The JSON file.
        path: PathBuf,
        /// Dotted field name.
        field: String,
    },
    /// A config field has the wrong type or an unsupported value.
    #[error("{}: field `{field}`: expected {expected}, found {found}", path.display())]
    BadField {
        /// The JSON file.
        path: PathBuf,
        /// Dotted field name.
        field: String,
        /// What is accepted.
        expected: String,
        /// What was found.
        found: String,
    },
    /// A tensor the model needs is not in the checkpoint.
    #[error("{}: missing tensor `{tensor}`", path.display())]
    MissingTensor {
        /// The checkpoint directory (or index file).
        path: PathBuf,
        /// Tensor name.
        tensor: String,
    },
    /// A tensor the model does not have is in the checkpoint.
    #[error("{}: unexpected tensor `{tensor}`", path.display())]
    UnexpectedTensor {
        /// The file holding it.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
    },
    /// The same tensor name appears in two shards (or twice in the index).
    #[error("tensor `{tensor}` appears in both {} and {}", first.display(), second.display())]
    DuplicateTensor {
        /// Tensor name.
        tensor: String,
        /// First file.
        first: PathBuf,
        /// Second file.
        second: PathBuf,
    },
    /// A tensor has a dtype other than the one expected.
    #[error("{}: tensor `{tensor}`: expected dtype {expected}, found {found}", path.display())]
    WrongDtype {
        /// The file holding it.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Accepted dtype(s).
        expected: String,
        /// Dtype found.
        found: String,
    },
    /// A tensor has a shape other than the one the config implies.
    #[error("{}: tensor `{tensor}`: expected shape {expected:?}, found {found:?}", path.display())]
    WrongShape {
        /// The file holding it.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Shape implied by config.json.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// Config and tensors (or two config fields) disagree.
    #[error("{}: `{what}`: {detail}", path.display())]
    Contradiction {
        /// The file where the contradiction shows.
        path: PathBuf,
        /// The tensor or field involved.
        what: String,
        /// What disagrees with what.
        detail: String,
    },
    /// A tensor's data is not valid for its layout (non-ternary codes, bad scale, ...).
    #[error("{}: tensor `{tensor}`: {source}", path.display())]
    Layout {
        /// The file holding it.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// The layout error.
        #[source]
        source: crate::layout::Error,
    },
    /// A master tensor holds NaN or infinite values.
    #[error("{}: tensor `{tensor}`: element {index} is {value} (not finite)", path.display())]
    NonFinite {
        /// The file holding it.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Flat index of the first bad element.
        index: usize,
        /// The value.
        value: f32,
    },
    /// Something in the checkpoint is valid but not supported.
    #[error("{}: unsupported: {what}", path.display())]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        what: String,
    },
    /// The tokenizer files are inconsistent.
    #[error("{}: tokenizer: {what}", path.display())]
    Tokenizer {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// The output directory of `synth` (or of a writer) already exists.
    #[error("{}: already exists; refusing to overwrite", path.display())]
    OutputExists {
        /// The target.
        path: PathBuf,
    },
    /// A streaming writer wrote a different number of bytes than it announced.
    #[error("{}: tensor `{tensor}`: announced {expected} bytes, wrote {found}", path.display())]
    WriterLength {
        /// The file being written.
        path: PathBuf,
        /// Tensor name.
        tensor: String,
        /// Announced length.
        expected: u64,
        /// Bytes written.
        found: u64,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
