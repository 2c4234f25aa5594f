#!/usr/bin/env python3
"""PNG charts of a benchmark run's same-process table: one panel per case,
TFLOP/s against S (log scale) for attn-mlir and every peer the run timed
(sdpa-flash, sdpa-cudnn, flex; the baseline bundles where the run had
them).

    python bench/plot.py bench/results/2026-12-01-h200-backward-wgmma.json \\
        --title "backward, H200" --out docs/images/backward-h200.png

Reads the ``bench`` rows that bench/gpu_bench.py and bench/gpu_backward.py
write with ``--json``; ``--only`` picks cases. Needs matplotlib.
"""
import argparse
import json
import math
from collections import OrderedDict

#: The series of a row, in drawing order, and their legend labels.
SERIES = (("attn_mlir", "attn-mlir"), ("baseline", "attn-mlir (baseline)"),
          ("sdpa_flash", "sdpa-flash"), ("sdpa_cudnn", "sdpa-cudnn"),
          ("flex", "flex"))
#: One colour per series in every panel.
COLORS = {"attn_mlir": "C0", "baseline": "C7", "sdpa_flash": "C1",
          "sdpa_cudnn": "C2", "flex": "C3"}


def by_case(rows, only=()):
    """{case: {series: [(S, TFLOP/s), ...] sorted by S}} of the rows that
    have a value for the series (cases in the order of the run)."""
    out = OrderedDict()
    for r in rows:
        if only and r["case"] not in only:
            continue
        case = out.setdefault(r["case"], OrderedDict())
        for key, _ in SERIES:
            if isinstance(r.get(key), (int, float)):
                case.setdefault(key, []).append((r["S"], float(r[key])))
    for case in out.values():
        for points in case.values():
            points.sort()
    return out


def figure(rows, title="", only=()):
    """The matplotlib Figure of the rows (one axis per case)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cases = by_case(rows, only)
    if not cases:
        raise ValueError("no bench rows to plot" +
                         (f" for {sorted(only)}" if only else ""))
    cols = min(4, len(cases))
    nrows = math.ceil(len(cases) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows),
                             squeeze=False)
    labels = dict(SERIES)
    for ax, (name, series) in zip(axes.flat, cases.items()):
        for key, points in series.items():
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=labels[key], color=COLORS[key],
                    linewidth=2.2 if key == "attn_mlir" else 1.2)
        ax.set_xscale("log", base=2)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("S")
        ax.set_ylabel("TFLOP/s")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(cases):]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", help="a --json file of gpu_bench.py or "
                                    "gpu_backward.py")
    ap.add_argument("--out", required=True, help="the PNG to write")
    ap.add_argument("--title", default="")
    ap.add_argument("--only", default="", help="comma-separated cases")
    args = ap.parse_args(argv)
    with open(args.results) as f:
        rows = json.load(f)["bench"]
    only = set(filter(None, args.only.split(",")))
    fig = figure(rows, args.title, only)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({len(by_case(rows, only))} cases)")


if __name__ == "__main__":
    main()
