#!/usr/bin/env python3
"""Times masks written as regions against the same masks as structured
kinds on the CPU JIT (the flash lowering), in one process:

    python bench/cpu_region_masks.py [S]

A region mask's tiles are classified by interval arithmetic
(RegionIntervals.cpp): hidden tiles skipped, visible ones unmasked. Run
with ATTN_OPT pointing at another build for a before/after comparison.
Every result is checked against the structured twin first.
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "python"))
from attn_mlir import compiler, dsl, variants  # noqa: E402
from attn_mlir.timing import wall_clock_s  # noqa: E402


WINDOW = 127  # the library sliding_window: j >= i - 127


def main():
    S = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 4, S, 64)).astype(np.float32)
               for _ in range(3))
    cases = [
        ("causal", "causal", lambda b, h, i, j: j <= i),
        ("sliding_window", "sliding_window",
         lambda b, h, i, j: (j <= i) & (i - j <= WINDOW)),
    ]
    for name, lib_name, fn in cases:
        times, outs = {}, {}
        for label, var in (("region", dsl.mask(fn)),
                           ("structured", variants.load(lib_name))):
            def call():
                return compiler.attention(q, k, v, variant=var,
                                          cpu_cache=True)
            outs[label] = call()  # compiles; the timed call is the next
            times[label] = wall_clock_s(call, 1)[0]
        err = float(np.max(np.abs(outs["region"] - outs["structured"])))
        assert err < 1e-4, (name, err)
        print(f"{name:15s} S={S} " + "  ".join(
            f"{k}={t:.3f}s" for k, t in times.items()), flush=True)


if __name__ == "__main__":
    main()
