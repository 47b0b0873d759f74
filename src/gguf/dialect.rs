//! Which ggml dialect a file was written for, from the evidence in the file.
//!
//! Type ids 36-39 and 134/135 mean different things (or nothing) in bitnet.cpp's fork,
//! ik_llama.cpp and llama.cpp mainline (`spec/gguf-container.md` §8, §12). The detector collects
//! evidence (tensor type ids present and whose size rule fits, architecture, `general.file_type`),
//! intersects the dialects each strong piece allows, and reports a unique answer, an ambiguity, or
//! a conflict. It never picks one silently.

use super::reader::GgufFile;
use super::types::{Dialects, GgmlType};
use super::{keys, Value};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt;

/// A ggml runtime family with its own type-id table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Dialect {
    /// bitnet.cpp's llama.cpp fork.
    #[serde(rename = "bitnet.cpp")]
    BitnetCpp,
    /// ik_llama.cpp.
    #[serde(rename = "ik_llama.cpp")]
    IkLlama,
    /// llama.cpp mainline.
    #[serde(rename = "llama.cpp")]
    Mainline,
}

impl Dialect {
    /// All three, in display order.
    pub const ALL: [Dialect; 3] = [Dialect::BitnetCpp, Dialect::IkLlama, Dialect::Mainline];

    /// Display name.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::BitnetCpp => "bitnet.cpp",
            Dialect::IkLlama => "ik_llama.cpp",
            Dialect::Mainline => "llama.cpp",
        }
    }

    /// Whether `d` includes this dialect.
    pub fn in_set(self, d: Dialects) -> bool {
        match self {
            Dialect::BitnetCpp => d.bitnet_cpp,
            Dialect::IkLlama => d.ik_llama,
            Dialect::Mainline => d.mainline,
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One observation and the dialects consistent with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// What was observed.
    pub observation: String,
    /// Dialects consistent with it.
    pub allows: Vec<Dialect>,
    /// Strong evidence narrows the verdict; weak evidence (`general.file_type`, which loaders
    /// treat as informational) is only reported.
    pub strong: bool,
}

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "dialects", rename_all = "snake_case")]
pub enum Verdict {
    /// Exactly one dialect fits.
    Unique(Dialect),
    /// Several fit; the file alone cannot tell.
    Ambiguous(Vec<Dialect>),
    /// The evidence contradicts itself (no dialect fits everything).
    Conflicting,
}

/// Dialect detection result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DialectReport {
    /// The verdict.
    pub verdict: Verdict,
    /// Everything considered.
    pub evidence: Vec<Evidence>,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Unique(d) => write!(f, "{d}"),
            Verdict::Ambiguous(ds) => {
                let names: Vec<_> = ds.iter().map(|d| d.name()).collect();
                write!(f, "ambiguous: any of {}", names.join(", "))
            }
            Verdict::Conflicting => f.write_str("conflicting evidence (no dialect fits)"),
        }
    }
}

fn set(bitnet: bool, ik: bool, mainline: bool) -> Vec<Dialect> {
    let d = Dialects {
        bitnet_cpp: bitnet,
        ik_llama: ik,
        mainline,
    };
    Dialect::ALL.into_iter().filter(|x| x.in_set(d)).collect()
}

/// Collects the evidence in `file` and decides.
pub fn detect_dialect(file: &GgufFile<'_>) -> DialectReport {
    let mut evidence = Vec::new();
    let types: BTreeSet<GgmlType> = file.tensors().iter().map(|t| t.ggml_type).collect();
    for ty in types {
        let info = ty.info();
        let all =
            info.defined_in.bitnet_cpp && info.defined_in.ik_llama && info.defined_in.mainline;
        if all {
            continue;
        }
        let mut observation = format!("tensor type id {} ({})", info.id, info.name);
        if ty == GgmlType::TL2 {
            observation.push_str(", sizes fit the TL2 rule");
        }
        if let Some(elsewhere) = info.id_elsewhere {
            observation.push_str(&format!("; {elsewhere}"));
        }
        evidence.push(Evidence {
            observation,
            allows: Dialect::ALL
                .into_iter()
                .filter(|d| d.in_set(info.defined_in))
                .collect(),
            strong: true,
        });
    }
    match file.architecture() {
        Some(a @ (keys::ARCH_BITNET_B158 | keys::ARCH_BITNET_25)) => evidence.push(Evidence {
            observation: format!("architecture {a:?} (unknown to llama.cpp mainline)"),
            allows: set(true, true, false),
            strong: true,
        }),
        Some(a) => evidence.push(Evidence {
            observation: format!("architecture {a:?}"),
            allows: set(true, true, true),
            strong: false,
        }),
        None => {}
    }
    if let Some(Value::U32(ft)) = file.get(keys::FILE_TYPE) {
        let (what, allows) = match ft {
            40 => (
                "MOSTLY_I2_S in bitnet.cpp (Q1_0 in mainline, unknown to ik)",
                set(true, false, true),
            ),
            38 => (
                "MOSTLY_TL1 in bitnet.cpp, MXFP4 in ik, MXFP4_MOE in mainline",
                set(true, true, true),
            ),
            39 => (
                "MOSTLY_TL2 in bitnet.cpp, NVFP4 in mainline",
                set(true, true, true),
            ),
            136 | 137 => (
                "MOSTLY_IQ1_BN/IQ2_BN in ik_llama.cpp",
                set(false, true, false),
            ),
            _ => ("no dialect-specific meaning", set(true, true, true)),
        };
        evidence.push(Evidence {
            observation: format!("general.file_type {ft}: {what}"),
            allows,
            strong: false,
        });
    }
    let mut candidates: Vec<Dialect> = Dialect::ALL.to_vec();
    for e in evidence.iter().filter(|e| e.strong) {
        candidates.retain(|d| e.allows.contains(d));
    }
    let verdict = match candidates.as_slice() {
        [] => Verdict::Conflicting,
        [one] => Verdict::Unique(*one),
        _ => Verdict::Ambiguous(candidates),
    };
    DialectReport { verdict, evidence }
}
