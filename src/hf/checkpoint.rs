//! Opening a checkpoint directory: `config.json` plus one `model.safetensors` or shards listed in
//! `model.safetensors.index.json`, all memory-mapped.
//!
//! Invariant: after [`Checkpoint::open`] succeeds, the tensor set is exactly the one the config
//! implies (no missing, no unexpected tensors), every tensor has the expected dtype and shape, and
//! the checkpoint is known to be packed or master. Tensor *values* (code 3, bad scales, NaN) are
//! checked when a tensor is decoded ([`Checkpoint::projection`]) or by [`Checkpoint::validate`].

use super::config::{HfConfig, QuantizationMode};
use super::master;
use super::names::{float_tensors, Projection, TensorRole};
use super::Error;
use crate::layout::hf_packed::{HfScale, ScaleConvention, ScaleDtype, ScaleRounding, HF_PACKED};
use crate::layout::{Shape, TernaryCodec, TernaryTensor};
use memmap2::Mmap;
use rayon::prelude::*;
use safetensors::{Dtype, SafeTensors};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

/// Single-file weights name.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// Shard index name.
pub const SAFETENSORS_INDEX: &str = "model.safetensors.index.json";

/// Packed (U8 + `weight_scale`) or bf16 master (float projections).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckpointFormat {
    /// uint8 `[M/4, K]` projections plus `weight_scale[1]` (offline quantization).
    Packed,
    /// Float `[M, K]` projections, ternarized by absmean (online quantization).
    Master,
}

impl CheckpointFormat {
    /// `"packed"` or `"master"`.
    pub fn as_str(self) -> &'static str {
        match self {
            CheckpointFormat::Packed => "packed",
            CheckpointFormat::Master => "master",
        }
    }
}

/// One tensor of a checkpoint, borrowed from the memory map.
#[derive(Debug, Clone, Copy)]
pub struct HfTensor<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// What the tensor is.
    pub role: TensorRole,
    /// safetensors dtype.
    pub dtype: Dtype,
    /// Shape as stored.
    pub shape: &'a [usize],
    /// Raw little-endian bytes.
    pub data: &'a [u8],
    /// File holding it.
    pub file: &'a Path,
}

impl HfTensor<'_> {
    /// Values as f32 (exact for BF16, F16 and F32; other dtypes are an error).
    pub fn to_f32(&self) -> Result<Vec<f32>, Error> {
        bytes_to_f32(self.dtype, self.data).ok_or_else(|| Error::WrongDtype {
            path: self.file.to_path_buf(),
            tensor: self.name.to_string(),
            expected: "BF16, F16 or F32".into(),
            found: format!("{:?}", self.dtype),
        })
    }
}

/// Converts little-endian BF16/F16/F32 bytes to f32 (`None` for other dtypes).
pub fn bytes_to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        _ => return None,
    })
}

/// The first NaN/Inf element of BF16/F16/F32 data (index, value), without converting the
/// whole tensor (the all-ones exponent test on the raw bits).
pub fn first_non_finite(dtype: Dtype, data: &[u8]) -> Option<(usize, f32)> {
    match dtype {
        Dtype::BF16 => data
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7f80 == 0x7f80),
        Dtype::F16 => data
            .chunks_exact(2)
            .position(|b| u16::from_le_bytes([b[0], b[1]]) & 0x7c00 == 0x7c00),
        Dtype::F32 => data.chunks_exact(4).position(|b| {
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]) & 0x7f80_0000 == 0x7f80_0000
        }),
        _ => None,
    }
    .and_then(|index| {
        let size = dtype.size();
        let bytes = data.get(index * size..(index + 1) * size)?;
        bytes_to_f32(dtype, bytes)
            .and_then(|v| v.first().copied())
            .map(|v| (index, v))
    })
}

#[derive(Debug)]
struct Entry {
    file: usize,
    role: TensorRole,
    dtype: Dtype,
    shape: Vec<usize>,
    range: Range<usize>,
}

#[derive(Debug)]
struct Shard {
    path: PathBuf,
    map: Mmap,
}

/// An opened, validated checkpoint directory.
#[derive(Debug)]
pub struct Checkpoint {
    dir: PathBuf,
    config: HfConfig,
    format: CheckpointFormat,
    convention: ScaleConvention,
    shards: Vec<Shard>,
    tensors: BTreeMap<String, Entry>,
}

fn is_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::BF16 | Dtype::F16 | Dtype::F32)
}

fn scale_dtype(dtype: Dtype) -> Option<ScaleDtype> {
    match dtype {
        Dtype::BF16 => Some(ScaleDtype::BF16),
        Dtype::F16 => Some(ScaleDtype::F16),
        Dtype::F32 => Some(ScaleDtype::F32),
        _ => None,
    }
}

fn map_file(path: &Path) -> Result<Mmap, Error> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the map is read-only and private to this process. Another process truncating or
    // rewriting the file while we hold the map is undefined behaviour we cannot prevent; the
    // tools never write to their inputs.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))
}

impl Checkpoint {
    /// Opens and validates a checkpoint directory.
    pub fn open(dir: &Path) -> Result<Self, Error> {
        let config = HfConfig::read(&dir.join("config.json"))?;
        let index_path = dir.join(SAFETENSORS_INDEX);
        let single_path = dir.join(SAFETENSORS_FILE);
        let (files, weight_map) = if index_path.exists() {
            read_index(dir, &index_path)?
        } else if single_path.exists() {
            (vec![single_path], None)
        } else {
            return Err(Error::MissingTensor {
                path: dir.to_path_buf(),
                tensor: format!("(no {SAFETENSORS_FILE} and no {SAFETENSORS_INDEX})"),
            });
        };

        let mut shards = Vec::with_capacity(files.len());
        let mut tensors: BTreeMap<String, Entry> = BTreeMap::new();
        for (file_index, path) in files.into_iter().enumerate() {
            let map = map_file(&path)?;
            {
                let st = SafeTensors::deserialize(&map).map_err(|source| Error::Safetensors {
                    path: path.clone(),
                    source,
                })?;
                let base = map.as_ptr() as usize;
                for (name, view) in st.tensors() {
                    let role =
                        TensorRole::from_hf_name(&name).ok_or_else(|| Error::UnexpectedTensor {
                            path: path.clone(),
                            tensor: name.clone(),
                        })?;
                    if let Some(prev) = tensors.get(&name) {
                        return Err(Error::DuplicateTensor {
                            tensor: name,
                            first: shards
                                .get(prev.file)
                                .map_or_else(|| path.clone(), |s: &Shard| s.path.clone()),
                            second: path.clone(),
                        });
                    }
                    if let Some(map_file) = weight_map.as_ref().and_then(|m| m.get(&name)) {
                        if *map_file != path {
                            return Err(Error::Contradiction {
                                path: index_path.clone(),
                                what: name,
                                detail: format!(
                                    "the index puts it in {} but it is in {}",
                                    map_file.display(),
                                    path.display()
                                ),
                            });
                        }
                    } else if weight_map.is_some() {
                        return Err(Error::Contradiction {
                            path: index_path.clone(),
                            what: name.clone(),
                            detail: format!("in {} but not in the index", path.display()),
                        });
                    }
                    let start = view.data().as_ptr() as usize - base;
                    let range = start..start + view.data().len();
                    tensors.insert(
                        name,
                        Entry {
                            file: file_index,
                            role,
                            dtype: view.dtype(),
                            shape: view.shape().to_vec(),
                            range,
                        },
                    );
                }
            }
            shards.push(Shard { path, map });
        }
        if let Some(weight_map) = &weight_map {
            if let Some(name) = weight_map.keys().find(|n| !tensors.contains_key(*n)) {
                return Err(Error::MissingTensor {
                    path: index_path,
                    tensor: name.clone(),
                });
            }
        }

        let mut checkpoint = Checkpoint {
            dir: dir.to_path_buf(),
            config,
            format: CheckpointFormat::Master,
            convention: ScaleConvention::Multiply,
            shards,
            tensors,
        };
        checkpoint.classify()?;
        checkpoint.check_tensor_set()?;
        Ok(checkpoint)
    }

    fn file_of(&self, name: &str) -> PathBuf {
        self.tensors
            .get(name)
            .and_then(|e| self.shards.get(e.file))
            .map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    /// Decides packed vs master from the config and the projection dtypes.
    fn classify(&mut self) -> Result<(), Error> {
        let mut packed: Option<(String, bool)> = None;
        for (name, e) in &self.tensors {
            if let TensorRole::Projection { .. } = e.role {
                let is_packed = match e.dtype {
                    Dtype::U8 => true,
                    d if is_float(d) => false,
                    d => {
                        return Err(Error::WrongDtype {
                            path: self.file_of(name),
                            tensor: name.clone(),
                            expected: "U8 (packed) or BF16/F16/F32 (master)".into(),
                            found: format!("{d:?}"),
                        })
                    }
                };
                match &packed {
                    None => packed = Some((name.clone(), is_packed)),
                    Some((first, p)) if *p != is_packed => {
                        return Err(Error::Contradiction {
                            path: self.file_of(name),
                            what: name.clone(),
                            detail: format!(
                                "dtype {:?} but `{first}` is {}: a checkpoint is either packed \
                                 or master",
                                e.dtype,
                                if *p { "U8 (packed)" } else { "float (master)" }
                            ),
                        });
                    }
                    Some(_) => {}
                }
            }
        }
        let Some((first, is_packed)) = packed else {
            return Err(Error::MissingTensor {
                path: self.dir.clone(),
                tensor: Projection::Q.hf_weight_name(0),
            });
        };
        let config_path = self.config.path.clone();
        match (&self.config.quantization, is_packed) {
            (None, true) => {
                return Err(Error::MissingField {
                    path: config_path,
                    field: "quantization_config (required for U8 packed weights)".into(),
                })
            }
            (None, false) => {
                self.format = CheckpointFormat::Master;
            }
            (Some(q), _) => {
                let config_says_packed = q.mode == QuantizationMode::Offline;
                if config_says_packed != is_packed {
                    return Err(Error::Contradiction {
                        path: self.file_of(&first),
                        what: first.clone(),
                        detail: format!(
                            "{} says quantization_mode `{}` ({}) but this tensor is {}",
                            config_path.display(),
                            q.mode.as_str(),
                            if config_says_packed {
                                "packed"
                            } else {
                                "master"
                            },
                            if is_packed {
                                "U8 (packed)"
                            } else {
                                "float (master)"
                            }
                        ),
                    });
                }
                self.convention = q.convention;
                self.format = if is_packed {
                    CheckpointFormat::Packed
                } else {
                    CheckpointFormat::Master
                };
            }
        }
        Ok(())
    }

    /// Checks that the tensor set, dtypes and shapes are exactly what the config implies.
    fn check_tensor_set(&self) -> Result<(), Error> {
        let config = &self.config;
        let mut expected: BTreeMap<String, (Vec<usize>, &'static str)> = BTreeMap::new();
        for (role, shape) in float_tensors(config) {
            expected.insert(role.hf_name(), (shape, "float"));
        }
        for layer in 0..config.num_hidden_layers {
            for proj in Projection::ALL {
                let s = proj.shape(config);
                match self.format {
                    CheckpointFormat::Packed => {
                        expected
                            .insert(proj.hf_weight_name(layer), (vec![s.rows / 4, s.cols], "U8"));
                        expected.insert(proj.hf_scale_name(layer), (vec![1], "scale"));
                    }
                    CheckpointFormat::Master => {
                        expected
                            .insert(proj.hf_weight_name(layer), (vec![s.rows, s.cols], "float"));
                    }
                }
            }
        }
        for (name, e) in &self.tensors {
            let Some((shape, kind)) = expected.get(name) else {
                return Err(Error::UnexpectedTensor {
                    path: self.file_of(name),
                    tensor: name.clone(),
                });
            };
            let dtype_ok = match *kind {
                "U8" => e.dtype == Dtype::U8,
                _ => is_float(e.dtype),
            };
            if !dtype_ok {
                return Err(Error::WrongDtype {
                    path: self.file_of(name),
                    tensor: name.clone(),
                    expected: if *kind == "U8" {
                        "U8"
                    } else {
                        "BF16, F16 or F32"
                    }
                    .into(),
                    found: format!("{:?}", e.dtype),
                });
            }
            // A scalar `weight_scale` (shape []) is accepted as well as [1].
            let shape_ok = e.shape == *shape || (*kind == "scale" && e.shape.is_empty());
            if !shape_ok {
                return Err(Error::WrongShape {
                    path: self.file_of(name),
                    tensor: name.clone(),
                    expected: shape.clone(),
                    found: e.shape.clone(),
                });
            }
        }
        if let Some(name) = expected.keys().find(|n| !self.tensors.contains_key(*n)) {
            return Err(Error::MissingTensor {
                path: self.dir.clone(),
                tensor: name.clone(),
            });
        }
        Ok(())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed `config.json`.
    pub fn config(&self) -> &HfConfig {
        &self.config
    }

    /// Packed or master.
    pub fn format(&self) -> CheckpointFormat {
        self.format
    }

    /// What `weight_scale` means (from `quantization_config.linear_class`; only meaningful for
    /// packed checkpoints).
    pub fn scale_convention(&self) -> ScaleConvention {
        self.convention
    }

    /// The safetensors files, in the order they were opened.
    pub fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    /// All tensor names, sorted.
    pub fn tensor_names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// All tensors, sorted by name.
    pub fn tensors(&self) -> impl Iterator<Item = HfTensor<'_>> {
        self.tensors
            .iter()
            .filter_map(|(name, e)| self.view(name, e))
    }

    fn view<'a>(&'a self, name: &'a str, e: &'a Entry) -> Option<HfTensor<'a>> {
        let shard = self.shards.get(e.file)?;
        Some(HfTensor {
            name,
            role: e.role,
            dtype: e.dtype,
            shape: &e.shape,
            data: shard.map.get(e.range.clone())?,
            file: &shard.path,
        })
    }

    /// One tensor by HF name.
    pub fn tensor(&self, name: &str) -> Result<HfTensor<'_>, Error> {
        self.tensors
            .get_key_value(name)
            .and_then(|(k, e)| self.view(k, e))
            .ok_or_else(|| Error::MissingTensor {
                path: self.dir.clone(),
                tensor: name.to_string(),
            })
    }

    /// Lets the kernel drop the resident pages of tensor `name` (re-read from the file if
    /// touched again); converters call it once a tensor is consumed. Unknown names are ignored.
    pub fn release(&self, name: &str) {
        let Some(e) = self.tensors.get(name) else {
            return;
        };
        let Some(shard) = self.shards.get(e.file) else {
            return;
        };
        let end = e.range.end.min(shard.map.len());
        if e.range.start >= end {
            return;
        }
        // SAFETY: a read-only, file-backed mapping: MADV_DONTNEED drops clean pages only, which
        // the kernel reads again from the file on the next access, so no data changes.
        let _ = unsafe {
            shard.map.unchecked_advise_range(
                memmap2::UncheckedAdvice::DontNeed,
                e.range.start,
                end - e.range.start,
            )
        };
    }

    /// How this (packed) checkpoint stores a projection's `weight_scale`.
    pub fn scale_format(&self, layer: usize, proj: Projection) -> Result<HfScale, Error> {
        let t = self.tensor(&proj.hf_scale_name(layer))?;
        let dtype = scale_dtype(t.dtype).ok_or_else(|| Error::WrongDtype {
            path: t.file.to_path_buf(),
            tensor: t.name.to_string(),
            expected: "BF16, F16 or F32".into(),
            found: format!("{:?}", t.dtype),
        })?;
        Ok(HfScale {
            dtype,
            convention: self.convention,
        })
    }

    /// The canonical ternary tensor of one projection: packed checkpoints are unpacked and their
    /// `weight_scale` turned into the multiplier (`rounding` applies to bitlinear reciprocals);
    /// master checkpoints are ternarized with the canonical absmean rule ([`master`]).
    pub fn projection(
        &self,
        layer: usize,
        proj: Projection,
        rounding: ScaleRounding,
    ) -> Result<TernaryTensor, Error> {
        let shape = proj.shape(&self.config);
        let weight = self.tensor(&proj.hf_weight_name(layer))?;
        let layout_err = |t: &HfTensor<'_>| {
            let path = t.file.to_path_buf();
            let tensor = t.name.to_string();
            move |source| Error::Layout {
                path,
                tensor,
                source,
            }
        };
        match self.format {
            CheckpointFormat::Packed => {
                let scale_tensor = self.tensor(&proj.hf_scale_name(layer))?;
                let scale = self.scale_format(layer, proj)?;
                let multiplier = scale
                    .decode(scale_tensor.data, rounding)
                    .map_err(layout_err(&scale_tensor))?;
                let t = HF_PACKED
                    .decode(weight.data, shape)
                    .map_err(layout_err(&weight))?;
                Ok(t.with_scale(multiplier))
            }
            CheckpointFormat::Master => {
                let values = weight.to_f32()?;
                master::ternarize(&values, shape)
                    .map(|(t, _)| t)
                    .map_err(|e| match e {
                        crate::layout::Error::NotTernary { index, value, .. } => Error::NonFinite {
                            path: weight.file.to_path_buf(),
                            tensor: weight.name.to_string(),
                            index,
                            value: value as f32,
                        },
                        other => layout_err(&weight)(other),
                    })
            }
        }
    }

    /// Shape of a projection (M × K) as the config implies it.
    pub fn projection_shape(&self, proj: Projection) -> Shape {
        proj.shape(&self.config)
    }

    /// Decodes every projection (in parallel) and checks every float tensor for NaN/Inf: the
    /// full value-level validation the open step does not do.
    pub fn validate(&self) -> Result<(), Error> {
        let jobs: Vec<(usize, Projection)> = (0..self.config.num_hidden_layers)
            .flat_map(|l| Projection::ALL.into_iter().map(move |p| (l, p)))
            .collect();
        jobs.par_iter()
            .try_for_each(|&(l, p)| self.projection(l, p, ScaleRounding::Nearest).map(drop))?;
        for t in self.tensors() {
            if matches!(
                t.role,
                TensorRole::Projection { .. } | TensorRole::ProjectionScale { .. }
            ) {
                continue;
            }
            if let Some((index, value)) = first_non_finite(t.dtype, t.data) {
                return Err(Error::NonFinite {
                    path: t.file.to_path_buf(),
                    tensor: t.name.to_string(),
                    index,
                    value,
                });
            }
        }
        Ok(())
    }
}

/// Reads the shard index: the list of files and the name → file map.
#[allow(clippy::type_complexity)]
fn read_index(
    dir: &Path,
    index_path: &Path,
) -> Result<(Vec<PathBuf>, Option<BTreeMap<String, PathBuf>>), Error> {
    let text = std::fs::read(index_path).map_err(|e| Error::io(index_path, e))?;
    let json: serde_json::Value = serde_json::from_slice(&text).map_err(|source| Error::Json {
        path: index_path.to_path_buf(),
        source,
    })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::MissingField {
            path: index_path.to_path_buf(),
            field: "weight_map".into(),
        })?;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut weight_map = BTreeMap::new();
    for (name, file) in map {
        let file_name = file.as_str().ok_or_else(|| Error::BadField {
            path: index_path.to_path_buf(),
            field: format!("weight_map.{name}"),
            expected: "a file name".into(),
            found: file.to_string(),
        })?;
        let rel = Path::new(file_name);
        if file_name.is_empty() || !rel.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(Error::BadField {
                path: index_path.to_path_buf(),
                field: format!("weight_map.{name}"),
                expected: "a file name inside the checkpoint directory".into(),
                found: file.to_string(),
            });
        }
        let path = dir.join(rel);
        if !files.contains(&path) {
            files.push(path.clone());
        }
        weight_map.insert(name.clone(), path);
    }
    files.sort();
    Ok((files, Some(weight_map)))
}
