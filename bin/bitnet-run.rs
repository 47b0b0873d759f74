//! `bitnet-run`: run BitNet b1.58 GGUF files on the CPU (generate, logits, parity,
//! perplexity, bench).

use anyhow::{bail, Context, Result};
use bitnet_gguf::gguf::{keys, map_file, GgufFile};
use bitnet_gguf::layout::kernel_config::KernelConfig;
use bitnet_gguf::runtime::kernels::{Isa, Kernels};
use bitnet_gguf::runtime::parity::{self, ParityOptions, ParityReport};
use bitnet_gguf::runtime::sampling::SamplingParams;
use bitnet_gguf::runtime::tokenizer::StreamDecoder;
use bitnet_gguf::runtime::{bench, generate, perplexity, tokenizer_from_gguf};
use bitnet_gguf::runtime::{KvPrecision, LoadOptions, Logits, Model, Session};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "bitnet-run",
    version,
    about = "Run BitNet b1.58 GGUF files on the CPU"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct Common {
    /// Kernel threads.
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// Kernel instruction set (default: the best this CPU has).
    #[arg(long, value_enum)]
    isa: Option<IsaArg>,
    /// kernel_config.ini for TL1/TL2 files that record no tiling.
    #[arg(long)]
    kernel_config: Option<PathBuf>,
    /// KV cache precision: f32 (default; transformers' arithmetic) or f16 (llama.cpp's).
    #[arg(long, value_enum, default_value = "f32")]
    kv_cache: KvArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum KvArg {
    F32,
    F16,
}

impl Common {
    fn kv_precision(&self) -> KvPrecision {
        match self.kv_cache {
            KvArg::F32 => KvPrecision::F32,
            KvArg::F16 => KvPrecision::F16,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum IsaArg {
    Scalar,
    Avx2,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt (text to stdout, speed to stderr).
    Generate {
        model: PathBuf,
        /// Prompt text.
        #[arg(short = 'p', long)]
        prompt: String,
        /// Tokens to generate.
        #[arg(short = 'n', long, default_value_t = 128)]
        n_predict: usize,
        /// Temperature (0: greedy).
        #[arg(long, default_value_t = 0.0)]
        temp: f32,
        /// Top-k (0: all).
        #[arg(long, default_value_t = 40)]
        top_k: usize,
        /// Top-p.
        #[arg(long, default_value_t = 0.95)]
        top_p: f32,
        /// Random seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Wrap the prompt in the model's chat format and stop at end of turn.
        #[arg(long)]
        chat: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Write the logits of every position to a safetensors file (tensor "logits").
    Logits {
        model: PathBuf,
        /// Comma-separated token ids.
        #[arg(long, conflicts_with = "text", required_unless_present = "text")]
        tokens: Option<String>,
        /// Text to encode (bos added as the file says).
        #[arg(long)]
        text: Option<String>,
        #[arg(short = 'o', long)]
        output: PathBuf,
        #[command(flatten)]
        common: Common,
    },
    /// Teacher-forced logits against reference logits or a second model.
    Parity {
        model: PathBuf,
        /// Reference directory (inputs.json, logits_NAME.safetensors, generations.json).
        #[arg(long, conflicts_with = "against", required_unless_present = "against")]
        reference: Option<PathBuf>,
        /// A second model to compare with (built-in sequences).
        #[arg(long)]
        against: Option<PathBuf>,
        /// Which logits_NAME.safetensors to use.
        #[arg(long, default_value = "packed")]
        logits: String,
        /// Minimum top-1 agreement (fraction).
        #[arg(long, default_value_t = 0.99)]
        min_top1: f64,
        /// Maximum mean |Δlogit|.
        #[arg(long, default_value_t = 0.05)]
        max_mean_abs: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
    /// Perplexity of a text file (llama.cpp's scheme: second half of each chunk scored).
    Perplexity {
        model: PathBuf,
        file: PathBuf,
        /// Tokens per chunk.
        #[arg(long, default_value_t = 512)]
        ctx: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Prompt (pp) and generation (tg) throughput, median over repetitions.
    Bench {
        model: PathBuf,
        /// Prompt tokens.
        #[arg(short = 'p', long, default_value_t = 128)]
        prompt: usize,
        /// Generated tokens.
        #[arg(short = 'n', long, default_value_t = 32)]
        n_gen: usize,
        /// Timed repetitions (after one warm-up).
        #[arg(short = 'r', long, default_value_t = 5)]
        repetitions: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: Common,
    },
}

/// Exit codes: 0 success, 1 error, 3 parity below thresholds.
const EXIT_ERROR: u8 = 1;
const EXIT_PARITY_FAILED: u8 = 3;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("bitnet-run: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn kernels(common: &Common) -> Result<Kernels> {
    let isa = common.isa.map(|i| match i {
        IsaArg::Scalar => Isa::Scalar,
        IsaArg::Avx2 => Isa::Avx2,
    });
    Ok(Kernels::new(common.threads, isa)?)
}

fn load_options(common: &Common) -> Result<LoadOptions> {
    let kernel_config = match &common.kernel_config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(KernelConfig::parse(&text).with_context(|| format!("parsing {}", p.display()))?)
        }
        None => None,
    };
    Ok(LoadOptions { kernel_config })
}

fn report_model(model: &Model<'_>, path: &Path, kernels: &Kernels) {
    let hp = &model.hparams;
    eprintln!(
        "bitnet-run: {}: {} layers, d {}, ffn {}, heads {}/{}, vocab {}, rope theta {}, eps {:e}; projections {}; lm_head {} ({}); kernels {} x{}",
        path.display(),
        hp.block_count,
        hp.embedding_length,
        hp.feed_forward_length,
        hp.head_count,
        hp.head_count_kv,
        hp.vocab_size,
        hp.rope_theta,
        hp.rms_eps,
        model.projection_types(),
        model.output.ggml_type().name(),
        if model.tied_output { "tied to token_embd" } else { "output.weight" },
        kernels.isa().name(),
        kernels.threads(),
    );
    if let Some(t) = &model.tiling_source {
        eprintln!("bitnet-run: TL tiling: {t}");
    }
    for w in &model.warnings {
        eprintln!("bitnet-run: warning: {w}");
    }
}

/// Opens `path`, loads its model and the kernels `common` asks for, reports them on stderr, and
/// runs `f` on them.
fn with_model<T>(
    path: &Path,
    common: &Common,
    f: impl FnOnce(&GgufFile<'_>, &Model<'_>, &Kernels) -> Result<T>,
) -> Result<T> {
    let kernels = kernels(common)?;
    let map = map_file(path)?;
    let file = GgufFile::parse(&map)?;
    let model = Model::load(&file, &load_options(common)?)?;
    report_model(&model, path, &kernels);
    f(&file, &model, &kernels)
}

fn run(cli: Cli) -> Result<u8> {
    match cli.command {
        Command::Generate {
            model,
            prompt,
            n_predict,
            temp,
            top_k,
            top_p,
            seed,
            chat,
            common,
        } => {
            with_model(&model, &common, |file, m, kernels| {
                let tok = tokenizer_from_gguf(file)?;
                let text = if chat {
                    generate::chat_prompt(file.get_str(keys::CHAT_TEMPLATE)?, &prompt)
                } else {
                    prompt
                };
                let ids = tok.encode_prompt(&text, chat);
                if ids.is_empty() {
                    bail!("the prompt encodes to no tokens");
                }
                let capacity =
                    (ids.len() + n_predict).min(m.hparams.context_length.max(ids.len() + 1));
                let mut session =
                    Session::with_kv_precision(m, kernels, capacity, common.kv_precision());
                let n_new = n_predict.min(capacity - ids.len());
                let mut decoder = StreamDecoder::new(true);
                let mut out = std::io::stdout().lock();
                let params = SamplingParams {
                    temperature: temp,
                    top_k,
                    top_p,
                    seed,
                };
                let stats = generate::generate(
                    &mut session,
                    &ids,
                    n_new,
                    params,
                    |id| tok.is_end_of_generation(id),
                    |id| {
                        let piece = decoder.push(&tok, id)?;
                        // A closed stdout (e.g. `| head`) ends generation quietly.
                        Ok(out
                            .write_all(piece.as_bytes())
                            .and_then(|_| out.flush())
                            .is_ok())
                    },
                )?;
                let _ = writeln!(out, "{}", decoder.finish());
                eprintln!(
                    "bitnet-run: prompt {} tokens in {:.2} s ({:.2} tokens/s); generated {} tokens in {:.2} s ({:.2} tokens/s){}",
                    stats.prompt_tokens,
                    stats.prompt_time.as_secs_f64(),
                    stats.prompt_tokens_per_second(),
                    stats.generated_tokens,
                    stats.generation_time.as_secs_f64(),
                    stats.generation_tokens_per_second(),
                    if stats.stopped_at_end { ", stopped at end of generation" } else { "" },
                );
                Ok(0)
            })
        }
        Command::Logits {
            model,
            tokens,
            text,
            output,
            common,
        } => with_model(&model, &common, |file, m, kernels| {
            let ids: Vec<u32> = match (tokens, text) {
                (Some(list), _) => list
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u32>()
                            .with_context(|| format!("token id {s:?}"))
                    })
                    .collect::<Result<_>>()?,
                (None, Some(text)) => tokenizer_from_gguf(file)?.encode_prompt(&text, false),
                (None, None) => bail!("give --tokens or --text"),
            };
            if ids.is_empty() {
                bail!("no tokens to evaluate");
            }
            let mut session =
                Session::with_kv_precision(m, kernels, ids.len(), common.kv_precision());
            let logits = session.forward(&ids, Logits::All)?;
            parity::write_f32_tensors(
                &output,
                &[(
                    "logits".into(),
                    vec![ids.len(), m.hparams.vocab_size],
                    logits,
                )],
            )?;
            eprintln!(
                "bitnet-run: wrote logits [{}, {}] to {}",
                ids.len(),
                m.hparams.vocab_size,
                output.display()
            );
            Ok(0)
        }),
        Command::Parity {
            model,
            reference,
            against,
            logits,
            min_top1,
            max_mean_abs,
            json,
            common,
        } => {
            let opts = ParityOptions {
                logits_name: logits,
                threads: common.threads,
                isa: kernels(&common)?.isa().into(),
                kernel_config: load_options(&common)?.kernel_config,
                kv_precision: common.kv_precision(),
                ..ParityOptions::default()
            };
            let report = match (reference, against) {
                (Some(dir), _) => parity::compare_with_reference(&model, &dir, &opts)?,
                (None, Some(other)) => parity::compare_models(&model, &other, &opts)?,
                (None, None) => bail!("give --reference DIR or --against MODEL"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_parity(&report);
            }
            if report.passes(min_top1, max_mean_abs) {
                Ok(0)
            } else {
                eprintln!(
                    "bitnet-run: parity below thresholds: top-1 {:.4} (min {min_top1}), mean |Δ| {:.5} (max {max_mean_abs})",
                    report.overall.top1_rate(),
                    report.overall.mean_abs_diff
                );
                Ok(EXIT_PARITY_FAILED)
            }
        }
        Command::Perplexity {
            model,
            file: text_path,
            ctx,
            common,
        } => with_model(&model, &common, |file, m, kernels| {
            let tok = tokenizer_from_gguf(file)?;
            let text = std::fs::read_to_string(&text_path)
                .with_context(|| format!("reading {}", text_path.display()))?;
            let ids = tok.encode(&text, false);
            let mut session = Session::with_kv_precision(m, kernels, ctx, common.kv_precision());
            let bos = if tok.add_bos() { tok.bos_id() } else { None };
            let r = perplexity::perplexity(&mut session, &ids, ctx, bos)?;
            println!(
                "perplexity {:.4} (mean NLL {:.5} nats over {} tokens, {} chunks of {})",
                r.perplexity, r.mean_nll, r.scored_tokens, r.chunks, r.ctx
            );
            Ok(0)
        }),
        Command::Bench {
            model,
            prompt,
            n_gen,
            repetitions,
            json,
            common,
        } => with_model(&model, &common, |_file, m, kernels| {
            let mut session = Session::with_kv_precision(
                m,
                kernels,
                prompt.max(n_gen).max(1),
                common.kv_precision(),
            );
            let r = bench::bench(&mut session, prompt, n_gen, repetitions)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("| test | threads | isa | t/s median | mean ± sd | min .. max |");
                println!("| --- | --- | --- | --- | --- | --- |");
                for (name, t) in [("pp", &r.prompt), ("tg", &r.generation)] {
                    if let Some(t) = t {
                        println!(
                            "| {name}{} | {} | {} | {:.2} | {:.2} ± {:.2} | {:.2} .. {:.2} |",
                            t.tokens,
                            kernels.threads(),
                            kernels.isa().name(),
                            t.median,
                            t.mean,
                            t.stddev,
                            t.min,
                            t.max
                        );
                    }
                }
            }
            Ok(0)
        }),
    }
}

fn print_parity(r: &ParityReport) {
    println!("model:   {}", r.model.display());
    println!("against: {} (kernels {})", r.against, r.isa);
    println!("| sequence | tokens | top-1 | greedy | max |Δ| | mean |Δ| | KL |");
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for s in &r.sequences {
        let a = &s.agreement;
        println!(
            "| {} | {} | {}/{} | {}/{} | {:.4} | {:.5} | {:.2e} |",
            s.name,
            s.tokens,
            a.top1_agree,
            a.positions,
            a.greedy_match,
            a.greedy_total,
            a.max_abs_diff,
            a.mean_abs_diff,
            a.mean_kl
        );
    }
    let a = &r.overall;
    println!(
        "| overall | | {}/{} ({:.2} %) | {}/{} | {:.4} | {:.5} | {:.2e} |",
        a.top1_agree,
        a.positions,
        100.0 * a.top1_rate(),
        a.greedy_match,
        a.greedy_total,
        a.max_abs_diff,
        a.mean_abs_diff,
        a.mean_kl
    );
}
