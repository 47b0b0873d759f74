//! bitnet-gguf: a toolkit for BitNet b1.58 ternary language models.
//!
//! The crate is layered; each layer only depends on the ones above it:
//!
//! * [`gguf`]: the GGUF container (untrusted bytes in, validated zero-copy views out; a streaming
//!   writer). Knows nothing about ternary weights.
//! * [`layout`]: one canonical [`layout::TernaryTensor`] and one codec per on-disk layout
//!   (HF packed, I2_S, TL1, TL2, TQ1_0, TQ2_0, GPU W2A8, dense floats).
//! * [`hf`]: Hugging Face safetensors checkpoints (packed and bf16 master), configs, tokenizers.
//! * [`convert`], [`inspect`], [`runtime`]: the three tools built on the layers above.
//! * [`io`]: atomic file output shared by the tools.
#![deny(missing_docs)]

pub mod convert;
pub mod gguf;
pub mod hf;
pub mod inspect;
pub mod io;
pub mod layout;
pub mod runtime;
