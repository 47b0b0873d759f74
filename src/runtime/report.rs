//! The text `bitnet-run` shows for runtime results: the loaded-model summary, the parity and
//! bench tables (Markdown), and one-line perplexity and generation summaries. Formatting only:
//! no I/O, and no line ends with a newline (callers print them with `println!`/`eprintln!`).

use super::bench::BenchReport;
use super::generate::GenerationStats;
use super::head_screen::ScreenStats;
use super::kernels::Kernels;
use super::model::Model;
use super::parity::{Agreement, ParityReport};
use super::perplexity::PerplexityReport;
use std::path::Path;

/// What was loaded, one message per line: the hyper-parameters, weight types and kernels of
/// `model` (read from `path`), then the TL tiling source if any, then the load warnings.
/// Lines after the first start with `TL tiling: ` or `warning: `.
pub fn model_summary(model: &Model<'_>, path: &Path, kernels: &Kernels) -> Vec<String> {
    let hp = &model.hparams;
    let mut lines = vec![format!(
        "{}: {} layers, d {}, ffn {}, heads {}/{}, vocab {}, rope theta {}, eps {:e}; projections {}; lm_head {} ({}); kernels {} x{}",
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
    )];
    if let Some(tiling) = &model.tiling_source {
        lines.push(format!("TL tiling: {tiling}"));
    }
    lines.extend(model.warnings.iter().map(|w| format!("warning: {w}")));
    lines
}

/// Counts, times and speeds of a generation, and whether it stopped at an end token.
pub fn generation_summary(stats: &GenerationStats) -> String {
    format!(
        "prompt {} tokens in {:.2} s ({:.2} tokens/s); generated {} tokens in {:.2} s ({:.2} tokens/s){}",
        stats.prompt_tokens,
        stats.prompt_time.as_secs_f64(),
        stats.prompt_tokens_per_second(),
        stats.generated_tokens,
        stats.generation_time.as_secs_f64(),
        stats.generation_tokens_per_second(),
        if stats.stopped_at_end { ", stopped at end of generation" } else { "" },
    )
}

/// Perplexity with its mean NLL and what was scored.
pub fn perplexity_summary(report: &PerplexityReport) -> String {
    format!(
        "perplexity {:.4} (mean NLL {:.5} nats over {} tokens, {} chunks of {})",
        report.perplexity, report.mean_nll, report.scored_tokens, report.chunks, report.ctx
    )
}

/// The llama-bench-like Markdown table of a bench run on `kernels`: a `pp{p}` row and a
/// `tg{n}` row for the measurements that were taken.
pub fn bench_table(report: &BenchReport, kernels: &Kernels) -> String {
    let mut lines = vec![
        "| test | threads | isa | t/s median | mean ± sd | min .. max |".to_string(),
        "| --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for (name, throughput) in [("pp", &report.prompt), ("tg", &report.generation)] {
        if let Some(t) = throughput {
            lines.push(format!(
                "| {name}{} | {} | {} | {:.2} | {:.2} ± {:.2} | {:.2} .. {:.2} |",
                t.tokens,
                kernels.threads(),
                kernels.isa().name(),
                t.median,
                t.mean,
                t.stddev,
                t.min,
                t.max
            ));
        }
    }
    if let Some(screen) = &report.screen {
        lines.push(String::new());
        lines.push(format!("tg: {}", screen_summary(screen)));
    }
    lines.join("\n")
}

/// What head screening did, in one line: tokens, rows recomputed per token, full passes.
pub fn screen_summary(stats: &ScreenStats) -> String {
    let per_token =
        stats.candidates as f64 / stats.tokens.saturating_sub(stats.full_passes).max(1) as f64;
    let gave_up = match stats.gave_up {
        true => "; screening stopped (most tokens needed the full head)",
        false => "",
    };
    format!(
        "screened lm_head (greedy top-1 / top-k exact): {} tokens, {:.1} rows recomputed per \
         screened token, {} tokens ran the full head{gave_up}",
        stats.tokens, per_token, stats.full_passes
    )
}

/// The parity report as text: the model, what it was compared with, and a Markdown table
/// with one row per sequence and an overall row.
pub fn parity_table(report: &ParityReport) -> String {
    let mut lines = vec![
        format!("model:   {}", report.model.display()),
        format!("against: {} (kernels {})", report.against, report.isa),
        "| sequence | tokens | top-1 | greedy | max |Δ| | mean |Δ| | KL |".to_string(),
        "| --- | --- | --- | --- | --- | --- | --- |".to_string(),
    ];
    for s in &report.sequences {
        let a = &s.agreement;
        lines.push(format!(
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
        ));
    }
    let a: &Agreement = &report.overall;
    lines.push(format!(
        "| overall | | {}/{} ({:.2} %) | {}/{} | {:.4} | {:.5} | {:.2e} |",
        a.top1_agree,
        a.positions,
        100.0 * a.top1_rate(),
        a.greedy_match,
        a.greedy_total,
        a.max_abs_diff,
        a.mean_abs_diff,
        a.mean_kl
    ));
    lines.join("\n")
}

/// Why `report` fails [`ParityReport::passes`] with these thresholds: the overall figures
/// next to the limits they miss.
pub fn parity_shortfall(report: &ParityReport, min_top1: f64, max_mean_abs: f64) -> String {
    format!(
        "parity below thresholds: top-1 {:.4} (min {min_top1}), mean |Δ| {:.5} (max {max_mean_abs})",
        report.overall.top1_rate(),
        report.overall.mean_abs_diff
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{map_file, GgufFile};
    use crate::runtime::bench::Throughput;
    use crate::runtime::kernels::Isa;
    use crate::runtime::parity::SequenceReport;
    use crate::runtime::LoadOptions;
    use std::path::PathBuf;
    use std::time::Duration;

    fn scalar_kernels(threads: usize) -> Kernels {
        Kernels::new(threads, Some(Isa::Scalar)).expect("scalar kernels always exist")
    }

    fn agreement(positions: usize, top1_agree: usize) -> Agreement {
        let mut a = Agreement::default();
        a.positions = positions;
        a.top1_agree = top1_agree;
        a.max_abs_diff = 0.25;
        a.mean_abs_diff = 0.0125;
        a.mean_kl = 0.000123;
        a.greedy_match = 3;
        a.greedy_total = 4;
        a
    }

    #[test]
    fn model_summary_names_shapes_types_and_kernels() {
        let path = Path::new("fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf");
        let map = map_file(path).expect("fixture");
        let file = GgufFile::parse(&map).expect("valid fixture");
        let model = Model::load(&file, &LoadOptions::default()).expect("loads");
        let lines = model_summary(&model, path, &scalar_kernels(2));
        assert!(
            lines[0].starts_with("fixtures/ref-tiny/gguf/ref-tiny-i2_s.gguf: 2 layers, d 256, "),
            "{lines:?}"
        );
        assert!(lines[0].ends_with("; kernels scalar x2"), "{lines:?}");
        assert!(
            lines[0].contains("lm_head F16 (tied to token_embd)"),
            "{lines:?}"
        );
        assert!(lines[1..]
            .iter()
            .all(|l| l.starts_with("TL tiling: ") || l.starts_with("warning: ")));
    }

    #[test]
    fn generation_summary_says_when_it_stopped() {
        let mut stats = GenerationStats {
            prompt_tokens: 4,
            prompt_time: Duration::from_millis(500),
            generated_tokens: 3,
            generation_time: Duration::from_secs(2),
            stopped_at_end: false,
        };
        assert_eq!(
            generation_summary(&stats),
            "prompt 4 tokens in 0.50 s (8.00 tokens/s); generated 3 tokens in 2.00 s (1.50 tokens/s)"
        );
        stats.stopped_at_end = true;
        assert!(generation_summary(&stats).ends_with(", stopped at end of generation"));
    }

    #[test]
    fn perplexity_summary_rounds_as_documented() {
        let report = PerplexityReport {
            chunks: 2,
            ctx: 32,
            scored_tokens: 32,
            mean_nll: 1.5,
            perplexity: 1.5f64.exp(),
        };
        assert_eq!(
            perplexity_summary(&report),
            "perplexity 4.4817 (mean NLL 1.50000 nats over 32 tokens, 2 chunks of 32)"
        );
    }

    #[test]
    fn bench_table_has_a_row_per_measurement() {
        let throughput = Throughput {
            tokens: 8,
            median: 10.0,
            mean: 10.5,
            stddev: 0.5,
            min: 10.0,
            max: 11.0,
            samples: vec![10.0, 11.0],
        };
        let mut report = BenchReport {
            prompt: Some(throughput),
            generation: None,
            screen: None,
        };
        assert_eq!(
            bench_table(&report, &scalar_kernels(1)),
            "| test | threads | isa | t/s median | mean ± sd | min .. max |\n\
             | --- | --- | --- | --- | --- | --- |\n\
             | pp8 | 1 | scalar | 10.00 | 10.50 ± 0.50 | 10.00 .. 11.00 |"
        );
        let mut stats = ScreenStats {
            tokens: 4,
            candidates: 30,
            full_passes: 1,
            gave_up: false,
        };
        report.screen = Some(stats);
        assert!(bench_table(&report, &scalar_kernels(1)).ends_with(
            "\n\ntg: screened lm_head (greedy top-1 / top-k exact): 4 tokens, 10.0 rows \
             recomputed per screened token, 1 tokens ran the full head"
        ));
        stats.gave_up = true;
        assert!(screen_summary(&stats).ends_with(
            "1 tokens ran the full head; screening stopped (most tokens needed the full head)"
        ));
    }

    #[test]
    fn parity_table_and_shortfall() {
        let report = ParityReport {
            model: PathBuf::from("m.gguf"),
            against: "ref.safetensors".into(),
            isa: "avx2",
            sequences: vec![SequenceReport {
                name: "seq0".into(),
                tokens: 5,
                agreement: agreement(5, 4),
            }],
            overall: agreement(5, 4),
        };
        assert_eq!(
            parity_table(&report),
            "model:   m.gguf\n\
             against: ref.safetensors (kernels avx2)\n\
             | sequence | tokens | top-1 | greedy | max |Δ| | mean |Δ| | KL |\n\
             | --- | --- | --- | --- | --- | --- | --- |\n\
             | seq0 | 5 | 4/5 | 3/4 | 0.2500 | 0.01250 | 1.23e-4 |\n\
             | overall | | 4/5 (80.00 %) | 3/4 | 0.2500 | 0.01250 | 1.23e-4 |"
        );
        assert_eq!(
            parity_shortfall(&report, 0.99, 0.05),
            "parity below thresholds: top-1 0.8000 (min 0.99), mean |Δ| 0.01250 (max 0.05)"
        );
    }
}
