//! The inspect report: built from a parsed file, printed for people ([`std::fmt::Display`] via
//! [`Report::to_text`]) or serialized as JSON (schema in `docs/inspect.md`).

use super::checks::{findings, loadability, Finding, Level, Loadability};
use super::glob::glob_match;
use super::json::{type_name, value_json, value_text, ARRAY_PREVIEW};
use super::stats::{tensor_stats, TensorStats};
use crate::gguf::{self, keys, DialectReport, GgufFile, Value};
use serde::Serialize;
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};

/// What to compute and show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InspectOptions {
    /// Show the full metadata section in the text output.
    pub show_metadata: bool,
    /// Do not shorten long arrays (text and JSON).
    pub full_arrays: bool,
    /// Only list tensors whose name matches this glob.
    pub tensor_glob: Option<String>,
    /// Decode ternary tensors and report code counts, scale and absmean.
    pub stats: bool,
    /// Run payload checks (V19/V20), reading every tensor.
    pub validate_data: bool,
    /// Show the loadability section in the text output.
    pub show_loadable: bool,
    /// Show every finding including info-level ones (text output).
    pub show_all_findings: bool,
}

/// One tensor row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TensorRow {
    /// Name.
    pub name: String,
    /// Type name (`"I2_S"`).
    #[serde(rename = "type")]
    pub type_name: String,
    /// Numeric type id.
    pub type_id: u32,
    /// Dims in GGUF order (ne0 first).
    pub shape: Vec<u64>,
    /// Offset relative to the data section.
    pub offset: u64,
    /// Data bytes (loader rule).
    pub bytes: u64,
}

/// Count and bytes of one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TypeCount {
    /// Tensors.
    pub count: u64,
    /// Bytes.
    pub bytes: u64,
}

/// Tokenizer summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TokenizerSummary {
    /// `tokenizer.ggml.model`.
    pub model: Option<String>,
    /// `tokenizer.ggml.pre`.
    pub pre: Option<String>,
    /// Number of entries of `tokenizer.ggml.tokens`.
    pub vocab_size: Option<u64>,
    /// Number of entries of `tokenizer.ggml.merges`.
    pub merges: Option<u64>,
    /// Special token ids present (`bos`, `eos`, `padding`, `unknown`, `eot`).
    pub special_ids: BTreeMap<String, Json>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos_token: Option<bool>,
    /// `tokenizer.chat_template` is present.
    pub chat_template: bool,
}

/// Totals over all tensors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Tensors.
    pub tensors: u64,
    /// Elements.
    pub elements: u64,
    /// Data bytes (unpadded).
    pub bytes: u64,
}

/// Everything `bitnet-inspect` knows about a file.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Path as given (callers may redact it).
    pub file: String,
    /// File size.
    pub file_size: u64,
    /// GGUF version.
    pub version: u32,
    /// Alignment in effect.
    pub alignment: u64,
    /// Absolute start of the data section.
    pub data_start: u64,
    /// `general.architecture`.
    pub architecture: Option<String>,
    /// `general.name`.
    pub name: Option<String>,
    /// Dialect detection.
    pub dialect: DialectReport,
    /// `<arch>.*` keys without the prefix, in file order.
    pub hyperparameters: Map<String, Json>,
    /// Tokenizer summary.
    pub tokenizer: TokenizerSummary,
    /// Every metadata value, in file order (arrays shortened unless `full_arrays`).
    pub metadata: Map<String, Json>,
    /// Type of every metadata value (`"UINT32"`, `"ARRAY[STRING]"`), in file order.
    pub metadata_types: Map<String, Json>,
    /// Tensors (filtered by the glob, if any), in file order.
    pub tensors: Vec<TensorRow>,
    /// Per type: count and bytes (all tensors).
    pub type_histogram: BTreeMap<String, TypeCount>,
    /// Totals (all tensors).
    pub totals: Totals,
    /// Errors, warnings and notes.
    pub findings: Vec<Finding>,
    /// Which runtimes can load the file.
    pub loadable: Vec<Loadability>,
    /// Per ternary tensor statistics (only with `stats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Vec<TensorStats>>,
    #[serde(skip)]
    options: InspectOptions,
    #[serde(skip)]
    metadata_text: Vec<(String, String, String)>,
}

impl Report {
    /// Builds the report. `structural_error` is the strict-mode error when the file was only
    /// readable in lenient mode; it becomes an error-level finding.
    pub fn build(
        path: &str,
        file: &GgufFile<'_>,
        structural_error: Option<&gguf::Error>,
        options: &InspectOptions,
    ) -> Report {
        let limit = if options.full_arrays {
            None
        } else {
            Some(ARRAY_PREVIEW)
        };
        let arch = file.architecture().map(str::to_owned);
        let prefix = arch.as_ref().map(|a| format!("{a}."));
        let mut hyperparameters = Map::new();
        let mut metadata = Map::new();
        let mut metadata_types = Map::new();
        let mut metadata_text = Vec::new();
        for e in file.metadata() {
            let j = value_json(&e.value, limit);
            if let Some(rest) = prefix.as_deref().and_then(|p| e.key.strip_prefix(p)) {
                hyperparameters.insert(rest.to_owned(), j.clone());
            }
            metadata.insert(e.key.to_owned(), j);
            metadata_types.insert(e.key.to_owned(), Json::String(type_name(&e.value)));
            metadata_text.push((
                e.key.to_owned(),
                type_name(&e.value),
                value_text(&e.value, limit),
            ));
        }

        let count = |key: &str| file.get(key).and_then(|v| v.as_array()).map(|a| a.len());
        let mut special_ids = BTreeMap::new();
        for (label, key) in [
            ("bos", keys::BOS_TOKEN_ID),
            ("eos", keys::EOS_TOKEN_ID),
            ("padding", keys::PADDING_TOKEN_ID),
            ("unknown", keys::UNKNOWN_TOKEN_ID),
            ("eot", keys::EOT_TOKEN_ID),
        ] {
            if let Some(v) = file.get(key) {
                special_ids.insert(label.to_owned(), value_json(v, Some(1)));
            }
        }
        let tokenizer = TokenizerSummary {
            model: file
                .get(keys::TOKENIZER_MODEL)
                .and_then(Value::as_str)
                .map(str::to_owned),
            pre: file
                .get(keys::TOKENIZER_PRE)
                .and_then(Value::as_str)
                .map(str::to_owned),
            vocab_size: count(keys::TOKENS),
            merges: count(keys::MERGES),
            special_ids,
            add_bos_token: match file.get(keys::ADD_BOS_TOKEN) {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
            chat_template: file.get(keys::CHAT_TEMPLATE).is_some(),
        };

        let mut type_histogram: BTreeMap<String, TypeCount> = BTreeMap::new();
        let mut totals = Totals::default();
        for t in file.tensors() {
            let entry = type_histogram
                .entry(t.ggml_type.name().to_owned())
                .or_default();
            entry.count += 1;
            entry.bytes += t.byte_len;
            totals.tensors += 1;
            totals.elements = totals.elements.saturating_add(t.element_count());
            totals.bytes = totals.bytes.saturating_add(t.byte_len);
        }
        let selected = |t: &&crate::gguf::TensorInfo| {
            options
                .tensor_glob
                .as_deref()
                .is_none_or(|g| glob_match(g, &t.name))
        };
        let tensors = file
            .tensors()
            .iter()
            .filter(selected)
            .map(|t| TensorRow {
                name: t.name.clone(),
                type_name: t.ggml_type.name().to_owned(),
                type_id: t.ggml_type.id(),
                shape: t.dims.clone(),
                offset: t.offset,
                bytes: t.byte_len,
            })
            .collect();

        let stats = options.stats.then(|| {
            use rayon::prelude::*;
            let tiling = super::stats::tiling_resolver(file);
            // Each tensor is decoded on its own; rayon keeps the file's order.
            file.tensors()
                .par_iter()
                .filter(|t| selected(t))
                .filter_map(|t| tensor_stats(file, &tiling, t))
                .collect()
        });

        Report {
            file: path.to_owned(),
            file_size: file.file_size(),
            version: file.version(),
            alignment: file.alignment(),
            data_start: file.data_start(),
            name: file
                .get(keys::NAME)
                .and_then(Value::as_str)
                .map(str::to_owned),
            architecture: arch,
            dialect: gguf::detect_dialect(file),
            hyperparameters,
            tokenizer,
            metadata,
            metadata_types,
            tensors,
            type_histogram,
            totals,
            findings: findings(file, structural_error, options.validate_data),
            loadable: loadability(file),
            stats,
            options: options.clone(),
            metadata_text,
        }
    }

    /// True if any finding is an error.
    pub fn has_errors(&self) -> bool {
        self.findings.iter().any(|f| f.level == Level::Error)
    }

    /// Replaces the file path (for snapshots).
    pub fn redact_path(&mut self, with: &str) {
        self.file = with.to_owned();
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
    }

    /// The text report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, s: &mut String) -> fmt::Result {
        writeln!(s, "file          {}", self.file)?;
        writeln!(
            s,
            "container     GGUF v{}, {} bytes, alignment {}, data at {}",
            self.version, self.file_size, self.alignment, self.data_start
        )?;
        writeln!(
            s,
            "architecture  {}{}",
            self.architecture.as_deref().unwrap_or("(none)"),
            self.name
                .as_deref()
                .map(|n| format!("  (name {n:?})"))
                .unwrap_or_default()
        )?;
        writeln!(s, "dialect       {}", self.dialect.verdict)?;
        for e in &self.dialect.evidence {
            let allows: Vec<_> = e.allows.iter().map(|d| d.name()).collect();
            writeln!(
                s,
                "              - {} -> {}{}",
                e.observation,
                allows.join(", "),
                if e.strong { "" } else { " (weak)" }
            )?;
        }

        if !self.hyperparameters.is_empty() {
            writeln!(s, "\nhyper-parameters")?;
            for (k, v) in &self.hyperparameters {
                writeln!(s, "  {k:<36} {v}")?;
            }
        }

        let t = &self.tokenizer;
        writeln!(s, "\ntokenizer")?;
        let opt = |x: &Option<String>| x.clone().unwrap_or_else(|| "(absent)".into());
        let num = |x: Option<u64>| {
            x.map(|n| n.to_string())
                .unwrap_or_else(|| "(absent)".into())
        };
        writeln!(s, "  model {}, pre {}", opt(&t.model), opt(&t.pre))?;
        writeln!(
            s,
            "  tokens {}, merges {}",
            num(t.vocab_size),
            num(t.merges)
        )?;
        let ids: Vec<String> = t
            .special_ids
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        writeln!(
            s,
            "  special ids: {}",
            if ids.is_empty() {
                "(none)".into()
            } else {
                ids.join(", ")
            }
        )?;
        writeln!(
            s,
            "  add_bos_token {}, chat template {}",
            t.add_bos_token
                .map(|b| b.to_string())
                .unwrap_or_else(|| "(absent)".into()),
            if t.chat_template { "present" } else { "absent" }
        )?;

        if self.options.show_metadata {
            writeln!(s, "\nmetadata ({} keys)", self.metadata_text.len())?;
            for (k, ty, v) in &self.metadata_text {
                writeln!(s, "  {k} [{ty}] = {v}")?;
            }
        }

        writeln!(
            s,
            "\ntensors ({} shown of {})",
            self.tensors.len(),
            self.totals.tensors
        )?;
        let width = self
            .tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        writeln!(
            s,
            "  {:<width$}  {:<6}  {:<16}  {:>12}  {:>12}",
            "name", "type", "shape", "bytes", "offset"
        )?;
        for r in &self.tensors {
            let shape: Vec<String> = r.shape.iter().map(u64::to_string).collect();
            writeln!(
                s,
                "  {:<width$}  {:<6}  {:<16}  {:>12}  {:>12}",
                r.name,
                r.type_name,
                format!("[{}]", shape.join(", ")),
                r.bytes,
                r.offset
            )?;
        }
        writeln!(s, "\ntypes")?;
        for (ty, c) in &self.type_histogram {
            writeln!(s, "  {ty:<6} {:>5} tensors {:>14} bytes", c.count, c.bytes)?;
        }
        writeln!(
            s,
            "  total  {:>5} tensors {:>14} bytes, {} elements",
            self.totals.tensors, self.totals.bytes, self.totals.elements
        )?;

        if let Some(stats) = &self.stats {
            writeln!(s, "\nternary statistics")?;
            if stats.is_empty() {
                writeln!(s, "  (no ternary tensors this tool can decode)")?;
            }
            for st in stats {
                match &st.error {
                    Some(e) => writeln!(s, "  {} [{}]: {e}", st.name, st.layout)?,
                    None => writeln!(
                        s,
                        "  {} [{}]: -1 {}, 0 {}, +1 {}, scale {}, absmean {:.6}",
                        st.name, st.layout, st.minus, st.zero, st.plus, st.scale, st.absmean
                    )?,
                }
            }
        }

        if self.options.show_loadable {
            writeln!(s, "\nloadable")?;
            for l in &self.loadable {
                writeln!(s, "  {:<13} {}", l.runtime.name(), l.verdict)?;
                for r in &l.reasons {
                    writeln!(s, "                - {r}")?;
                }
            }
        }

        let shown: Vec<&Finding> = self
            .findings
            .iter()
            .filter(|f| self.options.show_all_findings || f.level != Level::Info)
            .collect();
        writeln!(s, "\nfindings ({})", shown.len())?;
        for f in shown {
            writeln!(s, "  {}: {}", f.level, f.message)?;
        }
        Ok(())
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}
