//! Hostile models for the runtime: damaged copies of the ref-tiny files that still parse as
//! GGUF go through everything `bitnet-run generate` does (load, tokenizer, prompt, session,
//! greedy and sampled decoding, the I2_S re-pack and the screened head). Each must end in a
//! clean error or a clean run, never a panic or an allocation sized by the damage.
//!
//! `gguf_mutation.rs` damages the container's bytes at random, which mostly stops the parser.
//! Here the damage is aimed at the values the runtime reads: each metadata value in turn gets
//! edge-case numbers, strings and arrays get corrupted elements and lengths, and tensor bytes
//! get garbage.

use super::gguf_mutation::Rng;
use super::run_common::{gguf_path, kernel_config};
use bitnet_gguf::gguf::{GgufFile, Value};
use bitnet_gguf::layout::kernel_config::KernelConfig;
use bitnet_gguf::runtime::kernels::Kernels;
use bitnet_gguf::runtime::prompt::{encode_user_prompt, GenerationBudget, PromptFormat};
use bitnet_gguf::runtime::sampling::SamplingParams;
use bitnet_gguf::runtime::tokenizer::StreamDecoder;
use bitnet_gguf::runtime::{generate, tokenizer_from_gguf};
use bitnet_gguf::runtime::{HeadScreen, LoadOptions, Model, Repack, RepackParts, Session};

/// What one damaged file reached, counted so the test can show the damage got past the parser.
#[derive(Default, Debug)]
struct Reached {
    parsed: usize,
    loaded: usize,
    generated: usize,
}

/// Runs one (possibly damaged) file the way `bitnet-run generate` does.
fn exercise(bytes: &[u8], config: &Option<KernelConfig>, kernels: &Kernels, reached: &mut Reached) {
    let Ok(file) = GgufFile::parse(bytes) else {
        return;
    };
    reached.parsed += 1;
    let opts = LoadOptions {
        kernel_config: config.clone(),
    };
    let Ok(model) = Model::load(&file, &opts) else {
        return;
    };
    reached.loaded += 1;
    let tokenizer = tokenizer_from_gguf(&file);
    let ids = match &tokenizer {
        Ok(tok) => match PromptFormat::from_file(&file, false)
            .and_then(|format| encode_user_prompt(tok, "Hello world, 1 + 1 =", format))
        {
            Ok(ids) => ids,
            Err(_) => vec![0, 1, 2],
        },
        Err(_) => vec![0, 1, 2],
    };
    let budget = GenerationBudget::new(ids.len(), 3, model.hparams.context_length);
    let greedy = SamplingParams {
        temperature: 0.0,
        ..SamplingParams::default()
    };
    // Top-k sampling (k = 40, p = 0.95 by default) through the screen when there is one.
    let sampled = SamplingParams {
        temperature: 0.8,
        seed: 7,
        ..SamplingParams::default()
    };
    let screen = HeadScreen::build(&model.output, kernels).ok();
    for (params, screened) in [(greedy, false), (sampled, screen.is_some())] {
        let mut session = Session::new(&model, kernels, budget.capacity);
        if screened {
            session.set_head_screen(screen.as_ref());
        }
        let mut decoder = StreamDecoder::new(true);
        let outcome = generate::generate(
            &mut session,
            &ids,
            budget.new_tokens,
            params,
            |id| tokenizer.as_ref().is_ok_and(|t| t.is_end_of_generation(id)),
            |id| {
                if let Ok(tok) = &tokenizer {
                    decoder.push(tok, id)?;
                }
                Ok(true)
            },
        );
        if outcome.is_ok() {
            reached.generated += 1;
            let _ = decoder.finish();
        }
    }
    if let Ok(repack) = Repack::build(&file, &model, RepackParts::ALL) {
        if let Ok(model) = Model::load_repacked(&file, &opts, &repack) {
            let mut session = Session::new(&model, kernels, 8);
            let _ = session.forward(&ids[..ids.len().min(4)], bitnet_gguf::runtime::Logits::Last);
        }
    }
}

/// Where a metadata value's bytes start: after the key (u64 length + bytes) and the u32 type.
fn value_start(offset: u64, key: &str) -> usize {
    offset as usize + 8 + key.len() + 4
}

/// Edge-case 32-bit patterns: zero, small counts, powers of two around them, the extremes.
const EDGE_U32: [u32; 16] = [
    0,
    1,
    2,
    3,
    7,
    8,
    63,
    64,
    255,
    256,
    4096,
    65_536,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFE,
    u32::MAX,
];

/// Edge-case floats: zero, negative, tiny, huge, not finite.
const EDGE_F32: [f32; 9] = [
    0.0,
    -1.0,
    1e-45,
    1e-30,
    1e30,
    f32::MAX,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::NAN,
];

fn write_at(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(at..at + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// Every metadata value gets every edge case of its type (scalars), or a few corrupted
/// elements and lengths (strings, arrays); then random damage to tensor data and to the header.
fn sweep(layout: &str, seed: u64, random_rounds: usize) -> Reached {
    let original = std::fs::read(gguf_path(layout)).unwrap();
    let config = kernel_config(layout);
    let kernels = Kernels::new(1, None).unwrap();
    let file = GgufFile::parse(&original).unwrap();
    let data_start = file.data_start() as usize;
    // (value start, value end, value) per metadata record; a record ends where the next begins
    // and the last one at the first tensor record, found by the size of its own encoding.
    let entries: Vec<(usize, usize, Value<'_>)> = {
        let meta = file.metadata();
        meta.iter()
            .enumerate()
            .map(|(i, e)| {
                let start = value_start(e.offset, e.key);
                let end = meta
                    .get(i + 1)
                    .map_or(start + scalar_width(&e.value).unwrap_or(0), |n| {
                        n.offset as usize
                    });
                (start, end, e.value)
            })
            .collect()
    };
    let mut reached = Reached::default();
    let mut buf = original.clone();
    let mut rng = Rng(seed);
    let run = |buf: &mut Vec<u8>, reached: &mut Reached| {
        exercise(buf, &config, &kernels, reached);
        buf.copy_from_slice(&original);
    };
    for &(start, end, value) in &entries {
        match value {
            Value::U8(_) | Value::I8(_) | Value::Bool(_) => {
                for v in [0u8, 1, 2, 127, 128, 255] {
                    write_at(&mut buf, start, &[v]);
                    run(&mut buf, &mut reached);
                }
            }
            Value::U16(_) | Value::I16(_) => {
                for v in [0u16, 1, 255, 256, 0x7FFF, 0x8000, u16::MAX] {
                    write_at(&mut buf, start, &v.to_le_bytes());
                    run(&mut buf, &mut reached);
                }
            }
            Value::U32(_) | Value::I32(_) => {
                for v in EDGE_U32 {
                    write_at(&mut buf, start, &v.to_le_bytes());
                    run(&mut buf, &mut reached);
                }
            }
            Value::F32(_) => {
                for v in EDGE_F32 {
                    write_at(&mut buf, start, &v.to_le_bytes());
                    run(&mut buf, &mut reached);
                }
            }
            Value::U64(_) | Value::I64(_) | Value::F64(_) => {
                for v in [0u64, 1, u64::from(u32::MAX) + 1, u64::MAX] {
                    write_at(&mut buf, start, &v.to_le_bytes());
                    run(&mut buf, &mut reached);
                }
            }
            Value::String(_) | Value::Array(_) => {
                // Element bytes, element lengths and counts: an edge-case u32/u64 or a random
                // byte somewhere inside the value.
                for _ in 0..12 {
                    let at = start + rng.below(end.saturating_sub(start));
                    match rng.below(3) {
                        0 => write_at(&mut buf, at, &EDGE_U32[rng.below(16)].to_le_bytes()),
                        1 => write_at(&mut buf, at, &(rng.next() >> rng.below(64)).to_le_bytes()),
                        _ => write_at(&mut buf, at, &[rng.next() as u8]),
                    }
                    run(&mut buf, &mut reached);
                }
            }
        }
    }
    for round in 0..random_rounds {
        if round % 2 == 0 {
            // Garbage tensor bytes: weights, scales, norms and embeddings.
            for _ in 0..1 + rng.below(64) {
                let at = data_start + rng.below(original.len() - data_start);
                let len = 1 + rng.below(64);
                for b in buf.iter_mut().skip(at).take(len) {
                    *b = rng.next() as u8;
                }
            }
        } else {
            // A few random bytes or an edge-case word anywhere in the header.
            let at = rng.below(data_start);
            if rng.below(2) == 0 {
                write_at(&mut buf, at, &EDGE_U32[rng.below(16)].to_le_bytes());
            } else {
                buf[at] ^= 1 << rng.below(8);
            }
        }
        run(&mut buf, &mut reached);
    }
    reached
}

/// Byte width of a fixed-size value.
fn scalar_width(value: &Value<'_>) -> Option<usize> {
    Some(match value {
        Value::U8(_) | Value::I8(_) | Value::Bool(_) => 1,
        Value::U16(_) | Value::I16(_) => 2,
        Value::U32(_) | Value::I32(_) | Value::F32(_) => 4,
        Value::U64(_) | Value::I64(_) | Value::F64(_) => 8,
        Value::String(_) | Value::Array(_) => return None,
    })
}

/// A number from the environment, for longer runs by hand (`RUN_MUTATION_ROUNDS=20000
/// RUN_MUTATION_SEED=7 cargo test --release run_mutation -- --nocapture`).
fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn damaged_i2s_model_never_panics_the_runtime() {
    let seed = env_or("RUN_MUTATION_SEED", 0x5eed_0001);
    let rounds = env_or("RUN_MUTATION_ROUNDS", 400) as usize;
    let reached = sweep("i2_s", seed, rounds);
    eprintln!("i2_s: {reached:?}");
    // The sweep is only worth something if most of the damage got past the parser and a fair
    // share of it past the loader into generation.
    assert!(reached.parsed > 300, "{reached:?}");
    assert!(reached.loaded > 150, "{reached:?}");
    assert!(reached.generated > 100, "{reached:?}");
}

#[test]
fn damaged_tl2_model_never_panics_the_runtime() {
    let seed = env_or("RUN_MUTATION_SEED", 0x5eed_0002);
    let reached = sweep("tl2", seed, 200);
    eprintln!("tl2: {reached:?}");
    assert!(reached.loaded > 100, "{reached:?}");
}
