//! Integration tests, one target. Each `mod` is one area.

// Layout codecs against upstream vectors.
mod layout_i2s;

// Matmul kernels: upstream kernel vectors, AVX2 == scalar.
mod kernels_avx2;
mod kernels_fixtures;
mod kernels_support;
