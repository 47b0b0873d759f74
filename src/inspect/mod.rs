//! `bitnet-inspect`: what is in a GGUF file, whether it is valid, which runtimes can load it.
//!
//! Invariant: inspecting never modifies anything and reads only the header unless statistics or
//! data validation are requested. [`inspect_bytes`] builds a [`Report`]; the binary only parses
//! arguments, prints, and maps the outcome to an exit code.

mod checks;
pub mod diff;
mod glob;
mod json;
mod report;
mod stats;

pub use checks::{Finding, Level, LoadVerdict, Loadability};
pub use diff::{diff, DiffReport};
pub use glob::glob_match;
pub use report::{InspectOptions, Report, TensorRow, TokenizerSummary, Totals, TypeCount};
pub use stats::TensorStats;

use crate::gguf::{self, Contiguity, GgufFile, ReadOptions};

/// Parses `bytes` strictly; if that fails, retries leniently (no contiguity, nested arrays
/// parsed, architecture optional) so that a structurally odd but readable file still gets a
/// report whose findings carry the strict error. Fails only if even the lenient parse fails.
pub fn parse_for_inspection(
    bytes: &[u8],
) -> Result<(GgufFile<'_>, Option<gguf::Error>), gguf::Error> {
    match GgufFile::parse(bytes) {
        Ok(f) => Ok((f, None)),
        Err(strict) => {
            let lenient = ReadOptions {
                contiguity: Contiguity::Lenient,
                allow_nested_arrays: true,
                require_architecture: false,
                ..ReadOptions::default()
            };
            match GgufFile::parse_with(bytes, &lenient) {
                Ok(f) => Ok((f, Some(strict))),
                Err(_) => Err(strict),
            }
        }
    }
}

/// Builds the report for a file's bytes. `path` is only used as a label.
pub fn inspect_bytes(
    path: &str,
    bytes: &[u8],
    options: &InspectOptions,
) -> Result<Report, gguf::Error> {
    let (file, strict_error) = parse_for_inspection(bytes)?;
    Ok(Report::build(path, &file, strict_error.as_ref(), options))
}
