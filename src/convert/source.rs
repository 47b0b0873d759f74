//! One view over every model input: a Hugging Face checkpoint directory (packed or master,
//! single file or shards) or a GGUF file of any layout. Callers see hyper-parameters as an
//! [`HfConfig`], tensors by [`TensorRole`], ternary projections as [`TernaryTensor`]s, dense
//! tensors as raw typed bytes, and the tokenizer as a [`Vocab`].
//!
//! Invariant: a source that opened has every tensor the config implies (and no other), with
//! the expected shapes; tensor *values* are checked when they are decoded.

use super::Error;
use crate::gguf::{self, keys, GgmlType, GgufFile, MappedFile, TensorInfo, Value};
use crate::hf::names::{LayerNorm, Projection, TensorRole};
use crate::hf::vocab::{Vocab, SPECIAL_KINDS};
use crate::hf::{Checkpoint, CheckpointFormat, Dtype, HfConfig};
use crate::layout::dense::{decode_dense, DenseDtype};
use crate::layout::hf_packed::ScaleRounding;
use crate::layout::i2s::I2S;
use crate::layout::tl1::Tl1;
use crate::layout::tl2::Tl2;
use crate::layout::tq1_0::TQ1_0;
use crate::layout::tq2_0::TQ2_0;
use crate::layout::{
    BlockQuant, KernelConfig, TernaryCodec, TernaryTensor, TilingOrigin, TilingResolver,
};
use std::path::{Path, PathBuf};

pub use crate::gguf::keys::{
    BITNET_TL_KERNEL_CONFIG as TL_KERNEL_CONFIG_KEY,
    BITNET_TL_TILING_SOURCE as TL_TILING_SOURCE_KEY,
};

/// A user-given `kernel_config.ini`, with the path it was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct UserKernelConfig {
    /// The file.
    pub path: PathBuf,
    /// Its sections.
    pub config: KernelConfig,
}

impl UserKernelConfig {
    /// Reads and parses an ini file.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let config = KernelConfig::parse(&text).map_err(|source| Error::KernelConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            config,
        })
    }
}

/// Raw bytes of a dense (non-ternary) tensor and their element type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseData<'a> {
    /// bfloat16, little-endian.
    BF16(&'a [u8]),
    /// IEEE half, little-endian.
    F16(&'a [u8]),
    /// IEEE single, little-endian.
    F32(&'a [u8]),
    /// A ggml block-quantized type (Q8_0, Q6_K, Q4_0).
    Quantized(&'static BlockQuant, &'a [u8]),
}

impl<'a> DenseData<'a> {
    /// The type's name as in GGUF (`"BF16"`, `"F16"`, `"F32"`, `"Q8_0"`, `"Q6_K"`, `"Q4_0"`).
    pub fn type_name(&self) -> &'static str {
        match self {
            DenseData::BF16(_) => "BF16",
            DenseData::F16(_) => "F16",
            DenseData::F32(_) => "F32",
            DenseData::Quantized(q, _) => q.name(),
        }
    }

    /// The raw bytes.
    pub fn bytes(self) -> &'a [u8] {
        match self {
            DenseData::BF16(b)
            | DenseData::F16(b)
            | DenseData::F32(b)
            | DenseData::Quantized(_, b) => b,
        }
    }

    /// Number of elements the bytes hold.
    pub fn len(&self) -> usize {
        match self {
            DenseData::BF16(b) | DenseData::F16(b) => b.len() / 2,
            DenseData::F32(b) => b.len() / 4,
            DenseData::Quantized(q, b) => b.len() / q.block_bytes() * q.block_values(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values as f32 (exact for every type; a quantized type gives its dequantized values).
    pub fn to_f32(&self) -> Vec<f32> {
        let mut out = vec![0.0f32; self.len()];
        self.to_f32_into(0, &mut out);
        out
    }

    /// Converts elements `first .. first + out.len()` (for a quantized type, `first` and the
    /// length must be whole blocks).
    pub fn to_f32_into(&self, first: usize, out: &mut [f32]) {
        match self {
            DenseData::BF16(b) => {
                for (o, c) in out.iter_mut().zip(b[2 * first..].chunks_exact(2)) {
                    *o = half::bf16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
            DenseData::F16(b) => {
                for (o, c) in out.iter_mut().zip(b[2 * first..].chunks_exact(2)) {
                    *o = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
            DenseData::F32(b) => {
                for (o, c) in out.iter_mut().zip(b[4 * first..].chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            DenseData::Quantized(q, b) => {
                // Callers pass whole blocks of a tensor whose byte size the reader checked; a
                // range outside the data reads as NaN rather than a plausible number.
                let blocks = out.len() / q.block_values();
                let start = first / q.block_values() * q.block_bytes();
                let whole = &mut out[..blocks * q.block_values()];
                let ok = b
                    .get(start..start + blocks * q.block_bytes())
                    .is_some_and(|bytes| q.dequantize_into(bytes, whole).is_ok());
                if !ok {
                    out.fill(f32::NAN);
                }
            }
        }
    }
}

/// One tensor of a source, as the converter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTensor {
    /// What it is.
    pub role: TensorRole,
    /// Its name in the source (HF or GGUF spelling).
    pub name: String,
    /// How it is stored (`"U8 packed"`, `"BF16"`, `"I2_S"`, ...).
    pub storage: String,
}

#[derive(Debug)]
struct GgufSource {
    map: MappedFile,
    tensors: Vec<TensorInfo>,
    data_start: u64,
    tiling: TilingResolver,
    /// The `--kernel-config` file, named in errors when the tiling comes from it.
    user_tiling_path: Option<PathBuf>,
}

#[derive(Debug)]
enum Inner {
    Hf(Box<Checkpoint>),
    Gguf(GgufSource),
}

/// A model to read: an HF checkpoint directory or a GGUF file.
#[derive(Debug)]
pub struct ModelSource {
    path: PathBuf,
    config: HfConfig,
    inner: Inner,
}

/// GGUF architectures read as BitNet b1.58.
const ARCHITECTURES: [&str; 3] = [
    keys::ARCH_BITNET_B158,
    keys::ARCH_BITNET_25,
    keys::ARCH_BITNET,
];

fn gguf_err(path: &Path) -> impl Fn(gguf::Error) -> Error + '_ {
    move |source| Error::Gguf {
        path: path.to_path_buf(),
        source,
    }
}

impl ModelSource {
    /// Opens a directory as an HF checkpoint, anything else as a GGUF file. `kernel_config`
    /// is used for TL1/TL2 tensors of a GGUF file that records no tiling of its own.
    pub fn open(path: &Path, kernel_config: Option<&UserKernelConfig>) -> Result<Self, Error> {
        if path.is_dir() {
            let checkpoint = Checkpoint::open(path)?;
            return Ok(Self {
                path: path.to_path_buf(),
                config: checkpoint.config().clone(),
                inner: Inner::Hf(Box::new(checkpoint)),
            });
        }
        let map = gguf::map_file(path).map_err(gguf_err(path))?;
        let (config, tensors, data_start, recorded_tiling) = {
            let file = GgufFile::parse(&map).map_err(gguf_err(path))?;
            let config = config_from_gguf(path, &file)?;
            let recorded = match file.get_str(TL_KERNEL_CONFIG_KEY) {
                Ok(Some(text)) => {
                    Some(
                        KernelConfig::parse(text).map_err(|source| Error::KernelConfig {
                            path: path.to_path_buf(),
                            source,
                        })?,
                    )
                }
                _ => None,
            };
            (config, file.tensors().to_vec(), file.data_start(), recorded)
        };
        let source = Self {
            path: path.to_path_buf(),
            config,
            inner: Inner::Gguf(GgufSource {
                map,
                tensors,
                data_start,
                tiling: TilingResolver::new(
                    recorded_tiling,
                    kernel_config.map(|u| u.config.clone()),
                ),
                user_tiling_path: kernel_config.map(|u| u.path.clone()),
            }),
        };
        source.check_gguf_tensors()?;
        Ok(source)
    }

    /// The path given to [`ModelSource::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Hyper-parameters (for a GGUF file, rebuilt from its metadata).
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// The checkpoint, for an HF source.
    pub fn checkpoint(&self) -> Option<&Checkpoint> {
        match &self.inner {
            Inner::Hf(c) => Some(c),
            Inner::Gguf(_) => None,
        }
    }

    /// True for a GGUF file.
    pub fn is_gguf(&self) -> bool {
        matches!(self.inner, Inner::Gguf(_))
    }

    /// A one-line description (`"HF packed checkpoint"`, `"GGUF (I2_S)"`).
    pub fn describe(&self) -> String {
        match &self.inner {
            Inner::Hf(c) => format!("HF {} checkpoint", c.format().as_str()),
            Inner::Gguf(g) => {
                let mut types: Vec<&str> = g
                    .tensors
                    .iter()
                    .filter(|t| {
                        matches!(
                            TensorRole::from_gguf_name(&t.name),
                            Some(TensorRole::Projection { .. })
                        )
                    })
                    .map(|t| t.ggml_type.name())
                    .collect();
                types.sort_unstable();
                types.dedup();
                format!("GGUF ({})", types.join(", "))
            }
        }
    }

    /// The raw bytes of the GGUF file (`None` for HF sources).
    pub fn gguf_bytes(&self) -> Option<&[u8]> {
        match &self.inner {
            Inner::Gguf(g) => Some(&g.map),
            Inner::Hf(_) => None,
        }
    }

    /// The parsed GGUF file (`None` for HF sources).
    pub fn gguf_file(&self) -> Result<Option<GgufFile<'_>>, Error> {
        match &self.inner {
            Inner::Gguf(g) => GgufFile::parse(&g.map)
                .map(Some)
                .map_err(gguf_err(&self.path)),
            Inner::Hf(_) => Ok(None),
        }
    }

    /// Every tensor in the source's own order (HF: sorted names; GGUF: file order), without
    /// HF `weight_scale` tensors (they belong to their projection).
    pub fn tensors(&self) -> Vec<SourceTensor> {
        match &self.inner {
            Inner::Hf(c) => c
                .tensors()
                .filter(|t| !matches!(t.role, TensorRole::ProjectionScale { .. }))
                .map(|t| SourceTensor {
                    role: t.role,
                    name: t.name.to_string(),
                    storage: match (t.role, c.format()) {
                        (TensorRole::Projection { .. }, CheckpointFormat::Packed) => {
                            "U8 packed".to_string()
                        }
                        _ => format!("{:?}", t.dtype),
                    },
                })
                .collect(),
            Inner::Gguf(g) => g
                .tensors
                .iter()
                .filter_map(|t| {
                    Some(SourceTensor {
                        role: TensorRole::from_gguf_name(&t.name)?,
                        name: t.name.clone(),
                        storage: t.ggml_type.name().to_string(),
                    })
                })
                .collect(),
        }
    }

    /// Where TL tilings of this GGUF file come from (`None` when it has no TL tensor).
    pub fn tiling_origin(&self) -> Option<TilingOrigin> {
        let Inner::Gguf(g) = &self.inner else {
            return None;
        };
        g.tensors
            .iter()
            .any(|t| matches!(t.ggml_type, GgmlType::TL1 | GgmlType::TL2))
            .then(|| g.tiling.origin())
    }

    /// [`ModelSource::tiling_origin`] as a phrase for notes, naming the key or the ini file.
    pub fn tiling_origin_text(&self) -> Option<String> {
        let origin = self.tiling_origin()?;
        let user_path = match &self.inner {
            Inner::Gguf(g) => g.user_tiling_path.as_ref(),
            Inner::Hf(_) => None,
        };
        Some(match (origin, user_path) {
            (TilingOrigin::Recorded, _) => format!("the file's {TL_KERNEL_CONFIG_KEY} key"),
            (TilingOrigin::UserConfig, Some(path)) => path.display().to_string(),
            (origin, _) => origin.to_string(),
        })
    }

    /// The canonical ternary tensor of one projection.
    pub fn ternary(&self, layer: usize, proj: Projection) -> Result<TernaryTensor, Error> {
        match &self.inner {
            Inner::Hf(c) => Ok(c.projection(layer, proj, ScaleRounding::Nearest)?),
            Inner::Gguf(g) => {
                let name = proj.gguf_name(layer);
                let info = self.gguf_tensor(g, &name)?;
                let shape = proj.shape(&self.config);
                let bytes = self.gguf_data(g, info)?;
                let layout = |source| Error::layout(&self.path, &name, source);
                let tensor = match info.ggml_type {
                    GgmlType::I2_S => I2S.decode(bytes, shape).map_err(layout)?,
                    GgmlType::TQ1_0 => TQ1_0.decode(bytes, shape).map_err(layout)?,
                    GgmlType::TQ2_0 => TQ2_0.decode(bytes, shape).map_err(layout)?,
                    GgmlType::TL1 => {
                        let tiling = g.tiling.tl1(shape).map_err(self.tiling_error(g))?;
                        Tl1::new(tiling).decode(bytes, shape).map_err(layout)?
                    }
                    GgmlType::TL2 => {
                        let tiling = g.tiling.tl2(shape).map_err(self.tiling_error(g))?;
                        Tl2::new(tiling).decode(bytes, shape).map_err(layout)?
                    }
                    GgmlType::F16 => {
                        decode_dense(bytes, shape, DenseDtype::F16, None).map_err(layout)?
                    }
                    GgmlType::BF16 => {
                        decode_dense(bytes, shape, DenseDtype::BF16, None).map_err(layout)?
                    }
                    GgmlType::F32 => {
                        decode_dense(bytes, shape, DenseDtype::F32, None).map_err(layout)?
                    }
                    other => {
                        return Err(Error::BadTensor {
                            path: self.path.clone(),
                            tensor: name,
                            expected: "I2_S, TL1, TL2, TQ1_0, TQ2_0, F16, BF16 or F32".into(),
                            found: other.name().into(),
                        })
                    }
                };
                check_scale(&self.path, &name, &tensor)?;
                Ok(tensor)
            }
        }
    }

    /// Like [`ModelSource::ternary`], but decodes into `codes` (a reused buffer, resized as
    /// needed) where the layout allows it, so that big models do not page-fault on a fresh
    /// allocation per tensor. Get the buffer back with `TernaryTensor::into_codes`.
    pub fn ternary_reusing(
        &self,
        layer: usize,
        proj: Projection,
        mut codes: Vec<i8>,
    ) -> Result<TernaryTensor, Error> {
        let Inner::Hf(c) = &self.inner else {
            return self.ternary(layer, proj);
        };
        if c.format() != CheckpointFormat::Packed {
            return self.ternary(layer, proj);
        }
        let shape = proj.shape(&self.config);
        let weight = c.tensor(&proj.hf_weight_name(layer))?;
        let scale_tensor = c.tensor(&proj.hf_scale_name(layer))?;
        let layout = |t: &crate::hf::HfTensor<'_>| {
            let path = t.file.to_path_buf();
            let name = t.name.to_string();
            move |source| Error::layout(path, name, source)
        };
        let scale = c
            .scale_format(layer, proj)?
            .decode(scale_tensor.data, ScaleRounding::Nearest)
            .map_err(layout(&scale_tensor))?;
        let n = shape.numel().unwrap_or(0);
        codes.resize(n, 0);
        crate::layout::hf_packed::HF_PACKED
            .decode_into(weight.data, shape, &mut codes)
            .map_err(layout(&weight))?;
        let tensor = TernaryTensor::from_decoded(shape, codes, scale);
        check_scale(scale_tensor.file, scale_tensor.name, &tensor)?;
        Ok(tensor)
    }

    /// The error of a tiling lookup names the file the tiling came from.
    fn tiling_error(&self, g: &GgufSource) -> impl Fn(crate::layout::Error) -> Error {
        let path = match (g.tiling.origin(), &g.user_tiling_path) {
            (TilingOrigin::UserConfig, Some(p)) => p.clone(),
            _ => self.path.clone(),
        };
        move |source| Error::KernelConfig {
            path: path.clone(),
            source,
        }
    }

    /// The raw bytes of a non-projection tensor (embedding, norms, `lm_head`).
    pub fn dense(&self, role: TensorRole) -> Result<DenseData<'_>, Error> {
        match &self.inner {
            Inner::Hf(c) => {
                let t = c.tensor(&role.hf_name())?;
                Ok(match t.dtype {
                    Dtype::BF16 => DenseData::BF16(t.data),
                    Dtype::F16 => DenseData::F16(t.data),
                    Dtype::F32 => DenseData::F32(t.data),
                    other => {
                        return Err(Error::BadTensor {
                            path: t.file.to_path_buf(),
                            tensor: t.name.to_string(),
                            expected: "BF16, F16 or F32".into(),
                            found: format!("{other:?}"),
                        })
                    }
                })
            }
            Inner::Gguf(g) => {
                let name = role.gguf_name().unwrap_or_default();
                let info = self.gguf_tensor(g, &name)?;
                let bytes = self.gguf_data(g, info)?;
                Ok(match info.ggml_type {
                    GgmlType::BF16 => DenseData::BF16(bytes),
                    GgmlType::F16 => DenseData::F16(bytes),
                    GgmlType::F32 => DenseData::F32(bytes),
                    other if BlockQuant::for_ggml_type(other).is_some() => {
                        DenseData::Quantized(BlockQuant::for_ggml_type(other).unwrap(), bytes)
                    }
                    other => {
                        return Err(Error::BadTensor {
                            path: self.path.clone(),
                            tensor: name,
                            expected: "F16, BF16, F32, Q8_0, Q6_K or Q4_0".into(),
                            found: other.name().into(),
                        })
                    }
                })
            }
        }
    }

    /// The tokenizer, if the source has one (HF: `tokenizer.json`; GGUF: `tokenizer.ggml.*`).
    pub fn vocab(&self) -> Result<Option<Vocab>, Error> {
        match &self.inner {
            Inner::Hf(_) => {
                if !self.path.join("tokenizer.json").exists() {
                    return Ok(None);
                }
                let options = crate::hf::vocab::VocabOptions {
                    vocab_size: Some(self.config.vocab_size),
                    ..Default::default()
                };
                Ok(Some(Vocab::read(&self.path, &options)?))
            }
            Inner::Gguf(g) => {
                let file = GgufFile::parse(&g.map).map_err(gguf_err(&self.path))?;
                vocab_from_gguf(&self.path, &file)
            }
        }
    }

    /// HF shape of a dense tensor (`[vocab, H]` or `[n]`).
    pub fn dense_shape(&self, role: TensorRole) -> Vec<usize> {
        let c = &self.config;
        match role {
            TensorRole::Embedding | TensorRole::LmHead => vec![c.vocab_size, c.hidden_size],
            TensorRole::OutputNorm => vec![c.hidden_size],
            TensorRole::Norm { norm, .. } => vec![norm.len(c)],
            TensorRole::Projection { proj, .. } => {
                let s = proj.shape(c);
                vec![s.rows, s.cols]
            }
            TensorRole::ProjectionScale { .. } => vec![1],
        }
    }

    /// Tells the kernel that the input pages of `role` are no longer needed (they are read
    /// again from the file if touched). Keeps the resident set small on big models.
    pub fn release(&self, role: TensorRole) {
        if let Inner::Gguf(g) = &self.inner {
            if let Some(name) = role.gguf_name() {
                if let Some(info) = g.tensors.iter().find(|t| t.name == name) {
                    let start = g.data_start.saturating_add(info.offset) as usize;
                    g.map
                        .release(start..start.saturating_add(info.byte_len as usize));
                }
            }
        } else if let Inner::Hf(c) = &self.inner {
            c.release(&role.hf_name());
            if let TensorRole::Projection { layer, proj } = role {
                c.release(&proj.hf_scale_name(layer));
            }
        }
    }

    fn gguf_tensor<'s>(&self, g: &'s GgufSource, name: &str) -> Result<&'s TensorInfo, Error> {
        g.tensors
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::MissingTensor {
                path: self.path.clone(),
                tensor: name.to_string(),
            })
    }

    fn gguf_data<'s>(&self, g: &'s GgufSource, info: &TensorInfo) -> Result<&'s [u8], Error> {
        let range = info.absolute_range(g.data_start);
        g.map
            .get(range.start as usize..range.end as usize)
            .ok_or_else(|| Error::BadTensor {
                path: self.path.clone(),
                tensor: info.name.clone(),
                expected: format!("data at {}..{}", range.start, range.end),
                found: format!("a file of {} bytes", g.map.len()),
            })
    }

    /// Every GGUF tensor is known, expected tensors are present, shapes match the metadata.
    fn check_gguf_tensors(&self) -> Result<(), Error> {
        let Inner::Gguf(g) = &self.inner else {
            return Ok(());
        };
        let expected = expected_roles(&self.config);
        for t in &g.tensors {
            let Some(role) = TensorRole::from_gguf_name(&t.name) else {
                return Err(Error::UnexpectedTensor {
                    path: self.path.clone(),
                    tensor: t.name.clone(),
                });
            };
            if !expected.contains(&role) {
                return Err(Error::UnexpectedTensor {
                    path: self.path.clone(),
                    tensor: t.name.clone(),
                });
            }
            let mut want: Vec<u64> = self.dense_shape(role).iter().map(|&d| d as u64).collect();
            want.reverse();
            if t.dims != want {
                return Err(Error::BadTensor {
                    path: self.path.clone(),
                    tensor: t.name.clone(),
                    expected: format!("dims {want:?} (from the metadata)"),
                    found: format!("{:?}", t.dims),
                });
            }
        }
        for role in expected {
            let name = role.gguf_name().unwrap_or_default();
            if !g.tensors.iter().any(|t| t.name == name) {
                return Err(Error::MissingTensor {
                    path: self.path.clone(),
                    tensor: name,
                });
            }
        }
        Ok(())
    }
}

/// Every tensor role a model with `config` has (no `weight_scale`).
pub fn expected_roles(config: &HfConfig) -> Vec<TensorRole> {
    let mut out = vec![TensorRole::Embedding, TensorRole::OutputNorm];
    if !config.tie_word_embeddings {
        out.push(TensorRole::LmHead);
    }
    for layer in 0..config.num_hidden_layers {
        for norm in LayerNorm::ALL {
            out.push(TensorRole::Norm { layer, norm });
        }
        for proj in Projection::ALL {
            out.push(TensorRole::Projection { layer, proj });
        }
    }
    out
}

/// NaN, infinite, zero or negative scales are refused: they cannot come from a real model.
pub(crate) fn check_scale(path: &Path, tensor: &str, t: &TernaryTensor) -> Result<(), Error> {
    let s = t.scale();
    if s.is_finite() && s > 0.0 {
        return Ok(());
    }
    // An all-zero tensor legitimately has no scale to infer.
    if s == 0.0 && t.code_counts()[0] == 0 && t.code_counts()[2] == 0 {
        return Ok(());
    }
    Err(Error::BadTensor {
        path: path.to_path_buf(),
        tensor: tensor.to_string(),
        expected: "a finite, positive scale".into(),
        found: format!("{s}"),
    })
}

/// f32 metadata as the shortest decimal that reads back to the same f32 (1e-5, not
/// 9.999999747378752e-06), so configs look as humans wrote them.
fn f32_to_f64_decimal(x: f32) -> f64 {
    format!("{x}").parse().unwrap_or(f64::from(x))
}

fn config_from_gguf(path: &Path, file: &GgufFile<'_>) -> Result<HfConfig, Error> {
    let arch = file.architecture().unwrap_or("");
    if !ARCHITECTURES.contains(&arch) {
        return Err(Error::UnknownArchitecture {
            path: path.to_path_buf(),
            found: arch.to_string(),
        });
    }
    let bad = |key: &str, expected: &str, found: String| Error::BadMetadata {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: expected.to_string(),
        found,
    };
    let u32_key = |suffix: &str| -> Result<Option<u32>, Error> {
        let key = keys::arch_key(arch, suffix);
        file.get_u32(&key)
            .map_err(|e| bad(&key, "UINT32", e.to_string()))
    };
    let need = |suffix: &str| -> Result<usize, Error> {
        u32_key(suffix)?
            .map(|v| v as usize)
            .ok_or_else(|| bad(&keys::arch_key(arch, suffix), "UINT32", "nothing".into()))
    };
    let f32_key = |suffix: &str| -> Result<Option<f32>, Error> {
        let key = keys::arch_key(arch, suffix);
        file.get_f32(&key)
            .map_err(|e| bad(&key, "FLOAT32", e.to_string()))
    };
    let hidden = need(keys::EMBEDDING_LENGTH)?;
    let heads = need(keys::HEAD_COUNT)?;
    let kv_heads = u32_key(keys::HEAD_COUNT_KV)?.map_or(heads, |v| v as usize);
    if heads == 0 || kv_heads == 0 || hidden % heads != 0 {
        return Err(bad(
            &keys::arch_key(arch, keys::HEAD_COUNT),
            "a non-zero head count dividing embedding_length",
            format!("{heads} heads ({kv_heads} kv) for embedding_length {hidden}"),
        ));
    }
    let embd = file.tensor("token_embd.weight");
    let vocab_size = match u32_key(keys::VOCAB_SIZE)? {
        Some(v) => v as usize,
        None => match (file.get_array(keys::TOKENS).ok().flatten(), embd) {
            (Some(tokens), _) => tokens.len() as usize,
            (None, Some(t)) if t.dims.len() == 2 => t.dims[1] as usize,
            _ => {
                return Err(bad(
                    &keys::arch_key(arch, keys::VOCAB_SIZE),
                    "UINT32",
                    "nothing".into(),
                ))
            }
        },
    };
    let rope_dim = u32_key(keys::ROPE_DIMENSION_COUNT)?.map(|v| v as usize);
    let head_dim_field = rope_dim.filter(|&d| d != hidden / heads);
    let eps = f32_key(keys::RMS_EPSILON)?.ok_or_else(|| {
        bad(
            &keys::arch_key(arch, keys::RMS_EPSILON),
            "FLOAT32",
            "nothing".into(),
        )
    })?;
    let theta = f32_key(keys::ROPE_FREQ_BASE)?.unwrap_or(10000.0);
    let bos = file.get_u32(keys::BOS_TOKEN_ID).ok().flatten();
    let eos = file.get_u32(keys::EOS_TOKEN_ID).ok().flatten();
    Ok(HfConfig {
        path: PathBuf::new(),
        architectures: vec!["BitNetForCausalLM".into()],
        model_type: "bitnet".into(),
        vocab_size,
        hidden_size: hidden,
        intermediate_size: need(keys::FEED_FORWARD_LENGTH)?,
        num_hidden_layers: need(keys::BLOCK_COUNT)?,
        num_attention_heads: heads,
        num_key_value_heads: kv_heads,
        head_dim_field,
        max_position_embeddings: need(keys::CONTEXT_LENGTH)?,
        rms_norm_eps: f32_to_f64_decimal(eps),
        rope_theta: f32_to_f64_decimal(theta),
        tie_word_embeddings: file.tensor("output.weight").is_none(),
        dtype: Some("bfloat16".into()),
        hidden_act: "relu2".into(),
        bos_token_id: bos,
        eos_token_ids: eos.into_iter().collect(),
        quantization: None,
        raw: serde_json::Value::Null,
    })
}

/// Rebuilds the tokenizer from `tokenizer.ggml.*` keys (the reverse of [`Vocab::entries`]);
/// `None` when the file has no tokens.
pub fn vocab_from_gguf(path: &Path, file: &GgufFile<'_>) -> Result<Option<Vocab>, Error> {
    let bad = |key: &str, expected: &str| Error::BadMetadata {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected: expected.to_string(),
        found: "another type".into(),
    };
    let Some(tokens) = file
        .get_array(keys::TOKENS)
        .map_err(|_| bad(keys::TOKENS, "ARRAY"))?
    else {
        return Ok(None);
    };
    let strings = |key: &str| -> Result<Vec<String>, Error> {
        Ok(
            match file
                .get_array(key)
                .map_err(|_| bad(key, "ARRAY of STRING"))?
            {
                Some(a) => a.strings().map(|s| s.to_string_lossy()).collect(),
                None => Vec::new(),
            },
        )
    };
    let tokens: Vec<String> = tokens.strings().map(|s| s.to_string_lossy()).collect();
    let token_types: Vec<i32> = match file
        .get_array(keys::TOKEN_TYPE)
        .map_err(|_| bad(keys::TOKEN_TYPE, "ARRAY of INT32"))?
    {
        Some(a) => a
            .iter()
            .filter_map(|v| v.as_integer().and_then(|i| i32::try_from(i).ok()))
            .collect(),
        None => vec![crate::hf::vocab::TOKEN_TYPE_NORMAL; tokens.len()],
    };
    let scores = file
        .get_array(keys::SCORES)
        .map_err(|_| bad(keys::SCORES, "ARRAY of FLOAT32"))?
        .map(|a| {
            a.iter()
                .filter_map(|v| match v {
                    Value::F32(x) => Some(x),
                    _ => None,
                })
                .collect()
        });
    let special_ids = SPECIAL_KINDS
        .iter()
        .filter_map(|(kind, key)| Some((*kind, file.get_u32(key).ok().flatten()?)))
        .collect();
    Ok(Some(Vocab {
        model: file
            .get_str(keys::TOKENIZER_MODEL)
            .ok()
            .flatten()
            .unwrap_or("gpt2")
            .to_string(),
        pre: file
            .get_str(keys::TOKENIZER_PRE)
            .ok()
            .flatten()
            .map(String::from),
        merges: strings(keys::MERGES)?,
        tokens,
        token_types,
        scores,
        special_ids,
        add_bos_token: file.get_bool(keys::ADD_BOS_TOKEN).ok().flatten(),
        add_eos_token: file.get_bool(keys::ADD_EOS_TOKEN).ok().flatten(),
        chat_template: file
            .get_str(keys::CHAT_TEMPLATE)
            .ok()
            .flatten()
            .map(String::from),
    }))
}
