//! `bitnet-convert`: conversions between HF checkpoints and GGUF layouts, and verification.
//!
//! Exit codes: 0 success, 1 `verify` (or `--verify`) found differences, 2 any other error.
use anyhow::Result;
use bitnet_gguf::convert::{self, ConvertReport, EmbedType, Profile, VerifyOptions};
use bitnet_gguf::hf::synth::{SynthOptions, SynthPreset};
use bitnet_gguf::hf::CheckpointFormat;
use bitnet_gguf::layout::LayoutKind;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bitnet-convert",
    version,
    about = "Convert BitNet b1.58 models between HF checkpoints and GGUF layouts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// HF checkpoint directory (packed or bf16 master) -> GGUF file.
    HfToGguf {
        /// Checkpoint directory.
        hf_dir: PathBuf,
        /// Output GGUF file.
        #[arg(short, long)]
        output: PathBuf,
        /// Projection layout: i2_s, tl1, tl2, tq1_0, tq2_0, f16, bf16, f32.
        #[arg(long, default_value = "i2_s", value_parser = parse_layout)]
        layout: LayoutKind,
        /// token_embd type: f16, f32, q8_0, q6_k or q4_0 (the last three lossy).
        #[arg(long, default_value = "f16", value_parser = parse_embed)]
        embed_type: EmbedType,
        /// bitnet.cpp kernel_config.ini with the TL1/TL2 tiling (else derived).
        #[arg(long)]
        kernel_config: Option<PathBuf>,
        /// general.name (default: the checkpoint directory's name).
        #[arg(long)]
        name: Option<String>,
        /// Leave out tokenizer.ggml.pre.
        #[arg(long)]
        no_pre: bool,
        /// Convert without tokenizer files (the output then cannot encode text).
        #[arg(long)]
        no_tokenizer: bool,
        /// Key set to imitate: official (the 2B-4T file) or hf-converter (convert-hf-to-gguf-bitnet.py).
        #[arg(long, default_value = "official", value_parser = parse_profile)]
        profile: Profile,
        /// Re-read the output and compare it with the input.
        #[arg(long)]
        verify: bool,
        /// No progress bar, no notes.
        #[arg(short, long)]
        quiet: bool,
    },
    /// GGUF file -> HF checkpoint directory.
    GgufToHf {
        /// Input GGUF file.
        gguf: PathBuf,
        /// Output directory (must not exist).
        #[arg(short, long)]
        output: PathBuf,
        /// packed (U8 + weight_scale) or master (bf16).
        #[arg(long, default_value = "packed", value_parser = parse_format)]
        format: CheckpointFormat,
        /// kernel_config.ini for TL inputs that record no tiling.
        #[arg(long)]
        kernel_config: Option<PathBuf>,
        /// Re-read the output and compare it with the input.
        #[arg(long)]
        verify: bool,
        /// No progress bar, no notes.
        #[arg(short, long)]
        quiet: bool,
    },
    /// GGUF file -> GGUF file with another ternary layout.
    GgufToGguf {
        /// Input GGUF file.
        gguf: PathBuf,
        /// Output GGUF file.
        #[arg(short, long)]
        output: PathBuf,
        /// Projection layout of the output.
        #[arg(long, value_parser = parse_layout)]
        layout: LayoutKind,
        /// kernel_config.ini for TL inputs without recorded tiling and for TL outputs.
        #[arg(long)]
        kernel_config: Option<PathBuf>,
        /// New token_embd type: f16, f32, q8_0, q6_k or q4_0 (default: copied unchanged).
        #[arg(long, value_parser = parse_embed)]
        embed_type: Option<EmbedType>,
        /// Re-read the output and compare it with the input.
        #[arg(long)]
        verify: bool,
        /// No progress bar, no notes.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Compare two models (HF directories or GGUF files, any layouts) tensor by tensor.
    Verify {
        /// First model.
        a: PathBuf,
        /// Second model.
        b: PathBuf,
        /// Accept scales this many f32 ulps apart.
        #[arg(long, default_value_t = 0)]
        scale_ulps: u32,
        /// kernel_config.ini for TL inputs without recorded tiling.
        #[arg(long)]
        kernel_config: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a synthetic checkpoint with real hyper-parameters.
    Synth {
        /// 2b-4t or tiny.
        #[arg(long, value_parser = parse_preset)]
        preset: SynthPreset,
        /// Output directory (must not exist).
        #[arg(short, long)]
        output: PathBuf,
        /// packed or master.
        #[arg(long, default_value = "packed", value_parser = parse_format)]
        format: CheckpointFormat,
        /// PRNG seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn parse_layout(s: &str) -> Result<LayoutKind, String> {
    LayoutKind::from_name(s)
        .filter(|l| convert::plan::GGUF_LAYOUTS.contains(l))
        .ok_or_else(|| "expected one of i2_s, tl1, tl2, tq1_0, tq2_0, f16, bf16, f32".into())
}

fn parse_embed(s: &str) -> Result<EmbedType, String> {
    EmbedType::from_name(s).ok_or_else(|| "expected f16, f32, q8_0, q6_k or q4_0".into())
}

fn parse_profile(s: &str) -> Result<Profile, String> {
    Profile::from_name(s).ok_or_else(|| "expected official or hf-converter".into())
}

fn parse_format(s: &str) -> Result<CheckpointFormat, String> {
    match s {
        "packed" => Ok(CheckpointFormat::Packed),
        "master" => Ok(CheckpointFormat::Master),
        _ => Err("expected packed or master".into()),
    }
}

fn parse_preset(s: &str) -> Result<SynthPreset, String> {
    SynthPreset::from_name(s).ok_or_else(|| "expected 2b-4t or tiny".into())
}

/// Prints notes and the verification table of a converting command.
fn finish(report: ConvertReport, quiet: bool) -> Result<bool> {
    if !quiet {
        for note in &report.notes {
            eprintln!("bitnet-convert: {note}");
        }
        eprintln!(
            "bitnet-convert: wrote {} ({} tensors, {} bytes)",
            report.output.display(),
            report.tensors,
            report.bytes
        );
    }
    match report.verify {
        Some(v) => {
            let ok = v.differences() == 0;
            if !quiet || !ok {
                println!("{v}");
            }
            Ok(ok)
        }
        None => Ok(true),
    }
}

fn run(cli: Cli) -> Result<bool> {
    match cli.command {
        Command::HfToGguf {
            hf_dir,
            output,
            layout,
            embed_type,
            kernel_config,
            name,
            no_pre,
            no_tokenizer,
            profile,
            verify,
            quiet,
        } => {
            let opts = convert::HfToGguf {
                input: hf_dir,
                output,
                layout,
                embed_type,
                kernel_config,
                name,
                no_pre,
                no_tokenizer,
                profile,
                verify,
                quiet,
            };
            finish(convert::hf_to_gguf(&opts)?, quiet)
        }
        Command::GgufToHf {
            gguf,
            output,
            format,
            kernel_config,
            verify,
            quiet,
        } => {
            let opts = convert::GgufToHf {
                input: gguf,
                output,
                format,
                kernel_config,
                verify,
                quiet,
            };
            finish(convert::gguf_to_hf(&opts)?, quiet)
        }
        Command::GgufToGguf {
            gguf,
            output,
            layout,
            kernel_config,
            embed_type,
            verify,
            quiet,
        } => {
            let opts = convert::GgufToGguf {
                input: gguf,
                output,
                layout,
                kernel_config,
                embed_type,
                verify,
                quiet,
            };
            finish(convert::gguf_to_gguf(&opts)?, quiet)
        }
        Command::Verify {
            a,
            b,
            scale_ulps,
            kernel_config,
            json,
        } => {
            let user = kernel_config
                .as_deref()
                .map(convert::UserKernelConfig::read)
                .transpose()?;
            let sa = convert::ModelSource::open(&a, user.as_ref())?;
            let sb = convert::ModelSource::open(&b, user.as_ref())?;
            let options = VerifyOptions {
                scale_ulps,
                skip_dense: false,
                dense_as_output: false,
            };
            let report = convert::compare(&sa, &sb, &options)?;
            if json {
                println!("{}", report.to_json());
            } else {
                println!("{report}");
            }
            Ok(report.differences() == 0)
        }
        Command::Synth {
            preset,
            output,
            format,
            seed,
        } => {
            let options = SynthOptions {
                preset,
                format,
                seed,
            };
            convert::synth(&output, &options)?;
            eprintln!("bitnet-convert: wrote {}", output.display());
            Ok(true)
        }
    }
}

/// The error and its causes on one line, like `{:#}`, but leaving out a cause whose text the
/// message before it already contains (library errors name their source in their own text).
fn error_chain(err: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !previous.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        previous = text;
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            eprintln!("bitnet-convert: {}", error_chain(&err));
            ExitCode::from(2)
        }
    }
}
