//! Test support for the kernel tests: a minimal .npy reader, the fixtures' splitmix64 weight
//! generator, and small TL1/TL2/TQ packers written from the specs (independent of the codecs in
//! `src/layout/`, so kernels and codecs check each other).

use sha2::{Digest, Sha256};

/// Reads a little-endian .npy v1 file; returns (descr, shape, data bytes).
pub fn read_npy(path: &str) -> (String, Vec<usize>, Vec<u8>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{path}: not npy");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
    let descr = header
        .split("'descr': '")
        .nth(1)
        .unwrap()
        .split('\'')
        .next()
        .unwrap();
    let shape_txt = header
        .split("'shape': (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    let shape = shape_txt
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (descr.to_string(), shape, bytes[10 + hlen..].to_vec())
}

pub fn npy_f32(path: &str) -> Vec<f32> {
    let (d, _, b) = read_npy(path);
    assert_eq!(d, "<f4", "{path}");
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn npy_i32(path: &str) -> Vec<i32> {
    let (d, _, b) = read_npy(path);
    assert_eq!(d, "<i4", "{path}");
    b.chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn npy_i8(path: &str) -> Vec<i8> {
    let (d, _, b) = read_npy(path);
    assert_eq!(d, "|i1", "{path}");
    b.into_iter().map(|v| v as i8).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The manifests' weight generator: element i (row-major, 1-based) → (z mod 3) − 1.
pub fn splitmix_ternary(seed: u64, n: usize) -> Vec<i8> {
    (1..=n as u64)
        .map(|i| {
            let mut z = seed.wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z % 3) as i8 - 1
        })
        .collect()
}

/// TL1 pair code `3·w0 + w1 + 4`.
fn pair_code(w: &[i8], m: usize, k: usize, p: usize) -> u8 {
    (3 * w[m * k + 2 * p] + w[m * k + 2 * p + 1] + 4) as u8
}

/// TL1 bytes (`tl1.md` §3), without the scale slot.
pub fn pack_tl1(
    w: &[i8],
    m_rows: usize,
    k: usize,
    bm_tile: usize,
    bk: usize,
    bm: usize,
) -> Vec<u8> {
    let by = 256 / bm;
    let mut out = Vec::with_capacity(m_rows * k / 4);
    for t in 0..m_rows / bm_tile {
        for kb in 0..k / bk {
            for sb in 0..bm_tile / bm {
                for cb in 0..bk / by {
                    for rg in 0..bm / 16 {
                        for q in 0..by / 4 {
                            for r in 0..16 {
                                let m = t * bm_tile + sb * bm + rg * 16 + r;
                                let p0 = (kb * bk + cb * by) / 2 + 2 * q;
                                out.push(
                                    (pair_code(w, m, k, p0) << 4) | pair_code(w, m, k, p0 + 1),
                                );
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

fn row_of_pos(pos: usize) -> usize {
    [0, 16, 8, 24][pos / 8] + pos % 8
}

/// TL2 (idx, sign) of triplet t of row m.
fn triplet(w: &[i8], m: usize, k: usize, t: usize) -> (u8, u16) {
    let v = 9 * w[m * k + 3 * t] + 3 * w[m * k + 3 * t + 1] + w[m * k + 3 * t + 2];
    (v.unsigned_abs(), u16::from(v < 0))
}

/// TL2 payload (`tl2.md` §3): sections A, B, C and zero padding to L(M, K).
pub fn pack_tl2(w: &[i8], m_rows: usize, k: usize, bm_tile: usize, bk: usize) -> Vec<u8> {
    let three_k = k / bk * bk;
    let two_k = k - three_k;
    let mut out = Vec::new();
    for t in 0..m_rows / bm_tile {
        for kb in 0..three_k / bk {
            for sb in 0..bm_tile / 32 {
                for cb in 0..bk / 6 {
                    let t0 = (kb * bk + cb * 6) / 3;
                    for pos in 0..32 {
                        let m = t * bm_tile + sb * 32 + row_of_pos(pos);
                        out.push((triplet(w, m, k, t0).0 << 4) | triplet(w, m, k, t0 + 1).0);
                    }
                }
            }
        }
    }
    for t in 0..m_rows / bm_tile {
        for kb in 0..three_k / bk {
            for sb in 0..bm_tile / 32 {
                for sg in 0..bk / 24 {
                    let tb = (kb * bk + sg * 24) / 3;
                    for j in 0..16 {
                        let mut word = 0u16;
                        for i in 0..8 {
                            let m = t * bm_tile + sb * 32 + j;
                            word |= triplet(w, m, k, tb + i).1 << (15 - 2 * i);
                            word |= triplet(w, m + 16, k, tb + i).1 << (14 - 2 * i);
                        }
                        out.extend_from_slice(&word.to_le_bytes());
                    }
                }
            }
        }
    }
    // Two part: pairs over the remainder columns.
    let code = |m: usize, p: usize| {
        (3 * w[m * k + three_k + 2 * p] + w[m * k + three_k + 2 * p + 1] + 4) as u8
    };
    for t in 0..m_rows / bm_tile {
        for kb in 0..two_k / 32 {
            for sb in 0..bm_tile / 32 {
                for cb in 0..8 {
                    let p0 = kb * 16 + cb * 2;
                    for pos in 0..32 {
                        let m = t * bm_tile + sb * 32 + row_of_pos(pos);
                        out.push((code(m, p0) << 4) | code(m, p0 + 1));
                    }
                }
            }
        }
    }
    let l =
        bitnet_gguf::runtime::kernels::tl2_payload_len(bitnet_gguf::layout::Shape::new(m_rows, k))
            .unwrap();
    assert!(out.len() <= l);
    out.resize(l, 0);
    out
}

/// A GGUF-style tensor region: payload, zeros to a multiple of 32, f32 scale, 28 zeros.
pub fn with_scale_slot(mut payload: Vec<u8>, scale: f32) -> Vec<u8> {
    payload.resize(payload.len().div_ceil(32) * 32, 0);
    payload.extend_from_slice(&scale.to_le_bytes());
    payload.extend_from_slice(&[0; 28]);
    payload
}

/// I2_S bytes (`i2s.md` §3) + tail.
pub fn pack_i2s(w: &[i8], scale: f32) -> Vec<u8> {
    let mut out = vec![0u8; w.len() / 4];
    for (n, &t) in w.iter().enumerate() {
        let (blk, j) = (n / 128, n % 128);
        out[blk * 32 + j % 32] |= ((t + 1) as u8) << (6 - 2 * (j / 32));
    }
    with_scale_slot(out, scale)
}

/// TQ2_0 blocks (ggml `quantize_row_tq2_0_ref` order) with f16 `d` bits.
pub fn pack_tq2_0(w: &[i8], d: u16) -> Vec<u8> {
    let mut out = Vec::new();
    for blk in w.chunks_exact(256) {
        let mut qs = [0u8; 64];
        for j in [0usize, 32] {
            for m in 0..32 {
                for l in 0..4 {
                    qs[j + m] |= ((blk[j * 4 + l * 32 + m] + 1) as u8) << (2 * l);
                }
            }
        }
        out.extend_from_slice(&qs);
        out.extend_from_slice(&d.to_le_bytes());
    }
    out
}

/// TQ1_0 blocks (ggml `quantize_row_tq1_0_ref` order) with f16 `d` bits.
pub fn pack_tq1_0(w: &[i8], d: u16) -> Vec<u8> {
    let enc = |codes: &[i8], lead_shift: bool| {
        let mut q: u16 = 0;
        for &c in codes {
            q = q * 3 + (c + 1) as u16;
        }
        if lead_shift {
            q *= 3;
        }
        // ggml rounds up: ceil(q · 256 / 243).
        (q * 256).div_ceil(243) as u8
    };
    let mut out = Vec::new();
    for blk in w.chunks_exact(256) {
        for m in 0..32 {
            let c: Vec<i8> = (0..5).map(|n| blk[n * 32 + m]).collect();
            out.push(enc(&c, false));
        }
        for m in 0..16 {
            let c: Vec<i8> = (0..5).map(|n| blk[160 + n * 16 + m]).collect();
            out.push(enc(&c, false));
        }
        for j in 0..4 {
            let c: Vec<i8> = (0..4).map(|n| blk[240 + n * 4 + j]).collect();
            out.push(enc(&c, true));
        }
        out.extend_from_slice(&d.to_le_bytes());
    }
    out
}
