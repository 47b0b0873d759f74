//! `bitnet-inspect diff A B`: metadata keys added/removed/changed and tensors that differ in type,
//! shape or data (compared by SHA-256).

use super::json::{type_name, value_json, ARRAY_PREVIEW};
use crate::gguf::GgufFile;
use serde::Serialize;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use std::fmt::{self, Write as _};

/// A changed key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyChange {
    /// Key.
    pub key: String,
    /// Type and value in A.
    pub a: Json,
    /// Type and value in B.
    pub b: Json,
}

/// A tensor present in both files that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorChange {
    /// Name.
    pub name: String,
    /// What differs: any of `"type"`, `"shape"`, `"data"`.
    pub differences: Vec<String>,
    /// Type/shape in A (`"I2_S [2560, 640]"`).
    pub a: String,
    /// Type/shape in B.
    pub b: String,
}

/// The difference between two files.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiffReport {
    /// Keys only in B.
    pub keys_added: Vec<String>,
    /// Keys only in A.
    pub keys_removed: Vec<String>,
    /// Keys whose type or value differ.
    pub keys_changed: Vec<KeyChange>,
    /// True if both files have the same keys in a different order.
    pub key_order_differs: bool,
    /// Tensors only in B.
    pub tensors_added: Vec<String>,
    /// Tensors only in A.
    pub tensors_removed: Vec<String>,
    /// Tensors that differ.
    pub tensors_changed: Vec<TensorChange>,
    /// True if tensor order differs.
    pub tensor_order_differs: bool,
}

impl DiffReport {
    /// True if nothing differs.
    pub fn is_identical(&self) -> bool {
        self.keys_added.is_empty()
            && self.keys_removed.is_empty()
            && self.keys_changed.is_empty()
            && !self.key_order_differs
            && self.tensors_added.is_empty()
            && self.tensors_removed.is_empty()
            && self.tensors_changed.is_empty()
            && !self.tensor_order_differs
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Compares two files.
pub fn diff(a: &GgufFile<'_>, b: &GgufFile<'_>) -> DiffReport {
    let tv = |f: &GgufFile<'_>, k: &str| {
        f.get(k).map(|v| {
            serde_json::json!({"type": type_name(v), "value": value_json(v, Some(ARRAY_PREVIEW))})
        })
    };
    let mut r = DiffReport {
        keys_added: Vec::new(),
        keys_removed: Vec::new(),
        keys_changed: Vec::new(),
        key_order_differs: false,
        tensors_added: Vec::new(),
        tensors_removed: Vec::new(),
        tensors_changed: Vec::new(),
        tensor_order_differs: false,
    };
    for e in a.metadata() {
        match b.get(e.key) {
            None => r.keys_removed.push(e.key.to_owned()),
            Some(v) => {
                let mut x = Vec::new();
                let mut y = Vec::new();
                e.value.encode_into(&mut x);
                v.encode_into(&mut y);
                if e.value.value_type() != v.value_type() || x != y {
                    r.keys_changed.push(KeyChange {
                        key: e.key.to_owned(),
                        a: tv(a, e.key).unwrap_or_default(),
                        b: tv(b, e.key).unwrap_or_default(),
                    });
                }
            }
        }
    }
    r.keys_added = b
        .metadata()
        .iter()
        .filter(|e| a.get(e.key).is_none())
        .map(|e| e.key.to_owned())
        .collect();
    let common_a: Vec<&str> = a
        .metadata()
        .iter()
        .map(|e| e.key)
        .filter(|k| b.get(k).is_some())
        .collect();
    let common_b: Vec<&str> = b
        .metadata()
        .iter()
        .map(|e| e.key)
        .filter(|k| a.get(k).is_some())
        .collect();
    r.key_order_differs = common_a != common_b;

    let desc = |t: &crate::gguf::TensorInfo| format!("{} {:?}", t.ggml_type, t.dims);
    for ta in a.tensors() {
        match b.tensor(&ta.name) {
            None => r.tensors_removed.push(ta.name.clone()),
            Some(tb) => {
                let mut d = Vec::new();
                if ta.ggml_type != tb.ggml_type {
                    d.push("type".to_owned());
                }
                if ta.dims != tb.dims {
                    d.push("shape".to_owned());
                }
                let (da, db) = (a.tensor_data(ta), b.tensor_data(tb));
                match (da, db) {
                    (Ok(x), Ok(y)) if x.len() == y.len() && sha(x) == sha(y) => {}
                    _ => d.push("data".to_owned()),
                }
                if !d.is_empty() {
                    r.tensors_changed.push(TensorChange {
                        name: ta.name.clone(),
                        differences: d,
                        a: desc(ta),
                        b: desc(tb),
                    });
                }
            }
        }
    }
    r.tensors_added = b
        .tensors()
        .iter()
        .filter(|t| a.tensor(&t.name).is_none())
        .map(|t| t.name.clone())
        .collect();
    let order_a: Vec<&str> = a
        .tensors()
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| b.tensor(n).is_some())
        .collect();
    let order_b: Vec<&str> = b
        .tensors()
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| a.tensor(n).is_some())
        .collect();
    r.tensor_order_differs = order_a != order_b;
    r
}

impl fmt::Display for DiffReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if self.is_identical() {
            s.push_str("identical metadata and tensors\n");
        }
        for k in &self.keys_removed {
            let _ = writeln!(s, "- key {k}");
        }
        for k in &self.keys_added {
            let _ = writeln!(s, "+ key {k}");
        }
        for c in &self.keys_changed {
            let _ = writeln!(s, "~ key {}: {} -> {}", c.key, c.a, c.b);
        }
        if self.key_order_differs {
            s.push_str("~ key order differs\n");
        }
        for t in &self.tensors_removed {
            let _ = writeln!(s, "- tensor {t}");
        }
        for t in &self.tensors_added {
            let _ = writeln!(s, "+ tensor {t}");
        }
        for t in &self.tensors_changed {
            let _ = writeln!(
                s,
                "~ tensor {} ({}): {} -> {}",
                t.name,
                t.differences.join(", "),
                t.a,
                t.b
            );
        }
        if self.tensor_order_differs {
            s.push_str("~ tensor order differs\n");
        }
        f.write_str(&s)
    }
}
