//! Q6_K, Q4_0, Q8_0 and Q8_K against ggml itself (`fixtures/vectors/blockq`, made by
//! `scripts/make_blockq_vectors.py` from ggml's `quantize_row_*_ref` and its CPU
//! `vec_dot_q6_K_q8_K` / `vec_dot_q4_0_q8_0`): our quantizers write the same bytes, and our
//! Q6_K × Q8_K and Q4_0 × Q8_0 kernels give ggml's dot products up to f32 summation order.

use bitnet_gguf::layout::block_quant::{Q4_0, Q6_K, Q8_0};
use bitnet_gguf::layout::q6_k;
use bitnet_gguf::layout::Shape;
use bitnet_gguf::runtime::kernels::{Isa, Kernels, Q4_0Weights, Q6_KWeights, Q8KRows, Q8Rows};

const DIR: &str = "fixtures/vectors/blockq";
const ROWS: usize = 8;
const K: usize = 2560;

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap_or_else(|e| panic!("{DIR}/{name}: {e}"))
}

fn floats(name: &str) -> Vec<f32> {
    bytes(name)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn q6_k_q4_0_and_q8_0_quantizers_write_ggmls_bytes() {
    let w = floats("weights.f32");
    assert_eq!(w.len(), ROWS * K);
    for (quant, file) in [
        (&Q6_K, "weights.q6_k"),
        (&Q8_0, "weights.q8_0"),
        (&Q4_0, "weights.q4_0"),
    ] {
        let expected = bytes(file);
        let mut ours = Vec::new();
        quant.quantize_into(&w, &mut ours).unwrap();
        assert_eq!(ours.len(), expected.len(), "{}", quant.name());
        let bb = quant.block_bytes();
        let differing: Vec<usize> = ours
            .chunks_exact(bb)
            .zip(expected.chunks_exact(bb))
            .enumerate()
            .filter(|(_, (a, b))| a != b)
            .map(|(i, _)| i)
            .collect();
        assert!(
            differing.is_empty(),
            "{}: {} of {} blocks differ from ggml, first {:?}",
            quant.name(),
            differing.len(),
            ours.len() / bb,
            differing.first()
        );
    }
}

#[test]
fn q8_k_activations_and_q6_k_dots_match_ggml() {
    let x = floats("activations.f32");
    let q8k = bytes("activations.q8_k");
    let mut q = Q8KRows::new();
    q.quantize(&x, K).unwrap();
    let nb = K / 256;
    for (b, block) in q8k.chunks_exact(292).enumerate() {
        let d = f32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        assert_eq!(q.scales()[b].to_bits(), d.to_bits(), "block {b}: d");
        let qs: Vec<i8> = block[4..260].iter().map(|&v| v as i8).collect();
        assert_eq!(
            &q.values()[b * 256..(b + 1) * 256],
            &qs[..],
            "block {b}: qs"
        );
        let bsums: Vec<i16> = block[260..]
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(
            &q.bsums()[b * 16..(b + 1) * 16],
            &bsums[..],
            "block {b}: bsums"
        );
    }
    assert_eq!(q.scales().len(), ROWS * nb);

    let q6 = bytes("weights.q6_k");
    let w = Q6_KWeights::new(&q6, Shape::new(ROWS, K)).unwrap();
    let expected = floats("dots.f32");
    // Σ |d_w · d_x · scale · (code − 32) · q| over the values of an output: a bound on the
    // partial sums of any grouping (ggml converts 8 integer lanes to f32 separately; we sum
    // each block exactly first), so the two differ by a few ulps of it at most.
    let magnitude = |t: usize, r: usize| -> f32 {
        (0..nb)
            .map(|b| {
                let blk = &q6[(r * nb + b) * 210..(r * nb + b + 1) * 210];
                let dw = half::f16::from_le_bytes([blk[208], blk[209]]).to_f32();
                let d = (dw * q.scales()[t * nb + b]).abs();
                let ints: i64 = (0..256)
                    .map(|i| {
                        let code = i64::from(q6_k::code(blk, i)) - 32;
                        let sc = i64::from(blk[192 + i / 16] as i8);
                        (sc * code * i64::from(q.values()[t * K + b * 256 + i])).abs()
                    })
                    .sum();
                d * ints as f32
            })
            .sum()
    };
    assert_ggmls_dots(&expected, magnitude, |k, y| k.q6_k(&w, &q, y).unwrap());
}

#[test]
fn q8_0_activations_and_q4_0_dots_match_ggml() {
    let x = floats("activations.f32");
    let mut q = Q8Rows::new();
    q.quantize(&x, K).unwrap();
    // Our Q8_0 activation rows are ggml's quantize_row_q8_0_ref bytes.
    for (b, block) in bytes("activations.q8_0").chunks_exact(34).enumerate() {
        let d = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        assert_eq!(q.scales()[b].to_bits(), d.to_bits(), "block {b}: d");
        let qs: Vec<i8> = block[2..].iter().map(|&v| v as i8).collect();
        assert_eq!(&q.values()[b * 32..(b + 1) * 32], &qs[..], "block {b}: qs");
    }
    let q4 = bytes("weights.q4_0");
    let w = Q4_0Weights::new(&q4, Shape::new(ROWS, K)).unwrap();
    let expected = floats("dots_q4_0.f32");
    let nb = K / 32;
    // Σ |d_w · d_x · (nibble − 8) · q|: bounds every partial sum of any grouping.
    let magnitude = |t: usize, r: usize| -> f32 {
        (0..nb)
            .map(|b| {
                let blk = &q4[(r * nb + b) * 18..(r * nb + b + 1) * 18];
                let dw = half::f16::from_le_bytes([blk[0], blk[1]]).to_f32();
                let xs = &q.values()[t * K + b * 32..t * K + b * 32 + 32];
                let ints: i32 = (0..16)
                    .map(|j| {
                        let (lo, hi) = (
                            i32::from(blk[2 + j] & 15) - 8,
                            i32::from(blk[2 + j] >> 4) - 8,
                        );
                        (lo * i32::from(xs[j])).abs() + (hi * i32::from(xs[j + 16])).abs()
                    })
                    .sum();
                (dw * q.scales()[t * nb + b]).abs() * ints as f32
            })
            .sum()
    };
    assert_ggmls_dots(&expected, magnitude, |k, y| k.q4_0(&w, &q, y).unwrap());
}

/// Runs `matmul` (ROWS weight rows × ROWS tokens) on every available ISA and checks each output
/// against ggml's: the same integers with f32 partial sums in another order, so within a few
/// ulps of `magnitude(token, row)`, a bound on every partial sum.
fn assert_ggmls_dots(
    expected: &[f32],
    magnitude: impl Fn(usize, usize) -> f32,
    matmul: impl Fn(&Kernels, &mut [f32]),
) {
    for isa in [Isa::Scalar, Isa::Avx2] {
        if !isa.available() {
            eprintln!("SKIPPED: {isa:?} not available");
            continue;
        }
        let kernels = Kernels::new(2, Some(isa)).unwrap();
        let mut y = vec![0f32; ROWS * ROWS];
        matmul(&kernels, &mut y);
        for (i, (&ours, &theirs)) in y.iter().zip(expected).enumerate() {
            let (t, r) = (i / ROWS, i % ROWS);
            let tol = magnitude(t, r) * 8.0 * f32::EPSILON;
            assert!(
                (ours - theirs).abs() <= tol,
                "{isa:?} token {t} row {r}: ours {ours} ggml {theirs} (tolerance {tol})"
            );
        }
    }
}
