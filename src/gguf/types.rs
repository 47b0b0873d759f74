//! The ggml type table: the single source of truth for type ids, names, block geometry, byte-size
//! rules and which runtime dialect defines each id (`spec/gguf-container.md` §8).
//!
//! Every lookup ([`GgmlType::from_id`], [`GgmlType::from_name`], [`GgmlType::info`],
//! [`tensor_nbytes`]) is derived from [`TYPES`]; there are no parallel matches on ids.

use serde::Serialize;
use std::fmt;

/// A ggml tensor type known to this crate. Names are spelled as upstream (`I2_S`, `TQ1_0`) so that
/// grep matches gguf-py.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum GgmlType {
    /// IEEE binary32.
    F32,
    /// IEEE binary16.
    F16,
    /// 32-value blocks: f16 scale + 16 bytes of nibbles.
    Q4_0,
    /// 32-value blocks: f16 scale + 32 int8.
    Q8_0,
    /// 256-value k-quant blocks.
    Q6_K,
    /// bfloat16.
    BF16,
    /// llama.cpp ternary, 1.6 bits per weight.
    TQ1_0,
    /// llama.cpp ternary, 2 bits per weight.
    TQ2_0,
    /// bitnet.cpp 2-bit ternary with a 32-byte scale tail.
    I2_S,
    /// bitnet.cpp in-memory activation type; invalid in a file.
    I8_S,
    /// bitnet.cpp table-lookup layout 1 (ARM).
    TL1,
    /// bitnet.cpp table-lookup layout 2 (x86).
    TL2,
    /// ik_llama.cpp 1.625-bit ternary with 2 bytes of row metadata.
    IQ1_BN,
    /// ik_llama.cpp 2-bit ternary with 4 bytes of row metadata.
    IQ2_BN,
}

/// How the byte size of a tensor of this type is computed from its dims.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SizeRule {
    /// `ne0 / block_elems * block_bytes` per row, times the product of the other dims.
    Blocks,
    /// I2_S and TL1: `ne0*ne1*ne2*ne3 / 4 + 32` (2-bit codes then a 32-byte scale tail).
    QuarterPlusTail,
    /// TL2: `t = (ne0-256)*ne1/3*5/8 + 256*ne1/2*4/8` (C integer arithmetic, left to right),
    /// rounded up to 32, plus 32.
    Tl2,
    /// ik_llama.cpp: `row_meta_bytes + ne0 / block_elems * block_bytes` per row.
    BlocksWithRowMeta {
        /// Bytes of per-row metadata preceding each row's blocks.
        row_meta_bytes: u64,
    },
}

/// Which runtimes define a type id (and agree on its meaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Dialects {
    /// bitnet.cpp's llama.cpp fork.
    pub bitnet_cpp: bool,
    /// ik_llama.cpp.
    pub ik_llama: bool,
    /// llama.cpp mainline.
    pub mainline: bool,
}

const ALL: Dialects = Dialects {
    bitnet_cpp: true,
    ik_llama: true,
    mainline: true,
};
const FORK_AND_MAINLINE: Dialects = Dialects {
    bitnet_cpp: true,
    ik_llama: false,
    mainline: true,
};
const FORK_AND_IK: Dialects = Dialects {
    bitnet_cpp: true,
    ik_llama: true,
    mainline: false,
};
const FORK_ONLY: Dialects = Dialects {
    bitnet_cpp: true,
    ik_llama: false,
    mainline: false,
};
const IK_ONLY: Dialects = Dialects {
    bitnet_cpp: false,
    ik_llama: true,
    mainline: false,
};

/// One row of the type table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TypeInfo {
    /// The type.
    pub ty: GgmlType,
    /// Numeric id in the file.
    pub id: u32,
    /// Upstream name.
    pub name: &'static str,
    /// Elements per block (`blck_size`).
    pub block_elems: u64,
    /// Bytes per block (`type_size`).
    pub block_bytes: u64,
    /// Byte-size rule.
    pub size_rule: SizeRule,
    /// Dialects in which this id means this type.
    pub defined_in: Dialects,
    /// False for types that must never appear in a file (I8_S).
    pub valid_in_file: bool,
    /// What the same id means in dialects that do not define this type, if anything.
    pub id_elsewhere: Option<&'static str>,
}

const fn row(
    ty: GgmlType,
    id: u32,
    name: &'static str,
    block_elems: u64,
    block_bytes: u64,
    size_rule: SizeRule,
    defined_in: Dialects,
) -> TypeInfo {
    TypeInfo {
        ty,
        id,
        name,
        block_elems,
        block_bytes,
        size_rule,
        defined_in,
        valid_in_file: true,
        id_elsewhere: None,
    }
}

/// The type table (`spec/gguf-container.md` §8).
pub const TYPES: &[TypeInfo] = &[
    row(GgmlType::F32, 0, "F32", 1, 4, SizeRule::Blocks, ALL),
    row(GgmlType::F16, 1, "F16", 1, 2, SizeRule::Blocks, ALL),
    row(GgmlType::Q4_0, 2, "Q4_0", 32, 18, SizeRule::Blocks, ALL),
    row(GgmlType::Q8_0, 8, "Q8_0", 32, 34, SizeRule::Blocks, ALL),
    row(GgmlType::Q6_K, 14, "Q6_K", 256, 210, SizeRule::Blocks, ALL),
    row(GgmlType::BF16, 30, "BF16", 1, 2, SizeRule::Blocks, ALL),
    TypeInfo {
        id_elsewhere: Some("unknown to ik_llama.cpp"),
        ..row(
            GgmlType::TQ1_0,
            34,
            "TQ1_0",
            256,
            54,
            SizeRule::Blocks,
            FORK_AND_MAINLINE,
        )
    },
    TypeInfo {
        id_elsewhere: Some("unknown to ik_llama.cpp"),
        ..row(
            GgmlType::TQ2_0,
            35,
            "TQ2_0",
            256,
            66,
            SizeRule::Blocks,
            FORK_AND_MAINLINE,
        )
    },
    TypeInfo {
        id_elsewhere: Some("unknown to llama.cpp mainline (was IQ4_NL_4_4, removed)"),
        ..row(
            GgmlType::I2_S,
            36,
            "I2_S",
            1,
            1,
            SizeRule::QuarterPlusTail,
            FORK_AND_IK,
        )
    },
    TypeInfo {
        valid_in_file: false,
        ..row(
            GgmlType::I8_S,
            37,
            "I8_S",
            1,
            1,
            SizeRule::Blocks,
            FORK_ONLY,
        )
    },
    TypeInfo {
        id_elsewhere: Some("unknown to ik_llama.cpp and llama.cpp mainline"),
        ..row(
            GgmlType::TL1,
            38,
            "TL1",
            1,
            1,
            SizeRule::QuarterPlusTail,
            FORK_ONLY,
        )
    },
    TypeInfo {
        id_elsewhere: Some("MXFP4 in ik_llama.cpp and llama.cpp mainline"),
        ..row(GgmlType::TL2, 39, "TL2", 1, 1, SizeRule::Tl2, FORK_ONLY)
    },
    TypeInfo {
        id_elsewhere: Some("unknown to bitnet.cpp and llama.cpp mainline"),
        ..row(
            GgmlType::IQ1_BN,
            134,
            "IQ1_BN",
            64,
            13,
            SizeRule::BlocksWithRowMeta { row_meta_bytes: 2 },
            IK_ONLY,
        )
    },
    TypeInfo {
        id_elsewhere: Some("unknown to bitnet.cpp and llama.cpp mainline"),
        ..row(
            GgmlType::IQ2_BN,
            135,
            "IQ2_BN",
            64,
            16,
            SizeRule::BlocksWithRowMeta { row_meta_bytes: 4 },
            IK_ONLY,
        )
    },
];

impl GgmlType {
    /// The table row of this type.
    pub fn info(self) -> &'static TypeInfo {
        // Every variant has exactly one row (pinned by a unit test); F32 is an unreachable
        // fallback that keeps this function total without a panic.
        TYPES.iter().find(|t| t.ty == self).unwrap_or(&TYPES[0])
    }

    /// Looks up a type by its numeric id.
    pub fn from_id(id: u32) -> Option<GgmlType> {
        TYPES.iter().find(|t| t.id == id).map(|t| t.ty)
    }

    /// Looks up a type by its upstream name (case-insensitive).
    pub fn from_name(name: &str) -> Option<GgmlType> {
        TYPES
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .map(|t| t.ty)
    }

    /// Numeric id.
    pub fn id(self) -> u32 {
        self.info().id
    }

    /// Upstream name.
    pub fn name(self) -> &'static str {
        self.info().name
    }

    /// All types in table order.
    pub fn all() -> impl Iterator<Item = GgmlType> {
        TYPES.iter().map(|t| t.ty)
    }
}

impl fmt::Display for GgmlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a shape cannot hold a type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SizeError {
    /// No dims, more than four, or a zero dim.
    BadDims,
    /// The element count or byte count overflows.
    Overflow,
    /// `ne0` is not a multiple of the block size.
    NotBlockMultiple {
        /// Elements per block.
        block_elems: u64,
    },
    /// A type-specific rule (e.g. I2_S needs 2-D tensors with `ne0 % 128 == 0`).
    Rule(&'static str),
    /// The type never appears in a file.
    NotAFileType,
}

impl fmt::Display for SizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizeError::BadDims => f.write_str("dims must be 1 to 4 values, each at least 1"),
            SizeError::Overflow => f.write_str("size overflows 64 bits"),
            SizeError::NotBlockMultiple { block_elems } => {
                write!(f, "ne0 must be a multiple of the block size {block_elems}")
            }
            SizeError::Rule(rule) => f.write_str(rule),
            SizeError::NotAFileType => f.write_str("type is memory-only and invalid in a file"),
        }
    }
}

/// Number of elements of a tensor with `dims`, checked for overflow of i64.
pub fn element_count(dims: &[u64]) -> Option<u64> {
    let mut n: u64 = 1;
    for &d in dims {
        n = n.checked_mul(d)?;
    }
    if n > i64::MAX as u64 {
        return None;
    }
    Some(n)
}

/// Byte size of a tensor of type `ty` with GGUF dims `dims` (ne0 first), as the loaders of the
/// dialect that defines the type compute it (`ggml_nbytes`, with the BitNet overrides).
pub fn tensor_nbytes(ty: GgmlType, dims: &[u64]) -> Result<u64, SizeError> {
    let info = ty.info();
    if !info.valid_in_file {
        return Err(SizeError::NotAFileType);
    }
    if dims.is_empty() || dims.len() > 4 || dims.contains(&0) {
        return Err(SizeError::BadDims);
    }
    let n = element_count(dims).ok_or(SizeError::Overflow)?;
    let ne0 = dims[0];
    let rows = n / ne0;
    match info.size_rule {
        SizeRule::Blocks => {
            if ne0 % info.block_elems != 0 {
                return Err(SizeError::NotBlockMultiple {
                    block_elems: info.block_elems,
                });
            }
            (ne0 / info.block_elems)
                .checked_mul(info.block_bytes)
                .and_then(|row| row.checked_mul(rows))
                .ok_or(SizeError::Overflow)
        }
        SizeRule::BlocksWithRowMeta { row_meta_bytes } => {
            if ne0 % info.block_elems != 0 {
                return Err(SizeError::NotBlockMultiple {
                    block_elems: info.block_elems,
                });
            }
            (ne0 / info.block_elems)
                .checked_mul(info.block_bytes)
                .and_then(|row| row.checked_add(row_meta_bytes))
                .and_then(|row| row.checked_mul(rows))
                .ok_or(SizeError::Overflow)
        }
        SizeRule::QuarterPlusTail => {
            if dims.len() != 2 {
                return Err(SizeError::Rule("I2_S/TL1 tensors must be 2-D"));
            }
            if ty == GgmlType::I2_S && ne0 % 128 != 0 {
                return Err(SizeError::Rule(
                    "I2_S rows must be whole 128-value blocks (ne0 % 128 == 0)",
                ));
            }
            if ty == GgmlType::TL1 && ne0 % 16 != 0 {
                return Err(SizeError::Rule("TL1 needs ne0 % 16 == 0"));
            }
            if n % 4 != 0 {
                return Err(SizeError::Rule("element count must be a multiple of 4"));
            }
            (n / 4).checked_add(32).ok_or(SizeError::Overflow)
        }
        SizeRule::Tl2 => {
            if dims.len() != 2 {
                return Err(SizeError::Rule("TL2 tensors must be 2-D"));
            }
            if ne0 < 256 {
                return Err(SizeError::Rule("TL2 needs ne0 >= 256"));
            }
            let ne1 = dims[1];
            let three = (ne0 - 256).checked_mul(ne1).ok_or(SizeError::Overflow)? / 3 * 5 / 8;
            let two = 256u64.checked_mul(ne1).ok_or(SizeError::Overflow)? / 2 * 4 / 8;
            let t = three.checked_add(two).ok_or(SizeError::Overflow)?;
            let t = t.checked_next_multiple_of(32).ok_or(SizeError::Overflow)?;
            t.checked_add(32).ok_or(SizeError::Overflow)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_has_one_row_and_ids_are_unique() {
        for t in TYPES {
            assert_eq!(TYPES.iter().filter(|u| u.ty == t.ty).count(), 1);
            assert_eq!(TYPES.iter().filter(|u| u.id == t.id).count(), 1);
            assert_eq!(t.ty.info(), t);
            assert_eq!(GgmlType::from_id(t.id), Some(t.ty));
            assert_eq!(GgmlType::from_name(t.name), Some(t.ty));
        }
    }

    /// Values of gguf-py's `GGML_QUANT_SIZES` and `GGMLQuantizationType` (gguf 0.19 / FORK
    /// `gguf-py/gguf/constants.py`) for the rows shared with upstream.
    #[test]
    fn shared_rows_match_gguf_py() {
        let gguf_py: &[(&str, u32, u64, u64)] = &[
            ("F32", 0, 1, 4),
            ("F16", 1, 1, 2),
            ("Q4_0", 2, 32, 2 + 16),
            ("Q8_0", 8, 32, 2 + 32),
            ("Q6_K", 14, 256, 2 + 256 / 2 + 256 / 4 + 256 / 16),
            ("BF16", 30, 1, 2),
            ("TQ1_0", 34, 256, 2 + 4 * 13),
            ("TQ2_0", 35, 256, 2 + 64),
        ];
        for &(name, id, elems, bytes) in gguf_py {
            let t = GgmlType::from_name(name).unwrap().info();
            assert_eq!(
                (t.id, t.block_elems, t.block_bytes),
                (id, elems, bytes),
                "{name}"
            );
        }
    }

    #[test]
    fn bitnet_sizes_match_spec_examples() {
        assert_eq!(tensor_nbytes(GgmlType::I2_S, &[2560, 640]), Ok(409_632));
        assert_eq!(tensor_nbytes(GgmlType::TL1, &[2560, 2560]), Ok(1_638_432));
        assert_eq!(tensor_nbytes(GgmlType::TL2, &[2560, 2560]), Ok(1_392_672));
        assert_eq!(tensor_nbytes(GgmlType::TL2, &[2560, 640]), Ok(348_192));
        assert_eq!(tensor_nbytes(GgmlType::TL2, &[2560, 6912]), Ok(3_760_160));
        assert_eq!(tensor_nbytes(GgmlType::TL2, &[6912, 2560]), Ok(3_713_760));
        assert_eq!(
            tensor_nbytes(GgmlType::F16, &[2560, 128256]),
            Ok(656_670_720)
        );
        assert_eq!(tensor_nbytes(GgmlType::IQ2_BN, &[256, 2]), Ok(2 * (4 + 64)));
        assert_eq!(
            tensor_nbytes(GgmlType::I8_S, &[4]),
            Err(SizeError::NotAFileType)
        );
        assert!(tensor_nbytes(GgmlType::I2_S, &[64, 4]).is_err());
        assert!(tensor_nbytes(GgmlType::Q8_0, &[33]).is_err());
    }
}
