//! `verify`: compares two model sources tensor by tensor. Ternary projections must have the
//! same codes and the same scale (or one within `scale_ulps` f32 ulps); every other tensor the
//! same values once both sides are converted to f32.

use super::source::{expected_roles, DenseData, ModelSource};
use super::Error;
use crate::hf::master::ulp_distance;
use crate::hf::names::TensorRole;
use rayon::prelude::*;
use serde::Serialize;
use std::fmt;

/// How strict the comparison is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerifyOptions {
    /// Largest accepted scale difference in f32 ulps (0 = bit-exact).
    pub scale_ulps: u32,
    /// Do not compare dense tensors (used after a lossy `--embed-type q8_0`).
    pub skip_dense: bool,
    /// Round A's dense values to B's storage type (F16/BF16) before comparing: what a
    /// converter's `--verify` checks, since e.g. bf16 values below f16's normal range lose bits
    /// in an F16 embedding by design.
    pub dense_as_output: bool,
}

/// One compared tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyRow {
    /// GGUF name of the tensor.
    pub tensor: String,
    /// `"ternary"` or `"dense"`.
    pub kind: &'static str,
    /// Storage on side A.
    pub a: String,
    /// Storage on side B.
    pub b: String,
    /// True when the tensor matches.
    pub ok: bool,
    /// `"equal"`, or what differs.
    pub detail: String,
}

/// The whole comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyReport {
    /// Side A (path and description).
    pub a: String,
    /// Side B.
    pub b: String,
    /// One row per tensor, in model order.
    pub rows: Vec<VerifyRow>,
}

impl VerifyReport {
    /// Rows that do not match.
    pub fn differences(&self) -> usize {
        self.rows.iter().filter(|r| !r.ok).count()
    }

    /// `Err(VerifyFailed)` unless every row matches.
    pub fn into_result(self) -> Result<Self, Error> {
        match self.differences() {
            0 => Ok(self),
            differences => Err(Error::VerifyFailed {
                differences,
                compared: self.rows.len(),
            }),
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "A: {}", self.a)?;
        writeln!(f, "B: {}", self.b)?;
        let width = self
            .rows
            .iter()
            .map(|r| r.tensor.len())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(
            f,
            "{:width$}  {:7}  {:9}  {:9}  result",
            "tensor", "kind", "A", "B"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:width$}  {:7}  {:9}  {:9}  {}",
                r.tensor,
                r.kind,
                r.a,
                r.b,
                if r.ok {
                    "ok".to_string()
                } else {
                    format!("DIFFERS: {}", r.detail)
                }
            )?;
        }
        let diff = self.differences();
        if diff == 0 {
            write!(f, "all {} tensors equal", self.rows.len())
        } else {
            write!(f, "{diff} of {} tensors differ", self.rows.len())
        }
    }
}

/// Compares every tensor of two sources (in parallel, one tensor pair at a time per thread).
pub fn compare(
    a: &ModelSource,
    b: &ModelSource,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let (ca, cb) = (a.config(), b.config());
    let hyper = |c: &crate::hf::HfConfig| {
        (
            c.vocab_size,
            c.hidden_size,
            c.intermediate_size,
            c.num_hidden_layers,
            c.num_attention_heads,
            c.num_key_value_heads,
        )
    };
    if hyper(ca) != hyper(cb) {
        return Err(Error::Usage {
            what: format!(
                "{} and {} are different models: (vocab, hidden, ffn, layers, heads, kv heads) {:?} vs {:?}",
                a.path().display(),
                b.path().display(),
                hyper(ca),
                hyper(cb)
            ),
        });
    }
    let storage = |s: &ModelSource| {
        s.tensors()
            .into_iter()
            .map(|t| (t.role, t.storage))
            .collect::<std::collections::HashMap<_, _>>()
    };
    let (sa, sb) = (storage(a), storage(b));
    let mut roles = expected_roles(ca);
    for r in expected_roles(cb) {
        if !roles.contains(&r) {
            roles.push(r);
        }
    }
    let rows: Vec<Result<VerifyRow, Error>> = roles
        .par_iter()
        .map(|&role| {
            let name = role.gguf_name().unwrap_or_default();
            let (Some(ta), Some(tb)) = (sa.get(&role), sb.get(&role)) else {
                return Ok(VerifyRow {
                    tensor: name,
                    kind: "missing",
                    a: sa.get(&role).cloned().unwrap_or_else(|| "-".into()),
                    b: sb.get(&role).cloned().unwrap_or_else(|| "-".into()),
                    ok: false,
                    detail: "missing on one side".into(),
                });
            };
            let (kind, detail) = match role {
                TensorRole::Projection { layer, proj } => {
                    ("ternary", compare_ternary(a, b, layer, proj, options)?)
                }
                _ if options.skip_dense => ("dense", None),
                _ => ("dense", compare_dense(a, b, role, options.dense_as_output)?),
            };
            a.release(role);
            b.release(role);
            Ok(VerifyRow {
                tensor: name,
                kind,
                a: ta.clone(),
                b: tb.clone(),
                ok: detail.is_none(),
                detail: detail.unwrap_or_else(|| "equal".into()),
            })
        })
        .collect();
    Ok(VerifyReport {
        a: format!("{} ({})", a.path().display(), a.describe()),
        b: format!("{} ({})", b.path().display(), b.describe()),
        rows: rows.into_iter().collect::<Result<_, _>>()?,
    })
}

fn compare_ternary(
    a: &ModelSource,
    b: &ModelSource,
    layer: usize,
    proj: crate::hf::Projection,
    options: &VerifyOptions,
) -> Result<Option<String>, Error> {
    let ta = a.ternary(layer, proj)?;
    let tb = b.ternary(layer, proj)?;
    if ta.shape() != tb.shape() {
        return Ok(Some(format!("shape {} vs {}", ta.shape(), tb.shape())));
    }
    let differing = ta
        .codes()
        .iter()
        .zip(tb.codes())
        .filter(|(x, y)| x != y)
        .count();
    let first = ta.codes().iter().zip(tb.codes()).position(|(x, y)| x != y);
    let ulps = ulp_distance(ta.scale(), tb.scale());
    let mut problems = Vec::new();
    if let Some(i) = first {
        let cols = ta.shape().cols;
        problems.push(format!(
            "{differing} codes differ (first at row {}, column {})",
            i / cols,
            i % cols
        ));
    }
    if ulps > options.scale_ulps {
        problems.push(format!(
            "scale {} vs {} ({ulps} ulps)",
            ta.scale(),
            tb.scale()
        ));
    }
    Ok((!problems.is_empty()).then(|| problems.join("; ")))
}

fn compare_dense(
    a: &ModelSource,
    b: &ModelSource,
    role: TensorRole,
    as_output: bool,
) -> Result<Option<String>, Error> {
    let (da, db) = (a.dense(role)?, b.dense(role)?);
    let round: fn(f32) -> f32 = match (as_output, db) {
        (true, DenseData::F16(_)) => |x| half::f16::from_f32(x).to_f32(),
        (true, DenseData::BF16(_)) => |x| half::bf16::from_f32(x).to_f32(),
        _ => |x| x,
    };
    if da.len() != db.len() {
        return Ok(Some(format!("{} vs {} elements", da.len(), db.len())));
    }
    const CHUNK: usize = 1 << 18;
    let mut va = vec![0.0f32; CHUNK.min(da.len())];
    let mut vb = va.clone();
    let (mut count, mut first, mut max_abs) = (0usize, None, 0.0f32);
    let mut start = 0;
    while start < da.len() {
        let len = CHUNK.min(da.len() - start);
        da.to_f32_into(start, &mut va[..len]);
        db.to_f32_into(start, &mut vb[..len]);
        for x in &mut va[..len] {
            *x = round(*x);
        }
        for (i, (x, y)) in va[..len].iter().zip(&vb[..len]).enumerate() {
            if x.to_bits() != y.to_bits()
                && !(x.is_nan() && y.is_nan())
                && !(*x == 0.0 && *y == 0.0)
            {
                count += 1;
                first.get_or_insert(start + i);
                max_abs = max_abs.max((x - y).abs());
            }
        }
        start += len;
    }
    Ok(first
        .map(|i| format!("{count} values differ (first at element {i}, max |a-b| = {max_abs})")))
}
