//! Kernel benchmarks on the BitNet b1.58 2B-4T shapes: GEMV (1 token) and GEMM (128 tokens) for
//! I2_S, TL1, TL2 and TQ2_0, plus the lm_head GEMV (128256 × 2560) in F16, Q8_0, Q4_0 (as in the
//! file and interleaved by 8 rows) and Q6_K, at 1 and 2 threads.
//! Prints weight GB/s (weight bytes / time; a GEMM reads the weights once per call) and integer
//! ops/s (2·M·K·tokens / time), median of the repetitions after one warm-up.
//!
//! Run: `cargo bench --bench kernels` (`-- --quick` for fewer repetitions; `-- --cold` for
//! weights streamed from DRAM, beside the plain sequential read rate; `-- --cached` for the
//! lm_head kernels on 2048 rows that stay in the L3 cache).

use bitnet_gguf::layout::tiling::{Tl1Tiling, Tl2Tiling};
use bitnet_gguf::layout::Shape;
use bitnet_gguf::runtime::kernels::*;
use std::time::Instant;

/// Random bytes (xorshift64): the kernels' speed does not depend on the values.
fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// `tokens` rows of K random activations (integers −128..127), quantized with the runtime's
/// I2_S rule.
fn random_activations(tokens: usize, k: usize) -> QuantizedRows {
    let x: Vec<f32> = random_bytes(tokens * k, 5)
        .iter()
        .map(|&b| b as f32 - 128.0)
        .collect();
    let mut q = QuantizedRows::new();
    q.quantize(&x, k, QuantRule::I2s).expect("quantize");
    q
}

/// The 2B-4T projection shapes (M×K): q/o, k/v, gate/up, down.
const SHAPES: [(usize, usize); 4] = [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)];

/// Tilings of the fixtures for these shapes (`kernel-configs.md`).
fn tl1_tiling(m: usize, k: usize) -> Tl1Tiling {
    let (tile_rows, block_k, simd_rows) = match (m, k) {
        (640, 2560) => (128, 64, 64),
        (2560, 2560) => (320, 128, 64),
        (6912, 2560) => (256, 64, 32),
        _ => (160, 64, 32),
    };
    Tl1Tiling {
        tile_rows,
        block_k,
        simd_rows,
    }
}

fn tl2_tiling(m: usize, _k: usize) -> Tl2Tiling {
    let tile_rows = match m {
        640 => 128,
        2560 => 320,
        6912 => 256,
        _ => 160,
    };
    Tl2Tiling {
        tile_rows,
        block_k: 96,
    }
}

fn median_secs(reps: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[reps / 2]
}

/// GEMV over a set of weight matrices larger than the last-level cache, one after the other,
/// as decode does: the DRAM-bound rate the model sees (the per-shape rows above re-read one
/// matrix that stays in L3).
fn cold_gemv(threads: usize) {
    let kern = Kernels::new(threads, None).expect("kernels");
    let (m, k, copies) = (6912usize, 2560usize, 24usize);
    let shape = Shape::new(m, k);
    let bytes: Vec<Vec<u8>> = (0..copies)
        .map(|c| {
            random_bytes(m * k / 4 + 32, 10 + c as u64)
                .iter()
                .map(|b| b & 0xaa)
                .collect()
        })
        .collect();
    let ws: Vec<I2sWeights<'_>> = bytes
        .iter()
        .map(|b| I2sWeights::new(b, shape).expect("i2s"))
        .collect();
    let q = random_activations(1, k);
    let mut y = vec![0f32; m];
    let secs = median_secs(7, || {
        for w in &ws {
            kern.i2s(w, &q, &mut y).expect("i2s");
        }
    });
    let total = copies * m * k / 4;
    println!(
        "| I2_S cold ({copies} × {m}×{k}, {} MB) | {threads} | {:.3} | {:.2} |",
        total >> 20,
        secs * 1e3,
        total as f64 / secs / 1e9
    );
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    if std::env::args().any(|a| a == "--cold") {
        println!("| kernel | threads | median ms | weight GB/s |");
        println!("|---|---|---|---|");
        read_rate(&[1, 2]);
        cold_gemv(1);
        cold_gemv(2);
        for threads in [1, 2] {
            lm_head(threads, 5, LM_HEAD_ROWS);
        }
        return;
    }
    if std::env::args().any(|a| a == "--gemm") {
        // The I2_S prompt GEMM alone (128 tokens), the kernel prompt processing spends its time in.
        println!("| kernel | M×K | tokens | threads | median ms | weight GB/s | int GOP/s |");
        println!("|---|---|---|---|---|---|---|");
        for threads in [1, 2] {
            i2s_gemm(threads, if quick { 3 } else { 9 });
        }
        return;
    }
    if std::env::args().any(|a| a == "--cached") {
        // The head kernels' compute rate: 2048 rows (3–10 MB) stay in the L3 cache.
        println!("| kernel | M×K | tokens | threads | median ms | weight GB/s | GOP/s |");
        println!("|---|---|---|---|---|---|---|");
        lm_head(1, 201, 2048);
        return;
    }
    println!("isa: {}", Isa::detect().name());
    println!("| kernel | M×K | tokens | threads | median ms | weight GB/s | int GOP/s |");
    println!("|---|---|---|---|---|---|---|");
    for threads in [1, 2] {
        let kern = Kernels::new(threads, None).expect("kernels");
        for (m, k) in SHAPES {
            let shape = Shape::new(m, k);
            let i2s = random_bytes(m * k / 4 + 32, 1)
                .iter()
                .map(|b| b & 0xaa)
                .collect::<Vec<_>>();
            let tl1 = random_bytes(m * k / 4 + 32, 2)
                .iter()
                .map(|b| b & 0x77)
                .collect::<Vec<_>>();
            let tl2_len = Tl2Tiling::payload_len(shape).expect("len").div_ceil(32) * 32 + 32;
            let tl2 = random_bytes(tl2_len, 3)
                .iter()
                .map(|b| b & 0x77)
                .collect::<Vec<_>>();
            let tq2 = random_bytes(m * k / 256 * 66, 4);
            let w_i2s = I2sWeights::new(&i2s, shape).expect("i2s");
            let w_tl1 = Tl1Weights::new(&tl1, shape, tl1_tiling(m, k)).expect("tl1");
            let w_tl2 = Tl2Weights::new(&tl2, shape, tl2_tiling(m, k)).expect("tl2");
            let w_tq2 = Tq2_0Weights::new(&tq2, shape).expect("tq2");
            for ntok in [1usize, 128] {
                let q = random_activations(ntok, k);
                let mut y = vec![0f32; ntok * m];
                let reps = match (quick, ntok) {
                    (true, _) => 3,
                    (false, 1) => 21,
                    (false, _) => 5,
                };
                let weight_bytes = [
                    m * k / 4,
                    m * k / 4,
                    Tl2Tiling::payload_len(shape).unwrap_or(0),
                    m * k / 256 * 66,
                ];
                for (i, name) in ["I2_S", "TL1", "TL2", "TQ2_0"].iter().enumerate() {
                    let secs = median_secs(reps, || {
                        let r = match i {
                            0 => kern.i2s(&w_i2s, &q, &mut y),
                            1 => kern.tl1(&w_tl1, &q, &mut y),
                            2 => kern.tl2(&w_tl2, &q, &mut y),
                            _ => kern.tq2_0(&w_tq2, &q, &mut y),
                        };
                        r.expect("matmul");
                    });
                    println!(
                        "| {name} | {m}×{k} | {ntok} | {threads} | {:.3} | {:.2} | {:.1} |",
                        secs * 1e3,
                        weight_bytes[i] as f64 / secs / 1e9,
                        2.0 * (m * k * ntok) as f64 / secs / 1e9
                    );
                }
            }
        }
        lm_head(threads, if quick { 3 } else { 11 }, LM_HEAD_ROWS);
    }
}

/// The I2_S matmul of 128 tokens on each 2B-4T shape.
fn i2s_gemm(threads: usize, reps: usize) {
    let kern = Kernels::new(threads, None).expect("kernels");
    for (m, k) in SHAPES {
        let shape = Shape::new(m, k);
        let i2s: Vec<u8> = random_bytes(m * k / 4 + 32, 1)
            .iter()
            .map(|b| b & 0xaa)
            .collect();
        let w = I2sWeights::new(&i2s, shape).expect("i2s");
        let ntok = 128;
        let q = random_activations(ntok, k);
        let mut y = vec![0f32; ntok * m];
        let secs = median_secs(reps, || kern.i2s(&w, &q, &mut y).expect("matmul"));
        println!(
            "| I2_S | {m}×{k} | {ntok} | {threads} | {:.3} | {:.2} | {:.1} |",
            secs * 1e3,
            (m * k / 4) as f64 / secs / 1e9,
            2.0 * (m * k * ntok) as f64 / secs / 1e9
        );
    }
}

/// The read ceiling the kernels are held to: one sequential pass over a 1 GiB heap buffer,
/// split in contiguous parts, one per thread, each read front to back (no compute beyond an
/// xor per 8 bytes), for each thread count. A GEMV that reads its weights at this rate is
/// bound by memory alone.
fn read_rate(thread_counts: &[usize]) {
    let bytes = random_bytes(1 << 30, 3);
    for &threads in thread_counts {
        read_rate_on(&bytes, threads);
    }
}

fn read_rate_on(bytes: &[u8], threads: usize) {
    let part = bytes.len() / threads;
    let secs = median_secs(7, || {
        std::thread::scope(|s| {
            for half in bytes.chunks(part) {
                s.spawn(move || {
                    let folded = half.chunks_exact(64).fold([0u64; 8], |mut acc, line| {
                        for (a, word) in acc.iter_mut().zip(line.chunks_exact(8)) {
                            *a ^= u64::from_le_bytes(word.try_into().expect("8 bytes"));
                        }
                        acc
                    });
                    std::hint::black_box(folded);
                });
            }
        });
    });
    println!(
        "| sequential read (1 GiB) | {threads} | {:.3} | {:.2} |",
        secs * 1e3,
        bytes.len() as f64 / secs / 1e9
    );
}

/// Rows of the 2B-4T lm_head (its vocabulary).
const LM_HEAD_ROWS: usize = 128256;

/// The lm_head GEMV (`m` × 2560; the model's is 128256 rows) in each head type: F16 (656 MB,
/// DRAM-bound), Q8_0 (349 MB), Q4_0 (185 MB; also interleaved as `--repack` does) and Q6_K
/// (269 MB), each with the activation handling the model uses (f16 rounding, Q8_0 or Q8_K
/// quantization, done once before timing).
fn lm_head(threads: usize, reps: usize, m: usize) {
    let kern = Kernels::new(threads, None).expect("kernels");
    let k = 2560usize;
    let shape = Shape::new(m, k);
    let x: Vec<f32> = (0..k).map(|i| (i % 17) as f32 * 0.1 - 0.8).collect();
    let mut y = vec![0f32; m];
    let report = |name: &str, bytes: usize, secs: f64| {
        println!(
            "| {name} lm_head | {m}×{k} | 1 | {threads} | {:.3} | {:.2} | {:.1} (mul-add) |",
            secs * 1e3,
            bytes as f64 / secs / 1e9,
            2.0 * (m * k) as f64 / secs / 1e9
        );
    };
    {
        let f16 = random_bytes(m * k * 2, 6)
            .chunks_exact(2)
            .flat_map(|c| half::f16::from_f32((c[0] as f32 - 128.0) / 256.0).to_le_bytes())
            .collect::<Vec<_>>();
        let w = F16Weights::new(&f16, shape).expect("f16");
        let secs = median_secs(reps, || kern.f16(&w, &x, &mut y).expect("f16"));
        report("F16", f16.len(), secs);
    }
    // Random block bytes with a small finite f16 `d` (its high byte masked) in every block.
    let blocks = |block_bytes: usize, d_at: usize, seed: u64| {
        let block_values = if block_bytes == 210 { 256 } else { 32 };
        let mut b = random_bytes(m * k / block_values * block_bytes, seed);
        for blk in b.chunks_exact_mut(block_bytes) {
            blk[d_at + 1] &= 0x1b;
        }
        b
    };
    {
        let q8 = blocks(34, 0, 7);
        let w = Q8_0Weights::new(&q8, shape).expect("q8_0");
        let mut xq = Q8Rows::new();
        xq.quantize(&x, k).expect("q8");
        let secs = median_secs(reps, || kern.q8_0(&w, &xq, &mut y).expect("q8_0"));
        report("Q8_0", q8.len(), secs);
    }
    {
        let q4 = blocks(18, 0, 9);
        let w = Q4_0Weights::new(&q4, shape).expect("q4_0");
        let mut xq = Q8Rows::new();
        xq.quantize(&x, k).expect("q8");
        let secs = median_secs(reps, || kern.q4_0(&w, &xq, &mut y).expect("q4_0"));
        report("Q4_0", q4.len(), secs);
        let x8 = Q4_0x8Weights::interleave(&w).expect("interleave");
        let w8 = Q4_0x8Weights::new(&x8, shape).expect("q4_0x8");
        let secs = median_secs(reps, || kern.q4_0x8(&w8, &xq, &mut y).expect("q4_0x8"));
        report("Q4_0 interleaved (--repack)", x8.len(), secs);
    }
    {
        let q6 = blocks(210, 208, 8);
        let w = Q6_KWeights::new(&q6, shape).expect("q6_k");
        let mut xq = Q8KRows::new();
        xq.quantize(&x, k).expect("q8_k");
        let secs = median_secs(reps, || kern.q6_k(&w, &xq, &mut y).expect("q6_k"));
        report("Q6_K", q6.len(), secs);
    }
}
