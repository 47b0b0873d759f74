//! Byte-level BPE tokenizer (being built).
