#!/usr/bin/env python3
"""Dilated neighborhood attention (NATTEN; Hassani et al., CVPR 2023 and
the DiNAT paper, 2022), 1-D and 2-D.

neighborhood_1d: a sequence of 64 tokens, kernel 7, dilation 2: each query
sees the 7 nearest tokens of its parity. neighborhood_2d: a 16 x 16 grid of
tokens (row-major), kernel 7 x 7, dilation 2 x 2. Both are library variants
(python/attn_mlir/variants/neighborhood_{1d,2d}.mlir), checked against the
reference; the 2-D mask of one query is drawn.
"""
from _common import banner, check, finish, ref, rng, run, show, variants, where

import numpy as np


def main():
    print(f"running on {where()}")
    for name, S in (("neighborhood_1d", 64), ("neighborhood_2d", 256)):
        var = variants.load(name)
        B, Hq, Hkv, D = 1, 4, 2, 32
        r = rng(5)
        q = r.standard_normal((B, Hq, S, D)).astype(np.float32)
        k = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
        v = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
        banner(name)
        show(var)
        vis = ref.visibility(B, Hq, S, S, var.spec["masks"])[0, 0]
        counts = vis.sum(-1)
        print(f"keys per query: min {counts.min()}, max {counts.max()}")
        if name == "neighborhood_2d":
            i = 1 * 16 + 4                      # the query at row 1, column 4
            grid = vis[i].reshape(16, 16)
            print(f"keys seen by the query at (1, 4) (Q):")
            for rr in range(16):
                print("  " + " ".join(
                    "Q" if rr * 16 + c == i else ("#" if grid[rr, c] else ".")
                    for c in range(16)))
        out, seen = run(var, q, k, v)
        if out is not None:
            check(f"{name} vs reference", out,
                  var.reference(seen["q"], seen["k"], seen["v"]))
    finish()


if __name__ == "__main__":
    main()
