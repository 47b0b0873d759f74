//! Conversions between checkpoints and GGUF layouts. (Being built: issue 4.)
