//! Prompt and generation throughput, measured as llama-bench does: `pp` = one batched pass
//! over `p` prompt tokens from an empty cache, `tg` = `n` single-token decode steps from an
//! empty cache; one warm-up run of each, then `repetitions` timed runs. A session with a head
//! screen decodes greedily through it (`tg` then computes the top logit, not all of them).

use super::error::Error;
use super::forward::{Logits, Session};
use super::head_screen::ScreenStats;
use std::time::Instant;

/// Summary of repeated throughput measurements (tokens/s).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Throughput {
    /// Tokens per run.
    pub tokens: usize,
    /// Median tokens/s.
    pub median: f64,
    /// Mean tokens/s.
    pub mean: f64,
    /// Standard deviation of tokens/s.
    pub stddev: f64,
    /// Slowest run.
    pub min: f64,
    /// Fastest run.
    pub max: f64,
    /// Every run.
    pub samples: Vec<f64>,
}

impl Throughput {
    fn from_samples(tokens: usize, mut samples: Vec<f64>) -> Self {
        let n = samples.len().max(1) as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / n;
        let mut sorted = samples.clone();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => 0.0,
            l if l % 2 == 1 => sorted[l / 2],
            l => (sorted[l / 2 - 1] + sorted[l / 2]) / 2.0,
        };
        samples.shrink_to_fit();
        Self {
            tokens,
            median,
            mean,
            stddev: var.sqrt(),
            min: sorted.first().copied().unwrap_or(0.0),
            max: sorted.last().copied().unwrap_or(0.0),
            samples,
        }
    }
}

/// Both measurements.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BenchReport {
    /// Prompt processing (`pp{p}`), if `p > 0`.
    pub prompt: Option<Throughput>,
    /// Token generation (`tg{n}`), if `n > 0`.
    pub generation: Option<Throughput>,
    /// With a screened lm_head: what screening did over the generation runs (warm-up
    /// included).
    pub screen: Option<ScreenStats>,
}

/// Runs the benchmark. Token ids are a fixed pseudo-random sequence (content does not change
/// the cost). The session needs room for `max(p, n)` positions.
pub fn bench(
    session: &mut Session<'_>,
    p: usize,
    n: usize,
    repetitions: usize,
) -> Result<BenchReport, Error> {
    let vocab = session.model().hparams.vocab_size as u64;
    let ids: Vec<u32> = (0..p.max(n) as u64)
        .map(|i| ((i * 2_654_435_761 + 17) % vocab) as u32)
        .collect();
    let reps = repetitions.max(1);
    // Asked before the runs: a screen that gives up (`ScreenStats::gave_up`) is gone after.
    let screened = session.has_head_screen();
    let prompt = if p > 0 {
        let mut samples = Vec::with_capacity(reps);
        for rep in 0..=reps {
            session.reset();
            let t = Instant::now();
            session.forward(&ids[..p], Logits::Last)?;
            let secs = t.elapsed().as_secs_f64();
            if rep > 0 {
                samples.push(p as f64 / secs);
            }
        }
        Some(Throughput::from_samples(p, samples))
    } else {
        None
    };
    let generation = if n > 0 {
        let mut samples = Vec::with_capacity(reps);
        for rep in 0..=reps {
            session.reset();
            let t = Instant::now();
            for &id in &ids[..n] {
                if session.has_head_screen() {
                    session.forward_top(&[id], 1)?;
                } else {
                    session.forward(&[id], Logits::Last)?;
                }
            }
            let secs = t.elapsed().as_secs_f64();
            if rep > 0 {
                samples.push(n as f64 / secs);
            }
        }
        Some(Throughput::from_samples(n, samples))
    } else {
        None
    };
    let screen = screened.then(|| session.screen_stats());
    Ok(BenchReport {
        prompt,
        generation,
        screen,
    })
}
