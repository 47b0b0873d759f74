//! Integration tests, one target. Each `mod` is one area.

// Layout codecs against upstream vectors.
mod layout_i2s;

// The LLaMA-3 tokenizer against tiktoken vectors and the ref-tiny reference inputs.
mod tokenizer;
