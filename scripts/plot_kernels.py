#!/usr/bin/env python3
"""Renders docs/kernels.png from the output of `cargo bench --bench kernels`.

Usage (matplotlib in a throw-away venv; CI does not need this script):

    cargo bench --bench kernels > /tmp/kernels.txt
    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install matplotlib
    /tmp/venv/bin/python scripts/plot_kernels.py /tmp/kernels.txt docs/kernels.png

Reads the markdown rows `| kernel | M×K | tokens | threads | median ms | weight GB/s | int GOP/s |`
and draws two panels: GEMV (1 token) weight GB/s and GEMM (128 tokens) integer GOP/s, one bar
per kernel and thread count, grouped by shape.
"""

import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

KERNELS = ["I2_S", "TL1", "TL2", "TQ2_0"]


def parse(path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) != 7 or cells[0] not in KERNELS:
                continue
            kernel, shape, tokens, threads, _ms, gbps, gops = cells
            rows.append(
                (kernel, shape, int(tokens), int(threads), float(gbps), float(gops.split()[0]))
            )
    return rows


def main():
    src, out = sys.argv[1], sys.argv[2]
    rows = parse(src)
    shapes = list(dict.fromkeys(r[1] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [(1, 4, "GEMV 1×K·K×M: weight GB/s"), (128, 5, "GEMM 128×K·K×M: int GOP/s")]
    series = [(k, t) for t in (1, 2) for k in KERNELS]
    width = 0.8 / len(series)
    colors = {"I2_S": "tab:blue", "TL1": "tab:orange", "TL2": "tab:green", "TQ2_0": "tab:red"}
    for ax, (tokens, col, title) in zip(axes, panels):
        for i, (kernel, threads) in enumerate(series):
            values = []
            for shape in shapes:
                hit = [r[col] for r in rows if r[:4] == (kernel, shape, tokens, threads)]
                values.append(hit[0] if hit else 0.0)
            xs = [s + (i - len(series) / 2 + 0.5) * width for s in range(len(shapes))]
            ax.bar(
                xs,
                values,
                width,
                color=colors[kernel],
                alpha=1.0 if threads == 1 else 0.55,
                hatch="" if threads == 1 else "//",
                label=f"{kernel}, {threads} thread{'s' if threads > 1 else ''}",
            )
        ax.set_xticks(range(len(shapes)))
        ax.set_xticklabels([f"M×K {s}" for s in shapes], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle("bitnet-gguf AVX2 kernels, BitNet b1.58 2B-4T shapes (2-core AMD EPYC, shared)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


if __name__ == "__main__":
    main()
