//! Per-tensor ternary statistics (`--stats`). One match arm per layout in [`codec_for`].

use crate::gguf::{keys, GgmlType, GgufFile, TensorInfo};
use crate::layout::i2s::I2S;
use crate::layout::tl1::Tl1;
use crate::layout::tl2::Tl2;
use crate::layout::tq1_0::TQ1_0;
use crate::layout::tq2_0::TQ2_0;
use crate::layout::{KernelConfig, Shape, TernaryCodec, TilingResolver};
use serde::Serialize;

/// Statistics of one ternary tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TensorStats {
    /// Tensor name.
    pub name: String,
    /// Layout name.
    pub layout: String,
    /// Count of -1 codes.
    pub minus: u64,
    /// Count of 0 codes.
    pub zero: u64,
    /// Count of +1 codes.
    pub plus: u64,
    /// Per-tensor scale.
    pub scale: f32,
    /// Mean of |code × scale|.
    pub absmean: f64,
    /// Why decoding failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The tiling resolver for a file: its recorded `bitnet.tl.kernel_config`, else the rule.
pub fn tiling_resolver(file: &GgufFile<'_>) -> TilingResolver {
    let recorded = file
        .get_str(keys::BITNET_TL_KERNEL_CONFIG)
        .ok()
        .flatten()
        .and_then(|text| KernelConfig::parse(text).ok());
    TilingResolver::new(recorded, None)
}

/// The codec that decodes a tensor of `ty` and `shape`, if this tool has one. TL1/TL2 need the
/// tiling (see [`tiling_resolver`]).
fn codec_for(
    tiling: &TilingResolver,
    ty: GgmlType,
    shape: Shape,
) -> Option<Result<Box<dyn TernaryCodec>, String>> {
    let boxed = |c: Box<dyn TernaryCodec>| Some(Ok(c));
    match ty {
        GgmlType::I2_S => boxed(Box::new(I2S)),
        GgmlType::TQ1_0 => boxed(Box::new(TQ1_0)),
        GgmlType::TQ2_0 => boxed(Box::new(TQ2_0)),
        GgmlType::TL1 => Some(
            tiling
                .tl1(shape)
                .map(|t| Box::new(Tl1::new(t)) as Box<dyn TernaryCodec>)
                .map_err(|e| e.to_string()),
        ),
        GgmlType::TL2 => Some(
            tiling
                .tl2(shape)
                .map(|t| Box::new(Tl2::new(t)) as Box<dyn TernaryCodec>)
                .map_err(|e| e.to_string()),
        ),
        _ => None,
    }
}

/// Statistics for `t`, or `None` if it is not a ternary tensor this tool can decode.
pub fn tensor_stats(
    file: &GgufFile<'_>,
    tiling: &TilingResolver,
    t: &TensorInfo,
) -> Option<TensorStats> {
    let (rows, cols) = t.matrix_shape()?;
    let shape = match (usize::try_from(rows), usize::try_from(cols)) {
        (Ok(r), Ok(c)) => Some(Shape::new(r, c)),
        _ => None,
    };
    let codec = codec_for(tiling, t.ggml_type, shape.unwrap_or(Shape::new(0, 0)))?;
    let mut out = TensorStats {
        name: t.name.clone(),
        layout: t.ggml_type.name().to_owned(),
        minus: 0,
        zero: 0,
        plus: 0,
        scale: 0.0,
        absmean: 0.0,
        error: None,
    };
    let decoded = shape
        .ok_or_else(|| "shape does not fit in memory".to_owned())
        .and_then(|shape| {
            let codec = codec?;
            let data = file.tensor_data(t).map_err(|e| e.to_string())?;
            codec.decode(data, shape).map_err(|e| e.to_string())
        });
    match decoded {
        Ok(tensor) => {
            let [minus, zero, plus] = tensor.code_counts();
            out.minus = minus as u64;
            out.zero = zero as u64;
            out.plus = plus as u64;
            out.scale = tensor.scale();
            out.absmean = tensor.dequantized_absmean();
        }
        Err(e) => out.error = Some(e),
    }
    Some(out)
}
