//! TL1/TL2 tiling (`spec/kernel-configs.md`): the tiling is a value, never a constant.
//!
//! Upstream names: BM = [`Tl1Tiling::tile_rows`], BK = `block_k`, bm = `simd_rows`. (In
//! bitnet.cpp's `kernel_config.ini` the key `bm` means BM and `bmm` means bm.)

/// TL1 tiling for one (M, K) shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tl1Tiling {
    /// BM: rows per tile (the unit of thread parallelism).
    pub tile_rows: usize,
    /// BK: K-block width over which the kernel keeps int16 partial sums.
    pub block_k: usize,
    /// bm: rows per SIMD pass, 32 or 64.
    pub simd_rows: usize,
}

/// TL2 tiling for one (M, K) shape. bm is always 32 for TL2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tl2Tiling {
    /// BM: rows per tile.
    pub tile_rows: usize,
    /// BK: K-block of the three-weight part; `three_k = floor(K / BK) * BK`.
    pub block_k: usize,
}
