//! AVX2 kernels equal the scalar reference: exactly in integer accumulators, and bit for bit in
//! the float (F16/F32) dot products and weighted sums. Skips loudly without AVX2.

use crate::kernels_support::*;
use bitnet_gguf::layout::tiling::{Tl1Tiling, Tl2Tiling};
use bitnet_gguf::layout::Shape;
use bitnet_gguf::runtime::kernels::*;
use proptest::prelude::*;

fn pair() -> Option<(Kernels, Kernels)> {
    if !Isa::Avx2.available() {
        eprintln!("SKIPPED: AVX2 not available on this CPU; avx2 == scalar not checked");
        return None;
    }
    Some((
        Kernels::new(1, Some(Isa::Scalar)).unwrap(),
        Kernels::new(2, Some(Isa::Avx2)).unwrap(),
    ))
}

fn ternary(seed: u64, n: usize) -> Vec<i8> {
    splitmix_ternary(seed, n)
}

/// Activation rows; `extreme` pushes values to ±127/−128 to exercise accumulator bounds.
fn activations(seed: u64, rows: usize, k: usize, extreme: bool) -> QuantizedRows {
    let raw = splitmix_ternary(seed ^ 0xabcdef, rows * k);
    let x: Vec<f32> = raw
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            if extreme {
                f32::from(t) * 1000.0
            } else {
                f32::from(t) * (1.0 + (i % 97) as f32 * 0.37)
            }
        })
        .collect();
    let mut q = QuantizedRows::new();
    q.quantize(&x, k, QuantRule::I2s).unwrap();
    q
}

/// `ntok` activation rows of `k` values quantized to Q8_0 blocks; `extreme` saturates them.
fn q8_activations(seed: u64, ntok: usize, k: usize, extreme: bool) -> Q8Rows {
    let x: Vec<f32> = ternary(seed, ntok * k)
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            if extreme {
                f32::from(v) * 1e3
            } else {
                f32::from(v) * (0.3 + (i % 11) as f32 * 0.2)
            }
        })
        .collect();
    let mut q = Q8Rows::new();
    q.quantize(&x, k).unwrap();
    q
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn i2s_avx2_equals_scalar(m in 1usize..19, kb in 1usize..21, ntok in 1usize..11, seed: u64, extreme: bool) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let k = kb * 128;
        let bytes = pack_i2s(&ternary(seed, m * k), 1.0);
        let w = I2sWeights::new(&bytes, Shape::new(m, k)).unwrap();
        let q = activations(seed, ntok, k, extreme);
        let (mut rs, mut ra) = (vec![0; m * ntok], vec![0; m * ntok]);
        s.i2s_raw(&w, &q, &mut rs).unwrap();
        a.i2s_raw(&w, &q, &mut ra).unwrap();
        prop_assert_eq!(rs, ra);
    }

    #[test]
    fn tl1_avx2_equals_scalar(
        bm64 in any::<bool>(), sub in 1usize..3, tiles in 1usize..3,
        bk_units in 1usize..5, kblocks in 1usize..4, seed: u64, extreme: bool,
    ) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let bm = if bm64 { 64 } else { 32 };
        let bk = bk_units * 16; // multiple of 256/bm and of 16
        let (bm_tile, k) = (bm * sub, bk * kblocks);
        let m = bm_tile * tiles;
        let bytes = with_scale_slot(pack_tl1(&ternary(seed, m * k), m, k, bm_tile, bk, bm), 1.0);
        let tiling = Tl1Tiling { tile_rows: bm_tile, block_k: bk, simd_rows: bm };
        let w = Tl1Weights::new(&bytes, Shape::new(m, k), tiling).unwrap();
        let q = activations(seed, 2, k, extreme);
        let (mut ds, mut da) = (vec![0; 2 * m], vec![0; 2 * m]);
        s.tl1_dot(&w, &q, &mut ds).unwrap();
        a.tl1_dot(&w, &q, &mut da).unwrap();
        prop_assert_eq!(ds, da);
    }

    #[test]
    fn tl2_avx2_equals_scalar(
        sub in 1usize..3, tiles in 1usize..3, bk_units in 1usize..11,
        kblocks in 1usize..4, two_blocks in 0usize..3, seed: u64, extreme: bool,
    ) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let bk = bk_units * 24;
        let bm_tile = 32 * sub;
        let m = bm_tile * tiles;
        let k = bk * kblocks + 32 * two_blocks;
        prop_assume!(32 * two_blocks < bk || two_blocks == 0);
        let tern = ternary(seed, m * k);
        let bytes = with_scale_slot(pack_tl2(&tern, m, k, bm_tile, bk), 1.0);
        let tiling = Tl2Tiling { tile_rows: bm_tile, block_k: bk };
        let w = Tl2Weights::new(&bytes, Shape::new(m, k), tiling).unwrap();
        let q = activations(seed, 2, k, extreme);
        let (mut ds, mut da) = (vec![0; 2 * m], vec![0; 2 * m]);
        s.tl2_dot(&w, &q, &mut ds).unwrap();
        a.tl2_dot(&w, &q, &mut da).unwrap();
        prop_assert_eq!(&ds, &da);
        for r in 0..m {
            let exact: i32 = (0..k).map(|c| i32::from(tern[r * k + c]) * i32::from(q.row(0)[c])).sum();
            prop_assert_eq!(ds[r], exact);
        }
    }

    /// Random bytes, including codes the writers never emit: both ISAs read them identically.
    #[test]
    fn tq_avx2_equals_scalar(m in 1usize..6, nb in 1usize..4, ntok in 1usize..4, bytes in proptest::collection::vec(any::<u8>(), 6 * 3 * 66), seed: u64) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let k = nb * 256;
        let q = activations(seed, ntok, k, false);
        let shape = Shape::new(m, k);
        let tq2 = Tq2_0Weights::new(&bytes[..m * nb * 66], shape).unwrap();
        let (mut ds, mut da) = (vec![0; ntok * m * nb], vec![0; ntok * m * nb]);
        s.tq2_0_dot(&tq2, &q, &mut ds).unwrap();
        a.tq2_0_dot(&tq2, &q, &mut da).unwrap();
        prop_assert_eq!(&ds, &da);
        let tq1 = Tq1_0Weights::new(&bytes[..m * nb * 54], shape).unwrap();
        s.tq1_0_dot(&tq1, &q, &mut ds).unwrap();
        a.tq1_0_dot(&tq1, &q, &mut da).unwrap();
        prop_assert_eq!(ds, da);
    }

    /// Q8_0: random weight bytes (any i8, including −128, any f16 d) against Q8_0-quantized
    /// activations: per-block dots equal the exact Σ w·q on both ISAs, and the f32 outputs are
    /// bit-identical (one summation order). 1–19 blocks cover one and two 8-block groups with
    /// and without single blocks after them.
    #[test]
    fn q8_0_avx2_equals_scalar_and_exact(m in 1usize..7, nb in 1usize..20, ntok in 1usize..4, bytes in proptest::collection::vec(any::<u8>(), 6 * 19 * 34), seed: u64, extreme: bool) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let k = nb * 32;
        let q = q8_activations(seed, ntok, k, extreme);
        // Finite f16 scales (exponent below 0x1f) so the float outputs compare.
        let mut wb = bytes[..m * nb * 34].to_vec();
        for blk in wb.chunks_exact_mut(34) { blk[1] &= 0x3b; }
        let w = Q8_0Weights::new(&wb, Shape::new(m, k)).unwrap();
        let (mut ds, mut da) = (vec![0; ntok * m * nb], vec![0; ntok * m * nb]);
        s.q8_0_dot(&w, &q, &mut ds).unwrap();
        a.q8_0_dot(&w, &q, &mut da).unwrap();
        prop_assert_eq!(&ds, &da);
        for tt in 0..ntok {
            for r in 0..m {
                for b in 0..nb {
                    let exact: i32 = (0..32).map(|j| i32::from(wb[(r * nb + b) * 34 + 2 + j] as i8) * i32::from(q.values()[tt * k + b * 32 + j])).sum();
                    prop_assert_eq!(ds[(tt * m + r) * nb + b], exact);
                }
            }
        }
        let (mut ys, mut ya) = (vec![0f32; ntok * m], vec![0f32; ntok * m]);
        s.q8_0(&w, &q, &mut ys).unwrap();
        a.q8_0(&w, &q, &mut ya).unwrap();
        prop_assert_eq!(ys.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), ya.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    /// Q4_0: random weight bytes (every nibble, any finite f16 d) against Q8_0-quantized
    /// activations: per-block dots equal the exact `Σ (nibble − 8)·q` on both ISAs, and the f32
    /// outputs are bit-identical. 1–19 blocks cover the 8-block groups and the single blocks.
    #[test]
    fn q4_0_avx2_equals_scalar_and_exact(m in 1usize..7, nb in 1usize..20, ntok in 1usize..4, bytes in proptest::collection::vec(any::<u8>(), 6 * 19 * 18), seed: u64, extreme: bool) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let k = nb * 32;
        let q = q8_activations(seed, ntok, k, extreme);
        let mut wb = bytes[..m * nb * 18].to_vec();
        for blk in wb.chunks_exact_mut(18) { blk[1] &= 0x3b; }
        let w = Q4_0Weights::new(&wb, Shape::new(m, k)).unwrap();
        let (mut ds, mut da) = (vec![0; ntok * m * nb], vec![0; ntok * m * nb]);
        s.q4_0_dot(&w, &q, &mut ds).unwrap();
        a.q4_0_dot(&w, &q, &mut da).unwrap();
        prop_assert_eq!(&ds, &da);
        for tt in 0..ntok {
            for r in 0..m {
                for b in 0..nb {
                    let qs = &wb[(r * nb + b) * 18 + 2..(r * nb + b + 1) * 18];
                    let xs = &q.values()[tt * k + b * 32..tt * k + b * 32 + 32];
                    let exact: i32 = (0..16).map(|j| (i32::from(qs[j] & 15) - 8) * i32::from(xs[j]) + (i32::from(qs[j] >> 4) - 8) * i32::from(xs[j + 16])).sum();
                    prop_assert_eq!(ds[(tt * m + r) * nb + b], exact);
                }
            }
        }
        let (mut ys, mut ya) = (vec![0f32; ntok * m], vec![0f32; ntok * m]);
        s.q4_0(&w, &q, &mut ys).unwrap();
        a.q4_0(&w, &q, &mut ya).unwrap();
        prop_assert_eq!(ys.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), ya.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    /// Q4_0 interleaved by 8 rows: on both ISAs, the same bits as the Q4_0 kernel on the rows
    /// before interleaving (every nibble, any finite d, saturated activations included).
    #[test]
    fn q4_0x8_equals_q4_0_bit_for_bit(groups in 1usize..4, nb in 1usize..20, ntok in 1usize..3, bytes in proptest::collection::vec(any::<u8>(), 24 * 19 * 18), seed: u64, extreme: bool) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let (m, k) = (8 * groups, nb * 32);
        let q = q8_activations(seed, ntok, k, extreme);
        let mut wb = bytes[..m * nb * 18].to_vec();
        for blk in wb.chunks_exact_mut(18) { blk[1] &= 0x3b; }
        let w = Q4_0Weights::new(&wb, Shape::new(m, k)).unwrap();
        let x8 = Q4_0x8Weights::interleave(&w).unwrap();
        let w8 = Q4_0x8Weights::new(&x8, Shape::new(m, k)).unwrap();
        let bits = |y: &[f32]| y.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let mut reference = vec![0f32; ntok * m];
        s.q4_0(&w, &q, &mut reference).unwrap();
        for kern in [&s, &a] {
            let mut y = vec![0f32; ntok * m];
            kern.q4_0x8(&w8, &q, &mut y).unwrap();
            prop_assert_eq!(bits(&y), bits(&reference));
        }
    }

    /// Q6_K: random weight bytes (every code, any int8 scale including −128, finite f16 d)
    /// against Q8_K-quantized activations: per-block sums equal the exact
    /// `Σ_j scale_j · Σ (code − 32)·q` on both ISAs, and the f32 outputs are bit-identical.
    #[test]
    fn q6_k_avx2_equals_scalar_and_exact(m in 1usize..5, nb in 1usize..4, ntok in 1usize..3, bytes in proptest::collection::vec(any::<u8>(), 4 * 3 * 210), seed: u64, extreme: bool) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let k = nb * 256;
        let t = ternary(seed, ntok * k);
        let x: Vec<f32> = t.iter().enumerate().map(|(i, &v)| if extreme { f32::from(v) * -1e3 } else { f32::from(v) * (0.3 + (i % 11) as f32 * 0.2) }).collect();
        let mut q = Q8KRows::new();
        q.quantize(&x, k).unwrap();
        let mut wb = bytes[..m * nb * 210].to_vec();
        for blk in wb.chunks_exact_mut(210) { blk[209] &= 0x3b; }
        let w = Q6_KWeights::new(&wb, Shape::new(m, k)).unwrap();
        let (mut ds, mut da) = (vec![0; ntok * m * nb], vec![0; ntok * m * nb]);
        s.q6_k_dot(&w, &q, &mut ds).unwrap();
        a.q6_k_dot(&w, &q, &mut da).unwrap();
        prop_assert_eq!(&ds, &da);
        for tt in 0..ntok {
            for r in 0..m {
                for b in 0..nb {
                    let block = &wb[(r * nb + b) * 210..(r * nb + b + 1) * 210];
                    let exact: i32 = (0..256).map(|i| {
                        let code = i32::from(bitnet_gguf::layout::q6_k::code(block, i)) - 32;
                        i32::from(block[192 + i / 16] as i8) * code * i32::from(q.values()[tt * k + b * 256 + i])
                    }).sum();
                    prop_assert_eq!(ds[(tt * m + r) * nb + b], exact);
                }
            }
        }
        let (mut ys, mut ya) = (vec![0f32; ntok * m], vec![0f32; ntok * m]);
        s.q6_k(&w, &q, &mut ys).unwrap();
        a.q6_k(&w, &q, &mut ya).unwrap();
        prop_assert_eq!(ys.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), ya.iter().map(|v| v.to_bits()).collect::<Vec<_>>());
    }

    /// The screening copy's i8 × i16 dots: exact integer sums, tails (K mod 16, K mod 64) and
    /// strided rows included, at the largest codes the screen allows for this K.
    #[test]
    fn i8_dots_avx2_equal_scalar_and_exact(m in 1usize..9, k in 1usize..400, pad in 0usize..70, seed: u64, extreme: bool) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let max_x = (i32::MAX as i64 / (127 * k as i64)).min(i16::MAX as i64) as i32;
        let t = ternary(seed, m * (k + pad) + k);
        let w: Vec<i8> = t[..m * (k + pad)].iter().enumerate().map(|(i, &v)| match extreme {
            true => if v < 0 { -127 } else { 127 },
            false => (i32::from(v) * ((i * 37 % 128) as i32)) as i8,
        }).collect();
        let x: Vec<i16> = t[m * (k + pad)..].iter().enumerate().map(|(i, &v)| match extreme {
            true => (if v < 0 { -max_x } else { max_x }) as i16,
            false => (i32::from(v) * ((i * 101) as i32 % max_x)) as i16,
        }).collect();
        let exact: Vec<i32> = (0..m).map(|r| {
            let sum: i64 = (0..k).map(|i| i64::from(w[r * (k + pad) + i]) * i64::from(x[i])).sum();
            i32::try_from(sum).unwrap()
        }).collect();
        let (mut ys, mut ya) = (vec![0; m], vec![0; m]);
        s.i8_dots(&w, k + pad, &x, &mut ys).unwrap();
        a.i8_dots(&w, k + pad, &x, &mut ya).unwrap();
        prop_assert_eq!(&ys, &exact);
        prop_assert_eq!(&ya, &exact);
        prop_assert!(a.i8_dots(&w, k + pad, &x, &mut vec![0; m + 1]).is_err());
    }

    /// F16/F32 matmuls, strided dots and weighted sums (attention over a KV cache): the scalar
    /// reference sums in the AVX2 kernel's lane order, so the bits are equal, tails included.
    /// The AVX2 kernel takes 4-row tiles in calls of up to 64 rows and streams one row at a
    /// time above that: the strided dots make one call over all m rows, so m of 60–71 takes
    /// the second path (the threaded matmul splits into 16-row units).
    #[test]
    fn dense_avx2_equals_scalar(m in prop_oneof![1usize..11, 60usize..72], k in 1usize..300, pad in 0usize..40, seed: u64) {
        let Some((s, a)) = pair() else { return Ok(()) };
        let floats = |n: usize, salt: u64| -> Vec<f32> {
            let t = ternary(seed ^ salt, n);
            t.iter().enumerate().map(|(i, &v)| f32::from(v) * (1.0 + (i % 13) as f32 / 7.0) + (i % 5) as f32 * 0.013).collect()
        };
        let (wf, x, weights) = (floats(m * (k + pad), 1), floats(k, 2), floats(m, 3));
        let w16: Vec<u8> = wf.iter().flat_map(|&v| half::f16::from_f32(v).to_le_bytes()).collect();
        let w32: Vec<u8> = wf.iter().flat_map(|&v| v.to_le_bytes()).collect();
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for format in [DenseFormat::F16, DenseFormat::F32] {
            let bytes = if format == DenseFormat::F16 { &w16 } else { &w32 };
            // Packed rows through the threaded matmul.
            let (mut ys, mut ya) = (vec![0.0; m], vec![0.0; m]);
            let packed = &bytes[..m * k * format.bytes()];
            if format == DenseFormat::F16 {
                let w = F16Weights::new(packed, Shape::new(m, k)).unwrap();
                s.f16(&w, &x, &mut ys).unwrap();
                a.f16(&w, &x, &mut ya).unwrap();
            } else {
                let w = F32Weights::new(packed, Shape::new(m, k)).unwrap();
                s.f32(&w, &x, &mut ys).unwrap();
                a.f32(&w, &x, &mut ya).unwrap();
            }
            prop_assert_eq!(bits(&ys), bits(&ya));
            // Rows `pad` elements apart.
            let stride = (k + pad) * format.bytes();
            s.dense_dots(format, bytes, stride, &x, &mut ys).unwrap();
            a.dense_dots(format, bytes, stride, &x, &mut ya).unwrap();
            prop_assert_eq!(bits(&ys), bits(&ya));
            let (mut zs, mut za) = (x.clone(), x.clone());
            s.dense_weighted_sum(format, bytes, stride, &weights, &mut zs).unwrap();
            a.dense_weighted_sum(format, bytes, stride, &weights, &mut za).unwrap();
            prop_assert_eq!(bits(&zs), bits(&za));
        }
    }
}

/// Several tokens through the F16/F32 matmul (rows taken 16 at a time, tokens inner) give
/// each token's single-token result, bit for bit, on both ISAs and 1 or 2 threads.
#[test]
fn dense_matmul_of_several_tokens_equals_one_token_at_a_time() {
    // One token on one thread takes all 77 rows in one call (one row at a time, above 64
    // rows); several tokens go 16 rows at a time (4-row tiles).
    let (m, k, tokens) = (77, 70, 3);
    let wf: Vec<f32> = (0..m * k)
        .map(|i| ((i * 7919) % 201) as f32 / 50.0 - 2.0)
        .collect();
    let x: Vec<f32> = (0..tokens * k)
        .map(|i| ((i * 104_729) % 97) as f32 / 30.0 - 1.6)
        .collect();
    let w16: Vec<u8> = wf
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let w32: Vec<u8> = wf.iter().flat_map(|&v| v.to_le_bytes()).collect();
    let (f16w, f32w) = (
        F16Weights::new(&w16, Shape::new(m, k)).unwrap(),
        F32Weights::new(&w32, Shape::new(m, k)).unwrap(),
    );
    for isa in [Isa::Scalar, Isa::Avx2]
        .into_iter()
        .filter(|i| i.available())
    {
        for threads in [1, 2] {
            let kern = Kernels::new(threads, Some(isa)).unwrap();
            for f16 in [true, false] {
                let run = |x: &[f32], y: &mut [f32]| match f16 {
                    true => kern.f16(&f16w, x, y).unwrap(),
                    false => kern.f32(&f32w, x, y).unwrap(),
                };
                let mut batched = vec![0f32; tokens * m];
                run(&x, &mut batched);
                for t in 0..tokens {
                    let mut one = vec![0f32; m];
                    run(&x[t * k..(t + 1) * k], &mut one);
                    assert!(
                        one == batched[t * m..(t + 1) * m],
                        "{isa:?} {threads} {f16} {t}"
                    );
                }
            }
        }
    }
}

#[test]
fn strided_dense_calls_check_their_bounds() {
    let k = Kernels::new(1, None).unwrap();
    let bytes = vec![0u8; 2 * 10];
    let mut out = [0.0f32; 3];
    // Three rows of 4 F16 values, 8 bytes apart: the last ends at byte 24 > 20.
    assert!(k
        .dense_dots(DenseFormat::F16, &bytes, 8, &[0.0; 4], &mut out)
        .is_err());
    assert!(k
        .dense_dots(DenseFormat::F16, &bytes, 6, &[0.0; 4], &mut out)
        .is_err());
    assert!(k
        .dense_dots(DenseFormat::F16, &bytes, 6, &[0.0; 3], &mut out)
        .is_ok());
    assert!(k
        .dense_weighted_sum(DenseFormat::F32, &bytes, 4, &[1.0; 3], &mut out[..2])
        .is_err());
    assert!(k
        .dense_weighted_sum(DenseFormat::F32, &bytes, 8, &[1.0; 2], &mut out[..2])
        .is_ok());
}

/// TQ2_0 / TQ1_0 per-block dots are the exact Σ t·q of the packed ternary weights.
#[test]
fn tq_block_dots_are_exact() {
    let (m, k) = (3, 512);
    let w = ternary(9, m * k);
    let q = activations(9, 2, k, true);
    let shape = Shape::new(m, k);
    let (tq2, tq1) = (pack_tq2_0(&w, 0x3c00), pack_tq1_0(&w, 0x3c00));
    for isa in [Isa::Scalar, Isa::Avx2] {
        if !isa.available() {
            eprintln!("SKIPPED: {isa:?} not available");
            continue;
        }
        let kern = Kernels::new(1, Some(isa)).unwrap();
        let mut d2 = vec![0; 2 * m * 2];
        let mut d1 = vec![0; 2 * m * 2];
        kern.tq2_0_dot(&Tq2_0Weights::new(&tq2, shape).unwrap(), &q, &mut d2)
            .unwrap();
        kern.tq1_0_dot(&Tq1_0Weights::new(&tq1, shape).unwrap(), &q, &mut d1)
            .unwrap();
        for t in 0..2 {
            for r in 0..m {
                for b in 0..2 {
                    let exact: i32 = (b * 256..(b + 1) * 256)
                        .map(|c| i32::from(w[r * k + c]) * i32::from(q.row(t)[c]))
                        .sum();
                    assert_eq!(d2[(t * m + r) * 2 + b], exact, "{isa:?} TQ2_0");
                    assert_eq!(d1[(t * m + r) * 2 + b], exact, "{isa:?} TQ1_0");
                }
            }
        }
    }
}

/// Q8_0 views and the Q8_0 activation quantizer refuse what they cannot handle, and the
/// quantizer follows ggml's rule (d = amax/127 rounded to f16, q = round(x/d)).
#[test]
fn q8_0_rejects_bad_input_and_quantizes_like_ggml() {
    assert!(Q8_0Weights::new(&[0u8; 34], Shape::new(1, 33)).is_err());
    assert!(Q8_0Weights::new(&[0u8; 33], Shape::new(1, 32)).is_err());
    assert!(Q8_0Weights::new(&[0u8; 68], Shape::new(2, 32)).is_ok());
    let mut q = Q8Rows::new();
    assert!(q.quantize(&[1.0; 31], 31).is_err());
    assert!(q.quantize(&[1.0; 48], 32).is_err());
    let x: Vec<f32> = (0..32).map(|i| i as f32 - 12.5).collect();
    q.quantize(&x, 32).unwrap();
    assert_eq!(q.rows(), 1);
    let d = 18.5f32 / 127.0;
    assert_eq!(q.scales()[0], half::f16::from_f32(d).to_f32());
    assert_eq!(q.values()[31], 127);
    assert_eq!(q.values()[0], (-12.5f32 * (1.0 / d)).round() as i8);
    let w = Q8_0Weights::new(&[0u8; 34], Shape::new(1, 32)).unwrap();
    let kern = Kernels::new(1, None).unwrap();
    let mut y = [1.0f32; 2];
    assert!(kern.q8_0(&w, &q, &mut y).is_err());
}

/// The interleaved Q4_0 view and its builder refuse row counts that are not whole groups of 8,
/// and a call with a wrong output length computes nothing.
#[test]
fn q4_0x8_rejects_partial_groups() {
    let w = Q4_0Weights::new(&[0u8; 7 * 18], Shape::new(7, 32)).unwrap();
    assert!(Q4_0x8Weights::interleave(&w).is_err());
    assert!(Q4_0x8Weights::new(&[0u8; 7 * 18], Shape::new(7, 32)).is_err());
    assert!(Q4_0x8Weights::new(&[0u8; 8 * 18 - 1], Shape::new(8, 32)).is_err());
    let w8 = Q4_0x8Weights::new(&[0u8; 8 * 18], Shape::new(8, 32)).unwrap();
    let mut q = Q8Rows::new();
    q.quantize(&[1.0; 32], 32).unwrap();
    let kern = Kernels::new(1, None).unwrap();
    let mut y = [7.0f32; 9];
    assert!(kern.q4_0x8(&w8, &q, &mut y).is_err());
    assert_eq!(y, [7.0; 9]);
}

/// Q6_K views and the Q8_K activation quantizer refuse what they cannot handle; the quantizer
/// follows ggml's `quantize_row_q8_K_ref` (signed max → −127, ties to even, 16-value sums).
#[test]
fn q6_k_rejects_bad_input_and_q8_k_quantizes_like_ggml() {
    assert!(Q6_KWeights::new(&[0u8; 210], Shape::new(1, 128)).is_err());
    assert!(Q6_KWeights::new(&[0u8; 209], Shape::new(1, 256)).is_err());
    assert!(Q6_KWeights::new(&[0u8; 420], Shape::new(2, 256)).is_ok());
    let mut q = Q8KRows::new();
    assert!(q.quantize(&[1.0; 128], 128).is_err());
    assert!(q.quantize(&[1.0; 300], 256).is_err());
    let mut x = vec![0.0f32; 512];
    for (i, v) in x[..256].iter_mut().enumerate() {
        *v = (i as f32 - 100.0) * 0.5; // largest magnitude: +77.5 at i = 255
    }
    q.quantize(&x, 256).unwrap();
    assert_eq!(q.rows(), 2);
    let iscale = -127.0f32 / 77.5;
    assert_eq!(q.scales()[0], 1.0 / iscale);
    assert_eq!(q.values()[255], -127);
    assert_eq!(q.values()[0], (iscale * -50.0).round_ties_even() as i8);
    // An all-zero block: d = 0, codes 0.
    assert_eq!(q.scales()[1], 0.0);
    assert!(q.values()[256..].iter().all(|&v| v == 0));
    let w = Q6_KWeights::new(&[0u8; 420], Shape::new(2, 256)).unwrap();
    let kern = Kernels::new(1, None).unwrap();
    let mut y = [1.0f32; 3];
    assert!(kern.q6_k(&w, &q, &mut y).is_err());
}

/// The prompt GEMM tile sums 8 blocks in int16 before widening: the largest sums it can meet
/// (every weight +1 or −1, every activation at the quantizer's extreme, K = 2560: 20 blocks,
/// so partial chunks too) stay exact and equal the scalar reference.
#[test]
fn i2s_gemm_int16_sums_hold_at_the_extremes() {
    let Some((s, a)) = pair() else { return };
    let (m, k, ntok) = (4, 2560, 9);
    for sign in [1i8, -1] {
        let w = vec![sign; m * k];
        let bytes = pack_i2s(&w, 1.0);
        let weights = I2sWeights::new(&bytes, Shape::new(m, k)).unwrap();
        let x: Vec<f32> = (0..ntok * k)
            .map(|i| if (i / k) % 2 == 0 { -1000.0 } else { 1000.0 })
            .collect();
        let mut q = QuantizedRows::new();
        q.quantize(&x, k, QuantRule::I2s).unwrap();
        let (mut rs, mut ra) = (vec![0; m * ntok], vec![0; m * ntok]);
        s.i2s_raw(&weights, &q, &mut rs).unwrap();
        a.i2s_raw(&weights, &q, &mut ra).unwrap();
        assert_eq!(rs, ra, "sign {sign}");
    }
}
