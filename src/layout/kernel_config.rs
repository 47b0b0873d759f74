//! bitnet.cpp's `kernel_config.ini` (`spec/kernel-configs.md` §1): one section per (M, K) with
//! keys `m`, `k`, `bm` (= BM, the tile height!), `bk` (= BK) and `bmm` (= bm, the SIMD
//! sub-tile height).
//!
//! Invariant: [`KernelConfig::parse`] accepts what Python's `configparser` accepts for these
//! files (any section names, `=` or `:`, `#`/`;` comments, case-insensitive keys) and
//! [`KernelConfig::to_ini_string`] writes exactly the text bitnet.cpp's codegen writes.

use super::{Error, Shape, Tl1Tiling, Tl2Tiling};

/// One `[Kernels_i]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KernelConfigEntry {
    /// `m`: M, output rows.
    pub rows: usize,
    /// `k`: K, input columns.
    pub cols: usize,
    /// `bm`: BM, rows per tile.
    pub tile_rows: usize,
    /// `bk`: BK.
    pub block_k: usize,
    /// `bmm`: bm, rows per SIMD pass.
    pub simd_rows: usize,
}

impl KernelConfigEntry {
    /// The shape this entry applies to.
    pub fn shape(&self) -> Shape {
        Shape::new(self.rows, self.cols)
    }

    /// The entry as a TL1 tiling.
    pub fn tl1(&self) -> Tl1Tiling {
        Tl1Tiling {
            tile_rows: self.tile_rows,
            block_k: self.block_k,
            simd_rows: self.simd_rows,
        }
    }

    /// The entry as a TL2 tiling; fails unless `bmm` is 32 (the only TL2 value).
    pub fn tl2(&self) -> Result<Tl2Tiling, Error> {
        if self.simd_rows != Tl2Tiling::SIMD_ROWS {
            return Err(Error::Tiling {
                layout: "TL2",
                what: format!(
                    "bmm (bm) = {} for {} but TL2 requires 32",
                    self.simd_rows,
                    self.shape()
                ),
            });
        }
        Ok(Tl2Tiling {
            tile_rows: self.tile_rows,
            block_k: self.block_k,
        })
    }
}

/// A parsed `kernel_config.ini`: entries in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KernelConfig {
    /// Sections in file order (the converter takes the first one matching a shape).
    pub entries: Vec<KernelConfigEntry>,
}

const KEYS: [&str; 5] = ["m", "k", "bm", "bk", "bmm"];

impl KernelConfig {
    /// Parses the text of a `kernel_config.ini`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut entries = Vec::new();
        // (section header line, values of m, k, bm, bk, bmm)
        let mut current: Option<(usize, [Option<usize>; 5])> = None;
        let finish = |section: Option<(usize, [Option<usize>; 5])>,
                      entries: &mut Vec<KernelConfigEntry>|
         -> Result<(), Error> {
            let Some((line, values)) = section else {
                return Ok(());
            };
            let mut got = [0usize; 5];
            for (i, value) in values.iter().enumerate() {
                got[i] = value.ok_or_else(|| Error::KernelConfig {
                    line,
                    what: format!("section has no key `{}`", KEYS[i]),
                })?;
            }
            entries.push(KernelConfigEntry {
                rows: got[0],
                cols: got[1],
                tile_rows: got[2],
                block_k: got[3],
                simd_rows: got[4],
            });
            Ok(())
        };
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                if !rest.ends_with(']') {
                    return Err(Error::KernelConfig {
                        line: line_no,
                        what: format!("unterminated section header `{line}`"),
                    });
                }
                finish(current.take(), &mut entries)?;
                current = Some((line_no, [None; 5]));
                continue;
            }
            let Some((_, values)) = current.as_mut() else {
                return Err(Error::KernelConfig {
                    line: line_no,
                    what: "key outside of any section".into(),
                });
            };
            let split = line.find(['=', ':']).ok_or_else(|| Error::KernelConfig {
                line: line_no,
                what: format!("expected `key = value`, found `{line}`"),
            })?;
            let key = line[..split].trim().to_ascii_lowercase();
            let value = line[split + 1..].trim();
            let Some(slot) = KEYS.iter().position(|k| *k == key) else {
                // configparser keeps unknown keys; the converter ignores them. So do we.
                continue;
            };
            if values[slot].is_some() {
                return Err(Error::KernelConfig {
                    line: line_no,
                    what: format!("duplicate key `{key}`"),
                });
            }
            let number = value.parse::<usize>().map_err(|_| Error::KernelConfig {
                line: line_no,
                what: format!("`{key}` must be a non-negative integer, found `{value}`"),
            })?;
            values[slot] = Some(number);
        }
        finish(current, &mut entries)?;
        Ok(KernelConfig { entries })
    }

    /// Writes the file as bitnet.cpp's codegen does: `[Kernels_<i>]` sections of
    /// `key = value` lines, separated by one blank line.
    pub fn to_ini_string(&self) -> String {
        self.entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                format!(
                    "[Kernels_{i}]\nm = {}\nk = {}\nbm = {}\nbk = {}\nbmm = {}\n",
                    e.rows, e.cols, e.tile_rows, e.block_k, e.simd_rows
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The first entry for `shape`, as the converter picks it.
    pub fn find(&self, shape: Shape) -> Option<&KernelConfigEntry> {
        self.entries
            .iter()
            .find(|e| e.rows == shape.rows && e.cols == shape.cols)
    }

    /// The TL1 tiling for `shape`; errors if the shape is missing (naming the shapes the file
    /// does know) or the tiling is illegal for it.
    pub fn tl1_tiling(&self, shape: Shape) -> Result<Tl1Tiling, Error> {
        let tiling = self.require(shape, "TL1")?.tl1();
        tiling.check(shape)?;
        Ok(tiling)
    }

    /// The TL2 tiling for `shape`; errors as [`KernelConfig::tl1_tiling`] does, and when
    /// `bmm` is not 32.
    pub fn tl2_tiling(&self, shape: Shape) -> Result<Tl2Tiling, Error> {
        let tiling = self.require(shape, "TL2")?.tl2()?;
        tiling.check(shape)?;
        Ok(tiling)
    }

    fn require(&self, shape: Shape, layout: &'static str) -> Result<&KernelConfigEntry, Error> {
        self.find(shape).ok_or_else(|| Error::Tiling {
            layout,
            what: format!(
                "kernel_config.ini has no section for {shape}; it lists {}",
                self.entries
                    .iter()
                    .map(|e| format!("({}, {})", e.rows, e.cols))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }

    /// Appends a TL1 entry.
    pub fn push_tl1(&mut self, shape: Shape, tiling: Tl1Tiling) {
        self.entries.push(KernelConfigEntry {
            rows: shape.rows,
            cols: shape.cols,
            tile_rows: tiling.tile_rows,
            block_k: tiling.block_k,
            simd_rows: tiling.simd_rows,
        });
    }

    /// Appends a TL2 entry (`bmm = 32`).
    pub fn push_tl2(&mut self, shape: Shape, tiling: Tl2Tiling) {
        self.entries.push(KernelConfigEntry {
            rows: shape.rows,
            cols: shape.cols,
            tile_rows: tiling.tile_rows,
            block_k: tiling.block_k,
            simd_rows: Tl2Tiling::SIMD_ROWS,
        });
    }
}

/// Where the tiling used for a file's TL1/TL2 tensors came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TilingOrigin {
    /// The file's own record (`bitnet.tl.kernel_config` metadata written by our converter).
    Recorded,
    /// A `kernel_config.ini` the user gave.
    UserConfig,
    /// The documented derivation rule ([`Tl1Tiling::derive`] / [`Tl2Tiling::derive`]).
    Derived,
}

impl std::fmt::Display for TilingOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TilingOrigin::Recorded => "the file's recorded kernel configuration",
            TilingOrigin::UserConfig => "the given kernel_config.ini",
            TilingOrigin::Derived => "derived by the documented rule (no recorded tiling)",
        })
    }
}

/// Picks the tiling of TL1/TL2 shapes from, in this order: the file's recorded configuration, a
/// user-given `kernel_config.ini`, the derivation rule. The first one available answers for
/// every shape: a configuration that lacks a shape is an error, never silently completed by
/// the rule (a wrong tiling decodes to wrong weights without any other sign).
#[derive(Debug, Clone, Default)]
pub struct TilingResolver {
    config: Option<(KernelConfig, TilingOrigin)>,
}

impl TilingResolver {
    /// A resolver over the file's recorded configuration (if any) and the user's (if given).
    pub fn new(recorded: Option<KernelConfig>, user: Option<KernelConfig>) -> Self {
        let config = recorded
            .map(|c| (c, TilingOrigin::Recorded))
            .or(user.map(|c| (c, TilingOrigin::UserConfig)));
        Self { config }
    }

    /// Where every answer of this resolver comes from.
    pub fn origin(&self) -> TilingOrigin {
        self.config
            .as_ref()
            .map_or(TilingOrigin::Derived, |(_, origin)| *origin)
    }

    /// The TL1 tiling for `shape`.
    pub fn tl1(&self, shape: Shape) -> Result<Tl1Tiling, Error> {
        match &self.config {
            Some((config, _)) => config.tl1_tiling(shape),
            None => Tl1Tiling::derive(shape).map(|(t, _)| t),
        }
    }

    /// The TL2 tiling for `shape`.
    pub fn tl2(&self, shape: Shape) -> Result<Tl2Tiling, Error> {
        match &self.config {
            Some((config, _)) => config.tl2_tiling(shape),
            None => Tl2Tiling::derive(shape).map(|(t, _)| t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "[Kernels_0]\nm = 256\nk = 256\nbm = 128\nbk = 64\nbmm = 64\n\n\
                          [Kernels_1]\nm = 128\nk = 256\nbm = 64\nbk = 128\nbmm = 64\n";

    #[test]
    fn round_trips_codegen_text() {
        let config = KernelConfig::parse(SAMPLE).unwrap();
        assert_eq!(config.entries.len(), 2);
        assert_eq!(
            config.tl1_tiling(Shape::new(128, 256)).unwrap(),
            Tl1Tiling {
                tile_rows: 64,
                block_k: 128,
                simd_rows: 64
            }
        );
        assert_eq!(config.to_ini_string(), SAMPLE);
    }

    #[test]
    fn configparser_syntax_variants_are_accepted() {
        let text =
            "; comment\n[any name]\nM: 32\nK=16\n# c\nBM = 32\nbk = 16\nbmm = 32\nextra = 1\n";
        let config = KernelConfig::parse(text).unwrap();
        assert_eq!(config.entries[0].shape(), Shape::new(32, 16));
    }

    #[test]
    fn errors_carry_line_numbers() {
        let err = KernelConfig::parse("[a]\nm = 1\nm = 2\n").unwrap_err();
        assert_eq!(
            err,
            Error::KernelConfig {
                line: 3,
                what: "duplicate key `m`".into()
            }
        );
        let err = KernelConfig::parse("[a]\nm = x\n").unwrap_err();
        assert!(matches!(err, Error::KernelConfig { line: 2, .. }));
        let err = KernelConfig::parse("[a]\nm = 1\n").unwrap_err();
        assert!(err.to_string().contains("no key `k`"), "{err}");
        let err = KernelConfig::parse(SAMPLE)
            .unwrap()
            .tl1_tiling(Shape::new(64, 64))
            .unwrap_err();
        assert!(err.to_string().contains("(256, 256), (128, 256)"), "{err}");
    }

    #[test]
    fn resolver_takes_the_first_configuration_wholesale() {
        let recorded = KernelConfig::parse(SAMPLE).unwrap();
        let user =
            KernelConfig::parse("[Kernels_0]\nm = 768\nk = 256\nbm = 256\nbk = 64\nbmm = 32\n")
                .unwrap();
        let r = TilingResolver::new(Some(recorded), Some(user.clone()));
        assert_eq!(r.origin(), TilingOrigin::Recorded);
        let t = r.tl1(Shape::new(256, 256)).unwrap();
        assert_eq!((t.tile_rows, t.block_k, t.simd_rows), (128, 64, 64));
        // The recorded configuration lacks 768 x 256: an error, not the user's or the rule's.
        assert!(matches!(
            r.tl1(Shape::new(768, 256)),
            Err(Error::Tiling { .. })
        ));
        let r = TilingResolver::new(None, Some(user));
        assert_eq!(r.origin(), TilingOrigin::UserConfig);
        assert_eq!(r.tl1(Shape::new(768, 256)).unwrap().tile_rows, 256);
        let r = TilingResolver::new(None, None);
        assert_eq!(r.origin(), TilingOrigin::Derived);
        assert_eq!(
            r.tl1(Shape::new(2560, 2560)).unwrap(),
            Tl1Tiling::derive(Shape::new(2560, 2560)).unwrap().0
        );
    }
}
