//! Text generation: prompt formatting, the sampling loop, streaming.

use super::error::Error;
use super::forward::{Logits, Session};
use super::sampling::{Sampler, SamplingParams};
use std::time::{Duration, Instant};

/// The prompt for one user turn in the model's chat format.
///
/// A file whose `tokenizer.chat_template` contains `BITNET` gets llama.cpp's built-in `bitnet`
/// format (`bitnet-arch.md` §2.3; llama.cpp does not run the Jinja): `User: {text}<|eot_id|>`
/// then `Assistant: `. Any other file gets the plain `User: {text}<|eot_id|>Assistant:`.
/// Encode the result with special tokens parsed.
pub fn chat_prompt(chat_template: Option<&str>, user_text: &str) -> String {
    if chat_template.is_some_and(|t| t.contains("BITNET")) {
        format!("User: {user_text}<|eot_id|>Assistant: ")
    } else {
        format!("User: {user_text}<|eot_id|>Assistant:")
    }
}

/// Timings and counts of one generation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens evaluated.
    pub prompt_tokens: usize,
    /// Time of the prompt (batched) pass.
    pub prompt_time: Duration,
    /// Tokens generated (including a final end-of-generation token).
    pub generated_tokens: usize,
    /// Time of the decode steps.
    pub generation_time: Duration,
    /// Whether generation stopped at an end-of-generation token.
    pub stopped_at_end: bool,
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prompt_tokens_per_second(&self) -> f64 {
        per_second(self.prompt_tokens, self.prompt_time)
    }

    /// Generated tokens per second (decode steps only).
    pub fn generation_tokens_per_second(&self) -> f64 {
        per_second(self.generated_tokens, self.generation_time)
    }
}

fn per_second(n: usize, t: Duration) -> f64 {
    if t.is_zero() {
        0.0
    } else {
        n as f64 / t.as_secs_f64()
    }
}

/// Evaluates `prompt` (batched), then samples up to `max_new` tokens one at a time, calling
/// `on_token` with each new id. Stops early when `is_end(id)` (the id is still passed to
/// `on_token`) or when `on_token` returns false.
pub fn generate(
    session: &mut Session<'_>,
    prompt: &[u32],
    max_new: usize,
    params: SamplingParams,
    is_end: impl Fn(u32) -> bool,
    mut on_token: impl FnMut(u32) -> Result<bool, Error>,
) -> Result<GenerationStats, Error> {
    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        ..GenerationStats::default()
    };
    if max_new == 0 {
        return Ok(stats);
    }
    let mut sampler = Sampler::new(params);
    // Greedy and top-k sampling read only the top of the logits, which a screened lm_head
    // computes for a fraction of the full head's bytes (`Session::forward_top`).
    let mut next = |session: &mut Session<'_>, tokens: &[u32]| -> Result<u32, Error> {
        let id = match params.candidates_needed() {
            Some(k) => sampler.sample_top(&session.forward_top(tokens, k)?),
            None => sampler.sample(&session.forward(tokens, Logits::Last)?),
        };
        u32::try_from(id).map_err(|_| Error::Invalid("sampled id does not fit u32".into()))
    };
    let start = Instant::now();
    let mut id = next(session, prompt)?;
    stats.prompt_time = start.elapsed();
    let start = Instant::now();
    for step in 0..max_new {
        stats.generated_tokens += 1;
        let keep_going = on_token(id)?;
        if is_end(id) {
            stats.stopped_at_end = true;
            break;
        }
        if !keep_going || step + 1 == max_new {
            break;
        }
        id = next(session, &[id])?;
    }
    stats.generation_time = start.elapsed();
    Ok(stats)
}

/// Greedy continuation of `prefix` by `n` tokens (no end-of-generation stop), from a fresh
/// cache: what the references' `generations.json` holds.
pub fn greedy_continuation(
    session: &mut Session<'_>,
    prefix: &[u32],
    n: usize,
) -> Result<Vec<u32>, Error> {
    session.reset();
    let mut out = Vec::with_capacity(n);
    generate(
        session,
        prefix,
        n,
        SamplingParams {
            temperature: 0.0,
            ..SamplingParams::default()
        },
        |_| false,
        |id| {
            out.push(id);
            Ok(true)
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitnet_template_gets_llama_cpp_bitnet_format() {
        let t = "{% if message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\\n\\nBITNETAssistant: ' }}";
        assert_eq!(chat_prompt(Some(t), "Hi"), "User: Hi<|eot_id|>Assistant: ");
        assert_eq!(chat_prompt(None, "Hi"), "User: Hi<|eot_id|>Assistant:");
    }
}
