//! Loading a BitNet b1.58 GGUF: hyper-parameters, zero-copy weight views, the tokenizer.
//!
//! Weights stay in the caller's memory map: every projection is a kernel weight view over the
//! tensor's bytes, chosen by the tensor's GGML type. Only the small norm vectors are copied
//! (to f32).

use super::error::Error;
use super::kernels::{
    DenseFormat, F16Weights, F32Weights, I2sWeights, Kernels, Q4_0Weights, Q4_0x8Weights,
    Q6_KWeights, Q8KRows, Q8Rows, Q8_0Weights, QuantizedRows, Tl1Weights, Tl2Weights, Tq1_0Weights,
    Tq2_0Weights,
};
use super::repack::Repack;
use super::tokenizer::{GgufVocab, Tokenizer};
use crate::gguf::{keys, GgmlType, GgufFile, Value};
use crate::layout::kernel_config::KernelConfig;
use crate::layout::{BlockQuant, Shape};
use crate::layout::{TilingOrigin, TilingResolver};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

pub use crate::gguf::keys::{
    BITNET_TL_KERNEL_CONFIG as KERNEL_CONFIG_KEY, BITNET_TL_TILING_SOURCE as TILING_SOURCE_KEY,
};

/// Hyper-parameters of the graph, from the file's metadata (`bitnet-arch.md` §3).
#[derive(Debug, Clone, PartialEq)]
pub struct HyperParams {
    /// `general.architecture` (`bitnet-b1.58` or `bitnet-25`).
    pub architecture: String,
    /// Vocabulary size (rows of `token_embd`).
    pub vocab_size: usize,
    /// Residual width d.
    pub embedding_length: usize,
    /// Number of decoder layers.
    pub block_count: usize,
    /// FFN width.
    pub feed_forward_length: usize,
    /// Query heads.
    pub head_count: usize,
    /// Key/value heads.
    pub head_count_kv: usize,
    /// Width of one head (`embedding_length / head_count`).
    pub head_dim: usize,
    /// Rotated dimensions per head.
    pub rope_dims: usize,
    /// RoPE base frequency.
    pub rope_theta: f32,
    /// RMSNorm epsilon.
    pub rms_eps: f32,
    /// Training context (the default KV-cache capacity).
    pub context_length: usize,
}

impl HyperParams {
    /// Width of the query projection output (`head_count * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.head_count * self.head_dim
    }

    /// Width of the key/value projection outputs.
    pub fn kv_dim(&self) -> usize {
        self.head_count_kv * self.head_dim
    }

    /// Reads and checks the hyper-parameters; `warnings` receives the defaults taken.
    pub fn from_gguf(file: &GgufFile<'_>, warnings: &mut Vec<String>) -> Result<Self, Error> {
        let arch = file.get_str(keys::ARCHITECTURE)?.ok_or(Error::MissingKey {
            key: keys::ARCHITECTURE.into(),
            why: "the graph to run",
        })?;
        match arch {
            keys::ARCH_BITNET_B158 | keys::ARCH_BITNET_25 => {}
            keys::ARCH_BITNET => {
                return Err(Error::UnsupportedArchitecture {
                    arch: arch.into(),
                    reason: "`bitnet` is llama.cpp's graph for the 2024 community models \
                             (SiLU-gated FFN, per-tensor scale tensors), a different network \
                             from BitNet b1.58 (`bitnet-b1.58` / `bitnet-25`: relu² FFN with \
                             sub-norms); this runtime implements only the latter"
                        .into(),
                })
            }
            other => {
                return Err(Error::UnsupportedArchitecture {
                    arch: other.into(),
                    reason: "supported: bitnet-b1.58, bitnet-25".into(),
                })
            }
        }
        let key = |suffix: &str| keys::arch_key(arch, suffix);
        let required = |suffix: &str, why: &'static str| -> Result<usize, Error> {
            let k = key(suffix);
            let v = file.get_u32(&k)?.ok_or_else(|| Error::MissingKey {
                key: k.clone(),
                why,
            })?;
            if v == 0 {
                return Err(Error::BadHyperParameter {
                    key: k,
                    value: v.to_string(),
                    rule: "must be positive".into(),
                });
            }
            Ok(v as usize)
        };
        let embedding_length = required(keys::EMBEDDING_LENGTH, "the residual width")?;
        let block_count = required(keys::BLOCK_COUNT, "the layer count")?;
        let feed_forward_length = required(keys::FEED_FORWARD_LENGTH, "the FFN width")?;
        let head_count = required(keys::HEAD_COUNT, "the attention heads")?;
        let bad = |suffix: &str, value: String, rule: &str| Error::BadHyperParameter {
            key: key(suffix),
            value,
            rule: rule.into(),
        };
        if embedding_length % head_count != 0 {
            return Err(bad(
                keys::HEAD_COUNT,
                head_count.to_string(),
                "must divide embedding_length",
            ));
        }
        let head_dim = embedding_length / head_count;
        let head_count_kv = match file.get_u32(&key(keys::HEAD_COUNT_KV))? {
            Some(v) => v as usize,
            None => {
                warnings.push(format!(
                    "{} is missing: using head_count = {head_count} (llama.cpp's default)",
                    key(keys::HEAD_COUNT_KV)
                ));
                head_count
            }
        };
        if head_count_kv == 0 || head_count % head_count_kv != 0 {
            return Err(bad(
                keys::HEAD_COUNT_KV,
                head_count_kv.to_string(),
                "must be positive and divide head_count",
            ));
        }
        let rope_dims = match file.get_u32(&key(keys::ROPE_DIMENSION_COUNT))? {
            Some(v) => v as usize,
            None => head_dim,
        };
        if rope_dims == 0 || rope_dims > head_dim || rope_dims % 2 != 0 {
            return Err(bad(
                keys::ROPE_DIMENSION_COUNT,
                rope_dims.to_string(),
                "must be even and at most the head dim",
            ));
        }
        let rope_theta = match file.get_f32(&key(keys::ROPE_FREQ_BASE))? {
            Some(v) if v.is_finite() && v > 0.0 => v,
            Some(v) => {
                return Err(bad(
                    keys::ROPE_FREQ_BASE,
                    v.to_string(),
                    "must be finite and positive",
                ))
            }
            None => {
                warnings.push(format!(
                    "{} is missing: using 10000 as llama.cpp does (BitNet b1.58 2B-4T was \
                     trained with 500000; logits will differ from the trained model)",
                    key(keys::ROPE_FREQ_BASE)
                ));
                10000.0
            }
        };
        let rms_eps = file
            .get_f32(&key(keys::RMS_EPSILON))?
            .ok_or_else(|| Error::MissingKey {
                key: key(keys::RMS_EPSILON),
                why: "the RMSNorm epsilon (required by llama.cpp for this architecture)",
            })?;
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(bad(
                keys::RMS_EPSILON,
                rms_eps.to_string(),
                "must be finite and non-negative",
            ));
        }
        let context_length = match file.get_u32(&key(keys::CONTEXT_LENGTH))? {
            Some(v) if v > 0 => v as usize,
            _ => {
                warnings.push(format!(
                    "{} is missing: assuming 4096",
                    key(keys::CONTEXT_LENGTH)
                ));
                4096
            }
        };
        let embd = file
            .tensor("token_embd.weight")
            .ok_or(Error::MissingTensor {
                name: "token_embd.weight".into(),
            })?;
        let vocab_size = match embd.dims.as_slice() {
            [k, v] if *k as usize == embedding_length && *v > 0 => *v as usize,
            _ => {
                return Err(Error::TensorDims {
                    name: embd.name.clone(),
                    expected: vec![embedding_length as u64, 0],
                    found: embd.dims.clone(),
                })
            }
        };
        if let Some(v) = file.get_u32(&key(keys::VOCAB_SIZE))? {
            if v as usize != vocab_size {
                warnings.push(format!(
                    "{} = {v} but token_embd has {vocab_size} rows: using {vocab_size}",
                    key(keys::VOCAB_SIZE)
                ));
            }
        }
        Ok(Self {
            architecture: arch.into(),
            vocab_size,
            embedding_length,
            block_count,
            feed_forward_length,
            head_count,
            head_count_kv,
            head_dim,
            rope_dims,
            rope_theta,
            rms_eps,
            context_length,
        })
    }
}

/// A dense matrix in one of the float or 8-bit types the embedding/lm_head may have.
#[derive(Debug, Clone, Copy)]
pub struct DenseMatrix<'a> {
    ggml_type: GgmlType,
    bytes: &'a [u8],
    shape: Shape,
    /// For Q4_0: the same matrix with its rows interleaved by 8 ([`Q4_0x8Weights`]), made at
    /// load by `--repack`; the matmul reads it instead of `bytes` (same outputs).
    interleaved: Option<&'a [u8]>,
}

impl<'a> DenseMatrix<'a> {
    /// Views `bytes` as a `shape` matrix of `ggml_type` (F32, F16, BF16, Q8_0, Q6_K or Q4_0).
    pub fn new(
        name: &str,
        ggml_type: GgmlType,
        bytes: &'a [u8],
        shape: Shape,
    ) -> Result<Self, Error> {
        let numel = shape.rows.checked_mul(shape.cols);
        let need = match ggml_type {
            GgmlType::F32 => numel.and_then(|n| n.checked_mul(4)),
            GgmlType::F16 | GgmlType::BF16 => numel.and_then(|n| n.checked_mul(2)),
            other => BlockQuant::for_ggml_type(other).and_then(|q| q.byte_len(shape).ok()),
        };
        match need {
            Some(n) if bytes.len() >= n && shape.cols > 0 => Ok(Self {
                ggml_type,
                bytes: &bytes[..n],
                shape,
                interleaved: None,
            }),
            _ => Err(Error::UnsupportedType {
                name: name.into(),
                ggml_type: ggml_type.name(),
                role:
                    "as a dense matrix (F32, F16, BF16, or Q8_0/Q6_K/Q4_0 with whole blocks per row, and enough bytes)",
            }),
        }
    }

    /// Logical shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// GGML type.
    pub fn ggml_type(&self) -> GgmlType {
        self.ggml_type
    }

    /// The matrix's bytes in its GGML type.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// This Q4_0 matrix, multiplied from `interleaved` (its [`Q4_0x8Weights::interleave`]d
    /// copy) instead of its own bytes. Rows are still read from the original bytes.
    pub fn with_interleaved(self, interleaved: &'a [u8]) -> Result<Self, Error> {
        if self.ggml_type != GgmlType::Q4_0 {
            return Err(Error::Invalid(format!(
                "only Q4_0 matrices have an interleaved copy, not {}",
                self.ggml_type.name()
            )));
        }
        Q4_0x8Weights::new(interleaved, self.shape)?;
        Ok(Self {
            interleaved: Some(interleaved),
            ..self
        })
    }

    /// The bytes of row `r` in the matrix's type: K values, or K / block values blocks (`new`
    /// accepted only whole-block rows). Panics for `r` ≥ M.
    pub fn row_bytes(&self, r: usize) -> &'a [u8] {
        let k = self.shape.cols;
        let len = match self.ggml_type {
            GgmlType::F32 => k * 4,
            GgmlType::F16 | GgmlType::BF16 => k * 2,
            other => BlockQuant::for_ggml_type(other)
                .map_or(0, |q| k / q.block_values() * q.block_bytes()),
        };
        &self.bytes[r * len..(r + 1) * len]
    }

    /// Row `r` converted to f32 (exact for F32/F16/BF16; the dequantized values for Q8_0,
    /// Q6_K and Q4_0). `out.len()` = K.
    pub fn row_to_f32(&self, r: usize, out: &mut [f32]) {
        let row = self.row_bytes(r);
        match self.ggml_type {
            GgmlType::F32 => {
                for (o, c) in out.iter_mut().zip(row.chunks_exact(4)) {
                    *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            GgmlType::F16 => {
                // Through `half`'s slice conversion (F16C when the CPU has it), from a stack
                // buffer per 256 values instead of a heap copy of every row.
                let mut halves = [f16::ZERO; 256];
                let k = self.shape.cols;
                for (bytes, out) in row.chunks(2 * halves.len()).zip(out[..k].chunks_mut(256)) {
                    for (h, c) in halves.iter_mut().zip(bytes.chunks_exact(2)) {
                        *h = f16::from_le_bytes([c[0], c[1]]);
                    }
                    halves[..out.len()].convert_to_f32_slice(out);
                }
            }
            GgmlType::BF16 => {
                for (o, c) in out.iter_mut().zip(row.chunks_exact(2)) {
                    *o = bf16::from_le_bytes([c[0], c[1]]).to_f32();
                }
            }
            other => {
                // `new` accepted only whole-block rows of a block type, so this cannot fail.
                if let Some(q) = BlockQuant::for_ggml_type(other) {
                    let _ = q.dequantize_into(row, out);
                }
            }
        }
    }

    /// `y[t*M + r] = Σ_k w[r][k] · x[t*K + k]` with ggml's operand handling: for F16 and BF16
    /// weights the activations are first rounded to that type (ggml's `vec_dot_type`), for
    /// Q8_0 and Q4_0 they are quantized to Q8_0 blocks and for Q6_K to Q8_K blocks; F32 uses
    /// them as they are. F16/F32/Q8_0/Q6_K/Q4_0 run on the SIMD kernels; BF16 is scalar code
    /// here.
    pub fn matmul(&self, kernels: &Kernels, x: &[f32], y: &mut [f32]) -> Result<(), Error> {
        let (m, k) = (self.shape.rows, self.shape.cols);
        if x.len() % k != 0 || y.len() != x.len() / k * m {
            return Err(Error::Invalid(format!(
                "dense matmul: {} activations and {} outputs do not fit a {m}x{k} matrix",
                x.len(),
                y.len()
            )));
        }
        match self.ggml_type {
            GgmlType::F32 => kernels.f32(&F32Weights::new(self.bytes, self.shape)?, x, y)?,
            GgmlType::F16 => {
                let xr = self.float_operand(x).unwrap_or_default();
                kernels.f16(&F16Weights::new(self.bytes, self.shape)?, &xr, y)?
            }
            GgmlType::BF16 => {
                let xr = self.float_operand(x).unwrap_or_default();
                let mut row = vec![0f32; k];
                for r in 0..m {
                    self.row_to_f32(r, &mut row);
                    for (t, xt) in xr.chunks_exact(k).enumerate() {
                        y[t * m + r] = bf16_row_dot(&row, xt);
                    }
                }
            }
            GgmlType::Q6_K => {
                let mut xq = Q8KRows::new();
                xq.quantize(x, k)?;
                kernels.q6_k(&Q6_KWeights::new(self.bytes, self.shape)?, &xq, y)?
            }
            GgmlType::Q4_0 => {
                let mut xq = Q8Rows::new();
                xq.quantize(x, k)?;
                match self.interleaved {
                    Some(x8) => kernels.q4_0x8(&Q4_0x8Weights::new(x8, self.shape)?, &xq, y)?,
                    None => kernels.q4_0(&Q4_0Weights::new(self.bytes, self.shape)?, &xq, y)?,
                }
            }
            _ => {
                let mut xq = Q8Rows::new();
                xq.quantize(x, k)?;
                kernels.q8_0(&Q8_0Weights::new(self.bytes, self.shape)?, &xq, y)?
            }
        }
        Ok(())
    }

    /// For a float matrix (F32, F16, BF16), the activations as [`DenseMatrix::matmul`]
    /// multiplies them: rounded to F16 or BF16 for those weights (ggml's `vec_dot_type`), as
    /// they are for F32. `None` for the block-quantized types.
    pub fn float_operand(&self, x: &[f32]) -> Option<Vec<f32>> {
        match self.ggml_type {
            GgmlType::F32 => Some(x.to_vec()),
            GgmlType::F16 => Some(x.iter().map(|&v| f16::from_f32(v).to_f32()).collect()),
            GgmlType::BF16 => Some(x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect()),
            _ => None,
        }
    }

    /// `out[i]` = the output of row `rows[i]` for one activation row that
    /// [`DenseMatrix::float_operand`] already rounded: the same bits [`DenseMatrix::matmul`]
    /// gives for that row (each row's sum is a function of the row alone). Float types only.
    pub fn float_row_dots(
        &self,
        kernels: &Kernels,
        rows: &[usize],
        operand: &[f32],
        out: &mut [f32],
    ) -> Result<(), Error> {
        let (m, k) = (self.shape.rows, self.shape.cols);
        if operand.len() != k || out.len() != rows.len() || rows.iter().any(|&r| r >= m) {
            return Err(Error::Invalid(format!(
                "row dots: {} activations, {} rows (largest {:?}) and {} outputs do not fit a \
                 {m}x{k} matrix",
                operand.len(),
                rows.len(),
                rows.iter().max(),
                out.len()
            )));
        }
        let format = match self.ggml_type {
            GgmlType::F16 => DenseFormat::F16,
            GgmlType::F32 => DenseFormat::F32,
            GgmlType::BF16 => {
                let mut row = vec![0f32; k];
                for (&r, o) in rows.iter().zip(out.iter_mut()) {
                    self.row_to_f32(r, &mut row);
                    *o = bf16_row_dot(&row, operand);
                }
                return Ok(());
            }
            other => {
                return Err(Error::Invalid(format!(
                    "row dots need a float matrix, not {}",
                    other.name()
                )))
            }
        };
        for (&r, o) in rows.iter().zip(out.iter_mut()) {
            let row = self.row_bytes(r);
            kernels.dense_dots(format, row, row.len(), operand, std::slice::from_mut(o))?;
        }
        Ok(())
    }
}

/// One BF16 row (as f32) against rounded activations: an in-order sum of products, the BF16
/// matmul's arithmetic.
fn bf16_row_dot(row: &[f32], operand: &[f32]) -> f32 {
    row.iter().zip(operand).map(|(a, b)| a * b).sum()
}

/// One projection's weights, as the kernel for its GGML type sees them.
#[derive(Debug, Clone, Copy)]
pub enum Projection<'a> {
    /// bitnet.cpp I2_S.
    I2s(I2sWeights<'a>),
    /// bitnet.cpp TL1, with its tiling.
    Tl1(Tl1Weights<'a>),
    /// bitnet.cpp TL2, with its tiling.
    Tl2(Tl2Weights<'a>),
    /// ggml TQ1_0.
    Tq1_0(Tq1_0Weights<'a>),
    /// ggml TQ2_0.
    Tq2_0(Tq2_0Weights<'a>),
    /// Dense F32/F16/BF16 (or Q8_0/Q6_K/Q4_0) weights: multiplied with the dequantized int8
    /// activations `q / sa`, so a dense file computes what the ternary ones do up to float
    /// rounding.
    Dense(DenseMatrix<'a>),
}

impl Projection<'_> {
    /// Logical shape (M rows of K).
    pub fn shape(&self) -> Shape {
        match self {
            Projection::I2s(w) => w.shape(),
            Projection::Tl1(w) => w.shape(),
            Projection::Tl2(w) => w.shape(),
            Projection::Tq1_0(w) => w.shape(),
            Projection::Tq2_0(w) => w.shape(),
            Projection::Dense(d) => d.shape(),
        }
    }

    /// GGML type name of the weights.
    pub fn type_name(&self) -> &'static str {
        match self {
            Projection::I2s(_) => "I2_S",
            Projection::Tl1(_) => "TL1",
            Projection::Tl2(_) => "TL2",
            Projection::Tq1_0(_) => "TQ1_0",
            Projection::Tq2_0(_) => "TQ2_0",
            Projection::Dense(d) => d.ggml_type.name(),
        }
    }

    /// `y[t*M + r]` for the quantized activation rows `x`; `scratch` holds the dequantized
    /// activations for dense weights.
    pub fn matmul(
        &self,
        kernels: &Kernels,
        x: &QuantizedRows,
        scratch: &mut Vec<f32>,
        y: &mut [f32],
    ) -> Result<(), Error> {
        match self {
            Projection::I2s(w) => kernels.i2s(w, x, y)?,
            Projection::Tl1(w) => kernels.tl1(w, x, y)?,
            Projection::Tl2(w) => kernels.tl2(w, x, y)?,
            Projection::Tq1_0(w) => kernels.tq1_0(w, x, y)?,
            Projection::Tq2_0(w) => kernels.tq2_0(w, x, y)?,
            Projection::Dense(d) => {
                let k = x.k();
                scratch.clear();
                for (t, &sa) in x.scales().iter().enumerate() {
                    scratch.extend(x.row(t).iter().map(|&q| f32::from(q) / sa));
                }
                debug_assert_eq!(scratch.len(), x.rows() * k);
                // Dense projections take the activations as they are (no f16 rounding), so
                // they differ from the ternary kernels by float rounding only.
                match d.ggml_type {
                    GgmlType::F32 => {
                        kernels.f32(&F32Weights::new(d.bytes, d.shape)?, scratch, y)?
                    }
                    GgmlType::F16 => {
                        kernels.f16(&F16Weights::new(d.bytes, d.shape)?, scratch, y)?
                    }
                    _ => d.matmul(kernels, scratch, y)?,
                }
            }
        }
        Ok(())
    }
}

/// The weights of one decoder layer.
#[derive(Debug, Clone)]
pub struct Layer<'a> {
    /// `blk.N.attn_norm.weight`.
    pub attn_norm: Vec<f32>,
    /// `blk.N.attn_q.weight`.
    pub attn_q: Projection<'a>,
    /// `blk.N.attn_k.weight`.
    pub attn_k: Projection<'a>,
    /// `blk.N.attn_v.weight`.
    pub attn_v: Projection<'a>,
    /// `blk.N.attn_sub_norm.weight`.
    pub attn_sub_norm: Vec<f32>,
    /// `blk.N.attn_output.weight`.
    pub attn_output: Projection<'a>,
    /// `blk.N.ffn_norm.weight`.
    pub ffn_norm: Vec<f32>,
    /// `blk.N.ffn_gate.weight`.
    pub ffn_gate: Projection<'a>,
    /// `blk.N.ffn_up.weight`.
    pub ffn_up: Projection<'a>,
    /// `blk.N.ffn_sub_norm.weight`.
    pub ffn_sub_norm: Vec<f32>,
    /// `blk.N.ffn_down.weight`.
    pub ffn_down: Projection<'a>,
}

impl<'a> Layer<'a> {
    /// The seven projections with their tensor-name roles (`blk.N.<role>.weight`).
    pub fn projections(&self) -> [(&'static str, &Projection<'a>); 7] {
        [
            ("attn_q", &self.attn_q),
            ("attn_k", &self.attn_k),
            ("attn_v", &self.attn_v),
            ("attn_output", &self.attn_output),
            ("ffn_gate", &self.ffn_gate),
            ("ffn_up", &self.ffn_up),
            ("ffn_down", &self.ffn_down),
        ]
    }
}

/// How to load a model.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// A `kernel_config.ini` to use for TL1/TL2 tensors when the file records no tiling.
    pub kernel_config: Option<KernelConfig>,
}

/// A loaded model: hyper-parameters and weight views into the file's bytes.
#[derive(Debug, Clone)]
pub struct Model<'a> {
    /// Hyper-parameters.
    pub hparams: HyperParams,
    /// `token_embd.weight`.
    pub token_embd: DenseMatrix<'a>,
    /// The lm_head: `output.weight` if present, else `token_embd` (tied).
    pub output: DenseMatrix<'a>,
    /// Whether `output` is `token_embd`.
    pub tied_output: bool,
    /// `output_norm.weight`.
    pub output_norm: Vec<f32>,
    /// The decoder layers.
    pub layers: Vec<Layer<'a>>,
    /// Where the TL tiling came from, when the file has TL tensors.
    pub tiling_source: Option<String>,
    /// Defaults taken and oddities found while loading (for the user to see).
    pub warnings: Vec<String>,
}

impl<'a> Model<'a> {
    /// Loads the graph of `file` (`bitnet-b1.58` or `bitnet-25`), zero-copy.
    pub fn load(file: &GgufFile<'a>, opts: &LoadOptions) -> Result<Self, Error> {
        Self::load_with(file, opts, None)
    }

    /// As [`Model::load`], with the projections in `repack` (made by [`Repack::build`] from
    /// the same file) read from their I2_S copies and a Q4_0 lm_head from its interleaved copy:
    /// same outputs, faster kernels.
    pub fn load_repacked(
        file: &GgufFile<'a>,
        opts: &LoadOptions,
        repack: &'a Repack,
    ) -> Result<Self, Error> {
        Self::load_with(file, opts, Some(repack))
    }

    fn load_with(
        file: &GgufFile<'a>,
        opts: &LoadOptions,
        repack: Option<&'a Repack>,
    ) -> Result<Self, Error> {
        let mut warnings = Vec::new();
        let hp = HyperParams::from_gguf(file, &mut warnings)?;
        let (d, ff, vocab) = (hp.embedding_length, hp.feed_forward_length, hp.vocab_size);
        let recorded = match file.get_str(KERNEL_CONFIG_KEY)? {
            Some(text) => Some(KernelConfig::parse(text)?),
            None => None,
        };
        let tiling = TilingResolver::new(recorded, opts.kernel_config.clone());
        let mut tiling_notes: Vec<String> = Vec::new();
        let mut projection = |name: String, k: usize, m: usize| -> Result<Projection<'a>, Error> {
            let (info, bytes) = tensor(file, &name, &[k as u64, m as u64])?;
            let shape = Shape::new(m, k);
            if let Some(i2s) = repack.and_then(|r| r.get(&name)) {
                return Ok(Projection::I2s(I2sWeights::new(i2s, shape)?));
            }
            Ok(match info {
                GgmlType::I2_S => Projection::I2s(I2sWeights::new(bytes, shape)?),
                GgmlType::TQ1_0 => Projection::Tq1_0(Tq1_0Weights::new(bytes, shape)?),
                GgmlType::TQ2_0 => Projection::Tq2_0(Tq2_0Weights::new(bytes, shape)?),
                GgmlType::TL1 => {
                    let t = tiling.tl1(shape)?;
                    note_tiling(
                        &mut tiling_notes,
                        "TL1",
                        shape,
                        &t.to_string(),
                        tiling.origin(),
                    );
                    Projection::Tl1(Tl1Weights::new(bytes, shape, t)?)
                }
                GgmlType::TL2 => {
                    let t = tiling.tl2(shape)?;
                    note_tiling(
                        &mut tiling_notes,
                        "TL2",
                        shape,
                        &t.to_string(),
                        tiling.origin(),
                    );
                    Projection::Tl2(Tl2Weights::new(bytes, shape, t)?)
                }
                GgmlType::F32
                | GgmlType::F16
                | GgmlType::BF16
                | GgmlType::Q8_0
                | GgmlType::Q6_K
                | GgmlType::Q4_0 => Projection::Dense(DenseMatrix::new(&name, info, bytes, shape)?),
                other => return Err(Error::UnsupportedType {
                    name,
                    ggml_type: other.name(),
                    role:
                        "as a projection (I2_S, TL1, TL2, TQ1_0, TQ2_0, F32, F16, BF16, Q8_0, Q6_K, Q4_0)",
                }),
            })
        };
        let mut layers = Vec::with_capacity(hp.block_count.min(4096));
        for l in 0..hp.block_count {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            layers.push(Layer {
                attn_norm: norm(file, &n("attn_norm"), d)?,
                attn_q: projection(n("attn_q"), d, hp.q_dim())?,
                attn_k: projection(n("attn_k"), d, hp.kv_dim())?,
                attn_v: projection(n("attn_v"), d, hp.kv_dim())?,
                attn_sub_norm: norm(file, &n("attn_sub_norm"), hp.q_dim())?,
                attn_output: projection(n("attn_output"), hp.q_dim(), d)?,
                ffn_norm: norm(file, &n("ffn_norm"), d)?,
                ffn_gate: projection(n("ffn_gate"), d, ff)?,
                ffn_up: projection(n("ffn_up"), d, ff)?,
                ffn_sub_norm: norm(file, &n("ffn_sub_norm"), ff)?,
                ffn_down: projection(n("ffn_down"), ff, d)?,
            });
        }
        let shape = Shape::new(vocab, d);
        let (ty, bytes) = tensor(file, "token_embd.weight", &[d as u64, vocab as u64])?;
        let token_embd = DenseMatrix::new("token_embd.weight", ty, bytes, shape)?;
        let (mut output, tied_output) = if file.tensor("output.weight").is_some() {
            let (ty, bytes) = tensor(file, "output.weight", &[d as u64, vocab as u64])?;
            (DenseMatrix::new("output.weight", ty, bytes, shape)?, false)
        } else {
            (token_embd, true)
        };
        if let Some(head) = repack.and_then(|r| r.head()) {
            output = output.with_interleaved(head)?;
        }
        let output_norm = norm(file, "output_norm.weight", d)?;
        let tiling_source = if tiling_notes.is_empty() {
            None
        } else {
            Some(tiling_notes.join("; "))
        };
        Ok(Self {
            hparams: hp,
            token_embd,
            output,
            tied_output,
            output_norm,
            layers,
            tiling_source,
            warnings,
        })
    }

    /// The GGML type names of the projections, counted (e.g. `"I2_S x14"`).
    pub fn projection_types(&self) -> String {
        let mut counts: Vec<(&'static str, usize)> = Vec::new();
        for l in &self.layers {
            for p in [
                &l.attn_q,
                &l.attn_k,
                &l.attn_v,
                &l.attn_output,
                &l.ffn_gate,
                &l.ffn_up,
                &l.ffn_down,
            ] {
                match counts.iter_mut().find(|(n, _)| *n == p.type_name()) {
                    Some((_, c)) => *c += 1,
                    None => counts.push((p.type_name(), 1)),
                }
            }
        }
        counts
            .iter()
            .map(|(n, c)| format!("{n} x{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn note_tiling(
    notes: &mut Vec<String>,
    layout: &str,
    shape: Shape,
    tiling: &str,
    from: TilingOrigin,
) {
    let line = format!("{layout} {shape}: {tiling} from {from}");
    if !notes.contains(&line) {
        notes.push(line);
    }
}

/// The type and bytes of tensor `name`, checking its dims.
fn tensor<'a>(
    file: &GgufFile<'a>,
    name: &str,
    dims: &[u64],
) -> Result<(GgmlType, &'a [u8]), Error> {
    let info = file
        .tensor(name)
        .ok_or_else(|| Error::MissingTensor { name: name.into() })?;
    if info.dims != dims {
        return Err(Error::TensorDims {
            name: name.into(),
            expected: dims.to_vec(),
            found: info.dims.clone(),
        });
    }
    Ok((info.ggml_type, file.tensor_data(info)?))
}

/// A norm weight vector of length `n` (F32, F16 or BF16), as f32.
fn norm(file: &GgufFile<'_>, name: &str, n: usize) -> Result<Vec<f32>, Error> {
    let (ty, bytes) = tensor(file, name, &[n as u64])?;
    match ty {
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            let m = DenseMatrix::new(name, ty, bytes, Shape::new(1, n))?;
            let mut out = vec![0f32; n];
            m.row_to_f32(0, &mut out);
            Ok(out)
        }
        other => Err(Error::UnsupportedType {
            name: name.into(),
            ggml_type: other.name(),
            role: "as a norm weight (F32, F16, BF16)",
        }),
    }
}

/// Builds the tokenizer from the file's `tokenizer.ggml.*` metadata. The end-of-turn token is
/// `tokenizer.ggml.eot_token_id`, else the token spelled `<|eot_id|>` (as llama.cpp finds it).
/// `add_bos` is the `tokenizer.ggml.add_bos_token` flag, else true for the LLaMA-3 pre-tokenizer
/// names (`llama-bpe`, `llama3`, `llama-v3`, as llama.cpp defaults), else false.
pub fn tokenizer_from_gguf(file: &GgufFile<'_>) -> Result<Tokenizer, Error> {
    let model = file.get_str(keys::TOKENIZER_MODEL)?;
    if model != Some("gpt2") {
        return Err(Error::NoTokenizer(format!(
            "{} is {model:?}; only the byte-level BPE model \"gpt2\" is supported",
            keys::TOKENIZER_MODEL
        )));
    }
    let strings = |key: &str| -> Result<Vec<String>, Error> {
        Ok(match file.get_array(key)? {
            Some(a) => a.strings().map(|s| s.to_string_lossy()).collect(),
            None => Vec::new(),
        })
    };
    let tokens = strings(keys::TOKENS)?;
    if tokens.is_empty() {
        return Err(Error::NoTokenizer(format!(
            "{} is missing or empty",
            keys::TOKENS
        )));
    }
    let merges = strings(keys::MERGES)?;
    let token_types: Vec<i32> = match file.get_array(keys::TOKEN_TYPE)? {
        Some(a) => a
            .iter()
            .map(|v| match v {
                Value::I32(x) => x,
                other => other
                    .as_integer()
                    .and_then(|x| i32::try_from(x).ok())
                    .unwrap_or(-1),
            })
            .collect(),
        None => Vec::new(),
    };
    let eot_id = match file.get_u32(keys::EOT_TOKEN_ID)? {
        Some(id) => Some(id),
        None => tokens
            .iter()
            .position(|t| t == "<|eot_id|>")
            .and_then(|i| u32::try_from(i).ok()),
    };
    let pre = file.get_str(keys::TOKENIZER_PRE)?;
    let add_bos = match file.get_bool(keys::ADD_BOS_TOKEN)? {
        Some(b) => b,
        None => matches!(pre, Some("llama-bpe" | "llama3" | "llama-v3")),
    };
    let vocab = GgufVocab {
        tokens,
        token_types,
        merges,
        bos_id: file.get_u32(keys::BOS_TOKEN_ID)?,
        eos_id: file.get_u32(keys::EOS_TOKEN_ID)?,
        eot_id,
        add_bos,
    };
    Ok(Tokenizer::from_gguf_vocab(&vocab)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dense(ty: GgmlType, rows: &[Vec<f32>]) -> Vec<u8> {
        let mut out = Vec::new();
        for row in rows {
            match ty {
                GgmlType::BF16 => {
                    out.extend(row.iter().flat_map(|&v| bf16::from_f32(v).to_le_bytes()))
                }
                GgmlType::F16 => {
                    out.extend(row.iter().flat_map(|&v| f16::from_f32(v).to_le_bytes()))
                }
                GgmlType::Q8_0 | GgmlType::Q6_K | GgmlType::Q4_0 => BlockQuant::for_ggml_type(ty)
                    .unwrap()
                    .quantize_into(row, &mut out)
                    .unwrap(),
                _ => out.extend(row.iter().flat_map(|&v| v.to_le_bytes())),
            }
        }
        out
    }

    #[test]
    fn every_dense_type_computes_the_same_product_up_to_its_rounding() {
        const K: usize = 256;
        let rows: Vec<Vec<f32>> = (0..3)
            .map(|r| (0..K).map(|k| ((r * K + k) as f32 * 0.37).sin()).collect())
            .collect();
        let x: Vec<f32> = (0..2 * K).map(|k| (k as f32 * 0.11).cos()).collect();
        let exact: Vec<f32> = (0..2)
            .flat_map(|t| {
                let rows = &rows;
                let x = &x;
                (0..3).map(move |r| rows[r].iter().zip(&x[t * K..]).map(|(a, b)| a * b).sum())
            })
            .collect();
        let kernels = Kernels::new(1, None).unwrap();
        // (type, product tolerance, element tolerance: half a quantization step and then some)
        for (ty, tol, elem_tol) in [
            (GgmlType::F32, 1e-3, 0.02),
            (GgmlType::F16, 0.05, 0.02),
            (GgmlType::BF16, 0.2, 0.02),
            (GgmlType::Q8_0, 0.2, 0.02),
            (GgmlType::Q6_K, 0.4, 0.02),
            (GgmlType::Q4_0, 1.0, 0.07),
        ] {
            let bytes = dense(ty, &rows);
            let m = DenseMatrix::new("w", ty, &bytes, Shape::new(3, K)).unwrap();
            let mut y = vec![0f32; 6];
            m.matmul(&kernels, &x, &mut y).unwrap();
            for (a, b) in y.iter().zip(&exact) {
                assert!((a - b).abs() < tol, "{ty:?}: {a} vs {b}");
            }
            let mut row = vec![0f32; K];
            m.row_to_f32(1, &mut row);
            assert!((row[5] - rows[1][5]).abs() < elem_tol, "{ty:?}");
        }
        assert!(DenseMatrix::new("w", GgmlType::Q6_K, &[0; 630], Shape::new(3, 128)).is_err());
        assert!(DenseMatrix::new("w", GgmlType::Q8_0, &[0; 10], Shape::new(3, 64)).is_err());
        assert!(DenseMatrix::new("w", GgmlType::I2_S, &[0; 1000], Shape::new(3, 64)).is_err());
    }
}
