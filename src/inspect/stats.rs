//! Per-tensor ternary statistics (`--stats`). One match arm per layout in [`codec_for`]; TL1/TL2
//! and TQ layouts slot in there when their codecs land.

use crate::gguf::{GgmlType, GgufFile, TensorInfo};
use crate::layout::i2s::I2S;
use crate::layout::{Shape, TernaryCodec};
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

/// The codec that decodes tensors of `ty` found in `file`, if this tool has one.
fn codec_for(_file: &GgufFile<'_>, ty: GgmlType) -> Option<&'static dyn TernaryCodec> {
    match ty {
        GgmlType::I2_S => Some(&I2S),
        // TL1/TL2 need the tiling from `bitnet.tl1.tiling` / `bitnet.tl2.tiling`; TQ1_0/TQ2_0
        // need their codecs. Add one arm each here.
        _ => None,
    }
}

/// Statistics for `t`, or `None` if it is not a ternary tensor this tool can decode.
pub fn tensor_stats(file: &GgufFile<'_>, t: &TensorInfo) -> Option<TensorStats> {
    let codec = codec_for(file, t.ggml_type)?;
    let (rows, cols) = t.matrix_shape()?;
    let mut out = TensorStats {
        name: t.name.clone(),
        layout: codec.name().to_owned(),
        minus: 0,
        zero: 0,
        plus: 0,
        scale: 0.0,
        absmean: 0.0,
        error: None,
    };
    let decoded = match (usize::try_from(rows), usize::try_from(cols)) {
        (Ok(r), Ok(c)) => file
            .tensor_data(t)
            .map_err(|e| e.to_string())
            .and_then(|data| {
                codec
                    .decode(data, Shape::new(r, c))
                    .map_err(|e| e.to_string())
            }),
        _ => Err("shape does not fit in memory".to_owned()),
    };
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
