//! Hugging Face checkpoints: safetensors, config.json, tokenizer files. (Being built.)
