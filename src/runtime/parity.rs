//! Parity checks: teacher-forced logits against reference logits (a directory laid out like
//! `fixtures/ref-tiny/reference`) or against a second model.

use super::error::Error;
use super::forward::{KvPrecision, Logits, Session};
use super::generate::greedy_continuation;
use super::kernels::{Isa, Kernels};
use super::model::{tokenizer_from_gguf, LoadOptions, Model};
use crate::gguf::{map_file, GgufFile};
use crate::layout::kernel_config::KernelConfig;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Settings of a parity run.
#[derive(Debug, Clone)]
pub struct ParityOptions {
    /// Which `logits_<NAME>.safetensors` of the reference directory to compare with.
    pub logits_name: String,
    /// Kernel threads.
    pub threads: usize,
    /// Kernel instruction set (`None`: the best available).
    pub isa: Option<Isa>,
    /// Tiling for TL files that record none.
    pub kernel_config: Option<KernelConfig>,
    /// KV cache precision.
    pub kv_precision: KvPrecision,
    /// Greedy continuation length for `--against` (the reference's own length is used with a
    /// reference directory).
    pub greedy_tokens: usize,
}

impl Default for ParityOptions {
    fn default() -> Self {
        Self {
            logits_name: "packed".into(),
            threads: 1,
            isa: None,
            kernel_config: None,
            kv_precision: KvPrecision::F32,
            greedy_tokens: 16,
        }
    }
}

/// Agreement of two sets of logits over some positions.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Agreement {
    /// Positions compared.
    pub positions: usize,
    /// Positions whose argmax agrees.
    pub top1_agree: usize,
    /// Largest |Δlogit|.
    pub max_abs_diff: f64,
    /// Mean |Δlogit| over all positions and vocabulary entries.
    pub mean_abs_diff: f64,
    /// Mean over positions of KL(reference ‖ ours) of the softmax distributions, in nats.
    pub mean_kl: f64,
    /// Greedy tokens that match the expected continuation before the first difference.
    pub greedy_match: usize,
    /// Greedy tokens compared (0 when no continuation was compared).
    pub greedy_total: usize,
    #[serde(skip)]
    abs_sum: f64,
    #[serde(skip)]
    values: usize,
    #[serde(skip)]
    kl_sum: f64,
}

impl Agreement {
    /// Adds `positions × vocab` logits (`ours` vs `reference`).
    pub fn add(&mut self, ours: &[f32], reference: &[f32], vocab: usize) {
        for (o, r) in ours.chunks_exact(vocab).zip(reference.chunks_exact(vocab)) {
            self.positions += 1;
            if super::sampling::argmax(o) == super::sampling::argmax(r) {
                self.top1_agree += 1;
            }
            for (&a, &b) in o.iter().zip(r) {
                let d = f64::from((a - b).abs());
                self.max_abs_diff = self.max_abs_diff.max(d);
                self.abs_sum += d;
            }
            self.values += vocab;
            self.kl_sum += kl_divergence(r, o);
        }
        self.finish();
    }

    /// Adds a greedy comparison.
    pub fn add_greedy(&mut self, ours: &[u32], expected: &[u32]) {
        let n = ours.len().min(expected.len());
        self.greedy_total += expected.len();
        self.greedy_match += (0..n).take_while(|&i| ours[i] == expected[i]).count();
    }

    /// Merges `other` into `self`.
    pub fn merge(&mut self, other: &Agreement) {
        self.positions += other.positions;
        self.top1_agree += other.top1_agree;
        self.max_abs_diff = self.max_abs_diff.max(other.max_abs_diff);
        self.abs_sum += other.abs_sum;
        self.values += other.values;
        self.kl_sum += other.kl_sum;
        self.greedy_match += other.greedy_match;
        self.greedy_total += other.greedy_total;
        self.finish();
    }

    fn finish(&mut self) {
        self.mean_abs_diff = if self.values == 0 {
            0.0
        } else {
            self.abs_sum / self.values as f64
        };
        self.mean_kl = if self.positions == 0 {
            0.0
        } else {
            self.kl_sum / self.positions as f64
        };
    }

    /// Fraction of positions whose argmax agrees (1 when nothing was compared).
    pub fn top1_rate(&self) -> f64 {
        if self.positions == 0 {
            1.0
        } else {
            self.top1_agree as f64 / self.positions as f64
        }
    }
}

/// KL(P ‖ Q) of the softmax distributions of logits `p` and `q`, in nats, computed in f64.
pub fn kl_divergence(p: &[f32], q: &[f32]) -> f64 {
    let lp = log_softmax(p);
    let lq = log_softmax(q);
    lp.iter().zip(&lq).map(|(&a, &b)| a.exp() * (a - b)).sum()
}

fn log_softmax(x: &[f32]) -> Vec<f64> {
    let max = x
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    let lse = x
        .iter()
        .map(|&v| (f64::from(v) - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    x.iter().map(|&v| f64::from(v) - lse).collect()
}

/// One sequence's result.
#[derive(Debug, Clone, Serialize)]
pub struct SequenceReport {
    /// Sequence name (`seq0`, ...).
    pub name: String,
    /// Number of tokens.
    pub tokens: usize,
    /// Agreement over its positions.
    #[serde(flatten)]
    pub agreement: Agreement,
}

/// The result of a parity run.
#[derive(Debug, Clone, Serialize)]
pub struct ParityReport {
    /// The model checked.
    pub model: PathBuf,
    /// What it was compared with (reference logits file or second model).
    pub against: String,
    /// Kernel ISA used.
    pub isa: &'static str,
    /// Per sequence.
    pub sequences: Vec<SequenceReport>,
    /// Over all positions.
    pub overall: Agreement,
}

impl ParityReport {
    /// Whether top-1 agreement is at least `min_top1` and the mean |Δ| at most `max_mean_abs`.
    pub fn passes(&self, min_top1: f64, max_mean_abs: f64) -> bool {
        self.overall.top1_rate() >= min_top1 && self.overall.mean_abs_diff <= max_mean_abs
    }
}

/// A reference sequence of `inputs.json`.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ReferenceSequence {
    /// Name (`seq0`, ...): the tensor name in the logits files.
    pub name: String,
    /// Source text.
    #[serde(default)]
    pub text: String,
    /// Token ids (bos included).
    pub ids: Vec<u32>,
}

#[derive(serde::Deserialize)]
struct Inputs {
    sequences: Vec<ReferenceSequence>,
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

fn reference_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Reference {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Reads `dir/inputs.json`.
pub fn read_inputs(dir: &Path) -> Result<Vec<ReferenceSequence>, Error> {
    let path = dir.join("inputs.json");
    let inputs: Inputs =
        serde_json::from_slice(&read(&path)?).map_err(|e| reference_error(&path, e.to_string()))?;
    Ok(inputs.sequences)
}

/// A named F32 tensor: name, shape, values (row-major).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Reads F32 tensors of a safetensors file by name, with their shapes.
pub fn read_f32_tensors(path: &Path) -> Result<Vec<NamedTensor>, Error> {
    let bytes = read(path)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| reference_error(path, e.to_string()))?;
    let mut out = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            return Err(reference_error(
                path,
                format!("tensor {name} is {:?}, expected F32", view.dtype()),
            ));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        out.push((name, view.shape().to_vec(), values));
    }
    Ok(out)
}

/// Writes F32 tensors to a safetensors file.
pub fn write_f32_tensors(path: &Path, tensors: &[NamedTensor]) -> Result<(), Error> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| reference_error(path, e.to_string()))?;
    let data = safetensors::tensor::serialize(views, &None)
        .map_err(|e| reference_error(path, e.to_string()))?;
    std::fs::write(path, data).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })
}

/// `generations.json[path][name]` when present.
fn read_generations(dir: &Path, path_name: &str) -> Result<Option<serde_json::Value>, Error> {
    let path = dir.join("generations.json");
    if !path.exists() {
        return Ok(None);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&read(&path)?).map_err(|e| reference_error(&path, e.to_string()))?;
    Ok(v.get(path_name).cloned())
}

/// Teacher-forced logits of `ids` (all positions, `ids.len() × vocab`), from a fresh cache,
/// through the batched prompt path.
pub fn teacher_forced_logits(session: &mut Session<'_>, ids: &[u32]) -> Result<Vec<f32>, Error> {
    session.reset();
    session.forward(ids, Logits::All)
}

/// Opens and loads `path` with `kernel_config` as the fallback TL tiling.
fn with_model<T>(
    path: &Path,
    kernel_config: Option<KernelConfig>,
    f: impl FnOnce(&Model<'_>, &GgufFile<'_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let map = map_file(path)?;
    let file = GgufFile::parse(&map)?;
    let model = Model::load(&file, &LoadOptions { kernel_config })?;
    f(&model, &file)
}

/// Compares the model at `model_path` with the reference directory `reference_dir`
/// (`inputs.json`, `logits_<opts.logits_name>.safetensors`, optionally `generations.json`):
/// teacher-forced logits over every reference sequence, and the greedy continuation of each
/// sequence against the recorded one (the `master` path for `--logits master`, else `packed`).
pub fn compare_with_reference(
    model_path: &Path,
    reference_dir: &Path,
    opts: &ParityOptions,
) -> Result<ParityReport, Error> {
    let sequences = read_inputs(reference_dir)?;
    let logits_path = reference_dir.join(format!("logits_{}.safetensors", opts.logits_name));
    let reference = read_f32_tensors(&logits_path)?;
    let path_name = if opts.logits_name == "master" {
        "master"
    } else {
        "packed"
    };
    let generations = read_generations(reference_dir, path_name)?;
    let kernels = Kernels::new(opts.threads, opts.isa)?;
    with_model(model_path, opts.kernel_config.clone(), |model, _| {
        let vocab = model.hparams.vocab_size;
        let capacity = sequences.iter().map(|s| s.ids.len()).max().unwrap_or(1) + 64;
        let mut session = Session::with_kv_precision(model, &kernels, capacity, opts.kv_precision);
        let mut report = ParityReport {
            model: model_path.to_owned(),
            against: logits_path.display().to_string(),
            isa: kernels.isa().name(),
            sequences: Vec::new(),
            overall: Agreement::default(),
        };
        for seq in &sequences {
            let (_, shape, values) = reference
                .iter()
                .find(|(n, _, _)| *n == seq.name)
                .ok_or_else(|| reference_error(&logits_path, format!("no tensor {}", seq.name)))?;
            if shape.as_slice() != [seq.ids.len(), vocab] {
                return Err(reference_error(
                    &logits_path,
                    format!(
                        "{} has shape {shape:?}, expected [{}, {vocab}]",
                        seq.name,
                        seq.ids.len()
                    ),
                ));
            }
            let ours = teacher_forced_logits(&mut session, &seq.ids)?;
            let mut agreement = Agreement::default();
            agreement.add(&ours, values, vocab);
            if let Some(expected) = generations
                .as_ref()
                .and_then(|g| g.get(&seq.name))
                .and_then(|v| serde_json::from_value::<Vec<u32>>(v.clone()).ok())
            {
                let got = greedy_continuation(&mut session, &seq.ids, expected.len())?;
                agreement.add_greedy(&got, &expected);
            }
            report.overall.merge(&agreement);
            report.sequences.push(SequenceReport {
                name: seq.name.clone(),
                tokens: seq.ids.len(),
                agreement,
            });
        }
        Ok(report)
    })
}

/// Built-in texts for `--against` (prose, code, numbers, a chat turn).
pub const BUILTIN_TEXTS: [&str; 4] = [
    "The quick brown fox jumps over the lazy dog.",
    "The lighthouse keeper counted the waves every evening, and wrote the number down.",
    "def ternary(w):\n    return max(-1, min(1, round(w / scale)))",
    "User: What is 12 + 30?<|eot_id|>Assistant: The answer is 42.",
];

/// Compares two models (same vocabulary) over [`BUILTIN_TEXTS`] (encoded with the first
/// model's tokenizer; fixed id sequences when it has none): teacher-forced logits of `a` vs
/// `b` (b is the reference) and greedy continuations of `opts.greedy_tokens` tokens.
pub fn compare_models(a: &Path, b: &Path, opts: &ParityOptions) -> Result<ParityReport, Error> {
    let kernels = Kernels::new(opts.threads, opts.isa)?;
    // Reference side first: its logits and continuations.
    let sequences: Vec<(String, Vec<u32>)> =
        with_model(a, opts.kernel_config.clone(), |model, file| {
            let vocab = model.hparams.vocab_size as u32;
            Ok(match tokenizer_from_gguf(file) {
                Ok(tok) => BUILTIN_TEXTS
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (format!("builtin{i}"), tok.encode_prompt(t, true)))
                    .collect(),
                Err(_) => (0..4u32)
                    .map(|i| {
                        let ids = (0..24u32)
                            .map(|j| (i * 7919 + j * 104_729 + 1) % vocab)
                            .collect();
                        (format!("ids{i}"), ids)
                    })
                    .collect(),
            })
        })?;
    // Per sequence: teacher-forced logits and the greedy continuation.
    type Run = Vec<(Vec<f32>, Vec<u32>)>;
    let run = |path: &Path| -> Result<Run, Error> {
        with_model(path, opts.kernel_config.clone(), |model, _| {
            let cap =
                sequences.iter().map(|(_, s)| s.len()).max().unwrap_or(1) + opts.greedy_tokens + 1;
            let mut session = Session::with_kv_precision(model, &kernels, cap, opts.kv_precision);
            sequences
                .iter()
                .map(|(_, ids)| {
                    let logits = teacher_forced_logits(&mut session, ids)?;
                    let greedy = greedy_continuation(&mut session, ids, opts.greedy_tokens)?;
                    Ok((logits, greedy))
                })
                .collect()
        })
    };
    let ours = run(a)?;
    let theirs = run(b)?;
    let mut report = ParityReport {
        model: a.to_owned(),
        against: b.display().to_string(),
        isa: kernels.isa().name(),
        sequences: Vec::new(),
        overall: Agreement::default(),
    };
    for (((name, ids), (la, ga)), (lb, gb)) in sequences.iter().zip(&ours).zip(&theirs) {
        if la.len() != lb.len() {
            return Err(Error::Invalid(format!(
                "{} and {} have different vocabulary sizes",
                a.display(),
                b.display()
            )));
        }
        let mut agreement = Agreement::default();
        agreement.add(la, lb, la.len() / ids.len());
        agreement.add_greedy(ga, gb);
        report.overall.merge(&agreement);
        report.sequences.push(SequenceReport {
            name: name.clone(),
            tokens: ids.len(),
            agreement,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_counts_top1_differences_kl_and_greedy_prefix() {
        let reference = [0.0f32, 1.0, 2.0, 3.0, 0.0, 0.0];
        let ours = [0.0f32, 3.0, 2.5, 2.0, 0.0, 0.0];
        let mut a = Agreement::default();
        a.add(&ours, &reference, 3);
        assert_eq!((a.positions, a.top1_agree), (2, 1));
        assert_eq!(a.max_abs_diff, 2.0);
        assert!((a.mean_abs_diff - 3.5 / 6.0).abs() < 1e-12);
        assert!(a.mean_kl > 0.0);
        assert_eq!(kl_divergence(&reference[..3], &reference[..3]), 0.0);
        a.add_greedy(&[1, 2, 9, 4], &[1, 2, 3, 4]);
        assert_eq!((a.greedy_match, a.greedy_total), (2, 4));
        let mut b = Agreement::default();
        b.merge(&a);
        assert_eq!(b, a);
    }
}
