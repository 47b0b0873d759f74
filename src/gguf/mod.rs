//! The GGUF container: reader, writer, type table. (Being built: issue 2.)
