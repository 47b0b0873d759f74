//! Perplexity over a text, as llama.cpp's `perplexity` tool computes it.

use super::error::Error;
use super::forward::{Logits, Session};

/// Result of a perplexity run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PerplexityReport {
    /// Chunks evaluated.
    pub chunks: usize,
    /// Context length per chunk.
    pub ctx: usize,
    /// Tokens whose probability was scored.
    pub scored_tokens: usize,
    /// Mean negative log-likelihood (nats).
    pub mean_nll: f64,
    /// `exp(mean_nll)`.
    pub perplexity: f64,
}

/// llama.cpp's scheme: the token stream is cut into chunks of `ctx` tokens; each chunk is
/// evaluated from an empty cache with its first token replaced by bos (when `bos` is given),
/// and only the second half of each chunk is scored (each token predicted from at least
/// `ctx/2` tokens of context). Needs at least `2 * ctx` tokens... or one full chunk.
pub fn perplexity(
    session: &mut Session<'_>,
    tokens: &[u32],
    ctx: usize,
    bos: Option<u32>,
) -> Result<PerplexityReport, Error> {
    if ctx < 2 {
        return Err(Error::Invalid(
            "perplexity: --ctx must be at least 2".into(),
        ));
    }
    let chunks = tokens.len() / ctx;
    if chunks == 0 {
        return Err(Error::Invalid(format!(
            "perplexity: the text has {} tokens, fewer than one chunk of {ctx}",
            tokens.len()
        )));
    }
    let first = ctx / 2;
    let (mut nll, mut scored) = (0f64, 0usize);
    for c in 0..chunks {
        let mut chunk = tokens[c * ctx..(c + 1) * ctx].to_vec();
        if let Some(b) = bos {
            chunk[0] = b;
        }
        session.reset();
        // Only the scored half needs the lm_head, the most expensive matmul per position.
        let logits = session.forward(&chunk, Logits::From(first))?;
        let vocab = logits.len() / (ctx - first);
        for i in first..ctx - 1 {
            let row = &logits[(i - first) * vocab..(i - first + 1) * vocab];
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let lse = row
                .iter()
                .map(|&v| (f64::from(v) - max).exp())
                .sum::<f64>()
                .ln()
                + max;
            let target = tokens[c * ctx + i + 1] as usize;
            nll += lse - f64::from(row[target]);
            scored += 1;
        }
    }
    let mean_nll = nll / scored.max(1) as f64;
    Ok(PerplexityReport {
        chunks,
        ctx,
        scored_tokens: scored,
        mean_nll,
        perplexity: mean_nll.exp(),
    })
}
