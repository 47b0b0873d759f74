#!/usr/bin/env python3
"""How much of a quantized embedding's parity cost comes from the lm_head alone.

Takes transformers' final hidden states of ref-tiny (fixtures/ref-tiny/reference/
hidden_packed.safetensors, `seqN.final_norm`) and multiplies them with the token embedding of
GGUF files written by `bitnet-convert hf-to-gguf --layout tq2_0 --embed-type T` (TQ2_0 so that
gguf-py can open them; the embedding does not depend on the layout), dequantized by gguf-py.
Prints, against the F16 head, the logit error of the quantized weights alone, of the quantized
activations alone (Q8_0 blocks for Q8_0 and Q4_0, Q8_K blocks for Q6_K, as ggml and bitnet-run
do) and of both. Needs `pip install gguf numpy safetensors`.

  head_quant_error.py F16.gguf QUANTIZED.gguf...   (Q8_0, Q6_K and/or Q4_0 embeddings)
"""
import sys

import numpy as np
import gguf
from gguf import quants
from safetensors.numpy import load_file

HIDDEN = "fixtures/ref-tiny/reference/hidden_packed.safetensors"


def embedding(path):
    r = gguf.GGUFReader(path)
    t = next(t for t in r.tensors if t.name == "token_embd.weight")
    values = quants.dequantize(np.array(t.data), t.tensor_type).astype(np.float32)
    return t.tensor_type.name, values.reshape(-1, values.shape[-1])


def q8_0_activations(x):
    x = x.reshape(-1, 32)
    d = np.abs(x).max(1, keepdims=True) / 127
    inv = np.where(d == 0, 0, 1 / np.where(d == 0, 1, d))
    q = np.trunc(x * inv + np.sign(x) * 0.5)  # round half away from zero
    return (q * d.astype(np.float16).astype(np.float32)).reshape(-1)


def q8_k_activations(x):
    x = x.reshape(-1, 256)
    signed_max = x[np.arange(len(x)), np.abs(x).argmax(1)][:, None]
    iscale = -127 / signed_max
    return (np.minimum(127, np.rint(iscale * x)) / iscale).reshape(-1)


ACTIVATIONS = {"Q8_0": "q8_0", "Q4_0": "q8_0", "Q6_K": "q8_k"}


def main(f16_path, *quantized):
    hidden = load_file(HIDDEN)
    h = np.concatenate([v for k, v in sorted(hidden.items()) if k.endswith("final_norm")])
    h = h.astype(np.float32)
    _, e16 = embedding(f16_path)
    reference = h @ e16.T
    print(f"{len(h)} positions; logit std {reference.std():.3f}")
    for path in quantized:
        name, eq = embedding(path)
        act = q8_0_activations if ACTIVATIONS[name] == "q8_0" else q8_k_activations
        hq = np.stack([act(row) for row in h])
        rel = np.abs(e16 - eq).mean() / np.abs(e16).mean()
        print(f"{name}: mean |w - w_q| / mean |w| = {rel:.4f}")
        for label, logits in [("weights only", h @ eq.T), ("activations only", hq @ e16.T),
                              ("both", hq @ eq.T)]:
            top1 = np.mean(logits.argmax(1) == reference.argmax(1)) * 100
            print(f"  {label:17s} mean |dlogit| {np.abs(logits - reference).mean():.4f}  "
                  f"top-1 {top1:.1f} %")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    main(*sys.argv[1:])
