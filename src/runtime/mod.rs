//! CPU runtime: model, kernels, tokenizer, sampling. (Being built: issue 5.)
