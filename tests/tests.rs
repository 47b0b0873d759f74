//! Integration tests, one target. Each `mod` is one area.

// Layout codecs against upstream vectors.
mod layout_i2s;

// Hugging Face checkpoints, tokenizer metadata and synthetic models.
mod hf_checkpoint;
mod hf_synth;
mod hf_vocab;
