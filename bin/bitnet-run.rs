//! `bitnet-run`: run BitNet b1.58 GGUF files on the CPU (generate, logits, parity,
//! perplexity, bench).

use anyhow::{bail, Context, Result};
use bitnet_gguf::gguf::{map_file, read_file, GgufFile, MappedFile};
use bitnet_gguf::layout::kernel_config::KernelConfig;
use bitnet_gguf::runtime::head_screen::screening_pays;
use bitnet_gguf::runtime::kernels::{Isa, Kernels};
use bitnet_gguf::runtime::parity::{self, ParityOptions};
use bitnet_gguf::runtime::prompt::{encode_user_prompt, evaluation_ids};
use bitnet_gguf::runtime::prompt::{GenerationBudget, PromptFormat, TokenInput};
use bitnet_gguf::runtime::report::{
    bench_table, generation_summary, model_summary, screen_summary,
};
use bitnet_gguf::runtime::report::{parity_shortfall, parity_table, perplexity_summary};
use bitnet_gguf::runtime::sampling::SamplingParams;
use bitnet_gguf::runtime::tokenizer::StreamDecoder;
use bitnet_gguf::runtime::{bench, generate, perplexity, tokenizer_from_gguf};
use bitnet_gguf::runtime::{HeadScreen, KvPrecision, LoadOptions, Logits, Model, Session};
use bitnet_gguf::runtime::{Repack, RepackParts};
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

/// How the file is brought into memory: every command but `parity`, which always maps the file
/// and runs its own kernels, since its job is to check them.
#[derive(Args, Clone)]
struct Loading {
    /// Re-pack weights at load for the fastest kernels (the file is not changed): TL1/TL2/
    /// TQ1_0/TQ2_0 projections are kept as I2_S in memory, a Q4_0 lm_head interleaved by 8
    /// rows. Same outputs; decode 1.3-3.4x faster on those layouts on 2B-4T, for 0.6-1.9 s
    /// at load. `auto`, the default of generate and perplexity, re-encodes projections when
    /// the run evaluates at least 64 tokens (perplexity: --ctx) and interleaves a Q4_0 head
    /// from 256. logits and bench default to `off` (bench measures the file's own kernels,
    /// as llama-bench does without -rtr). `--repack` alone means `on`.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "on",
        value_name = "WHEN"
    )]
    repack: Option<When>,
    /// Read the file into memory (huge pages where the kernel gives them) instead of mapping
    /// it: decode streams the weights 0-14 % faster, for a slower start and a second copy of
    /// the file in memory.
    #[arg(long)]
    no_mmap: bool,
}

/// `generate` and `bench`, which need only the top of the logits.
#[derive(Args, Clone)]
struct Screening {
    /// Keep an 8-bit copy of an F16/BF16/F32 lm_head and compute in full only the rows that
    /// can be among the top k (greedy or top-k sampling; bench's tg decodes greedily). The
    /// tokens are the same (exact, not approximated); decode reads ~0.3 GB less per token on
    /// 2B-4T, for 0.33 GB more memory and a build at load (0.3-0.6 s). `auto`, generate's
    /// default, screens a float head when sampling is greedy or top-k and at least 64 tokens
    /// are asked for. bench's default is `off`: its tg is compared with llama-bench's, which
    /// computes every logit. `--screen-head` alone means `on`.
    #[arg(
        long,
        value_enum,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "on",
        value_name = "WHEN"
    )]
    screen_head: Option<When>,
}

/// The value of `--repack` and `--screen-head`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum When {
    /// When the runtime's rule says it pays for this model and run.
    Auto,
    On,
    Off,
}

/// What [`with_model`] prepares besides the model, and what its `auto` rules weigh.
#[derive(Clone, Copy)]
struct Plan {
    repack: When,
    screen: When,
    /// Tokens the run evaluates at the least (prompt and generated), for [`RepackParts::paying`].
    tokens: usize,
    /// Tokens it generates one at a time, for [`screening_pays`].
    new_tokens: usize,
    /// How many of the largest logits its sampler reads (`None`: all), for [`screening_pays`].
    top_k: Option<usize>,
}

impl Plan {
    /// A run that prepares nothing unless its flags ask (`repack`, `None` when the command has
    /// no `--repack`), with `off` as the default.
    fn plain(repack: Option<When>) -> Self {
        Self {
            repack: repack.unwrap_or(When::Off),
            screen: When::Off,
            tokens: 0,
            new_tokens: 0,
            top_k: None,
        }
    }
}

impl When {
    /// `On` or `Off` as they say; `Auto` as `pays` answers.
    fn decide(self, pays: impl FnOnce() -> bool) -> bool {
        match self {
            When::On => true,
            When::Off => false,
            When::Auto => pays(),
        }
    }
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
        #[command(flatten)]
        loading: Loading,
        #[command(flatten)]
        screening: Screening,
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
        #[command(flatten)]
        loading: Loading,
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
        #[command(flatten)]
        loading: Loading,
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
        #[command(flatten)]
        loading: Loading,
        #[command(flatten)]
        screening: Screening,
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

/// The file's bytes: mapped, or with `--no-mmap` read into memory (huge pages where the
/// kernel gives them), which the kernels stream a little faster.
fn load_file(path: &Path, no_mmap: bool) -> Result<MappedFile> {
    if !no_mmap {
        return Ok(map_file(path)?);
    }
    let start = std::time::Instant::now();
    let bytes = read_file(path)?;
    eprintln!(
        "bitnet-run: read {:.1} MB into memory in {:.2} s (--no-mmap)",
        bytes.len() as f64 / 1e6,
        start.elapsed().as_secs_f64()
    );
    Ok(bytes)
}

fn report_model(model: &Model<'_>, path: &Path, kernels: &Kernels) {
    for line in model_summary(model, path, kernels) {
        eprintln!("bitnet-run: {line}");
    }
}

/// Opens `path` as `loading` says, loads its model, the kernels `common` asks for and what
/// `plan` decides (a re-pack, the lm_head's screening copy), reports them on stderr, and runs
/// `f` on them.
fn with_model<T>(
    path: &Path,
    (common, loading, plan): (&Common, &Loading, Plan),
    f: impl FnOnce(&GgufFile<'_>, &Model<'_>, &Kernels, Option<&HeadScreen>) -> Result<T>,
) -> Result<T> {
    let kernels = kernels(common)?;
    let map = load_file(path, loading.no_mmap)?;
    let file = GgufFile::parse(&map)?;
    let opts = load_options(common)?;
    let model = Model::load(&file, &opts)?;
    let start = std::time::Instant::now();
    let parts = match plan.repack {
        When::On => Some(RepackParts::ALL),
        When::Off => None,
        When::Auto => Some(RepackParts::paying(&model, plan.tokens)).filter(|p| p.any()),
    };
    let repack = match parts {
        Some(parts) => Some(Repack::build(&file, &model, parts)?),
        None => None,
    };
    let repack_seconds = start.elapsed().as_secs_f64();
    let model = match &repack {
        Some(repack) => Model::load_repacked(&file, &opts, repack)?,
        None => model,
    };
    report_model(&model, path, &kernels);
    if let Some(repack) = &repack {
        eprintln!("bitnet-run: {} ({repack_seconds:.2} s)", repack.summary());
    }
    let head_type = model.output.ggml_type();
    let screen = match plan
        .screen
        .decide(|| screening_pays(head_type, plan.top_k, plan.new_tokens))
    {
        true => head_screen(&model, &kernels),
        false => None,
    };
    f(&file, &model, &kernels, screen.as_ref())
}

/// The lm_head's screening copy, or `None` with a note when the head cannot be screened (it is
/// already quantized): generation then runs the full head.
fn head_screen(model: &Model<'_>, kernels: &Kernels) -> Option<HeadScreen> {
    let start = std::time::Instant::now();
    match HeadScreen::build(&model.output, kernels) {
        Ok(screen) => {
            eprintln!(
                "bitnet-run: screened lm_head: {:.1} MB 8-bit copy built in {:.2} s",
                screen.bytes() as f64 / 1e6,
                start.elapsed().as_secs_f64()
            );
            Some(screen)
        }
        Err(e) => {
            eprintln!("bitnet-run: --screen-head ignored: {e}");
            None
        }
    }
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
            loading,
            screening,
        } => {
            let params = SamplingParams {
                temperature: temp,
                top_k,
                top_p,
                seed,
            };
            let plan = Plan {
                repack: loading.repack.unwrap_or(When::Auto),
                screen: screening.screen_head.unwrap_or(When::Auto),
                tokens: n_predict,
                new_tokens: n_predict,
                top_k: params.candidates_needed(),
            };
            with_model(
                &model,
                (&common, &loading, plan),
                |file, m, kernels, screen| {
                    let tok = tokenizer_from_gguf(file)?;
                    let format = PromptFormat::from_file(file, chat)?;
                    let ids = encode_user_prompt(&tok, &prompt, format)?;
                    let budget =
                        GenerationBudget::new(ids.len(), n_predict, m.hparams.context_length);
                    let mut session = Session::with_kv_precision(
                        m,
                        kernels,
                        budget.capacity,
                        common.kv_precision(),
                    );
                    session.set_head_screen(screen);
                    let mut decoder = StreamDecoder::new(true);
                    let mut out = std::io::stdout().lock();
                    let stats = generate::generate(
                        &mut session,
                        &ids,
                        budget.new_tokens,
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
                    eprintln!("bitnet-run: {}", generation_summary(&stats));
                    if screen.is_some() {
                        eprintln!("bitnet-run: {}", screen_summary(&session.screen_stats()));
                    }
                    Ok(0)
                },
            )
        }
        Command::Logits {
            model,
            tokens,
            text,
            output,
            common,
            loading,
        } => with_model(
            &model,
            (&common, &loading, Plan::plain(loading.repack)),
            |file, m, kernels, _| {
                let input = match (&tokens, &text) {
                    (Some(list), _) => TokenInput::Ids(list),
                    (None, Some(text)) => TokenInput::Text(text),
                    (None, None) => bail!("give --tokens or --text"),
                };
                let ids = evaluation_ids(file, input)?;
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
            },
        ),
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
                println!("{}", parity_table(&report));
            }
            if report.passes(min_top1, max_mean_abs) {
                Ok(0)
            } else {
                eprintln!(
                    "bitnet-run: {}",
                    parity_shortfall(&report, min_top1, max_mean_abs)
                );
                Ok(EXIT_PARITY_FAILED)
            }
        }
        Command::Perplexity {
            model,
            file: text_path,
            ctx,
            common,
            loading,
        } => with_model(
            &model,
            (
                &common,
                &loading,
                // Every chunk evaluates `ctx` tokens, and there is at least one.
                Plan {
                    repack: loading.repack.unwrap_or(When::Auto),
                    tokens: ctx,
                    ..Plan::plain(None)
                },
            ),
            |file, m, kernels, _| {
                let tok = tokenizer_from_gguf(file)?;
                let text = std::fs::read_to_string(&text_path)
                    .with_context(|| format!("reading {}", text_path.display()))?;
                let ids = tok.encode(&text, false);
                let mut session =
                    Session::with_kv_precision(m, kernels, ctx, common.kv_precision());
                let bos = if tok.add_bos() { tok.bos_id() } else { None };
                let r = perplexity::perplexity(&mut session, &ids, ctx, bos)?;
                println!("{}", perplexity_summary(&r));
                Ok(0)
            },
        ),
        Command::Bench {
            model,
            prompt,
            n_gen,
            repetitions,
            json,
            common,
            loading,
            screening,
        } => with_model(
            &model,
            (
                &common,
                &loading,
                Plan {
                    repack: loading.repack.unwrap_or(When::Off),
                    screen: screening.screen_head.unwrap_or(When::Off),
                    // A warm-up and the timed repetitions, each a prompt and a generation.
                    tokens: prompt
                        .saturating_add(n_gen)
                        .saturating_mul(repetitions.saturating_add(1)),
                    new_tokens: n_gen,
                    top_k: Some(1),
                },
            ),
            |_file, m, kernels, screen| {
                let mut session = Session::with_kv_precision(
                    m,
                    kernels,
                    prompt.max(n_gen).max(1),
                    common.kv_precision(),
                );
                session.set_head_screen(screen);
                let r = bench::bench(&mut session, prompt, n_gen, repetitions)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                } else {
                    println!("{}", bench_table(&r, kernels));
                }
                Ok(0)
            },
        ),
    }
}
