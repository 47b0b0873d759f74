//! Re-packing weights at load into the layouts the fastest kernels read (the file's bytes are
//! not changed), with the same outputs:
//!
//! * Ternary projections in TL1, TL2, TQ1_0 and TQ2_0 are re-encoded as I2_S. Every ternary
//!   layout stores the same thing, codes in {−1, 0, 1} and one scale per tensor, and every
//!   ternary kernel computes `((Σ code·q) / sa) · scale` from the same int8 activations, so a
//!   projection re-encoded as I2_S gives bit-identical outputs. A tensor its codec refuses (a
//!   TQ1_0 or TQ2_0 tensor whose blocks carry different scales, which is not a BitNet
//!   checkpoint) keeps its own kernel. The cost is one decode and encode per tensor at load, and
//!   the I2_S copy in memory (2 bits per weight; for TQ1_0 more than the file's 1.69).
//! * A Q4_0 lm_head is interleaved by 8 rows ([`Q4_0x8Weights`]), a reordering of its bytes
//!   whose kernel keeps 8 rows in the vector lanes and sums in the same order as the Q4_0
//!   kernel. The copy is as large as the head (0.185 GB for 2B-4T); token embeddings are still
//!   read from the file.

use super::error::Error;
use super::kernels::{Q4_0Weights, Q4_0x8Weights};
use super::model::{Model, Projection};
use crate::gguf::GgmlType;
use crate::gguf::GgufFile;
use crate::layout::i2s::I2S;
use crate::layout::tl1::Tl1;
use crate::layout::tl2::Tl2;
use crate::layout::tq1_0::TQ1_0;
use crate::layout::tq2_0::TQ2_0;
use crate::layout::TernaryCodec;
use rayon::prelude::*;
use std::collections::HashMap;

/// The fewest tokens a run must evaluate for [`RepackParts::paying`] to re-encode its
/// projections. Measured on 2B-4T (`docs/PERFORMANCE.md`, "Issue 6, tenth session"): the
/// re-encoding costs 0.6–1.9 s at load and decodes 1.3–3.4× faster (TQ2_0 at 2 threads to TL2
/// at 1). With it, `generate -n 64` finishes sooner on every file but TQ2_0 at 2 threads,
/// where it comes out even.
pub const REPACK_MIN_TOKENS: usize = 64;

/// The fewest tokens for [`RepackParts::paying`] to interleave a Q4_0 lm_head: it costs
/// 0.13–0.18 s and decodes up to 10 % faster at 1 thread (the plain Q4_0 kernel is
/// compute-bound there), nothing at 2 (both read at the memory's rate).
pub const INTERLEAVE_MIN_TOKENS: usize = 256;

/// Which parts of a model [`Repack::build`] re-packs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepackParts {
    /// TL1, TL2, TQ1_0 and TQ2_0 projections, re-encoded as I2_S.
    pub projections: bool,
    /// A Q4_0 lm_head, interleaved by 8 rows.
    pub head: bool,
}

impl RepackParts {
    /// Everything there is to re-pack (`--repack=on`).
    pub const ALL: Self = Self {
        projections: true,
        head: true,
    };

    /// The parts `model` has: a projection in a layout other than I2_S, a Q4_0 head with
    /// whole groups of 8 rows.
    pub fn present(model: &Model<'_>) -> Self {
        Self {
            projections: model.layers.iter().any(|layer| {
                layer
                    .projections()
                    .into_iter()
                    .any(|(_, p)| re_encodable(p))
            }),
            head: model.output.ggml_type() == GgmlType::Q4_0 && model.output.shape().rows % 8 == 0,
        }
    }

    /// The parts of `model` worth re-packing for a run that evaluates at least `tokens`
    /// tokens, when the user left it to the runtime: projections from [`REPACK_MIN_TOKENS`],
    /// the head from [`INTERLEAVE_MIN_TOKENS`].
    pub fn paying(model: &Model<'_>, tokens: usize) -> Self {
        let present = Self::present(model);
        Self {
            projections: present.projections && tokens >= REPACK_MIN_TOKENS,
            head: present.head && tokens >= INTERLEAVE_MIN_TOKENS,
        }
    }

    /// Whether there is anything to do.
    pub fn any(self) -> bool {
        self.projections || self.head
    }
}

/// The re-packed weights of one model: I2_S bytes of the re-encoded projections, by tensor name,
/// and the interleaved Q4_0 lm_head.
#[derive(Debug, Default)]
pub struct Repack {
    tensors: HashMap<String, Vec<u8>>,
    /// The lm_head interleaved by 8 rows, when it is Q4_0.
    head: Option<Vec<u8>>,
    /// `(tensor, layout)` of each re-encoded projection, in model order.
    repacked: Vec<(String, &'static str)>,
    /// `(tensor, reason)` of each ternary projection left in its own layout.
    kept: Vec<(String, String)>,
}

impl Repack {
    /// Re-packs the `parts` of `model` (loaded from `file`): every TL1, TL2, TQ1_0 and TQ2_0
    /// projection re-encoded as I2_S, tensors in parallel, and a Q4_0 lm_head whose row count
    /// is a multiple of 8 interleaved. Pass the result to [`Model::load_repacked`].
    pub fn build(
        file: &GgufFile<'_>,
        model: &Model<'_>,
        parts: RepackParts,
    ) -> Result<Self, Error> {
        let present = RepackParts::present(model);
        let jobs: Vec<(String, &Projection<'_>)> = model
            .layers
            .iter()
            .enumerate()
            .flat_map(|(l, layer)| {
                layer
                    .projections()
                    .into_iter()
                    .map(move |(role, p)| (format!("blk.{l}.{role}.weight"), p))
            })
            .filter(|(_, p)| parts.projections && re_encodable(p))
            .collect();
        let results: Vec<Result<Vec<u8>, Error>> = jobs
            .par_iter()
            .map(|(name, p)| re_encode(file, name, p))
            .collect();
        let mut out = Self::default();
        for ((name, p), result) in jobs.into_iter().zip(results) {
            let layout = p.type_name();
            match result {
                Ok(bytes) => {
                    out.tensors.insert(name.clone(), bytes);
                    out.repacked.push((name, layout));
                }
                // A tensor its codec refuses (a TQ tensor with several block scales has no
                // single I2_S scale; TL padding that is not zero) keeps its own kernel, which
                // reads such bytes as before. Any other failure is an error in the file.
                Err(Error::Layout(e)) => out.kept.push((name, e.to_string())),
                Err(e) => return Err(e),
            }
        }
        if parts.head && present.head {
            let head = &model.output;
            let q4 = Q4_0Weights::new(head.bytes(), head.shape())?;
            out.head = Some(Q4_0x8Weights::interleave(&q4)?);
        }
        Ok(out)
    }

    /// The interleaved Q4_0 lm_head, if there is one.
    pub fn head(&self) -> Option<&[u8]> {
        self.head.as_deref()
    }

    /// The I2_S bytes (codes and scale tail) standing in for tensor `name`, if re-encoded.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.tensors.get(name).map(Vec::as_slice)
    }

    /// Number of re-encoded projections.
    pub fn len(&self) -> usize {
        self.repacked.len()
    }

    /// Whether nothing was re-encoded.
    pub fn is_empty(&self) -> bool {
        self.repacked.is_empty()
    }

    /// One line for the user: what was re-encoded from which layouts, and what was kept.
    pub fn summary(&self) -> String {
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for (_, layout) in &self.repacked {
            match counts.iter_mut().find(|(l, _)| l == layout) {
                Some((_, n)) => *n += 1,
                None => counts.push((layout, 1)),
            }
        }
        let from: Vec<String> = counts.iter().map(|(l, n)| format!("{l} x{n}")).collect();
        let mut line = if from.is_empty() {
            "no projection to re-encode".to_string()
        } else {
            format!("re-encoded as I2_S at load: {}", from.join(", "))
        };
        if let Some((name, why)) = self.kept.first() {
            line += &format!(
                "; {} kept in their own layout (first: {name}: {why})",
                self.kept.len()
            );
        }
        if self.head.is_some() {
            line += "; Q4_0 lm_head interleaved by 8 rows";
        }
        line
    }
}

/// Whether projection `p` is in a layout [`Repack::build`] re-encodes as I2_S.
fn re_encodable(p: &Projection<'_>) -> bool {
    !matches!(p, Projection::I2s(_) | Projection::Dense(_))
}

/// Decodes projection `name` with its layout's codec and encodes it as I2_S.
fn re_encode(file: &GgufFile<'_>, name: &str, p: &Projection<'_>) -> Result<Vec<u8>, Error> {
    let info = file
        .tensor(name)
        .ok_or_else(|| Error::MissingTensor { name: name.into() })?;
    let bytes = file.tensor_data(info)?;
    let shape = p.shape();
    let codec: Box<dyn TernaryCodec + Sync> = match p {
        Projection::Tl1(w) => Box::new(Tl1::new(w.tiling())),
        Projection::Tl2(w) => Box::new(Tl2::new(w.tiling())),
        Projection::Tq1_0(_) => Box::new(TQ1_0),
        Projection::Tq2_0(_) => Box::new(TQ2_0),
        Projection::I2s(_) | Projection::Dense(_) => {
            unreachable!("filtered out by Repack::build")
        }
    };
    let len = codec.byte_len(shape)?;
    let region = bytes.get(..len).ok_or_else(|| {
        Error::Invalid(format!(
            "{name}: {} bytes of {} data, expected at least {len}",
            bytes.len(),
            codec.name()
        ))
    })?;
    let tensor = codec.decode(region, shape)?;
    Ok(I2S.encode(&tensor)?)
}
