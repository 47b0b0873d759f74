#!/usr/bin/env python3
"""Q6_K / Q4_0 / Q8_0 / Q8_K test vectors made by ggml itself (fixtures/vectors/blockq).

Loads ggml's shared libraries from a llama.cpp build and runs, on deterministic inputs:
  quantize_row_q6_K_ref, quantize_row_q4_0_ref, quantize_row_q8_0_ref, quantize_row_q8_K_ref
  (libggml-base), and ggml's CPU vec_dot for Q6_K x Q8_K and Q4_0 x Q8_0 (libggml-cpu, type
  traits), whose f32 results are kept.
Writes raw little-endian files plus manifest.json (with the llama.cpp version and compiler).

  make_blockq_vectors.py LLAMA_BUILD_DIR OUT_DIR

How the fixtures in this repository were made (2026-11-22): llama.cpp vendored in the PyPI
sdist llama-cpp-python 0.3.36, `cmake -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
-DGGML_NATIVE=ON` (gcc 12.2, AVX2+FMA), then this script.
"""
import ctypes
import json
import sys
from pathlib import Path

import numpy as np

QK_K = 256


def rows(seed):
    """Eight rows of 2560 values (10 Q6_K blocks each) covering the quantizer's branches."""
    rng = np.random.default_rng(seed)
    k = 2560
    out = []
    # Embedding-like: bf16-rounded normals, sd 0.02 (2B-4T's token_embd magnitude).
    e = rng.normal(0, 0.02, k).astype(np.float32)
    out.append((e.view(np.uint32) & 0xFFFF0000).view(np.float32))
    out.append(rng.normal(0, 1, k).astype(np.float32))
    # Heavy tails: a few large values per block.
    h = rng.normal(0, 0.01, k).astype(np.float32)
    h[rng.integers(0, k, 40)] *= 300
    out.append(h)
    # All zero except one block; and one all-zero 16-value sub-block inside a block.
    z = np.zeros(k, np.float32)
    z[512:768] = rng.uniform(-1, 1, 256)
    z[512 + 32:512 + 48] = 0
    out.append(z)
    # Ties: multiples of a power-of-two step, negatives dominating.
    out.append((rng.integers(-64, 40, k) * 0.0625).astype(np.float32))
    # Tiny values near f16's subnormal range, and huge ones.
    out.append(rng.normal(0, 1e-6, k).astype(np.float32))
    out.append(rng.normal(0, 1e4, k).astype(np.float32))
    # A smooth ramp (many sub-blocks with nearly equal scales).
    out.append(np.linspace(-3, 2, k, dtype=np.float32))
    return np.stack(out)


def main(build, out_dir):
    build, out = Path(build), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base = ctypes.CDLL(str(build / "bin" / "libggml-base.so"))
    cpu = ctypes.CDLL(str(build / "bin" / "libggml-cpu.so"))
    f32p, vp = ctypes.POINTER(ctypes.c_float), ctypes.c_void_p
    for name in ["quantize_row_q6_K_ref", "quantize_row_q4_0_ref", "quantize_row_q8_0_ref",
                 "quantize_row_q8_K_ref"]:
        getattr(base, name).argtypes = [f32p, vp, ctypes.c_int64]
        getattr(base, name).restype = None

    w = rows(20261122)
    x = rows(7)[[1, 2, 0, 7, 3, 4, 5, 6]]  # activations: another draw, other order
    m, k = w.shape
    f = lambda a: a.ctypes.data_as(f32p)

    q6 = np.zeros(m * k // QK_K * 210, np.uint8)
    base.quantize_row_q6_K_ref(f(w), q6.ctypes.data, m * k)
    q8_0 = np.zeros(m * k // 32 * 34, np.uint8)
    base.quantize_row_q8_0_ref(f(w), q8_0.ctypes.data, m * k)
    q4_0 = np.zeros(m * k // 32 * 18, np.uint8)
    base.quantize_row_q4_0_ref(f(w), q4_0.ctypes.data, m * k)
    x8_0 = np.zeros(m * k // 32 * 34, np.uint8)
    base.quantize_row_q8_0_ref(f(x), x8_0.ctypes.data, m * k)
    q8k = np.zeros(m * k // QK_K * 292, np.uint8)
    base.quantize_row_q8_K_ref(f(x), q8k.ctypes.data, m * k)

    # ggml_get_type_traits_cpu(GGML_TYPE_Q6_K)->vec_dot(n, &s, bs, vx, bx, vy, by, nrc)
    class Traits(ctypes.Structure):
        _fields_ = [("from_float", vp), ("vec_dot", vp), ("vec_dot_type", ctypes.c_int),
                    ("nrows", ctypes.c_int64)]
    cpu.ggml_get_type_traits_cpu.restype = ctypes.POINTER(Traits)
    cpu.ggml_get_type_traits_cpu.argtypes = [ctypes.c_int]
    if hasattr(cpu, "ggml_cpu_init"):
        cpu.ggml_cpu_init()
    def all_dots(wtype, wq, wbytes, xtype, xq, xbytes):
        traits = cpu.ggml_get_type_traits_cpu(wtype).contents
        assert traits.vec_dot_type == xtype, traits.vec_dot_type
        vec_dot = ctypes.CFUNCTYPE(None, ctypes.c_int, f32p, ctypes.c_size_t, vp,
                                   ctypes.c_size_t, vp, ctypes.c_size_t, ctypes.c_int)(
                                       traits.vec_dot)
        dots = np.zeros((m, m), np.float32)  # dots[t][r] = row r of W . row t of X
        s = ctypes.c_float()
        for t in range(m):
            for r in range(m):
                vec_dot(k, ctypes.byref(s), 0, wq.ctypes.data + r * wbytes, 0,
                        xq.ctypes.data + t * xbytes, 0, 1)
                dots[t, r] = s.value
        return dots

    # GGML_TYPE_Q6_K = 14 with Q8_K = 15; GGML_TYPE_Q4_0 = 2 with Q8_0 = 8.
    dots = all_dots(14, q6, k // QK_K * 210, 15, q8k, k // QK_K * 292)
    dots_q4_0 = all_dots(2, q4_0, k // 32 * 18, 8, x8_0, k // 32 * 34)

    files = {"weights.f32": w, "activations.f32": x, "weights.q6_k": q6, "weights.q8_0": q8_0,
             "activations.q8_k": q8k, "dots.f32": dots, "weights.q4_0": q4_0,
             "activations.q8_0": x8_0, "dots_q4_0.f32": dots_q4_0}
    for n, a in files.items():
        (out / n).write_bytes(np.ascontiguousarray(a).tobytes())
    version = (build.parent / "CMakeLists.txt")
    manifest = {
        "format": "ggml block-quantization vectors v1",
        "made_by": "scripts/make_blockq_vectors.py with ggml from llama.cpp vendored in the PyPI "
                   "sdist llama-cpp-python 0.3.36 (Release, GGML_NATIVE, gcc 12.2, AVX2+FMA)",
        "shape": {"rows": m, "k": k},
        "files": {
            "weights.f32": "rows x k float32, the quantizer input",
            "activations.f32": "rows x k float32, the activation input",
            "weights.q6_k": "quantize_row_q6_K_ref(weights): block_q6_K, 210 bytes per 256 values",
            "weights.q8_0": "quantize_row_q8_0_ref(weights): block_q8_0, 34 bytes per 32 values",
            "activations.q8_k": "quantize_row_q8_K_ref(activations): block_q8_K = f32 d, "
                                "int8 qs[256], int16 bsums[16] (292 bytes)",
            "dots.f32": "rows x rows float32: [t][r] = ggml CPU vec_dot_q6_K_q8_K(weights.q6_k row r, "
                        "activations.q8_k row t) (the AVX2 kernel: f32 sum order differs from ours)",
            "weights.q4_0": "quantize_row_q4_0_ref(weights): block_q4_0, 18 bytes per 32 values",
            "activations.q8_0": "quantize_row_q8_0_ref(activations): block_q8_0",
            "dots_q4_0.f32": "rows x rows float32: [t][r] = ggml CPU vec_dot_q4_0_q8_0(weights.q4_0 "
                             "row r, activations.q8_0 row t) (AVX2; f32 sum order differs)",
        },
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {out}: {m} rows x {k}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
