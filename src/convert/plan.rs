//! Which tensors an output gets, with which names, types and order, and the streaming loop that
//! produces their bytes: ternary projections are decoded and encoded in parallel (rayon) a
//! bounded window at a time; dense tensors are converted in chunks straight into the output.

use super::source::{
    DenseData, ModelSource, UserKernelConfig, TL_KERNEL_CONFIG_KEY, TL_TILING_SOURCE_KEY,
};
use super::Error;
use crate::gguf::{GgmlType, GgufWriter, MetaValue, Metadata, TensorDesc};
use crate::hf::names::{Projection, TensorRole};
use crate::layout::dense::{encode_dense, DenseDtype};
use crate::layout::i2s::I2S;
use crate::layout::tiling::{Tl1Tiling, Tl2Tiling};
use crate::layout::tl1::Tl1;
use crate::layout::tl2::Tl2;
use crate::layout::tq1_0::TQ1_0;
use crate::layout::tq2_0::TQ2_0;
use crate::layout::{
    BlockQuant, Error as LayoutError, KernelConfig, LayoutKind, ScaleRounding, Shape, TernaryCodec,
    TernaryTensor, TilingResolver,
};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::io::Write;

/// Projection layouts a GGUF output can have.
pub const GGUF_LAYOUTS: [LayoutKind; 8] = [
    LayoutKind::I2_S,
    LayoutKind::TL1,
    LayoutKind::TL2,
    LayoutKind::TQ1_0,
    LayoutKind::TQ2_0,
    LayoutKind::F16,
    LayoutKind::BF16,
    LayoutKind::F32,
];

/// Type of `token_embd.weight` in a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(non_camel_case_types)]
pub enum EmbedType {
    /// IEEE half (bitnet.cpp's choice).
    #[default]
    F16,
    /// IEEE single.
    F32,
    /// ggml Q8_0 (32-value blocks, f16 `d = amax/127`, `q = round(x/d)`), lossy.
    Q8_0,
    /// ggml Q6_K (256-value blocks of 16 int8-scaled 6-bit groups), lossy.
    Q6_K,
    /// ggml Q4_0 (32-value blocks, f16 `d = max/−8`, 4-bit `x/d + 8`), lossy.
    Q4_0,
}

impl EmbedType {
    /// The GGUF type.
    pub fn ggml_type(self) -> GgmlType {
        match self {
            EmbedType::F16 => GgmlType::F16,
            EmbedType::F32 => GgmlType::F32,
            EmbedType::Q8_0 => GgmlType::Q8_0,
            EmbedType::Q6_K => GgmlType::Q6_K,
            EmbedType::Q4_0 => GgmlType::Q4_0,
        }
    }

    /// True for the quantized types (the output's embedding is not the source's).
    pub fn is_lossy(self) -> bool {
        matches!(self, EmbedType::Q8_0 | EmbedType::Q6_K | EmbedType::Q4_0)
    }

    /// Parses `f16`, `f32`, `q8_0`, `q6_k` or `q4_0`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "f16" => Some(EmbedType::F16),
            "f32" => Some(EmbedType::F32),
            "q8_0" => Some(EmbedType::Q8_0),
            "q6_k" => Some(EmbedType::Q6_K),
            "q4_0" => Some(EmbedType::Q4_0),
            _ => None,
        }
    }
}

/// The TL1/TL2 tiling chosen for every projection shape of an output, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TlPlan {
    /// TL1 or TL2.
    pub layout: LayoutKind,
    /// One section per shape, in first-use order (what `bitnet.tl.kernel_config` records).
    pub config: KernelConfig,
    /// `"kernel_config.ini"` or `"derived"`.
    pub source: &'static str,
    tl1: BTreeMap<(usize, usize), Tl1Tiling>,
    tl2: BTreeMap<(usize, usize), Tl2Tiling>,
}

impl TlPlan {
    /// Chooses tilings for `shapes` from `user` (every shape must be listed) or by derivation.
    pub fn new(
        layout: LayoutKind,
        shapes: &[Shape],
        user: Option<&UserKernelConfig>,
    ) -> Result<Self, Error> {
        let mut plan = TlPlan {
            layout,
            config: KernelConfig::default(),
            source: if user.is_some() {
                "kernel_config.ini"
            } else {
                "derived"
            },
            tl1: BTreeMap::new(),
            tl2: BTreeMap::new(),
        };
        let err = |source| match user {
            Some(u) => Error::KernelConfig {
                path: u.path.clone(),
                source,
            },
            None => Error::Usage {
                what: format!("no {layout} tiling can be derived: {source}"),
            },
        };
        let resolver = TilingResolver::new(None, user.map(|u| u.config.clone()));
        for &shape in shapes {
            let key = (shape.rows, shape.cols);
            if plan.tl1.contains_key(&key) || plan.tl2.contains_key(&key) {
                continue;
            }
            if layout == LayoutKind::TL1 {
                let tiling = resolver.tl1(shape).map_err(err)?;
                plan.config.push_tl1(shape, tiling);
                plan.tl1.insert(key, tiling);
            } else {
                let tiling = resolver.tl2(shape).map_err(err)?;
                plan.config.push_tl2(shape, tiling);
                plan.tl2.insert(key, tiling);
            }
        }
        Ok(plan)
    }

    /// For a TL1/TL2 output: plans the tiling of every projection of `source`, records it in
    /// `meta` (the `bitnet.tl.*` keys) and returns the plan with a note line saying what was
    /// chosen and from where; `None` for every other layout.
    pub fn for_output(
        layout: LayoutKind,
        source: &ModelSource,
        user: Option<&UserKernelConfig>,
        meta: &mut Metadata,
    ) -> Result<Option<(TlPlan, String)>, Error> {
        if !matches!(layout, LayoutKind::TL1 | LayoutKind::TL2) {
            return Ok(None);
        }
        let plan = TlPlan::new(layout, &projection_shapes(source), user)?;
        meta.set(
            TL_KERNEL_CONFIG_KEY,
            MetaValue::String(plan.config.to_ini_string()),
        );
        meta.set(TL_TILING_SOURCE_KEY, MetaValue::String(plan.source.into()));
        let note = format!(
            "output {layout} tiling ({}): {}",
            user.map_or_else(|| "derived".into(), |u| u.path.display().to_string()),
            plan.summary()
        );
        Ok(Some((plan, note)))
    }

    /// One line: `M x K: BM .. BK .. bm ..` per shape.
    pub fn summary(&self) -> String {
        self.config
            .entries
            .iter()
            .map(|e| {
                format!(
                    "{}x{}: BM {} BK {} bm {}",
                    e.rows, e.cols, e.tile_rows, e.block_k, e.simd_rows
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn tl1(&self, shape: Shape) -> Option<Tl1Tiling> {
        self.tl1.get(&(shape.rows, shape.cols)).copied()
    }

    fn tl2(&self, shape: Shape) -> Option<Tl2Tiling> {
        self.tl2.get(&(shape.rows, shape.cols)).copied()
    }
}

/// The GGUF type a projection of `shape` gets for `layout` (TQ1_0/TQ2_0 need K % 256 == 0;
/// other projections fall back to F16, lossless, as gguf-py does).
pub fn projection_type(layout: LayoutKind, shape: Shape) -> GgmlType {
    match layout {
        LayoutKind::TQ1_0 | LayoutKind::TQ2_0 if shape.cols % 256 != 0 => GgmlType::F16,
        LayoutKind::TQ1_0 => GgmlType::TQ1_0,
        LayoutKind::TQ2_0 => GgmlType::TQ2_0,
        LayoutKind::TL1 => GgmlType::TL1,
        LayoutKind::TL2 => GgmlType::TL2,
        LayoutKind::F16 => GgmlType::F16,
        LayoutKind::BF16 => GgmlType::BF16,
        LayoutKind::F32 => GgmlType::F32,
        _ => GgmlType::I2_S,
    }
}

/// Encodes one projection as `ty`. Scales a 16-bit slot cannot hold exactly are rounded to
/// nearest (only master-derived scales can be inexact); the second value says so.
pub fn encode_projection(
    tensor: &TernaryTensor,
    ty: GgmlType,
    tl: Option<&TlPlan>,
) -> Result<(Vec<u8>, bool), crate::layout::Error> {
    encode_projection_reusing(tensor, ty, tl, Vec::new())
}

/// [`encode_projection`] writing I2_S into `out` (a reused buffer, resized as needed); other
/// layouts allocate.
pub fn encode_projection_reusing(
    tensor: &TernaryTensor,
    ty: GgmlType,
    tl: Option<&TlPlan>,
    mut out: Vec<u8>,
) -> Result<(Vec<u8>, bool), crate::layout::Error> {
    let shape = tensor.shape();
    let half_scale = |t: &TernaryTensor| {
        let s = half::f16::from_f32(t.scale()).to_f32();
        (t.clone().with_scale(s), s != t.scale())
    };
    let missing_tiling = |layout: &'static str| crate::layout::Error::Tiling {
        layout,
        what: format!("no tiling planned for {shape}"),
    };
    Ok(match ty {
        GgmlType::I2_S => {
            out.resize(I2S.byte_len(shape)?, 0);
            I2S.encode_into(tensor, &mut out)?;
            (out, false)
        }
        GgmlType::TL1 => {
            let tiling = tl
                .and_then(|p| p.tl1(shape))
                .ok_or_else(|| missing_tiling("TL1"))?;
            (Tl1::new(tiling).encode(tensor)?, false)
        }
        GgmlType::TL2 => {
            let tiling = tl
                .and_then(|p| p.tl2(shape))
                .ok_or_else(|| missing_tiling("TL2"))?;
            (Tl2::new(tiling).encode(tensor)?, false)
        }
        GgmlType::TQ1_0 => {
            let (t, rounded) = half_scale(tensor);
            (TQ1_0.encode(&t)?, rounded)
        }
        GgmlType::TQ2_0 => {
            let (t, rounded) = half_scale(tensor);
            (TQ2_0.encode(&t)?, rounded)
        }
        GgmlType::F16 | GgmlType::BF16 | GgmlType::F32 => {
            let dtype = match ty {
                GgmlType::F16 => DenseDtype::F16,
                GgmlType::BF16 => DenseDtype::BF16,
                _ => DenseDtype::F32,
            };
            let rounded = dtype.round(tensor.scale()) != tensor.scale();
            (
                encode_dense(tensor, dtype, ScaleRounding::Nearest)?,
                rounded,
            )
        }
        other => {
            return Err(crate::layout::Error::IllegalShape {
                layout: "projection",
                shape,
                rule: format!("{} is not a ternary layout", other.name()),
            })
        }
    })
}

/// One output tensor and how to make it.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Output name and type.
    pub desc: TensorDesc,
    /// The source tensor.
    pub role: TensorRole,
    /// Copy the source bytes unchanged (same type in and out).
    pub copy: bool,
}

impl Job {
    /// A job for `role` written as `ty`, dims from the source's config.
    pub fn new(source: &ModelSource, role: TensorRole, name: String, ty: GgmlType) -> Self {
        let mut dims: Vec<u64> = source.dense_shape(role).iter().map(|&d| d as u64).collect();
        dims.reverse();
        Job {
            desc: TensorDesc::new(name, dims, ty),
            role,
            copy: false,
        }
    }
}

/// Converts `values` to `ty`'s bytes: F16/BF16 round to nearest even; Q8_0, Q6_K and Q4_0 are
/// quantized by [`BlockQuant`] (`values` is then whole blocks, which the caller checked).
pub fn encode_values(values: &[f32], ty: GgmlType, out: &mut Vec<u8>) -> Result<(), LayoutError> {
    match ty {
        GgmlType::F32 => out.extend(values.iter().flat_map(|v| v.to_le_bytes())),
        GgmlType::F16 => out.extend(
            values
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes()),
        ),
        GgmlType::BF16 => out.extend(
            values
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes()),
        ),
        other => match BlockQuant::for_ggml_type(other) {
            Some(q) => q.par_quantize_into(values, out)?,
            None => {
                return Err(LayoutError::IllegalShape {
                    layout: other.name(),
                    shape: Shape::new(1, values.len()),
                    rule: "not a type dense tensors can be written in".into(),
                })
            }
        },
    }
    Ok(())
}

/// Streams a dense tensor into `out` as `ty`, 1 Mi elements at a time.
fn stream_dense(data: &DenseData<'_>, ty: GgmlType, out: &mut dyn Write) -> std::io::Result<()> {
    const CHUNK: usize = 1 << 20;
    let n = data.len();
    let mut values = vec![0.0f32; CHUNK.min(n)];
    let mut bytes = Vec::with_capacity(CHUNK * 4);
    let mut first = 0;
    while first < n {
        let len = CHUNK.min(n - first);
        data.to_f32_into(first, &mut values[..len]);
        bytes.clear();
        encode_values(&values[..len], ty, &mut bytes).map_err(std::io::Error::other)?;
        out.write_all(&bytes)?;
        first += len;
    }
    Ok(())
}

/// Progress reporting (indicatif on stderr when it is a terminal and not `quiet`).
pub(crate) fn progress_bar(len: usize, quiet: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tensors {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// An encoded projection and whether its scale was rounded.
type Encoded = (Vec<u8>, bool);

/// What happened while writing, for the report.
#[derive(Debug, Default)]
pub(crate) struct WriteOutcome {
    pub rounded_scales: Vec<String>,
}

/// Buffers handed back by the writer for reuse (codes and encoded bytes).
#[derive(Debug, Default)]
struct Pool {
    codes: std::sync::Mutex<Vec<Vec<i8>>>,
    bytes: std::sync::Mutex<Vec<Vec<u8>>>,
}

impl Pool {
    fn take_codes(&self) -> Vec<i8> {
        self.codes
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default()
    }
    fn take_bytes(&self) -> Vec<u8> {
        self.bytes
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default()
    }
    fn put_codes(&self, c: Vec<i8>) {
        if let Ok(mut v) = self.codes.lock() {
            v.push(c);
        }
    }
    fn put_bytes(&self, b: Vec<u8>) {
        if let Ok(mut v) = self.bytes.lock() {
            v.push(b);
        }
    }
}

/// Writes every job's data in order. Projections are decoded and encoded in parallel, a window
/// of `2 × threads` tensors at a time, while a writer thread writes the previous window (at
/// most two windows of encoded tensors exist at once). Buffers are reused across tensors.
pub(crate) fn write_jobs<W: Write + Send>(
    source: &ModelSource,
    jobs: &[Job],
    tl: Option<&TlPlan>,
    writer: &mut GgufWriter<W>,
    quiet: bool,
) -> Result<WriteOutcome, Error> {
    let out_path = std::path::PathBuf::from("output");
    let bar = progress_bar(jobs.len(), quiet);
    let window = 2 * rayon::current_num_threads().max(1);
    let pool = Pool::default();
    let outcome = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Option<Encoded>, Error>>(window);
        let pool = &pool;
        let bar = &bar;
        let out_path = &out_path;
        let writing = scope.spawn(move || -> Result<WriteOutcome, Error> {
            let mut outcome = WriteOutcome::default();
            for (job, result) in jobs.iter().zip(rx) {
                write_one(source, job, result?, writer, out_path, &mut outcome, pool)?;
                source.release(job.role);
                bar.inc(1);
            }
            Ok(outcome)
        });
        'produce: for chunk in jobs.chunks(window) {
            let encoded: Vec<Result<Option<Encoded>, Error>> = chunk
                .par_iter()
                .map(|job| match job.role {
                    TensorRole::Projection { layer, proj } if !job.copy => {
                        let tensor = source.ternary_reusing(layer, proj, pool.take_codes())?;
                        let result = encode_projection_reusing(
                            &tensor,
                            job.desc.ggml_type,
                            tl,
                            pool.take_bytes(),
                        )
                        .map(Some)
                        .map_err(|e| Error::layout(out_path, &job.desc.name, e));
                        pool.put_codes(tensor.into_codes());
                        result
                    }
                    _ => Ok(None),
                })
                .collect();
            for item in encoded {
                let failed = item.is_err();
                // A send error means the writer stopped on an error: it reports it below.
                if tx.send(item).is_err() || failed {
                    break 'produce;
                }
            }
        }
        drop(tx);
        writing.join().unwrap_or_else(|_| {
            Err(Error::Usage {
                what: "the writer thread panicked".into(),
            })
        })
    })?;
    bar.finish_and_clear();
    Ok(outcome)
}

/// Writes one tensor: encoded bytes, a verbatim copy, or a dense tensor streamed in chunks.
fn write_one<W: Write>(
    source: &ModelSource,
    job: &Job,
    encoded: Option<Encoded>,
    writer: &mut GgufWriter<W>,
    out_path: &std::path::Path,
    outcome: &mut WriteOutcome,
    pool: &Pool,
) -> Result<(), Error> {
    let gguf_err = |source| Error::Gguf {
        path: out_path.to_path_buf(),
        source,
    };
    match encoded {
        Some((bytes, rounded)) => {
            if rounded {
                outcome.rounded_scales.push(job.desc.name.clone());
            }
            writer
                .write_tensor(&job.desc.name, &bytes)
                .map_err(gguf_err)?;
            pool.put_bytes(bytes);
        }
        None if job.copy => {
            let bytes = copy_bytes(source, job)?;
            writer
                .write_tensor(&job.desc.name, bytes)
                .map_err(gguf_err)?;
        }
        None => {
            let data = source.dense(job.role)?;
            let ty = job.desc.ggml_type;
            if let Some(q) = BlockQuant::for_ggml_type(ty) {
                let k = job.desc.dims.first().map_or(0, |&k| k as usize);
                if k == 0 || k % q.block_values() != 0 {
                    return Err(Error::BadTensor {
                        path: source.path().to_path_buf(),
                        tensor: job.desc.name.clone(),
                        expected: format!(
                            "rows of a multiple of {} elements for {}",
                            q.block_values(),
                            q.name()
                        ),
                        found: format!("rows of {k} elements"),
                    });
                }
            }
            writer
                .write_tensor_streamed(&job.desc.name, |out| stream_dense(&data, ty, out))
                .map_err(gguf_err)?;
        }
    }
    Ok(())
}

/// The source bytes of a tensor copied unchanged (GGUF to GGUF).
fn copy_bytes<'s>(source: &'s ModelSource, job: &Job) -> Result<&'s [u8], Error> {
    match job.role {
        TensorRole::Projection { .. } => Err(Error::Usage {
            what: format!("projection `{}` cannot be copied", job.desc.name),
        }),
        role => Ok(source.dense(role)?.bytes()),
    }
}

/// The distinct projection shapes of the source's model, in projection order (q, k, v, o,
/// gate, up, down: the order bitnet.cpp's codegen lists them in `kernel_config.ini`).
pub fn projection_shapes(source: &ModelSource) -> Vec<Shape> {
    let mut out = Vec::new();
    for proj in Projection::ALL {
        let s = proj.shape(source.config());
        if !out.contains(&s) {
            out.push(s);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tq_falls_back_to_f16_when_k_is_not_a_multiple_of_256() {
        assert_eq!(
            projection_type(LayoutKind::TQ2_0, Shape::new(256, 384)),
            GgmlType::F16
        );
        assert_eq!(
            projection_type(LayoutKind::TQ1_0, Shape::new(256, 512)),
            GgmlType::TQ1_0
        );
    }
}
