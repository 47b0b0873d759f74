//! The GGUF container: untrusted bytes in, validated zero-copy views out; a streaming writer out.
//!
//! Knows nothing about ternary weights. Ground truth: `spec/gguf-container.md`.
//!
//! * [`types`]: the ggml type table (ids, block geometry, size rules, dialects).
//! * [`reader`]: [`GgufFile`] (parse + validate V1-V18, optional V19/V20 data checks).
//! * [`writer`]: [`GgufWriter`] with ordered [`Metadata`] and [`TensorDesc`]s.
//! * [`value`]: metadata values (borrowed [`Value`], owned [`MetaValue`]).
//! * [`dialect`]: which runtime family a file targets.

pub mod dialect;
mod error;
pub mod keys;
pub mod limits;
pub mod reader;
pub mod types;
pub mod value;
pub mod writer;

pub use dialect::{detect_dialect, Dialect, DialectReport, Verdict};
pub use error::Error;
pub use limits::Limits;
pub use reader::{
    map_file, read_file, Contiguity, GgufFile, MappedFile, MetaEntry, ReadOptions, ReadWarning,
    TensorInfo,
};
pub use types::{tensor_nbytes, GgmlType, SizeRule, TypeInfo, TYPES};
pub use value::{Array, GgufStr, MetaArray, MetaValue, Value, ValueType};
pub use writer::{rewrite, GgufWriter, Metadata, PlannedTensor, TensorDesc};
