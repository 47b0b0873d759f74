//! Hugging Face checkpoints: `config.json`, safetensors (packed and bf16 master), tokenizers.
//!
//! Invariant: untrusted files in, validated views out. [`Checkpoint::open`] memory-maps the
//! safetensors files, checks the tensor set against the config and tells packed from master;
//! values are checked as tensors are decoded. Errors ([`Error`]) name the file, the tensor or
//! field, and what was expected.
//!
//! * [`config`]: `config.json` (both transformers spellings) and `quantization_config`.
//! * [`checkpoint`]: the memory-mapped tensor view and packed/master detection.
//! * [`names`]: the HF ↔ GGUF tensor-name table and the ternary projections.
//! * [`master`]: bf16 master → ternary (transformers' absmean; our canonical scale rule).
//! * [`vocab`]: `tokenizer.json` ↔ GGUF tokenizer metadata.
//! * [`writer`]: a streaming, atomic safetensors writer.
//! * [`synth`]: random but realistic checkpoints (`bitnet-convert synth`).

pub mod checkpoint;
pub mod config;
mod error;
pub mod master;
pub mod names;
pub mod synth;
pub mod vocab;
pub mod writer;

pub use checkpoint::{Checkpoint, CheckpointFormat, HfTensor};
pub use config::{HfConfig, QuantizationConfig, QuantizationMode};
pub use error::Error;
pub use names::{LayerNorm, Projection, TensorRole};
pub use safetensors::Dtype;
