#!/usr/bin/env python3
"""ALiBi (Press et al., ICLR 2022): a per-head linear distance penalty,
m_h * (j - i), added to the scores; the slopes m_h are a captured tensor.

Two ways to get the same kernel: the library variant `alibi` (written in
MLIR, python/attn_mlir/variants/alibi.mlir) and a five-line DSL definition
that adds a sliding window. Each is compiled, run, and checked against the
float64 reference; the two agree where the window does not cut.
"""
from _common import (TOL, banner, check, dsl, finish, rng, run, show,
                     variants, where)

import numpy as np


@dsl.variant(normalization="softmax",
             masks=[dsl.causal(), dsl.sliding_window(48)])
def alibi_window(score, b, h, q_idx, kv_idx, slopes):
    return score + slopes[h] * (kv_idx - q_idx)


def main():
    B, Hq, Hkv, S, D = 2, 8, 2, 96, 32            # GQA: 4 query heads per kv head
    r = rng(0)
    q = r.standard_normal((B, Hq, S, D)).astype(np.float32)
    k = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    v = r.standard_normal((B, Hkv, S, D)).astype(np.float32)
    slopes = (2.0 ** (-8.0 * (np.arange(Hq) + 1) / Hq)).astype(np.float32)
    print(f"running on {where()}; slopes = "
          f"{np.round(slopes.astype(float), 4).tolist()}")

    library = variants.load("alibi")
    outs = {}
    for var in (library, alibi_window):
        banner(f"{var.name}")
        show(var)
        out, seen = run(var, q, k, v, captures=[slopes])
        outs[var.name] = out
        if out is None:
            continue
        want = var.reference(seen["q"], seen["k"], seen["v"], slopes)
        check(f"{var.name} vs reference", out, want)
        # The slopes are data: other slopes, same compiled kernel.
        rev = slopes[::-1].copy()
        out2, seen = run(var, q, k, v, captures=[rev])
        check(f"{var.name} (reversed slopes) vs reference", out2,
              var.reference(seen["q"], seen["k"], seen["v"], rev))
    # Past the window of 48 the penalty is >= 48 m_h: the heads with the
    # steepest slopes (0.5, 0.25) barely notice the cut.
    if outs["alibi"] is not None:
        banner("windowed vs full ALiBi, heads 0-1")
        check("alibi_window ~ alibi on the steep heads",
              outs["alibi_window"][:, :2], outs["alibi"][:, :2],
              tol=max(TOL, 1e-3))
    finish()


if __name__ == "__main__":
    main()
