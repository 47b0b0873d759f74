//! Kernels against upstream's kernel vectors (`fixtures/vectors/{i2s,tl1,tl2}`): quantized
//! activations, LUT bytes, integer dots and float outputs must match bit for bit, on every ISA
//! this CPU has.

use crate::kernels_support::*;
use bitnet_gguf::layout::tiling::{Tl1Tiling, Tl2Tiling};
use bitnet_gguf::layout::Shape;
use bitnet_gguf::runtime::kernels::*;
use serde_json::Value;

fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Scalar];
    if Isa::Avx2.available() {
        v.push(Isa::Avx2);
    } else {
        eprintln!("NOTE: AVX2 not available: only the scalar kernels are checked");
    }
    v
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

#[test]
fn i2s_matvec_matches_upstream_kernel() {
    let dir = "fixtures/vectors/i2s/r128x256_s1";
    let bytes = std::fs::read(format!("{dir}.i2s.bin")).unwrap();
    let w = I2sWeights::new(&bytes, Shape::new(128, 256)).unwrap();
    let x = npy_f32(&format!("{dir}.matvec.x.npy"));
    let mut q = QuantizedRows::new();
    q.quantize(&x, 256, QuantRule::I2s).unwrap();
    assert_eq!(q.values(), &npy_i8(&format!("{dir}.matvec.q8.npy"))[..]);
    assert_eq!(
        bits(q.scales()),
        bits(&npy_f32(&format!("{dir}.matvec.act_scale.npy")))
    );
    assert_eq!(q.sums(), &npy_i32(&format!("{dir}.matvec.act_sum.npy"))[..]);
    let raw_expected: Vec<i32> = npy_f32(&format!("{dir}.matvec.raw.npy"))
        .iter()
        .map(|&f| f as i32)
        .collect();
    let y_expected = npy_f32(&format!("{dir}.matvec.y.npy"));
    for isa in isas() {
        for threads in [1, 2] {
            let kern = Kernels::new(threads, Some(isa)).unwrap();
            let mut raw = vec![0; 3 * 128];
            kern.i2s_raw(&w, &q, &mut raw).unwrap();
            assert_eq!(raw, raw_expected, "{isa:?} raw");
            let mut y = vec![0.0; 3 * 128];
            kern.i2s(&w, &q, &mut y).unwrap();
            assert_eq!(bits(&y), bits(&y_expected), "{isa:?} y");
        }
    }
}

struct Case {
    dir: String,
    m: usize,
    k: usize,
    weights: Vec<i8>,
    scale: f32,
    c: Value,
}

fn cases(layout: &str) -> Vec<Case> {
    let text = std::fs::read_to_string(format!("fixtures/vectors/{layout}/manifest.json")).unwrap();
    let manifest: Value = serde_json::from_str(&text).unwrap();
    manifest["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let m = c["shape"]["M"].as_u64().unwrap() as usize;
            let k = c["shape"]["K"].as_u64().unwrap() as usize;
            let weights: Vec<i8> = match &c["seed"] {
                Value::String(s) if s == "formula" => (0..m * k)
                    .map(|i| {
                        let (r, col) = (i / k, i % k);
                        let v = if layout == "tl1" {
                            r + 2 * col
                        } else {
                            r + col + col / 3
                        };
                        (v % 3) as i8 - 1
                    })
                    .collect(),
                seed => splitmix_ternary(seed["weights"].as_u64().unwrap(), m * k),
            };
            Case {
                dir: format!("fixtures/vectors/{layout}/{}", c["dir"].as_str().unwrap()),
                m,
                k,
                weights,
                scale: c["weight_scale_f32"].as_f64().unwrap() as f32,
                c: c.clone(),
            }
        })
        .collect()
}

fn hex_f32(v: &Value) -> f32 {
    let s = v.as_str().unwrap();
    let b: Vec<u8> = (0..4)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    f32::from_le_bytes(b.try_into().unwrap())
}

/// Quantizes the case's activations with the LUT rule and checks q and lut_scale.
fn lut_activations(case: &Case) -> QuantizedRows {
    let x = npy_f32(&format!("{}/act_f32.npy", case.dir));
    let mut q = QuantizedRows::new();
    q.quantize(&x, case.k, QuantRule::Lut).unwrap();
    assert_eq!(
        q.values(),
        &npy_i8(&format!("{}/act_q_i8.npy", case.dir))[..],
        "{}",
        case.dir
    );
    let lut_scale = hex_f32(&case.c["kernel"]["lut_scale_le_hex"]);
    assert_eq!(q.scales()[0].to_bits(), lut_scale.to_bits(), "{}", case.dir);
    q
}

fn check_dots(case: &Case, dots: &[i32], y: &[f32], what: &str) {
    assert_eq!(
        dots,
        &npy_i32(&format!("{}/dot_i32.npy", case.dir))[..],
        "{} {what}",
        case.dir
    );
    assert_eq!(
        bits(y),
        bits(&npy_f32(&format!("{}/out_f32.npy", case.dir))),
        "{} {what}",
        case.dir
    );
}

#[test]
fn tl1_every_case_matches_upstream_kernel() {
    for case in cases("tl1") {
        let p = &case.c["params"];
        let get = |n: &str| p[n].as_u64().unwrap() as usize;
        let tiling = Tl1Tiling {
            tile_rows: get("BM"),
            block_k: get("BK"),
            simd_rows: get("bm"),
        };
        let packed = pack_tl1(
            &case.weights,
            case.m,
            case.k,
            get("BM"),
            get("BK"),
            get("bm"),
        );
        assert_eq!(
            sha256_hex(&packed),
            case.c["expected_packed"]["sha256"].as_str().unwrap(),
            "{} packer",
            case.dir
        );
        let region = with_scale_slot(packed, case.scale);
        let w = Tl1Weights::new(&region, Shape::new(case.m, case.k), tiling).unwrap();
        assert_eq!(w.scale(), case.scale);
        let q = lut_activations(&case);
        let mut lut = vec![0u8; tl1_lut_len(case.k)];
        tl1_build_lut(q.row(0), &mut lut);
        let expected = std::fs::read(format!("{}/lut.bin", case.dir)).unwrap();
        assert_eq!(lut.len(), expected.len());
        for (g, (ours, theirs)) in lut.chunks(32).zip(expected.chunks(32)).enumerate() {
            assert_eq!(
                &ours[..9],
                &theirs[..9],
                "{} group {g} high bytes",
                case.dir
            );
            assert_eq!(
                &ours[16..25],
                &theirs[16..25],
                "{} group {g} low bytes",
                case.dir
            );
        }
        for isa in isas() {
            let kern = Kernels::new(2, Some(isa)).unwrap();
            let mut dots = vec![0; case.m];
            kern.tl1_dot(&w, &q, &mut dots).unwrap();
            let mut y = vec![0.0; case.m];
            kern.tl1(&w, &q, &mut y).unwrap();
            check_dots(&case, &dots, &y, isa.name());
        }
    }
}

#[test]
fn tl2_every_case_matches_upstream_kernel() {
    for case in cases("tl2") {
        let p = &case.c["params"];
        let tiling = Tl2Tiling {
            tile_rows: p["BM"].as_u64().unwrap() as usize,
            block_k: p["BK"].as_u64().unwrap() as usize,
        };
        let packed = pack_tl2(
            &case.weights,
            case.m,
            case.k,
            tiling.tile_rows,
            tiling.block_k,
        );
        assert_eq!(
            sha256_hex(&packed),
            case.c["expected_packed"]["sha256"].as_str().unwrap(),
            "{} packer",
            case.dir
        );
        let region = with_scale_slot(packed, case.scale);
        let w = Tl2Weights::new(&region, Shape::new(case.m, case.k), tiling).unwrap();
        assert_eq!(w.scale(), case.scale);
        assert_eq!(w.three_k() as u64, p["three_k"].as_u64().unwrap());
        let q = lut_activations(&case);
        let three_k = w.three_k();
        let (l3, l2) = tl2_lut_lens(three_k, case.k - three_k);
        let mut lut = vec![0u8; l3 + l2];
        let (lut3, lut2) = lut.split_at_mut(l3);
        tl2_build_luts(q.row(0), three_k, lut3, lut2);
        let expected = std::fs::read(format!("{}/lut.bin", case.dir)).unwrap();
        assert!(lut == expected, "{} LUT bytes", case.dir);
        for isa in isas() {
            let kern = Kernels::new(2, Some(isa)).unwrap();
            let mut dots = vec![0; case.m];
            kern.tl2_dot(&w, &q, &mut dots).unwrap();
            let mut y = vec![0.0; case.m];
            kern.tl2(&w, &q, &mut y).unwrap();
            check_dots(&case, &dots, &y, isa.name());
        }
    }
}

/// One weight matrix in I2_S, TL1, TL2 and TQ2_0/TQ1_0 (with d = the same scale) gives
/// bit-identical outputs through the runtime quantizer.
#[test]
fn all_ternary_layouts_agree_bit_for_bit() {
    let (m, k) = (256, 768);
    let w = splitmix_ternary(4, m * k);
    let scale = 0.5f32; // exact in f16, so TQ's d equals it.
    let shape = Shape::new(m, k);
    let x: Vec<f32> = (0..3 * k)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
        .collect();
    let mut q = QuantizedRows::new();
    q.quantize(&x, k, QuantRule::I2s).unwrap();
    let i2s_bytes = pack_i2s(&w, scale);
    let tl1_bytes = with_scale_slot(pack_tl1(&w, m, k, 128, 128, 64), scale);
    let tl2_bytes = with_scale_slot(pack_tl2(&w, m, k, 128, 192), scale);
    let half = half::f16::from_f32(scale).to_bits();
    let tq2_bytes = pack_tq2_0(&w, half);
    let tq1_bytes = pack_tq1_0(&w, half);
    for isa in isas() {
        let kern = Kernels::new(1, Some(isa)).unwrap();
        let mut ys = vec![vec![0.0f32; 3 * m]; 5];
        kern.i2s(&I2sWeights::new(&i2s_bytes, shape).unwrap(), &q, &mut ys[0])
            .unwrap();
        let t1 = Tl1Tiling {
            tile_rows: 128,
            block_k: 128,
            simd_rows: 64,
        };
        kern.tl1(
            &Tl1Weights::new(&tl1_bytes, shape, t1).unwrap(),
            &q,
            &mut ys[1],
        )
        .unwrap();
        let t2 = Tl2Tiling {
            tile_rows: 128,
            block_k: 192,
        };
        kern.tl2(
            &Tl2Weights::new(&tl2_bytes, shape, t2).unwrap(),
            &q,
            &mut ys[2],
        )
        .unwrap();
        kern.tq2_0(
            &Tq2_0Weights::new(&tq2_bytes, shape).unwrap(),
            &q,
            &mut ys[3],
        )
        .unwrap();
        kern.tq1_0(
            &Tq1_0Weights::new(&tq1_bytes, shape).unwrap(),
            &q,
            &mut ys[4],
        )
        .unwrap();
        for (i, y) in ys.iter().enumerate().skip(1) {
            assert_eq!(bits(y), bits(&ys[0]), "{isa:?} layout #{i} vs I2_S");
        }
        // And the exact integer truth.
        let mut dots = vec![0; 3 * m];
        kern.tl2_dot(
            &Tl2Weights::new(&tl2_bytes, shape, t2).unwrap(),
            &q,
            &mut dots,
        )
        .unwrap();
        for t in 0..3 {
            for r in 0..m {
                let exact: i32 = (0..k)
                    .map(|c| i32::from(w[r * k + c]) * i32::from(q.row(t)[c]))
                    .sum();
                assert_eq!(dots[t * m + r], exact);
            }
        }
    }
}

#[test]
fn weight_views_reject_bad_input() {
    let shape = Shape::new(4, 128);
    assert!(matches!(
        I2sWeights::new(&[0u8; 10], shape),
        Err(Error::WeightBytes { expected: 132, .. })
    ));
    assert!(matches!(
        I2sWeights::new(&[0u8; 200], Shape::new(4, 100)),
        Err(Error::IllegalShape { .. })
    ));
    let bad_tiling = Tl1Tiling {
        tile_rows: 32,
        block_k: 16,
        simd_rows: 48,
    };
    assert!(Tl1Weights::new(&[0u8; 1000], Shape::new(32, 16), bad_tiling).is_err());
    let bad_tl2 = Tl2Tiling {
        tile_rows: 32,
        block_k: 36,
    };
    assert!(Tl2Weights::new(&[0u8; 2000], Shape::new(32, 80), bad_tl2).is_err());
    let kern = Kernels::new(1, Some(Isa::Scalar)).unwrap();
    let bytes = vec![0x55u8; 4 * 32 + 32];
    let w = I2sWeights::new(&bytes, shape).unwrap();
    let mut q = QuantizedRows::new();
    q.quantize(&[1.0; 256], 128, QuantRule::I2s).unwrap();
    assert!(matches!(
        kern.i2s(&w, &q, &mut [0.0; 7]),
        Err(Error::SizeMismatch { expected: 8, .. })
    ));
}
