//! Integration tests, one target. Each `mod` is one area.

// Helpers for the layout tests (fixture hashing, generators).
mod layout_common;
// Every ref-tiny tensor through every layout and back to HF packed.
mod layout_blockq;
mod layout_cross;
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
// TL1 / TL2 against upstream vectors and the tiling rule.
mod layout_tl;
// ref-tiny: I2_S -> TQ1_0 / TQ2_0 / TL1 / TL2 against upstream-written files.
mod layout_ref_tiny;
// Property tests: every codec round-trips on random legal shapes.
mod layout_props;
// Hugging Face checkpoints, tokenizer metadata and synthetic models.
mod hf_checkpoint;
mod hf_synth;
mod hf_vocab;
// The LLaMA-3 tokenizer against tiktoken vectors and the ref-tiny reference inputs.
mod tokenizer;
// Matmul kernels: upstream kernel vectors, AVX2 == scalar.
mod kernels_avx2;
mod kernels_fixtures;
mod kernels_support;
// bitnet-convert: ref-tiny against upstream files, round trips, refusals, SIGKILL.
mod convert_cli;
mod convert_common;
mod convert_errors;
mod convert_kill;
mod convert_ref_tiny;
mod convert_roundtrip;
// bitnet-run: the runtime against transformers, ik_llama.cpp and itself.
mod run_cli;
mod run_common;
mod run_hidden;
mod run_parity;
// The screened lm_head: same tokens as the full head.
mod run_screen;
// Our own conversions of ref-tiny through bitnet-run.
mod run_own_conversions;
// Damaged models through load, tokenizer and generation (no panics).
mod run_mutation;
