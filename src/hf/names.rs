//! Tensor names: the HF → GGUF mapping table (`spec/bitnet-arch.md` §6) and the set of tensors a
//! checkpoint must hold.

use super::config::HfConfig;
use crate::layout::Shape;

/// The seven ternary projections of a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Projection {
    /// `self_attn.q_proj` → `attn_q`.
    Q,
    /// `self_attn.k_proj` → `attn_k`.
    K,
    /// `self_attn.v_proj` → `attn_v`.
    V,
    /// `self_attn.o_proj` → `attn_output`.
    O,
    /// `mlp.gate_proj` → `ffn_gate`.
    Gate,
    /// `mlp.up_proj` → `ffn_up`.
    Up,
    /// `mlp.down_proj` → `ffn_down`.
    Down,
}

impl Projection {
    /// All seven, in layer order.
    pub const ALL: [Projection; 7] = [
        Projection::Q,
        Projection::K,
        Projection::V,
        Projection::O,
        Projection::Gate,
        Projection::Up,
        Projection::Down,
    ];

    /// HF module path inside a layer (`"self_attn.q_proj"`).
    pub fn hf_module(self) -> &'static str {
        match self {
            Projection::Q => "self_attn.q_proj",
            Projection::K => "self_attn.k_proj",
            Projection::V => "self_attn.v_proj",
            Projection::O => "self_attn.o_proj",
            Projection::Gate => "mlp.gate_proj",
            Projection::Up => "mlp.up_proj",
            Projection::Down => "mlp.down_proj",
        }
    }

    /// GGUF tensor stem inside `blk.N.` (`"attn_q"`).
    pub fn gguf_stem(self) -> &'static str {
        match self {
            Projection::Q => "attn_q",
            Projection::K => "attn_k",
            Projection::V => "attn_v",
            Projection::O => "attn_output",
            Projection::Gate => "ffn_gate",
            Projection::Up => "ffn_up",
            Projection::Down => "ffn_down",
        }
    }

    /// Ternary shape (M output rows × K input columns) implied by the config.
    pub fn shape(self, config: &HfConfig) -> Shape {
        let h = config.hidden_size;
        let f = config.intermediate_size;
        match self {
            Projection::Q => Shape::new(config.q_rows(), h),
            Projection::K | Projection::V => Shape::new(config.kv_rows(), h),
            Projection::O => Shape::new(h, config.q_rows()),
            Projection::Gate | Projection::Up => Shape::new(f, h),
            Projection::Down => Shape::new(h, f),
        }
    }

    /// `model.layers.{layer}.{module}.weight`.
    pub fn hf_weight_name(self, layer: usize) -> String {
        format!("model.layers.{layer}.{}.weight", self.hf_module())
    }

    /// `model.layers.{layer}.{module}.weight_scale`.
    pub fn hf_scale_name(self, layer: usize) -> String {
        format!("model.layers.{layer}.{}.weight_scale", self.hf_module())
    }

    /// `blk.{layer}.{stem}.weight`.
    pub fn gguf_name(self, layer: usize) -> String {
        format!("blk.{layer}.{}.weight", self.gguf_stem())
    }
}

/// The four per-layer norms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LayerNorm {
    /// `input_layernorm` → `attn_norm` (size H).
    Input,
    /// `self_attn.attn_sub_norm` → `attn_sub_norm` (size H).
    AttnSub,
    /// `post_attention_layernorm` → `ffn_norm` (size H).
    PostAttention,
    /// `mlp.ffn_sub_norm` → `ffn_sub_norm` (size F).
    FfnSub,
}

impl LayerNorm {
    /// All four, in layer order.
    pub const ALL: [LayerNorm; 4] = [
        LayerNorm::Input,
        LayerNorm::AttnSub,
        LayerNorm::PostAttention,
        LayerNorm::FfnSub,
    ];

    /// HF module path inside a layer.
    pub fn hf_module(self) -> &'static str {
        match self {
            LayerNorm::Input => "input_layernorm",
            LayerNorm::AttnSub => "self_attn.attn_sub_norm",
            LayerNorm::PostAttention => "post_attention_layernorm",
            LayerNorm::FfnSub => "mlp.ffn_sub_norm",
        }
    }

    /// GGUF stem inside `blk.N.`.
    pub fn gguf_stem(self) -> &'static str {
        match self {
            LayerNorm::Input => "attn_norm",
            LayerNorm::AttnSub => "attn_sub_norm",
            LayerNorm::PostAttention => "ffn_norm",
            LayerNorm::FfnSub => "ffn_sub_norm",
        }
    }

    /// Length of the norm weight.
    pub fn len(self, config: &HfConfig) -> usize {
        match self {
            LayerNorm::FfnSub => config.intermediate_size,
            _ => config.hidden_size,
        }
    }

    /// `model.layers.{layer}.{module}.weight`.
    pub fn hf_name(self, layer: usize) -> String {
        format!("model.layers.{layer}.{}.weight", self.hf_module())
    }
}

/// What a tensor of a BitNet checkpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TensorRole {
    /// `model.embed_tokens.weight` `[vocab, H]`.
    Embedding,
    /// `model.norm.weight` `[H]`.
    OutputNorm,
    /// `lm_head.weight` `[vocab, H]` (only when embeddings are untied).
    LmHead,
    /// A per-layer norm.
    Norm {
        /// Layer index.
        layer: usize,
        /// Which norm.
        norm: LayerNorm,
    },
    /// A ternary projection's `weight` (U8 packed or float master).
    Projection {
        /// Layer index.
        layer: usize,
        /// Which projection.
        proj: Projection,
    },
    /// A packed projection's `weight_scale` `[1]`.
    ProjectionScale {
        /// Layer index.
        layer: usize,
        /// Which projection.
        proj: Projection,
    },
}

impl TensorRole {
    /// Parses an HF tensor name. Unknown names give `None`.
    pub fn from_hf_name(name: &str) -> Option<Self> {
        match name {
            "model.embed_tokens.weight" => return Some(TensorRole::Embedding),
            "model.norm.weight" => return Some(TensorRole::OutputNorm),
            "lm_head.weight" => return Some(TensorRole::LmHead),
            _ => {}
        }
        let rest = name.strip_prefix("model.layers.")?;
        let (layer, rest) = rest.split_once('.')?;
        if layer.is_empty() || !layer.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // Reject "01" and friends so every layer has exactly one spelling.
        if layer.len() > 1 && layer.starts_with('0') {
            return None;
        }
        let layer: usize = layer.parse().ok()?;
        for proj in Projection::ALL {
            if let Some(tail) = rest.strip_prefix(proj.hf_module()) {
                return match tail {
                    ".weight" => Some(TensorRole::Projection { layer, proj }),
                    ".weight_scale" => Some(TensorRole::ProjectionScale { layer, proj }),
                    _ => None,
                };
            }
        }
        LayerNorm::ALL
            .into_iter()
            .find(|norm| rest.strip_prefix(norm.hf_module()) == Some(".weight"))
            .map(|norm| TensorRole::Norm { layer, norm })
    }

    /// The HF tensor name.
    pub fn hf_name(self) -> String {
        match self {
            TensorRole::Embedding => "model.embed_tokens.weight".into(),
            TensorRole::OutputNorm => "model.norm.weight".into(),
            TensorRole::LmHead => "lm_head.weight".into(),
            TensorRole::Norm { layer, norm } => norm.hf_name(layer),
            TensorRole::Projection { layer, proj } => proj.hf_weight_name(layer),
            TensorRole::ProjectionScale { layer, proj } => proj.hf_scale_name(layer),
        }
    }

    /// The GGUF tensor name; `None` for `weight_scale` (folded into the ternary layout's scale).
    pub fn gguf_name(self) -> Option<String> {
        Some(match self {
            TensorRole::Embedding => "token_embd.weight".into(),
            TensorRole::OutputNorm => "output_norm.weight".into(),
            TensorRole::LmHead => "output.weight".into(),
            TensorRole::Norm { layer, norm } => format!("blk.{layer}.{}.weight", norm.gguf_stem()),
            TensorRole::Projection { layer, proj } => proj.gguf_name(layer),
            TensorRole::ProjectionScale { .. } => return None,
        })
    }

    /// Parses a GGUF tensor name of the BitNet b1.58 architecture.
    pub fn from_gguf_name(name: &str) -> Option<Self> {
        match name {
            "token_embd.weight" => return Some(TensorRole::Embedding),
            "output_norm.weight" => return Some(TensorRole::OutputNorm),
            "output.weight" => return Some(TensorRole::LmHead),
            _ => {}
        }
        let rest = name.strip_prefix("blk.")?;
        let (layer, rest) = rest.split_once('.')?;
        if layer.is_empty()
            || !layer.bytes().all(|b| b.is_ascii_digit())
            || (layer.len() > 1 && layer.starts_with('0'))
        {
            return None;
        }
        let layer: usize = layer.parse().ok()?;
        let stem = rest.strip_suffix(".weight")?;
        if let Some(proj) = Projection::ALL.into_iter().find(|p| p.gguf_stem() == stem) {
            return Some(TensorRole::Projection { layer, proj });
        }
        LayerNorm::ALL
            .into_iter()
            .find(|n| n.gguf_stem() == stem)
            .map(|norm| TensorRole::Norm { layer, norm })
    }

    /// Layer index, for per-layer tensors.
    pub fn layer(self) -> Option<usize> {
        match self {
            TensorRole::Norm { layer, .. }
            | TensorRole::Projection { layer, .. }
            | TensorRole::ProjectionScale { layer, .. } => Some(layer),
            _ => None,
        }
    }
}

/// HF name → GGUF name (`None` for `weight_scale` tensors and unknown names).
pub fn gguf_name(hf_name: &str) -> Option<String> {
    TensorRole::from_hf_name(hf_name)?.gguf_name()
}

/// GGUF name → HF name (`None` for unknown names).
pub fn hf_name(gguf_name: &str) -> Option<String> {
    TensorRole::from_gguf_name(gguf_name).map(TensorRole::hf_name)
}

/// Whether an HF tensor is one of the seven ternary projection weights.
pub fn is_ternary_projection(hf_name: &str) -> bool {
    matches!(
        TensorRole::from_hf_name(hf_name),
        Some(TensorRole::Projection { .. })
    )
}

/// Every non-projection tensor role of a model, with its HF shape (`[vocab, H]`, `[H]`, ...).
pub(crate) fn float_tensors(config: &HfConfig) -> Vec<(TensorRole, Vec<usize>)> {
    let mut out = vec![(
        TensorRole::Embedding,
        vec![config.vocab_size, config.hidden_size],
    )];
    if !config.tie_word_embeddings {
        out.push((
            TensorRole::LmHead,
            vec![config.vocab_size, config.hidden_size],
        ));
    }
    out.push((TensorRole::OutputNorm, vec![config.hidden_size]));
    for layer in 0..config.num_hidden_layers {
        for norm in LayerNorm::ALL {
            out.push((TensorRole::Norm { layer, norm }, vec![norm.len(config)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_table() {
        let pairs = [
            ("model.embed_tokens.weight", "token_embd.weight"),
            ("model.norm.weight", "output_norm.weight"),
            ("lm_head.weight", "output.weight"),
            (
                "model.layers.3.input_layernorm.weight",
                "blk.3.attn_norm.weight",
            ),
            (
                "model.layers.0.self_attn.q_proj.weight",
                "blk.0.attn_q.weight",
            ),
            (
                "model.layers.0.self_attn.k_proj.weight",
                "blk.0.attn_k.weight",
            ),
            (
                "model.layers.0.self_attn.v_proj.weight",
                "blk.0.attn_v.weight",
            ),
            (
                "model.layers.12.self_attn.o_proj.weight",
                "blk.12.attn_output.weight",
            ),
            (
                "model.layers.0.self_attn.attn_sub_norm.weight",
                "blk.0.attn_sub_norm.weight",
            ),
            (
                "model.layers.0.post_attention_layernorm.weight",
                "blk.0.ffn_norm.weight",
            ),
            (
                "model.layers.29.mlp.gate_proj.weight",
                "blk.29.ffn_gate.weight",
            ),
            ("model.layers.0.mlp.up_proj.weight", "blk.0.ffn_up.weight"),
            (
                "model.layers.0.mlp.down_proj.weight",
                "blk.0.ffn_down.weight",
            ),
            (
                "model.layers.0.mlp.ffn_sub_norm.weight",
                "blk.0.ffn_sub_norm.weight",
            ),
        ];
        for (hf, gg) in pairs {
            assert_eq!(gguf_name(hf).as_deref(), Some(gg), "{hf}");
            assert_eq!(hf_name(gg).as_deref(), Some(hf), "{gg}");
        }
        assert_eq!(gguf_name("model.layers.0.mlp.up_proj.weight_scale"), None);
        assert!(is_ternary_projection("model.layers.1.mlp.down_proj.weight"));
        assert!(!is_ternary_projection(
            "model.layers.1.mlp.ffn_sub_norm.weight"
        ));
        assert_eq!(
            TensorRole::from_hf_name("model.layers.01.mlp.up_proj.weight"),
            None
        );
        assert_eq!(
            TensorRole::from_hf_name("model.layers.0.mlp.up_proj.bias"),
            None
        );
    }
}
