//! `config.json` of a BitNet b1.58 checkpoint (`spec/hf-formats.md` §1.4).
//!
//! Both spellings transformers writes are accepted: `rope_theta` or `rope_parameters.rope_theta`,
//! `torch_dtype` or `dtype`. `head_dim` is optional (default `hidden_size / num_attention_heads`).

use super::Error;
use crate::layout::hf_packed::ScaleConvention;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// `quantization_config.quantization_mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuantizationMode {
    /// Weights stored packed with `weight_scale` (the packed checkpoint).
    Offline,
    /// Weights stored as floats, ternarized on every forward (the bf16 master).
    Online,
}

impl QuantizationMode {
    /// The config string.
    pub fn as_str(self) -> &'static str {
        match self {
            QuantizationMode::Offline => "offline",
            QuantizationMode::Online => "online",
        }
    }
}

/// The BitNet `quantization_config`.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizationConfig {
    /// `quant_method` (always `"bitnet"`).
    pub quant_method: String,
    /// Scale meaning from `linear_class` (absent = `bitlinear` = [`ScaleConvention::Divide`]).
    pub convention: ScaleConvention,
    /// Whether `linear_class` was present in the file.
    pub linear_class_present: bool,
    /// `quantization_mode` (absent = offline, transformers' default).
    pub mode: QuantizationMode,
    /// `modules_to_not_convert`, if given.
    pub modules_to_not_convert: Option<Vec<String>>,
}

/// The fields of `config.json` the tools use, plus the raw JSON for round trips.
#[derive(Debug, Clone, PartialEq)]
pub struct HfConfig {
    /// Where it was read from (empty for built configs).
    pub path: PathBuf,
    /// `architectures` (e.g. `["BitNetForCausalLM"]`).
    pub architectures: Vec<String>,
    /// `model_type` (`"bitnet"`).
    pub model_type: String,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size` (H).
    pub hidden_size: usize,
    /// `intermediate_size` (F).
    pub intermediate_size: usize,
    /// `num_hidden_layers`.
    pub num_hidden_layers: usize,
    /// `num_attention_heads`.
    pub num_attention_heads: usize,
    /// `num_key_value_heads` (defaults to `num_attention_heads`).
    pub num_key_value_heads: usize,
    /// `head_dim` if the file has it.
    pub head_dim_field: Option<usize>,
    /// `max_position_embeddings`.
    pub max_position_embeddings: usize,
    /// `rms_norm_eps`.
    pub rms_norm_eps: f64,
    /// `rope_theta` or `rope_parameters.rope_theta`.
    pub rope_theta: f64,
    /// `tie_word_embeddings` (default true for BitNet).
    pub tie_word_embeddings: bool,
    /// `torch_dtype` or `dtype`, if present.
    pub dtype: Option<String>,
    /// `hidden_act` (`"relu2"`).
    pub hidden_act: String,
    /// `bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `eos_token_id` (a list in some configs; all ids kept).
    pub eos_token_ids: Vec<u32>,
    /// `quantization_config`, if present.
    pub quantization: Option<QuantizationConfig>,
    /// The whole JSON object as read.
    pub raw: Value,
}

fn bad(path: &Path, field: &str, expected: &str, found: &Value) -> Error {
    Error::BadField {
        path: path.to_path_buf(),
        field: field.to_string(),
        expected: expected.to_string(),
        found: found.to_string(),
    }
}

struct Fields<'a> {
    path: &'a Path,
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    fn usize_opt(&self, key: &str) -> Result<Option<usize>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| bad(self.path, key, "a non-negative integer", v)),
        }
    }

    fn usize(&self, key: &str) -> Result<usize, Error> {
        self.usize_opt(key)?.ok_or_else(|| self.missing(key))
    }

    fn positive(&self, key: &str) -> Result<usize, Error> {
        let n = self.usize(key)?;
        if n == 0 {
            return Err(bad(self.path, key, "a positive integer", &json!(0)));
        }
        Ok(n)
    }

    fn f64_opt(&self, key: &str) -> Result<Option<f64>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| bad(self.path, key, "a number", v)),
        }
    }

    fn str_opt(&self, key: &str) -> Result<Option<String>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(bad(self.path, key, "a string", v)),
        }
    }

    fn bool_opt(&self, key: &str) -> Result<Option<bool>, Error> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(bad(self.path, key, "true or false", v)),
        }
    }

    fn missing(&self, key: &str) -> Error {
        Error::MissingField {
            path: self.path.to_path_buf(),
            field: key.to_string(),
        }
    }
}

fn token_id(path: &Path, field: &str, v: &Value) -> Result<u32, Error> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| bad(path, field, "a token id", v))
}

impl HfConfig {
    /// Reads and validates `config.json`.
    pub fn read(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let raw: Value = serde_json::from_slice(&text).map_err(|source| Error::Json {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json(path, raw)
    }

    /// Validates a parsed `config.json` (`path` is only used in errors).
    pub fn from_json(path: &Path, raw: Value) -> Result<Self, Error> {
        let obj = raw
            .as_object()
            .ok_or_else(|| bad(path, "(root)", "a JSON object", &raw))?;
        let f = Fields { path, obj };
        let architectures = match f.get("architectures") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| bad(path, "architectures", "a list of strings", v))
                })
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(bad(path, "architectures", "a list of strings", v)),
        };
        let model_type = f
            .str_opt("model_type")?
            .ok_or_else(|| f.missing("model_type"))?;
        if model_type != "bitnet" {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("model_type `{model_type}` (only `bitnet` is supported)"),
            });
        }
        let hidden_act = f.str_opt("hidden_act")?.unwrap_or_else(|| "relu2".into());
        if hidden_act != "relu2" {
            return Err(Error::Unsupported {
                path: path.to_path_buf(),
                what: format!("hidden_act `{hidden_act}` (BitNet b1.58 uses relu2)"),
            });
        }
        let rope_theta = match f.f64_opt("rope_theta")? {
            Some(t) => t,
            None => match f.get("rope_parameters") {
                Some(Value::Object(p)) => {
                    let inner = Fields { path, obj: p };
                    if let Some(kind) = inner.str_opt("rope_type")? {
                        if kind != "default" {
                            return Err(Error::Unsupported {
                                path: path.to_path_buf(),
                                what: format!("rope_parameters.rope_type `{kind}`"),
                            });
                        }
                    }
                    inner
                        .f64_opt("rope_theta")?
                        .ok_or_else(|| f.missing("rope_parameters.rope_theta"))?
                }
                Some(v) => return Err(bad(path, "rope_parameters", "an object", v)),
                None => return Err(f.missing("rope_theta")),
            },
        };
        let dtype = match f.str_opt("torch_dtype")? {
            Some(d) => Some(d),
            None => f.str_opt("dtype")?,
        };
        let eos_token_ids = match f.get("eos_token_id") {
            None => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| token_id(path, "eos_token_id", v))
                .collect::<Result<_, _>>()?,
            Some(v) => vec![token_id(path, "eos_token_id", v)?],
        };
        let bos_token_id = f
            .get("bos_token_id")
            .map(|v| token_id(path, "bos_token_id", v))
            .transpose()?;
        let quantization = match f.get("quantization_config") {
            None => None,
            Some(Value::Object(q)) => Some(parse_quantization(path, q)?),
            Some(v) => return Err(bad(path, "quantization_config", "an object", v)),
        };
        let num_attention_heads = f.positive("num_attention_heads")?;
        let config = HfConfig {
            path: path.to_path_buf(),
            architectures,
            model_type,
            vocab_size: f.positive("vocab_size")?,
            hidden_size: f.positive("hidden_size")?,
            intermediate_size: f.positive("intermediate_size")?,
            num_hidden_layers: f.positive("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads: f
                .usize_opt("num_key_value_heads")?
                .unwrap_or(num_attention_heads),
            head_dim_field: f.usize_opt("head_dim")?,
            max_position_embeddings: f.positive("max_position_embeddings")?,
            rms_norm_eps: f
                .f64_opt("rms_norm_eps")?
                .ok_or_else(|| f.missing("rms_norm_eps"))?,
            rope_theta,
            tie_word_embeddings: f.bool_opt("tie_word_embeddings")?.unwrap_or(true),
            dtype,
            hidden_act,
            bos_token_id,
            eos_token_ids,
            quantization,
            raw,
        };
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), Error> {
        let contradiction = |what: &str, detail: String| Error::Contradiction {
            path: self.path.clone(),
            what: what.to_string(),
            detail,
        };
        if self.num_key_value_heads == 0 || self.num_attention_heads % self.num_key_value_heads != 0
        {
            return Err(contradiction(
                "num_key_value_heads",
                format!(
                    "{} does not divide num_attention_heads = {}",
                    self.num_key_value_heads, self.num_attention_heads
                ),
            ));
        }
        if self.head_dim_field.is_none() && self.hidden_size % self.num_attention_heads != 0 {
            return Err(contradiction(
                "hidden_size",
                format!(
                    "{} is not a multiple of num_attention_heads = {} and head_dim is absent",
                    self.hidden_size, self.num_attention_heads
                ),
            ));
        }
        if self.head_dim() == 0 || self.head_dim() % 2 != 0 {
            return Err(contradiction(
                "head_dim",
                format!("{} must be a positive even number (RoPE)", self.head_dim()),
            ));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(contradiction("rms_norm_eps", "must be positive".into()));
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(contradiction("rope_theta", "must be positive".into()));
        }
        // Every projection's output size must split into four row blocks.
        for (what, m) in [
            ("q_proj rows", self.q_rows()),
            ("k_proj rows", self.kv_rows()),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
        ] {
            if m % 4 != 0 {
                return Err(contradiction(what, format!("{m} is not a multiple of 4")));
            }
        }
        Ok(())
    }

    /// Head dimension: `head_dim` if present, else `hidden_size / num_attention_heads`.
    pub fn head_dim(&self) -> usize {
        self.head_dim_field
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Output features of q_proj (`num_attention_heads · head_dim`).
    pub fn q_rows(&self) -> usize {
        self.num_attention_heads * self.head_dim()
    }

    /// Output features of k_proj / v_proj (`num_key_value_heads · head_dim`).
    pub fn kv_rows(&self) -> usize {
        self.num_key_value_heads * self.head_dim()
    }

    /// Builds the config for a model (as the fixtures write it; `torch_dtype` bfloat16).
    pub fn to_json(&self, mode: QuantizationMode, convention: ScaleConvention) -> Value {
        let mut v = json!({
            "architectures": ["BitNetForCausalLM"],
            "attention_bias": false,
            "attention_dropout": 0.0,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": match self.eos_token_ids.as_slice() {
                [one] => json!(one),
                [] => Value::Null,
                many => json!(many),
            },
            "hidden_act": "relu2",
            "hidden_size": self.hidden_size,
            "initializer_range": 0.02,
            "intermediate_size": self.intermediate_size,
            "max_position_embeddings": self.max_position_embeddings,
            "model_type": "bitnet",
            "num_attention_heads": self.num_attention_heads,
            "num_hidden_layers": self.num_hidden_layers,
            "num_key_value_heads": self.num_key_value_heads,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_word_embeddings,
            "torch_dtype": "bfloat16",
            "use_cache": true,
            "vocab_size": self.vocab_size,
            "quantization_config": {
                "quant_method": "bitnet",
                "linear_class": convention.linear_class(),
                "quantization_mode": mode.as_str(),
            }
        });
        if let (Some(h), Some(obj)) = (self.head_dim_field, v.as_object_mut()) {
            obj.insert("head_dim".into(), json!(h));
        }
        v
    }
}

fn parse_quantization(path: &Path, q: &Map<String, Value>) -> Result<QuantizationConfig, Error> {
    let f = Fields { path, obj: q };
    let quant_method = f
        .str_opt("quant_method")?
        .ok_or_else(|| f.missing("quantization_config.quant_method"))?;
    if quant_method != "bitnet" {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: format!("quantization_config.quant_method `{quant_method}`"),
        });
    }
    let linear_class = f.str_opt("linear_class")?;
    let convention =
        ScaleConvention::from_linear_class(linear_class.as_deref()).ok_or_else(|| {
            bad(
                path,
                "quantization_config.linear_class",
                "\"bitlinear\" or \"autobitlinear\"",
                &json!(linear_class),
            )
        })?;
    let mode = match f.str_opt("quantization_mode")?.as_deref() {
        None | Some("offline") => QuantizationMode::Offline,
        Some("online") => QuantizationMode::Online,
        Some(other) => {
            return Err(bad(
                path,
                "quantization_config.quantization_mode",
                "\"offline\" or \"online\"",
                &json!(other),
            ))
        }
    };
    if convention == ScaleConvention::Divide && mode == QuantizationMode::Online {
        return Err(Error::Contradiction {
            path: path.to_path_buf(),
            what: "quantization_config".into(),
            detail: "quantization_mode `online` only exists for linear_class `autobitlinear`"
                .into(),
        });
    }
    if f.bool_opt("use_rms_norm")? == Some(true) {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            what: "quantization_config.use_rms_norm = true (an extra RMSNorm in every \
                   BitLinear; no BitNet b1.58 checkpoint uses it)"
                .into(),
        });
    }
    let modules_to_not_convert = match f.get("modules_to_not_convert") {
        None => None,
        Some(Value::Array(a)) => Some(
            a.iter()
                .map(|v| {
                    v.as_str().map(str::to_string).ok_or_else(|| {
                        bad(
                            path,
                            "quantization_config.modules_to_not_convert",
                            "strings",
                            v,
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(v) => {
            return Err(bad(
                path,
                "quantization_config.modules_to_not_convert",
                "a list of strings",
                v,
            ))
        }
    };
    Ok(QuantizationConfig {
        quant_method,
        convention,
        linear_class_present: linear_class.is_some(),
        mode,
        modules_to_not_convert,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({
            "model_type": "bitnet", "vocab_size": 512, "hidden_size": 256,
            "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
            "rope_theta": 500000.0, "torch_dtype": "bfloat16",
            "quantization_config": {"quant_method": "bitnet", "linear_class": "autobitlinear",
                                    "quantization_mode": "offline"}
        })
    }

    #[test]
    fn accepts_transformers_5_spellings() {
        let mut v = base();
        let o = v.as_object_mut().unwrap();
        o.remove("rope_theta");
        o.remove("torch_dtype");
        o.insert(
            "rope_parameters".into(),
            json!({"rope_theta": 10000.0, "rope_type": "default"}),
        );
        o.insert("dtype".into(), json!("float32"));
        let c = HfConfig::from_json(Path::new("config.json"), v).unwrap();
        assert_eq!(c.rope_theta, 10000.0);
        assert_eq!(c.dtype.as_deref(), Some("float32"));
        assert_eq!(c.head_dim(), 64);
    }

    #[test]
    fn linear_class_absent_means_divide() {
        let mut v = base();
        v["quantization_config"] = json!({"quant_method": "bitnet"});
        let c = HfConfig::from_json(Path::new("c"), v).unwrap();
        let q = c.quantization.unwrap();
        assert_eq!(q.convention, ScaleConvention::Divide);
        assert!(!q.linear_class_present);
        assert_eq!(q.mode, QuantizationMode::Offline);
    }

    #[test]
    fn use_rms_norm_is_rejected() {
        let mut v = base();
        v["quantization_config"]["use_rms_norm"] = json!(true);
        assert!(matches!(
            HfConfig::from_json(Path::new("c"), v),
            Err(Error::Unsupported { .. })
        ));
    }

    #[test]
    fn missing_field_is_named() {
        let mut v = base();
        v.as_object_mut().unwrap().remove("hidden_size");
        match HfConfig::from_json(Path::new("c"), v) {
            Err(Error::MissingField { field, .. }) => assert_eq!(field, "hidden_size"),
            other => panic!("{other:?}"),
        }
    }
}
