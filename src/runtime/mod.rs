//! CPU runtime: model, kernels, tokenizer, sampling. (Being built: issue 5.)

pub mod kernels;
pub mod ops;
pub mod sampling;
pub mod tokenizer;
