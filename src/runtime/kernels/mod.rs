//! Matmul kernels per layout, scalar reference beside AVX2 (being built).
