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

use super::{Error, Shape};

impl std::fmt::Display for Tl1Tiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "BM {} BK {} bm {}",
            self.tile_rows, self.block_k, self.simd_rows
        )
    }
}

impl std::fmt::Display for Tl2Tiling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BM {} BK {} bm 32", self.tile_rows, self.block_k)
    }
}

/// Where a known tiling comes from (see [`TL1_KNOWN`] / [`TL2_KNOWN`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilingSource {
    /// bitnet.cpp's `setup_env.py` codegen arguments (`spec/kernel-configs.md` §2).
    Upstream,
    /// The BitNet-b1.58-2B-4T configuration proposed in `spec/kernel-configs.md` §4.
    Proposed2B4T,
    /// The tiling of this project's `ref-tiny` fixture model (its `kernel_config.ini`).
    RefTiny,
    /// Not in any table: derived by the fallback heuristic (see [`Tl1Tiling::derive`]).
    Heuristic,
}

const fn tl1(tile_rows: usize, block_k: usize, simd_rows: usize) -> Tl1Tiling {
    Tl1Tiling {
        tile_rows,
        block_k,
        simd_rows,
    }
}

const fn tl2(tile_rows: usize, block_k: usize) -> Tl2Tiling {
    Tl2Tiling { tile_rows, block_k }
}

/// Known TL1 tilings, `((M, K), tiling, source)`, consulted first by [`Tl1Tiling::derive`].
pub const TL1_KNOWN: &[((usize, usize), Tl1Tiling, TilingSource)] = &[
    // bitnet_b1_58-large
    ((1536, 4096), tl1(256, 128, 32), TilingSource::Upstream),
    ((1536, 1536), tl1(128, 64, 64), TilingSource::Upstream),
    ((4096, 1536), tl1(256, 128, 32), TilingSource::Upstream),
    // bitnet_b1_58-3B
    ((3200, 8640), tl1(160, 64, 32), TilingSource::Upstream),
    ((3200, 3200), tl1(320, 128, 64), TilingSource::Upstream),
    ((8640, 3200), tl1(320, 64, 32), TilingSource::Upstream),
    // Llama3-8B-1.58-100B-tokens (also Falcon3 / Falcon-E)
    ((14336, 4096), tl1(256, 128, 32), TilingSource::Upstream),
    ((4096, 14336), tl1(128, 64, 64), TilingSource::Upstream),
    ((1024, 4096), tl1(256, 128, 32), TilingSource::Upstream),
    ((4096, 4096), tl1(128, 64, 64), TilingSource::Upstream),
    // BitNet-b1.58-2B-4T (no upstream configuration exists)
    ((2560, 2560), tl1(320, 128, 64), TilingSource::Proposed2B4T),
    ((640, 2560), tl1(128, 64, 64), TilingSource::Proposed2B4T),
    ((6912, 2560), tl1(256, 64, 32), TilingSource::Proposed2B4T),
    ((2560, 6912), tl1(160, 64, 32), TilingSource::Proposed2B4T),
    // ref-tiny fixture model
    ((256, 256), tl1(128, 64, 64), TilingSource::RefTiny),
    ((128, 256), tl1(64, 128, 64), TilingSource::RefTiny),
    ((768, 256), tl1(256, 64, 32), TilingSource::RefTiny),
    ((256, 768), tl1(128, 128, 32), TilingSource::RefTiny),
];

/// Known TL2 tilings, `((M, K), tiling, source)`, consulted first by [`Tl2Tiling::derive`].
pub const TL2_KNOWN: &[((usize, usize), Tl2Tiling, TilingSource)] = &[
    ((1536, 4096), tl2(256, 96), TilingSource::Upstream),
    ((1536, 1536), tl2(128, 192), TilingSource::Upstream),
    ((4096, 1536), tl2(256, 96), TilingSource::Upstream),
    ((3200, 8640), tl2(160, 96), TilingSource::Upstream),
    ((3200, 3200), tl2(320, 96), TilingSource::Upstream),
    ((8640, 3200), tl2(320, 96), TilingSource::Upstream),
    ((14336, 4096), tl2(256, 96), TilingSource::Upstream),
    ((4096, 14336), tl2(128, 96), TilingSource::Upstream),
    ((1024, 4096), tl2(256, 96), TilingSource::Upstream),
    ((4096, 4096), tl2(128, 96), TilingSource::Upstream),
    ((2560, 2560), tl2(320, 96), TilingSource::Proposed2B4T),
    ((640, 2560), tl2(128, 96), TilingSource::Proposed2B4T),
    ((6912, 2560), tl2(256, 96), TilingSource::Proposed2B4T),
    ((2560, 6912), tl2(160, 96), TilingSource::Proposed2B4T),
    ((256, 256), tl2(128, 96), TilingSource::RefTiny),
    ((128, 256), tl2(64, 96), TilingSource::RefTiny),
    ((768, 256), tl2(256, 96), TilingSource::RefTiny),
    ((256, 768), tl2(128, 96), TilingSource::RefTiny),
];

/// Largest tile height the heuristic picks (upstream never goes above 320; 256 keeps tiles
/// small enough to give several per thread).
const HEURISTIC_MAX_TILE_ROWS: usize = 256;
/// Longest list of legal values quoted in an error message.
const LEGAL_VALUES_SHOWN: usize = 16;

/// Heuristic BM: the largest multiple of `step` dividing `m`, at most 256, that still leaves
/// at least `min(4, m / step)` tiles (tiles are the unit of thread parallelism).
fn heuristic_tile_rows(m: usize, step: usize) -> Option<usize> {
    let wanted_tiles = (m / step).min(4);
    (1..=HEURISTIC_MAX_TILE_ROWS / step)
        .rev()
        .map(|i| i * step)
        .find(|&bm| m % bm == 0 && m / bm >= wanted_tiles)
}

/// Values `v = step, 2*step, ... <= limit` with `pred(v)`, formatted for an error message.
fn legal_values(step: usize, limit: usize, pred: impl Fn(usize) -> bool) -> String {
    let values: Vec<String> = (1..=limit / step.max(1))
        .map(|i| i * step)
        .filter(|&v| pred(v))
        .take(LEGAL_VALUES_SHOWN)
        .map(|v| v.to_string())
        .collect();
    if values.is_empty() {
        "none".into()
    } else {
        values.join(", ")
    }
}

impl Tl1Tiling {
    /// by = 256 / bm: K elements per 64-byte compute block (8 for bm = 32, 4 for bm = 64).
    pub fn compute_block_cols(&self) -> usize {
        256 / self.simd_rows.max(1)
    }

    /// Checks the tiling against `shape` (`spec/tl1.md` §4). The error names the failing
    /// constraint and lists legal values.
    pub fn check(&self, shape: Shape) -> Result<(), Error> {
        let (m, k) = (shape.rows, shape.cols);
        let fail = |what: String| {
            Err(Error::Tiling {
                layout: "TL1",
                what,
            })
        };
        let Tl1Tiling {
            tile_rows: bm_tile,
            block_k: bk,
            simd_rows: bm,
        } = *self;
        if bm != 32 && bm != 64 {
            return fail(format!("bm (simd_rows) = {bm} must be 32 or 64"));
        }
        if bm_tile == 0 || m % bm_tile != 0 || bm_tile % bm != 0 {
            return fail(format!(
                "BM (tile_rows) = {bm_tile} must divide M = {m} and be a multiple of bm = {bm}; \
                 legal BM: {}",
                legal_values(bm, m, |v| m % v == 0)
            ));
        }
        let by = self.compute_block_cols();
        if bk == 0 || k % bk != 0 || bk % by != 0 || bk > 256 {
            return fail(format!(
                "BK (block_k) = {bk} must divide K = {k}, be a multiple of by = 256/bm = {by} \
                 and be at most 256 (int16 partial sums); legal BK: {}",
                legal_values(by, 256.min(k), |v| k % v == 0)
            ));
        }
        Ok(())
    }

    /// The tiling for `shape` from the known-shape table, if listed there.
    pub fn known(shape: Shape) -> Option<(Tl1Tiling, TilingSource)> {
        TL1_KNOWN
            .iter()
            .find(|((m, k), _, _)| (*m, *k) == (shape.rows, shape.cols))
            .map(|(_, tiling, source)| (*tiling, *source))
    }

    /// Derives the tiling for `shape`. The rule:
    ///
    /// 1. If (M, K) is in [`TL1_KNOWN`] (upstream's `setup_env.py` presets, the 2B-4T proposal
    ///    of `spec/kernel-configs.md` §4, the ref-tiny fixture), use that entry.
    /// 2. Otherwise bm = 32; BK = the largest of 128, 64, 32, 16 dividing K; BM = the largest
    ///    multiple of 32 dividing M, at most 256, that leaves at least min(4, M/32) tiles.
    ///
    /// Fails (naming the rule) when M is not a multiple of 32 or K not a multiple of 16, the
    /// shapes for which no legal TL1 tiling exists.
    pub fn derive(shape: Shape) -> Result<(Tl1Tiling, TilingSource), Error> {
        if let Some(found) = Self::known(shape) {
            return Ok(found);
        }
        super::check_nonempty("TL1", shape)?;
        let illegal = |rule: String| Error::IllegalShape {
            layout: "TL1",
            shape,
            rule,
        };
        if shape.rows % 32 != 0 {
            return Err(illegal(format!(
                "M = {} must be a multiple of 32 (bm is 32 or 64 and BM a multiple of bm)",
                shape.rows
            )));
        }
        if shape.cols % 16 != 0 {
            return Err(illegal(format!(
                "K = {} must be a multiple of 16 (the LUT is built 16 activations at a time)",
                shape.cols
            )));
        }
        let block_k = [128, 64, 32, 16]
            .into_iter()
            .find(|bk| shape.cols % bk == 0)
            .unwrap_or(16);
        let tile_rows = heuristic_tile_rows(shape.rows, 32).unwrap_or(32);
        let tiling = tl1(tile_rows, block_k, 32);
        tiling.check(shape)?;
        Ok((tiling, TilingSource::Heuristic))
    }
}

/// Payload size L(M, K) of a TL2 tensor as bitnet.cpp's Python converter computes it
/// (`(K-256)*M // 3 * 5 // 8 + 256*M // 2 * 4 // 8`, floor division), and the same
/// expression with C's truncating division as the loader evaluates it.
fn tl2_payload_formulas(shape: Shape) -> Option<(i128, i128)> {
    let m = i128::try_from(shape.rows).ok()?;
    let k = i128::try_from(shape.cols).ok()?;
    let head = (k - 256).checked_mul(m)?;
    let tail = 256 * m / 2 * 4 / 8;
    let python = head.div_euclid(3) * 5;
    let python = python.div_euclid(8) + tail;
    let c = head / 3 * 5 / 8 + tail;
    Some((python, c))
}

impl Tl2Tiling {
    /// bm: rows per SIMD pass, always 32 for TL2.
    pub const SIMD_ROWS: usize = 32;

    /// Columns in the three-weight part: `floor(K / BK) * BK`.
    pub fn three_k(&self, k: usize) -> usize {
        k.checked_div(self.block_k)
            .map_or(0, |blocks| blocks * self.block_k)
    }

    /// Columns in the two-weight remainder: `K - three_k`.
    pub fn two_k(&self, k: usize) -> usize {
        k - self.three_k(k)
    }

    /// The payload length L(M, K) (sections A-D, before padding to 32) for `shape`, checking
    /// that it is non-negative and that Python's floor and C's truncation agree after rounding
    /// up to 32 (otherwise the loader would look for the scale elsewhere).
    pub fn payload_len(shape: Shape) -> Result<usize, Error> {
        let illegal = |rule: String| Error::IllegalShape {
            layout: "TL2",
            shape,
            rule,
        };
        let (python, c) =
            tl2_payload_formulas(shape).ok_or_else(|| illegal("element count overflows".into()))?;
        let round32 = |v: i128| (v + 31).div_euclid(32) * 32;
        if python < 0 || round32(python) != round32(c) {
            return Err(illegal(format!(
                "the size formula L(M, K) gives {python} bytes in the converter and {c} in the \
                 loader; legal shapes have K >= 256 (or small K where both agree)"
            )));
        }
        usize::try_from(python).map_err(|_| illegal("element count overflows".into()))
    }

    /// Checks the tiling against `shape` (`spec/tl2.md` §4). The error names the failing
    /// constraint and lists legal values.
    pub fn check(&self, shape: Shape) -> Result<(), Error> {
        let (m, k) = (shape.rows, shape.cols);
        let fail = |what: String| {
            Err(Error::Tiling {
                layout: "TL2",
                what,
            })
        };
        let Tl2Tiling {
            tile_rows: bm_tile,
            block_k: bk,
        } = *self;
        if bm_tile == 0 || m % bm_tile != 0 || bm_tile % 32 != 0 {
            return fail(format!(
                "BM (tile_rows) = {bm_tile} must divide M = {m} and be a multiple of 32; \
                 legal BM: {}",
                legal_values(32, m, |v| m % v == 0)
            ));
        }
        let bk_ok = |bk: usize| bk > 0 && bk % 24 == 0 && bk <= 240 && (k % bk) % 32 == 0;
        if !bk_ok(bk) {
            return fail(format!(
                "BK (block_k) = {bk} must be a multiple of 24 (sign blocks cover 8 triplets), at \
                 most 240 (int16 partial sums), and leave a remainder two_k = K mod BK that is a \
                 multiple of 32 (K = {k}); legal BK: {}",
                legal_values(24, 240, bk_ok)
            ));
        }
        let payload = Self::payload_len(shape)?;
        let data = self.data_len(shape);
        if data > payload {
            return fail(format!(
                "two_k = {} leaves no room: data needs {data} bytes but L(M, K) = {payload}; \
                 two_k must be at most 256",
                self.two_k(k)
            ));
        }
        Ok(())
    }

    /// Bytes of sections A + B + C (without the zero padding of section D).
    pub fn data_len(&self, shape: Shape) -> usize {
        let three_k = self.three_k(shape.cols);
        let two_k = self.two_k(shape.cols);
        shape.rows * three_k / 6 + shape.rows * three_k / 24 + shape.rows * two_k / 4
    }

    /// The tiling for `shape` from the known-shape table, if listed there.
    pub fn known(shape: Shape) -> Option<(Tl2Tiling, TilingSource)> {
        TL2_KNOWN
            .iter()
            .find(|((m, k), _, _)| (*m, *k) == (shape.rows, shape.cols))
            .map(|(_, tiling, source)| (*tiling, *source))
    }

    /// Derives the tiling for `shape`. The rule:
    ///
    /// 1. If (M, K) is in [`TL2_KNOWN`] (upstream presets, 2B-4T proposal, ref-tiny), use it.
    /// 2. Otherwise BM as for TL1 (the largest multiple of 32 dividing M, at most 256, leaving
    ///    at least min(4, M/32) tiles) and BK = the first of 96, 192, 240, 144, 48, 72, 120,
    ///    168, 216, 24 that passes [`Tl2Tiling::check`] (upstream uses 96, once 192).
    pub fn derive(shape: Shape) -> Result<(Tl2Tiling, TilingSource), Error> {
        if let Some(found) = Self::known(shape) {
            return Ok(found);
        }
        super::check_nonempty("TL2", shape)?;
        if shape.rows % 32 != 0 {
            return Err(Error::IllegalShape {
                layout: "TL2",
                shape,
                rule: format!(
                    "M = {} must be a multiple of 32 (bm = 32 and BM a multiple of it)",
                    shape.rows
                ),
            });
        }
        let tile_rows = heuristic_tile_rows(shape.rows, 32).unwrap_or(32);
        let mut last_error = None;
        for block_k in [96, 192, 240, 144, 48, 72, 120, 168, 216, 24] {
            let tiling = tl2(tile_rows, block_k);
            match tiling.check(shape) {
                Ok(()) => return Ok((tiling, TilingSource::Heuristic)),
                Err(e) => last_error = Some(e),
            }
        }
        Err(Error::IllegalShape {
            layout: "TL2",
            shape,
            rule: format!(
                "no BK (multiple of 24, at most 240) leaves a two_k remainder that is a multiple \
                 of 32 and fits the size formula ({})",
                last_error.map(|e| e.to_string()).unwrap_or_default()
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_tiling_is_legal_and_derived() {
        for &((m, k), tiling, _) in TL1_KNOWN {
            let shape = Shape::new(m, k);
            tiling.check(shape).unwrap();
            assert_eq!(Tl1Tiling::derive(shape).unwrap().0, tiling);
        }
        for &((m, k), tiling, _) in TL2_KNOWN {
            let shape = Shape::new(m, k);
            tiling.check(shape).unwrap();
            assert_eq!(Tl2Tiling::derive(shape).unwrap().0, tiling);
        }
    }

    #[test]
    fn derived_tilings_are_legal_for_many_shapes() {
        for m in (32..=2048).step_by(32) {
            for k in (16..=1024).step_by(16) {
                let shape = Shape::new(m, k);
                let (t1, _) = Tl1Tiling::derive(shape).unwrap();
                t1.check(shape).unwrap();
                if let Ok((t2, _)) = Tl2Tiling::derive(shape) {
                    t2.check(shape).unwrap();
                }
                if k >= 256 && k % 32 == 0 {
                    // K a multiple of 32 and >= 256 always has a TL2 tiling (BK = 96 leaves
                    // K mod 96 in {0, 32, 64}).
                    assert!(Tl2Tiling::derive(shape).is_ok(), "{shape}");
                }
            }
        }
    }

    #[test]
    fn errors_name_the_rule_and_legal_values() {
        let err = tl1(256, 64, 64).check(Shape::new(640, 2560)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("must divide M = 640"), "{text}");
        assert!(text.contains("legal BM: 64, 128, 320, 640"), "{text}");
        let err = tl2(128, 36).check(Shape::new(640, 2560)).unwrap_err();
        assert!(err.to_string().contains("legal BK: 96, 192, 240"), "{err}");
        assert!(Tl1Tiling::derive(Shape::new(100, 256)).is_err());
    }

    #[test]
    fn payload_formula_matches_spec_table() {
        // spec/tl2.md §5 sizes.
        for (m, k, l) in [
            (2560, 2560, 1_392_640),
            (640, 2560, 348_160),
            (6912, 2560, 3_760_128),
            (2560, 6912, 3_713_706),
            (32, 80, 874),
        ] {
            assert_eq!(Tl2Tiling::payload_len(Shape::new(m, k)).unwrap(), l);
        }
    }
}
