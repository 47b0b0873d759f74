//! Integration tests, one target. Each `mod` is one area.

// Layout codecs against upstream vectors.
mod layout_i2s;

// GGUF container: upstream files, round trips.
mod gguf_read;
