//! CPU runtime: model loading, the forward pass, generation, parity checks, perplexity and
//! benchmarks, over the table-lookup and ternary kernels; prompts to token ids and results to
//! text for `bitnet-run`.

pub mod bench;
pub mod error;
pub mod forward;
pub mod generate;
pub mod head_screen;
pub mod kernels;
pub mod model;
pub mod ops;
pub mod parity;
pub mod perplexity;
pub mod prompt;
pub mod repack;
pub mod report;
pub mod sampling;
pub mod tokenizer;

pub use error::Error;
pub use forward::{KvPrecision, Logits, Session};
pub use head_screen::{HeadScreen, ScreenStats};
pub use model::{tokenizer_from_gguf, HyperParams, LoadOptions, Model, Projection};
pub use repack::{Repack, RepackParts};
