//! `bitnet-inspect`: what is in a GGUF file, whether it is valid, which runtimes can load it.
//!
//! Exit codes: 0 success; 1 an error-level finding (`--validate`) or files differ (`diff`);
//! 2 a file cannot be read at all, or bad arguments.

use anyhow::Context;
use bitnet_gguf::gguf;
use bitnet_gguf::inspect::{self, InspectOptions};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bitnet-inspect",
    version,
    about = "Inspect, validate and compare GGUF files",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    report: ReportArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Compare two files: keys added/removed/changed, tensors differing in type, shape or data.
    Diff {
        /// First file.
        a: PathBuf,
        /// Second file.
        b: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct ReportArgs {
    /// The GGUF file.
    file: Option<PathBuf>,
    /// Print the complete report as JSON (schema: docs/inspect.md).
    #[arg(long)]
    json: bool,
    /// Show every metadata value (long arrays shortened unless --full).
    #[arg(long)]
    metadata: bool,
    /// Do not shorten long arrays.
    #[arg(long)]
    full: bool,
    /// Only list tensors whose name matches this glob (`*`, `?`).
    #[arg(long, value_name = "GLOB")]
    tensors: Option<String>,
    /// Decode ternary tensors: counts of -1/0/+1, scale, dequantized absmean.
    #[arg(long)]
    stats: bool,
    /// Exit 1 on any error-level finding (2 when the file cannot be read at all).
    #[arg(long)]
    validate: bool,
    /// With --validate: also check tensor data (NaN/Inf, I2_S code 3, I2_S scale).
    #[arg(long)]
    validate_data: bool,
    /// Say which of bitnet.cpp, ik_llama.cpp and llama.cpp mainline can load the file, and why not.
    #[arg(long)]
    loadable: bool,
}

/// Outcomes that map to exit codes; the mapping is in `main` only.
enum Outcome {
    Ok,
    Findings,
}

/// Failures that mean "cannot read".
struct Unreadable(anyhow::Error);

fn read(path: &Path) -> Result<gguf::MappedFile, Unreadable> {
    gguf::map_file(path).map_err(|e| Unreadable(e.into()))
}

fn run(cli: Cli) -> Result<Outcome, Unreadable> {
    if let Some(Command::Diff { a, b, json }) = cli.command {
        let (ma, mb) = (read(&a)?, read(&b)?);
        let fa = inspect::parse_for_inspection(&ma)
            .map_err(|e| Unreadable(anyhow::Error::new(e).context(a.display().to_string())))?
            .0;
        let fb = inspect::parse_for_inspection(&mb)
            .map_err(|e| Unreadable(anyhow::Error::new(e).context(b.display().to_string())))?
            .0;
        let d = inspect::diff(&fa, &fb);
        if json {
            println!("{}", d.to_json());
        } else {
            print!("{d}");
        }
        return Ok(if d.is_identical() {
            Outcome::Ok
        } else {
            Outcome::Findings
        });
    }
    let r = cli.report;
    let Some(path) = r.file else {
        return Err(Unreadable(anyhow::anyhow!("no file given (see --help)")));
    };
    let map = read(&path)?;
    let options = InspectOptions {
        show_metadata: r.metadata,
        full_arrays: r.full,
        tensor_glob: r.tensors,
        stats: r.stats,
        validate_data: r.validate_data,
        show_loadable: r.loadable,
        show_all_findings: r.validate,
    };
    let label = path.display().to_string();
    let report = inspect::inspect_bytes(&label, &map, &options)
        .with_context(|| label.clone())
        .map_err(Unreadable)?;
    if r.json {
        println!("{}", report.to_json());
    } else {
        print!("{report}");
    }
    Ok(if (r.validate || r.validate_data) && report.has_errors() {
        Outcome::Findings
    } else {
        Outcome::Ok
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Findings) => ExitCode::from(1),
        Err(Unreadable(err)) => {
            eprintln!("bitnet-inspect: {err:#}");
            ExitCode::from(2)
        }
    }
}
