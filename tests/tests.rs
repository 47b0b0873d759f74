//! Integration tests, one target. Each `mod` is one area.

// Layout codecs against upstream vectors.
mod layout_i2s;

// GGUF container: upstream files, round trips.
mod gguf_read;

// GGUF container: the hostile corpus, one file per validation rule.
mod gguf_bad;

// GGUF container: truncation/corruption sweep (no panics).
mod gguf_mutation;

// bitnet-inspect end to end (snapshots).
mod inspect_cli;
