//! `bitnet-inspect`: reports on GGUF files. (Being built: issue 2.)
